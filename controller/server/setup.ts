/**
 * The server half of `codeb server init` (hidden `codeb server setup`, run as root on the server by
 * the codeb that init just installed there): the shared services as systemd units, configured by
 * the local stack's own writers (controller/stack/*: initdb + pg_hba, redis.conf + ACL file, the
 * Caddy front, radosgw's admin user, the forwarder's arguments, the services address), supervised
 * by systemd instead of stack/process.ts. Then settings.json (0600), in the shape codeb reads, and
 * the timers of the periodic work (timers.ts: monitor, due jobs, due backups).
 *
 * planSetup decides from observations what to do (pure, unit-tested); applySetup does it. Nothing
 * is touched when everything is already as desired: a second init changes nothing.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { promisify } from 'node:util';
import { CodebError } from '../errors.js';
import type { Settings } from '../settings.js';
import { codebHome, settingsPath, stackDir } from '../settings.js';
import { findBinaries, findProgram } from '../stack/binaries.js';
import { caddyPart } from '../stack/caddy.js';
import { buildSettings, loadOrCreateCredentials, writeSettings, type StackCredentials } from '../stack/credentials.js';
import { forwarderPart } from '../stack/forwarder.js';
import { stackNetwork, stackPaths, stackPorts, type S3Kind, type StackNetwork, type StackPaths, type StackPorts } from '../stack/layout.js';
import type { Part, StartContext } from '../stack/part.js';
import { postgresPart } from '../stack/postgres.js';
import { redisPart } from '../stack/redis.js';
import { rgwCommand, s3Part, s3rverKeyFile } from '../stack/s3.js';
import { planTimers, serverTimers, type TimerObservation } from './timers.js';
import { networkUnit, plainPath, serviceUnit, UNIT_NAMES, type ServerUnit } from './units.js';

const run = promisify(execFile);

/** The Podman API socket of the distribution's podman package (podman.socket). */
export const SERVER_PODMAN_SOCKET = '/run/podman/podman.sock';
const UNIT_DIR = '/etc/systemd/system';

/** The object storage unit of each stand-in (init-plan.ts chooseStorage decides which). */
function storageUnit(kind: S3Kind, paths: StackPaths): { description: string; extra: string[] } {
  if (kind === 'radosgw') return { description: 'codeb object storage: Ceph RADOS Gateway, dbstore backend (stand-in for MinIO)', extra: ['RuntimeDirectory=ceph'] };
  return {
    description: 'codeb object storage: s3rver (shared-key stand-in for MinIO where radosgw 17+ is not offered)',
    // The key from a root-only file; the rest of the system read-only to it but its own folder.
    extra: [`EnvironmentFile=${plainPath(s3rverKeyFile(paths))}`, 'NoNewPrivileges=yes', 'ProtectSystem=strict', 'ProtectHome=yes', 'PrivateTmp=yes', `ReadWritePaths=${plainPath(paths.s3.root)}`],
  };
}

/** Service parts in start order: the forwarder before Caddy (Caddy's front proxies to its router). */
const SERVICE_PARTS: Array<{ unit: Exclude<ServerUnit, 'network'>; part: Part; /** s3: storageUnit's */ description?: string; after?: ServerUnit[]; extra?: string[] }> = [
  { unit: 'postgres', part: postgresPart, description: 'codeb shared PostgreSQL (SCRAM; loopback and the services address)' },
  { unit: 'redis', part: redisPart, description: 'codeb shared Redis (ACL users, RDB persistence)' },
  { unit: 's3', part: s3Part },
  { unit: 'forwarder', part: forwarderPart, description: 'codeb forwarder (entry ports and host router; restores its table at start)' },
  { unit: 'caddy', part: caddyPart, description: 'codeb Caddy front (admin API on a Unix socket only; unknown hosts get 404)', after: ['forwarder'] },
];

export interface UnitObservation {
  /** The unit file's current text (null: absent). */
  file: string | null;
  active: boolean;
  enabled: boolean;
}

