/**
 * `codeb server check`: what a server has and lacks for codeb, each gap with the command that
 * fixes it. Facts come from one POSIX shell script (works on a bare server: it only needs sh) and,
 * when codeb is installed there, from `codeb server facts` (service endpoints from its
 * settings.json, reachability, free ports). assessServer turns facts into checks; it is pure.
 */

import { quoteArg } from '../transport/shell-quote.js';
import { UNIT_NAMES } from './units.js';
import { SERVER_TIMER_NAMES } from './timers.js';
import type { Target } from '../transport/target.js';

/** $@ = the command that starts codeb on that machine. Prints key=value lines, then codeb's facts. */
export const FACTS_SCRIPT = [
  'first() { "$@" 2>/dev/null | head -n 1; }',
  'echo "os=$(uname -sm 2>/dev/null)"',
  'echo "distro=$( (. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME") )"',
  'echo "user=$(id -un 2>/dev/null)"',
  'echo "node=$(first node --version)"',
  'echo "podman=$(first podman --version)"',
  'echo "pid1=$(cat /proc/1/comm 2>/dev/null)"',
  'echo "systemd_state=$(first systemctl is-system-running)"',
  'echo "caddy=$(first caddy version)"',
  'pg=; for p in $(command -v postgres 2>/dev/null) /usr/lib/postgresql/*/bin/postgres; do [ -x "$p" ] && { pg=$(first "$p" --version); break; }; done; echo "postgres=$pg"',
  'echo "redis=$(first redis-server --version)"',
  'echo "minio=$(first minio --version)"',
  'echo "codeb=$(first "$@" --version)"',
  `echo "timers=$(systemctl is-active ${SERVER_TIMER_NAMES.map((n) => `${n}.timer`).join(' ')} 2>/dev/null | tr '\\n' ' ')"`,
  'echo "codeb_facts=$("$@" server facts 2>/dev/null | tr -d \'\\n\')"',
].join('\n');

export interface ShellFacts {
  os: string;
  distro: string;
  user: string;
  node: string;
  podman: string;
  pid1: string;
  systemd_state: string;
  caddy: string;
  postgres: string;
  redis: string;
  minio: string;
  codeb: string;
  /** `systemctl is-active` of each server timer, in SERVER_TIMER_NAMES order, space-separated. */
  timers: string;
  codeb_facts: string;
}

export interface Endpoint {
  address: string;
  reachable: boolean;
  error?: string;
}

/** What `codeb server facts` prints (as JSON) on the server. */
export interface CodebFacts {
  codebHome: string;
  settingsFile: string;
  settings: boolean;
  settingsError?: string;
  services: Partial<Record<'postgres' | 'redis' | 'storage' | 'caddy' | 'podman', Endpoint & { kind?: string }>>;
  ports: { min: number; max: number; listening: number; allocated: number; free: number };
  registry: { file: string; deployments: number };
}

export type CheckStatus = 'ok' | 'warn' | 'missing';

export interface Check {
  name: string;
  status: CheckStatus;
  found: string;
  /** The command (or step) that closes the gap. */
  fix?: string;
}

export function parseShellFacts(text: string): ShellFacts {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1).trim();
  }
  const keys: Array<keyof ShellFacts> = ['os', 'distro', 'user', 'node', 'podman', 'pid1', 'systemd_state', 'caddy', 'postgres', 'redis', 'minio', 'codeb', 'timers', 'codeb_facts'];
  return Object.fromEntries(keys.map((k) => [k, out[k] ?? ''])) as unknown as ShellFacts;
}

export function parseCodebFacts(text: string): CodebFacts | null {
  if (!text.trim().startsWith('{')) return null;
  try {
    return JSON.parse(text) as CodebFacts;
  } catch {
    return null;
  }
}

/** First x.y[.z] in a version line, as numbers. */
export function versionOf(text: string): number[] | null {
  const m = /(\d+)\.(\d+)(?:\.(\d+))?/.exec(text);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : null;
}

function atLeast(v: number[] | null, min: number[]): boolean {
  if (!v) return false;
  for (let i = 0; i < min.length; i++) {
    if ((v[i] ?? 0) !== min[i]) return (v[i] ?? 0) > min[i]!;
  }
  return true;
}

export interface CheckContext {
  /** Where the facts come from; fixes for a server are written as ssh commands run from here. */
  target: Target;
  /** How codeb is started there (for messages). */
  codebCommand: string;
  /** This codeb checkout, to copy to a server that lacks codeb. */
  localInstall: string;
}

