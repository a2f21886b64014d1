/**
 * `codeb server init`, the effects: gather facts (INIT_FACTS_SCRIPT), plan (init-plan.ts), then
 * apt-get install what is missing, upload this codeb (bundle.ts) to /opt/codeb, and run the
 * server's own `codeb server setup` (setup.ts) as root, which configures the shared services as
 * systemd units. The same steps run over SSH or on this machine (`local`).
 */
import { spawn } from 'node:child_process';
import { copyFileSync, rmSync } from 'node:fs';
import { CodebError } from '../errors.js';
import { installRoot } from '../install-root.js';
import type { ExecResult } from '../transport/ssh.js';
import type { SshSession } from '../transport/ssh.js';
import type { Target } from '../transport/target.js';
import { describeBundle, packBundle } from './bundle.js';
import { INIT_FACTS_SCRIPT, parseInitFacts, planInit, type InitPlan, type InitStep } from './init-plan.js';
import { everyServerPackage } from './packages.js';
import type { SetupStep } from './setup.js';

/** How init runs commands on the server: argv arrays (quoted by the transport), and one file copy. */
export interface HostRunner {
  exec(argv: string[], opts?: { stdin?: string; onStdout?: (c: Buffer) => void; onStderr?: (c: Buffer) => void }): Promise<ExecResult>;
  upload(localFile: string, remoteFile: string): Promise<void>;
}

export function sshRunner(session: SshSession): HostRunner {
  return { exec: (argv, opts) => session.exec(argv, opts), upload: (l, r) => session.upload(l, r) };
}

export function localRunner(): HostRunner {
  return {
    exec: (argv, opts = {}) =>
      new Promise((resolve, reject) => {
        const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (c: Buffer) => ((stdout += c.toString()), opts.onStdout?.(c)));
        child.stderr.on('data', (c: Buffer) => ((stderr += c.toString()), opts.onStderr?.(c)));
        child.on('error', reject);
        child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
        child.stdin.end(opts.stdin ?? '');
      }),
    upload: async (l, r) => copyFileSync(l, r),
  };
}

/** Unpacks the uploaded bundle into /opt/codeb, replacing only the code (state folders stay). $1 archive (in its own mktemp folder, removed), $2 hash. */
const INSTALL_SCRIPT = [
  'set -e',
  'mkdir -p /opt/codeb',
  'cd /opt/codeb',
  'rm -rf bin dist node_modules schemas templates scripts package.json',
  'tar -xzf "$1" --no-same-owner',
  'printf "%s\\n" "$2" > .codeb-bundle',
  'rm -f "$1"',
  'rmdir "${1%/*}"',
].join('\n');

/**
 * $1: update|no-update, then the packages. Quiet apt; its output is shown only when it fails.
 * The packages are then recorded in /opt/codeb/.codeb-installed: a later init still knows which
 * distribution services are its to disable (planInit) if this one stops before setup.
 */
const APT_SCRIPT = [
  'set -e',
  'export DEBIAN_FRONTEND=noninteractive',
  'if [ "$1" = update ]; then apt-get update -q; fi',
  'shift',
  'apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"',
  'mkdir -p /opt/codeb',
  'printf "%s\\n" "$@" >> /opt/codeb/.codeb-installed',
].join('\n');

export interface InitOptions {
  target: Target;
  runner: HostRunner;
  dryRun?: boolean;
  /** Progress lines (stderr in the CLI, so --json stays clean). */
  progress: (line: string) => void;
  /** How codeb runs on the server: ['node', '/opt/codeb/bin/codeb.js'] by default. */
  remoteCodeb: string[];
}

export interface InitReport {
  target: string;
  os: string;
  /** How init got root there: '' (root) or 'sudo'. */
  become: '' | 'sudo';
  /** The object storage stand-in (radosgw or s3rver) and why that one. */
  storage: { kind: string; why: string };
  dryRun: boolean;
  /** Steps taken (or, with --dry-run, that would be taken); empty: nothing to do. */
  steps: Array<{ step: string; detail: string; ms?: number }>;
  changed: boolean;
}

function describe(s: InitStep): string {
  switch (s.kind) {
    case 'apt-update':
      return `apt-get update (${s.why})`;
    case 'apt-install':
      return `apt-get install ${s.packages.join(' ')}`;
    case 'upload':
      return `install codeb in /opt/codeb (${s.why})`;
    case 'services':
      return 'configure the shared services';
  }
}

function failed(what: string, r: ExecResult, hint: string): CodebError {
  if (r.code === null) return new CodebError(`Lost the connection to the server during ${what}.`, { hint: 'Run init again: it continues from what is there.' });
  const tail = `${r.stdout}\n${r.stderr}`.trim().split('\n').slice(-15).join('\n');
  return new CodebError(`${what} failed on the server (exit ${r.code}):\n${tail}`, { hint });
}