export interface SetupObservation {
  units: Record<ServerUnit, UnitObservation>;
  /** Credentials generated now (settings.json had none): the services must take them. */
  freshCredentials: boolean;
  /** settings.json as it is (null: absent) and as it should be. */
  settingsText: string | null;
  podmanSocket: { enabled: boolean; active: boolean };
  /** Distribution services to stop and disable (their packages were installed by this init) that are enabled or active. */
  distroToDisable: string[];
  /** The codeb code on the server changed in this init: the forwarder must run the new one. */
  codeChanged: boolean;
}

export interface SetupStep {
  /** What is acted on: a unit, the settings file, a distribution service. */
  target: string;
  action: 'write-and-start' | 'rewrite-and-restart' | 'start' | 'restart' | 'enable-socket' | 'disable' | 'write';
  why: string;
}

/** What to do, from what is there (pure). An empty list: nothing to do. */
export function planSetup(o: SetupObservation, desired: Record<ServerUnit, string>, desiredSettings: string): SetupStep[] {
  const steps: SetupStep[] = [];
  for (const d of o.distroToDisable) steps.push({ target: d, action: 'disable', why: 'installed by init as a dependency; codeb runs its own unit instead (and its Caddy needs ports 80/443)' });
  const order: ServerUnit[] = ['network', ...SERVICE_PARTS.map((p) => p.unit)];
  for (const u of order) {
    const seen = o.units[u];
    const name = UNIT_NAMES[u];
    const credsMatter = o.freshCredentials && (u === 'postgres' || u === 'redis' || u === 's3');
    if (seen.file === null) steps.push({ target: name, action: 'write-and-start', why: 'not installed' });
    else if (seen.file !== desired[u]) steps.push({ target: name, action: 'rewrite-and-restart', why: 'its unit file differs from what this codeb writes' });
    else if (credsMatter) steps.push({ target: name, action: 'restart', why: 'new admin credentials (settings.json had none)' });
    else if (!seen.active || !seen.enabled) steps.push({ target: name, action: 'start', why: seen.active ? 'not enabled at boot' : 'not running' });
    else if (u === 'forwarder' && o.codeChanged) steps.push({ target: name, action: 'restart', why: 'codeb was updated' });
  }
  if (!o.podmanSocket.enabled || !o.podmanSocket.active) steps.push({ target: 'podman.socket', action: 'enable-socket', why: 'the Podman API codeb deploys through' });
  if (o.settingsText !== desiredSettings) steps.push({ target: 'settings.json', action: 'write', why: o.settingsText === null ? 'absent' : 'endpoints changed' });
  return steps;
}

interface ServerLayout {
  paths: StackPaths;
  ports: StackPorts;
  network: StackNetwork;
  settingsFile: string;
}

/** Where a server keeps everything: $CODEB_HOME (/opt/codeb)/stack; the front on 80/443. */
export function serverLayout(env: NodeJS.ProcessEnv): ServerLayout {
  const dir = stackDir(env);
  const base = stackPorts(env);
  return {
    paths: stackPaths(dir),
    ports: { ...base, http: Number(env.CODEB_STACK_HTTP_PORT || 80), https: Number(env.CODEB_STACK_HTTPS_PORT || 443) },
    network: stackNetwork(env, dir),
    settingsFile: settingsPath(env),
  };
}

function serverSettings(creds: StackCredentials, l: ServerLayout, storage: S3Kind, rgwAdmin: string[]): Settings {
  const s = buildSettings(creds, l.ports, l.paths, l.network, storage === 'radosgw' ? { kind: 'radosgw', rgwAdmin } : { kind: 's3rver' });
  return { ...s, caddy: { ...s.caddy, tlsIssuer: 'acme' }, podman: { socketPath: SERVER_PODMAN_SOCKET } };
}

async function systemctl(args: string[], allowFail = false): Promise<string> {
  try {
    return (await run('systemctl', args, { timeout: 120_000 })).stdout;
  } catch (err) {
    if (allowFail) return (err as { stdout?: string }).stdout ?? '';
    const e = err as { stderr?: string; message: string };
    throw new CodebError(`systemctl ${args.join(' ')} failed: ${(e.stderr || e.message).trim()}`, { hint: `See \`journalctl -u ${args[args.length - 1]} -n 50\` on the server.` });
  }
}