const APT = 'sudo apt-get install -y';

export function assessServer(f: ShellFacts, c: CodebFacts | null, ctx: CheckContext): Check[] {
  const checks: Check[] = [];
  const t = ctx.target;
  const remote = t !== 'local';
  const userHost = remote ? `${t.user}@${t.host.includes(':') ? `[${t.host}]` : t.host}` : '';
  const onServer = (cmd: string) => (remote ? `ssh ${t.port === 22 ? '' : `-p ${t.port} `}${userHost} ${quoteArg(cmd)}` : cmd);

  // node
  const node = versionOf(f.node);
  if (!f.node) checks.push({ name: 'node', status: 'missing', found: 'not installed', fix: onServer(`${APT} nodejs`) + ' (Node.js 20 or later; older distributions: https://github.com/nodesource/distributions)' });
  else if (!atLeast(node, [20])) checks.push({ name: 'node', status: 'missing', found: `${f.node} (codeb needs 20 or later)`, fix: 'install Node.js 20 or later: https://github.com/nodesource/distributions' });
  else checks.push({ name: 'node', status: 'ok', found: f.node });

  // codeb
  if (f.codeb && versionOf(f.codeb)) checks.push({ name: 'codeb', status: 'ok', found: `${f.codeb} (${ctx.codebCommand})` });
  else {
    // `server init` installs this codeb there (and everything else a server needs).
    const fix = `codeb server init ${remote ? t.display : 'local'}`;
    checks.push({ name: 'codeb', status: 'missing', found: `not runnable as \`${ctx.codebCommand}\``, fix });
  }

  // podman (Quadlet needs 4.4)
  const podman = versionOf(f.podman);
  if (!f.podman) checks.push({ name: 'podman', status: 'missing', found: 'not installed', fix: onServer(`${APT} podman`) });
  else if (!atLeast(podman, [4, 4])) {
    checks.push({ name: 'podman', status: 'warn', found: `${f.podman}: Quadlet units need 4.4 or later`, fix: 'fine for runtime: systemd (plain units) or podman; runtime: quadlet needs Podman 4.4+ (Debian 13 and Ubuntu 24.04 ship 4.9+)' });
  } else checks.push({ name: 'podman', status: 'ok', found: `${f.podman} (Quadlet supported)` });

  // systemd as PID 1
  if (f.pid1 === 'systemd') {
    const state = f.systemd_state || 'unknown';
    checks.push(state === 'running' ? { name: 'systemd', status: 'ok', found: 'PID 1, running' } : { name: 'systemd', status: 'warn', found: `PID 1, state ${state}`, fix: onServer('systemctl --failed') + ' shows the failed units' });
  } else {
    checks.push({ name: 'systemd', status: 'missing', found: `PID 1 is ${f.pid1 ? `"${f.pid1}"` : 'unknown'}, not systemd`, fix: 'services and containers run as systemd units on a server: use a host (VM or machine) booted with systemd, not a container' });
  }

  // the timers of the periodic work (server init installs them): without them nothing monitors, backs up or runs jobs
  if (f.pid1 === 'systemd' && f.codeb) {
    const states = f.timers.split(/\s+/).filter(Boolean);
    const idle = SERVER_TIMER_NAMES.filter((_, i) => states[i] !== 'active');
    checks.push(
      idle.length === 0
        ? { name: 'timers', status: 'ok', found: `${SERVER_TIMER_NAMES.join(', ')} active (monitor and due jobs every minute, due backups every 5 minutes)` }
        : { name: 'timers', status: 'warn', found: `not active: ${idle.join(', ')}: nothing runs ${idle.map((n) => n.replace('codeb-', '')).join(', ')} on a schedule`, fix: `codeb server init ${remote ? t.display : 'local'} (installs them)` },
    );
  }

  // settings.json: where codeb finds the shared services
  if (!c) {
    checks.push({ name: 'settings', status: 'missing', found: 'not checked (needs codeb on the server)', fix: 'install codeb first (above)' });
  } else if (!c.settings) {
    checks.push({ name: 'settings', status: 'missing', found: `${c.settingsFile} ${c.settingsError ?? 'is missing'}`, fix: `codeb server init ${remote ? t.display : 'local'} (writes it with generated credentials), or write ${c.settingsFile} by hand (docs/remote.md)` });
  } else checks.push({ name: 'settings', status: 'ok', found: c.settingsFile });

  const service = (name: 'postgres' | 'redis' | 'storage' | 'caddy', label: string, binary: string, install: string, start: string) => {
    const e = c?.services[name];
    // s3rver (the stand-in where radosgw 17+ is not offered) is fine to run on, with a limit worth knowing.
    const note = e?.kind === 's3rver' ? '; s3rver: one key shared by every project, no bucket policies or lifecycle' : '';
    if (e?.reachable) return checks.push({ name: label, status: 'ok', found: `${e.kind ? `${e.kind} ` : ''}reachable at ${e.address}${binary ? ` (${binary})` : ''}${note}` });
    if (e) return checks.push({ name: label, status: 'missing', found: `not reachable at ${e.address}: ${e.error ?? 'no answer'}${binary ? ` (installed: ${binary})` : ''}`, fix: binary ? onServer(start) : `${onServer(install)} && ${onServer(start)}` });
    if (binary) return checks.push({ name: label, status: 'warn', found: `installed (${binary}); reachability not checked without codeb and settings.json` });
    return checks.push({ name: label, status: 'missing', found: 'not installed', fix: `${onServer(install)} && ${onServer(start)}` });
  };
  service('caddy', 'caddy', f.caddy, `${APT} caddy`, 'sudo systemctl enable --now caddy');
  const admin = c?.services.caddy;
  if (admin?.reachable && !admin.address.startsWith('unix:')) {
    // Anyone who reaches a TCP admin API (any local user, any container on the host network) can rewrite every site.
    checks.push({ name: 'caddy admin', status: 'warn', found: `Caddy's admin API is on TCP (${admin.address}): any local user or container can change it`, fix: 'set admin.listen to "unix//run/caddy/admin.sock" (a 0700 folder) and caddy.adminUrl to "unix:///run/caddy/admin.sock" in settings.json (docs/stack.md)' });
  }
  service('postgres', 'postgres', f.postgres, `${APT} postgresql`, 'sudo systemctl enable --now postgresql');
  service('redis', 'redis', f.redis, `${APT} redis-server`, 'sudo systemctl enable --now redis-server');
  // A server made by `server init` runs its stand-in (radosgw or s3rver) as codeb-s3.service.
  const stored = c?.services.storage?.kind;
  const initStorage = stored === 's3rver' || stored === 'radosgw';
  service('storage', 'minio/s3', initStorage ? UNIT_NAMES.s3 : f.minio, 'install MinIO (https://min.io/docs/minio/linux/operations/install-deploy-manage/deploy-minio-single-node-single-drive.html)', initStorage ? `sudo systemctl restart ${UNIT_NAMES.s3}` : 'sudo systemctl enable --now minio');

  // podman API socket (the podman runtime talks to it)
  const sock = c?.services.podman;
  if (sock && !sock.reachable) checks.push({ name: 'podman api', status: 'missing', found: `socket ${sock.address} not answering: ${sock.error ?? ''}`.trim(), fix: onServer('sudo systemctl enable --now podman.socket') });
  else if (sock) checks.push({ name: 'podman api', status: 'ok', found: `socket ${sock.address}` });

  // free app ports
  if (c) {
    const p = c.ports;
    const size = p.max - p.min + 1;
    checks.push(
      p.free >= 3
        ? { name: 'ports', status: 'ok', found: `${p.free} of ${size} free in ${p.min}-${p.max} (${p.allocated} allocated, ${p.listening} in use by other programs)` }
        : { name: 'ports', status: 'missing', found: `only ${p.free} free in ${p.min}-${p.max}; a web service needs 3 (blue, green, entry)`, fix: `codeb gc --now${remote ? ` --host ${t.display}` : ''}, codeb destroy <project>, or widen CODEB_PORT_RANGE` },
    );
  }
  return checks;
}

export function renderChecks(header: string, checks: Check[]): string {
  const w = Math.max(...checks.map((c) => c.name.length));
  const lines = [header];
  for (const c of checks) {
    lines.push(`  ${c.status === 'ok' ? 'ok     ' : c.status === 'warn' ? 'WARN   ' : 'MISSING'}  ${c.name.padEnd(w)}  ${c.found}`);
    if (c.fix && c.status !== 'ok') lines.push(`  ${' '.repeat(7)}  ${' '.repeat(w)}  fix: ${c.fix}`);
  }
  const gaps = checks.filter((c) => c.status === 'missing').length;
  const warns = checks.filter((c) => c.status === 'warn').length;
  lines.push(gaps || warns ? `${gaps} gap${gaps === 1 ? '' : 's'}, ${warns} warning${warns === 1 ? '' : 's'}.` : 'Everything codeb needs is there.');
  return lines.join('\n');
}