export async function serverInit(o: InitOptions): Promise<InitReport> {
  const name = o.target === 'local' ? 'this machine' : o.target.display;
  const root = installRoot();
  const bundle = describeBundle(root);
  const factsRun = await o.runner.exec(['sh', '-c', INIT_FACTS_SCRIPT, 'codeb-init', ...everyServerPackage()]);
  if (factsRun.code !== 0) throw failed('gathering facts', factsRun, 'The server needs a POSIX sh (any Debian/Ubuntu has one).');
  const facts = parseInitFacts(factsRun.stdout);
  const plan: InitPlan = planInit(facts, bundle.hash);
  const become = plan.become ? ['sudo', '-n'] : [];
  const report: InitReport = { target: name, os: facts.osName, become: plan.become, storage: plan.storage, dryRun: Boolean(o.dryRun), steps: [], changed: false };
  o.progress(`Server ${name} (${facts.osName}${plan.become ? ', via sudo' : ''}):`);
  if (plan.present.length) o.progress(`  already installed: ${plan.present.join(' ')}`);
  o.progress(`  object storage: ${plan.storage.kind} (${plan.storage.why})`);

  const setupArgs = (extra: string[]) => [...become, 'env', 'CODEB_REMOTE_SESSION=1', ...o.remoteCodeb, 'server', 'setup', '--json', '--storage', plan.storage.kind, ...extra, ...(plan.disableDistro.length ? ['--disable-distro', plan.disableDistro.join(',')] : [])];

  if (o.dryRun) {
    for (const s of plan.steps) {
      if (s.kind === 'services' && !plan.steps.some((x) => x.kind === 'upload' || x.kind === 'apt-install')) {
        // codeb and the packages are there, codeb current: ask it what it would change (before the
        // packages are installed it cannot tell: it finds no postgres, caddy, ... to configure).
        const r = await o.runner.exec(setupArgs(['--dry-run']));
        if (r.code !== 0) throw failed('`codeb server setup --dry-run`', r, 'Run `codeb server check` on that server.');
        const steps = (JSON.parse(r.stdout) as { steps: SetupStep[] }).steps;
        for (const st of steps) report.steps.push({ step: `${st.action} ${st.target}`, detail: st.why });
      } else report.steps.push({ step: describe(s), detail: s.kind === 'services' ? `every unit and settings.json (${plan.steps.some((x) => x.kind === 'upload') ? 'codeb is not installed there yet' : 'once the packages are installed'})` : s.why });
    }
    for (const s of report.steps) o.progress(`  would: ${s.step}${s.detail ? ` — ${s.detail}` : ''}`);
    if (!report.steps.length) o.progress('  nothing to do');
    return report;
  }

  let codeChanged = false;
  for (const s of plan.steps) {
    const started = Date.now();
    const line = describe(s);
    if (s.kind !== 'services') o.progress(`  ${line} ...`);
    if (s.kind === 'apt-update' || s.kind === 'apt-install') {
      const update = s.kind === 'apt-update';
      if (update && plan.steps.some((x) => x.kind === 'apt-install')) continue; // done with the install below
      const pkgs = s.kind === 'apt-install' ? s.packages : [];
      const r = await o.runner.exec([...become, 'sh', '-c', APT_SCRIPT, 'codeb-apt', plan.steps.some((x) => x.kind === 'apt-update') ? 'update' : 'no-update', ...pkgs]);
      if (r.code !== 0) throw failed(`apt-get install ${pkgs.join(' ')}`, r, 'Fix the package source (apt-get update; see /etc/apt/sources.list*) and run init again; nothing else was changed.');
      report.steps.push({ step: line, detail: s.why, ms: Date.now() - started });
    } else if (s.kind === 'upload') {
      const packed = await packBundle(root, bundle);
      try {
        // A folder of the SSH user's own (0700), not a fixed name in /tmp: another local user could
        // make that file first and change the archive before root unpacks it into /opt/codeb.
        const made = await o.runner.exec(['mktemp', '-d', '/tmp/codeb-bundle.XXXXXXXX']);
        const dir = made.stdout.trim();
        if (made.code !== 0 || !/^\/tmp\/codeb-bundle\.[A-Za-z0-9]+$/.test(dir)) throw failed('making a folder for the upload (mktemp -d in /tmp)', made, 'Check that /tmp on the server is writable.');
        const tmp = `${dir}/codeb.tar.gz`;
        await o.runner.upload(packed.file, tmp);
        const r = await o.runner.exec([...become, 'sh', '-c', INSTALL_SCRIPT, 'codeb-install', tmp, bundle.hash]);
        if (r.code !== 0) throw failed('installing codeb in /opt/codeb', r, 'Check free space and permissions in /opt on the server.');
        report.steps.push({ step: line, detail: `${(packed.bytes / 1e6).toFixed(1)} MB uploaded`, ms: Date.now() - started });
        codeChanged = true;
      } finally {
        rmSync(packed.dir, { recursive: true, force: true });
      }
    } else {
      let buffered = '';
      const r = await o.runner.exec(setupArgs(codeChanged ? ['--code-changed'] : []), {
        // setup prints one JSON line per step as it goes: relay them as progress.
        onStderr: (c) => {
          buffered += c.toString();
          let nl: number;
          while ((nl = buffered.indexOf('\n')) >= 0) {
            const l = buffered.slice(0, nl);
            buffered = buffered.slice(nl + 1);
            if (l.trim()) o.progress(`  ${l.trim()}`);
          }
        },
      });
      if (r.code !== 0) throw failed('configuring the services (`codeb server setup`)', r, 'The message above names the service; running init again continues from what is there.');
      const steps = (JSON.parse(r.stdout) as { steps: SetupStep[] }).steps;
      for (const st of steps) report.steps.push({ step: `${st.action} ${st.target}`, detail: st.why });
    }
  }
  report.changed = report.steps.length > 0;
  if (!report.changed) o.progress('  nothing to do: packages, codeb and every service are as they should be');
  return report;
}