async function observeUnit(name: string): Promise<UnitObservation> {
  const file = `${UNIT_DIR}/${name}`;
  const text = existsSync(file) ? readFileSync(file, 'utf8') : null;
  const active = (await systemctl(['is-active', name], true)).trim() === 'active';
  const enabled = (await systemctl(['is-enabled', name], true)).trim() === 'enabled';
  return { file: text, active, enabled };
}

export interface SetupOptions {
  env?: NodeJS.ProcessEnv;
  dryRun?: boolean;
  /** Distribution services whose packages this init installed (postgresql, redis-server, caddy). */
  disableDistro?: string[];
  codeChanged?: boolean;
  /** The object storage stand-in (init-plan.ts chooseStorage); default radosgw. */
  storage?: S3Kind;
  onStep?: (step: SetupStep, state: 'doing' | 'done') => void;
}

export interface SetupResult {
  steps: SetupStep[];
  settingsFile: string;
}

export async function runSetup(opts: SetupOptions = {}): Promise<SetupResult> {
  // The units get a fixed environment (not the SSH session's or sudo's PATH): the same text every run.
  const given = opts.env ?? process.env;
  const env: NodeJS.ProcessEnv = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root' };
  for (const [k, v] of Object.entries(given)) if (k.startsWith('CODEB_')) env[k] = v;
  if (process.getuid?.() !== 0) throw new CodebError('`codeb server setup` configures system services and must run as root.', { hint: 'It is run by `codeb server init`, which uses sudo when the SSH user is not root.' });
  const l = serverLayout(env);
  const hadCreds = existsSync(l.settingsFile);
  const creds = loadOrCreateCredentials(l.settingsFile);
  const storage: S3Kind = opts.storage ?? 'radosgw';
  const bins = findBinaries(['postgres', 'redis', 'caddy', ...(storage === 's3rver' ? (['s3'] as const) : [])], env);
  const rgwAdmin = rgwCommand('/', l.paths, 'radosgw-admin');
  const notes: string[] = [];
  const ctx: StartContext = { paths: l.paths, ports: l.ports, network: l.network, env, isRoot: true, s3Kind: storage, rgwRootfs: '/', server: true, creds, bins, notes };

  const absolute = (cmd: string) => (isAbsolute(cmd) ? cmd : (findProgram(cmd, env) ?? cmd));
  const desired = {} as Record<ServerUnit, string>;
  desired.network = networkUnit(l.network, findProgram('ip', env) ?? '/usr/sbin/ip');
  for (const p of SERVICE_PARTS) {
    const spec = p.part.launch(ctx);
    const { description, extra } = p.unit === 's3' ? storageUnit(storage, l.paths) : { description: p.description ?? p.unit, extra: p.extra };
    desired[p.unit] = serviceUnit({ description, spec: { ...spec, command: absolute(spec.command) }, stopSignal: p.part.stopSignal, after: p.after?.map((u) => UNIT_NAMES[u]), extra });
  }
  const settings = serverSettings(creds, l, storage, rgwAdmin);
  const desiredSettings = JSON.stringify(settings, null, 2) + '\n';

  const units = {} as Record<ServerUnit, UnitObservation>;
  for (const u of Object.keys(UNIT_NAMES) as ServerUnit[]) units[u] = await observeUnit(UNIT_NAMES[u]);
  const distroToDisable: string[] = [];
  for (const d of opts.disableDistro ?? []) {
    const o = await observeUnit(`${d}.service`);
    if (o.active || o.enabled) distroToDisable.push(`${d}.service`);
  }
  const sock = await observeUnit('podman.socket');
  const timers = serverTimers({ home: codebHome(env) });
  const timersSeen: Record<string, TimerObservation> = {};
  for (const t of timers) {
    const timer = await observeUnit(`${t.name}.timer`);
    const serviceFile = `${UNIT_DIR}/${t.name}.service`;
    timersSeen[t.name] = { service: existsSync(serviceFile) ? readFileSync(serviceFile, 'utf8') : null, timer: timer.file, active: timer.active, enabled: timer.enabled };
  }
  const observation: SetupObservation = {
    units,
    freshCredentials: !hadCreds || Object.values(creds.fresh).some(Boolean),
    settingsText: existsSync(l.settingsFile) ? readFileSync(l.settingsFile, 'utf8') : null,
    podmanSocket: { enabled: sock.enabled, active: sock.active },
    distroToDisable,
    codeChanged: opts.codeChanged ?? false,
  };
  // A first init writes settings.json before it starts anything: a later run then reuses the same credentials.
  // The timers last: their commands need the services and settings.json.
  const steps: SetupStep[] = [...planSetup(observation, desired, desiredSettings), ...planTimers(timersSeen, timers)];
  if (opts.dryRun || steps.length === 0) return { steps, settingsFile: l.settingsFile };

  const byUnitName = new Map<string, ServerUnit>(Object.entries(UNIT_NAMES).map(([k, v]) => [v, k as ServerUnit]));
  const settingsStep = steps.find((s) => s.target === 'settings.json');
  // Credentials first (0600): if a later step fails, the next init reuses them instead of making new ones.
  if (settingsStep) {
    opts.onStep?.(settingsStep, 'doing');
    writeSettings(l.settingsFile, settings);
    // For the next init's facts (readable without root): a server on s3rver keeps it (chooseStorage).
    writeFileSync(join(codebHome(env), '.codeb-storage'), `${storage}\n`, { mode: 0o644 });
    opts.onStep?.(settingsStep, 'done');
  }
  if (storage === 'radosgw') mkdirSync('/run/ceph', { recursive: true });
  for (const step of steps) {
    if (step === settingsStep) continue;
    opts.onStep?.(step, 'doing');
    if (step.action === 'disable') await systemctl(['disable', '--now', step.target]);
    else if (step.action === 'enable-socket') await systemctl(['enable', '--now', 'podman.socket']);
    else if (timers.some((t) => `${t.name}.timer` === step.target)) {
      const t = timers.find((x) => `${x.name}.timer` === step.target)!;
      if (step.action !== 'start') {
        writeFileSync(`${UNIT_DIR}/${t.name}.service`, t.service, { mode: 0o644 });
        writeFileSync(`${UNIT_DIR}/${t.name}.timer`, t.timer, { mode: 0o644 });
        await systemctl(['daemon-reload']);
      }
      await systemctl(['enable', step.target]);
      await systemctl(['restart', step.target]);
    } else {
      const u = byUnitName.get(step.target)!;
      const p = SERVICE_PARTS.find((x) => x.unit === u);
      if (units[u].active) await systemctl(['stop', step.target]);
      // prepare (initdb, configuration files, the gateway's admin user) only while the service is stopped.
      if (p && (step.action !== 'restart' || observation.freshCredentials)) await p.part.prepare(ctx);
      if (step.action === 'write-and-start' || step.action === 'rewrite-and-restart') {
        mkdirSync(UNIT_DIR, { recursive: true });
        writeFileSync(`${UNIT_DIR}/${step.target}`, desired[u], { mode: 0o644 });
        await systemctl(['daemon-reload']);
      }
      await systemctl(['enable', step.target]);
      await systemctl(['restart', step.target]);
      if (p) await waitServing(p.part, ctx, step.target);
    }
    opts.onStep?.(step, 'done');
  }
  return { steps, settingsFile: l.settingsFile };
}

async function waitServing(part: Part, ctx: StartContext, unit: string): Promise<void> {
  const deadline = Date.now() + part.startTimeoutMs;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    const r = await part.probe(ctx);
    if (r.ok) return;
    last = r.reason;
    if (r.fatal) break;
    await new Promise((res) => setTimeout(res, 200));
  }
  const journal = await run('journalctl', ['-u', unit, '-n', '15', '--no-pager'], { timeout: 10_000 }).then((r) => r.stdout, () => '');
  throw new CodebError(`${unit} did not answer at ${part.address(ctx)}: ${last}\n${journal.trim()}`, { hint: `See \`journalctl -u ${unit}\` and \`systemctl status ${unit}\` on the server; running init again retries.` });
}

