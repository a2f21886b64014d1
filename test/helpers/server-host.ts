/**
 * A real second machine for the server tests: a bare Debian 13 server (or Debian 12 or Ubuntu 24.04,
 * see HostSuite; systemd as PID 1, sshd, nothing of codeb's) booted in a privileged Podman container
 * on a Podman network the test makes, reached over SSH at its own address. No VM is available here; this is the closest honest thing.
 *
 * - The root filesystem is built once and cached (scripts/build-rootfs.sh `server`, keyed by its
 *   inputs): BARE_SERVER_PACKAGES installed, the packages `codeb server init` installs
 *   (SERVER_PACKAGES) only downloaded into its apt cache with the package lists kept, so init
 *   really runs `apt-get install` on the host, without any mirror (the host reaches none).
 * - Each host boots from an overlay mount over the cached folder (the cache stays pristine; an
 *   overlay costs milliseconds where `cp -a` of the ~700 MB folder costs seconds). The host's
 *   /var/lib/containers is a plain folder bind-mounted from ext4 (its Podman's overlay driver
 *   cannot sit on an overlay upper dir).
 * - Its network is `--internal` (no default route, no masquerading): the host reaches this machine
 *   and nothing else. Podman gives an internal bridge no address on this side, so the helper puts
 *   the gateway address on the bridge itself after every start (netavark makes the bridge anew).
 * - "Reboot" is a container restart: systemd stops everything and boots again from the same disk.
 *
 * Needs root (overlay mounts, privileged containers). Each test file passes its own name and
 * subnet: files run in parallel and bridge subnets are global on the machine.
 */
import { execFile, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { BARE_SERVER_PACKAGES, allServerPackages } from '../../controller/server/packages.js';
import { SERVER_TIMER_NAMES } from '../../controller/server/timers.js';
import { ensureRootfs } from '../../controller/stack/rootfs.js';
import { shellQuote } from '../../controller/transport/shell-quote.js';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '..', '..');

/** The default pool test hosts take their /24 networks from (override: CODEB_TEST_HOST_POOL, a /16). */
export const DEFAULT_TEST_HOST_POOL = '10.71.0.0/16';

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ServerHost {
  name: string;
  /** The host's own address on its network (SSH on port 22). */
  address: string;
  /** The address of this machine as the host sees it (its network's gateway). */
  gateway: string;
  /** root@address, as codeb takes it (`codeb server init root@10.71.3.10`). */
  target: string;
  /** Private key the host trusts for root, and a known_hosts file that trusts the host's key. */
  clientKey: string;
  knownHosts: string;
  /** Environment for a codeb CLI that talks to this host (key file and known_hosts). */
  sshEnv: () => NodeJS.ProcessEnv;
  /** Run argv on the host as root over SSH (quoted with the project's shellQuote). */
  exec: (argv: string[], opts?: { input?: string | Buffer; timeoutMs?: number }) => Promise<ExecResult>;
  /** Run a POSIX shell script on the host; throws with its output when it exits non-zero. */
  sh: (script: string, opts?: { timeoutMs?: number }) => Promise<string>;
  /** "Reboot": restart the container (systemd shuts down and boots again), then wait until SSH answers. */
  restart: () => Promise<void>;
  stop: () => Promise<void>;
  start: () => Promise<void>;
  /** Wait until sshd answers and systemd has finished booting (running or degraded). */
  waitReady: (timeoutMs?: number) => Promise<void>;
  /** Copy a local image into the host's own Podman (podman save here → podman load there). */
  loadImage: (ref: string, opts?: { podmanSocket?: string }) => Promise<void>;
  /** Remove the container, its network, the overlay and every file of this host. */
  remove: () => Promise<void>;
}

/** Podman for the host containers: runc and no default ulimits (the machine facts of this workplace). */
function podmanEnv(): NodeJS.ProcessEnv {
  return { ...process.env, CONTAINERS_CONF: join(ROOT, 'scripts', 'podman', 'containers.conf') };
}

async function podman(args: string[], opts: { allowFail?: boolean } = {}): Promise<string> {
  try {
    return (await run('podman', args, { env: podmanEnv(), timeout: 180_000, maxBuffer: 16 * 1024 * 1024 })).stdout;
  } catch (err) {
    if (opts.allowFail) return '';
    const e = err as { stderr?: string; message: string };
    throw new Error(`podman ${args.join(' ')}: ${(e.stderr || e.message).trim()}`);
  }
}

/**
 * Which distribution the test host runs. `trixie` (Debian 13, the default): a bare server that
 * `codeb server init` makes ready. `bookworm` (Debian 12): a bare server whose operator installed
 * Debian's own podman (4.3.1, no Quadlet) and nothing else: the host for what codeb does with a
 * Podman older than 4.4 and with the s3rver stand-in (its Node 18 is too old for codeb; the test
 * brings a Node 20). `noble` (Ubuntu 24.04, main and universe): a bare server like trixie's, whose
 * packages init installs come from Ubuntu's archive; it offers Node 18 only (nodejs not even
 * downloaded: init must not install it), so the test brings a Node 20 as on bookworm.
 */
export type HostSuite = 'trixie' | 'bookworm' | 'noble';

/** The cached bare-server rootfs of `suite` (built on first use: about two minutes, needs root and the mirror). */
export function serverRootfs(suite: HostSuite = 'trixie'): Promise<string> {
  if (suite === 'bookworm') {
    // What init installs with the s3rver stand-in, only downloaded (radosgw 16.2 and its Ceph
    // libraries are not: init does not install them there). The package lists stay, so the host
    // offers Debian 12's Node 18 and radosgw 16.2 as a real server does.
    return ensureRootfs('server', { ...process.env, CODEB_ROOTFS_SUITE: 'bookworm', CODEB_ROOTFS_PACKAGES: [...BARE_SERVER_PACKAGES, 'podman'].join(' '), CODEB_ROOTFS_DOWNLOAD: allServerPackages({ id: 'debian', version: '12' }, 's3rver').join(' ') });
  }
  if (suite === 'noble') {
    return ensureRootfs('server', {
      ...process.env,
      CODEB_ROOTFS_SUITE: 'noble',
      CODEB_ROOTFS_PACKAGES: BARE_SERVER_PACKAGES.join(' '),
      CODEB_ROOTFS_DOWNLOAD: allServerPackages({ id: 'ubuntu', version: '24.04' }).filter((p) => p !== 'nodejs').join(' '),
    });
  }
  return ensureRootfs('server', {
    ...process.env,
    CODEB_ROOTFS_PACKAGES: BARE_SERVER_PACKAGES.join(' '),
    CODEB_ROOTFS_DOWNLOAD: allServerPackages().join(' '),
  });
}

/** The i-th /24 of a /16 pool ("10.71.0.0/16", 3 → 10.71.3.0/24, host .10, gateway .1). */
export function hostSubnet(slot: number, pool = process.env.CODEB_TEST_HOST_POOL || DEFAULT_TEST_HOST_POOL): { subnet: string; address: string; gateway: string } {
  const m = /^(\d+)\.(\d+)\.0\.0\/16$/.exec(pool);
  if (!m) throw new Error(`CODEB_TEST_HOST_POOL must be a /16 like 10.71.0.0/16, not ${pool}`);
  if (!Number.isInteger(slot) || slot < 0 || slot > 255) throw new Error(`test host slot must be 0-255, not ${slot}`);
  const p = `${m[1]}.${m[2]}.${slot}`;
  return { subnet: `${p}.0/24`, address: `${p}.10`, gateway: `${p}.1` };
}

function sshArgs(key: string, knownHosts: string, address: string): string[] {
  return [
    '-i', key,
    '-o', 'BatchMode=yes',
    '-o', 'IdentitiesOnly=yes',
    '-o', `UserKnownHostsFile=${knownHosts}`,
    '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', 'StrictHostKeyChecking=yes',
    '-o', 'ConnectTimeout=5',
    '-o', 'LogLevel=ERROR',
    `root@${address}`,
  ];
}

/** Does something answer with an SSH banner at address:22 right now? */
function sshBanner(address: string): Promise<boolean> {
  return new Promise((done) => {
    const s = connect(22, address);
    let buf = '';
    const end = (ok: boolean) => {
      s.destroy();
      done(ok);
    };
    s.setTimeout(2000, () => end(false));
    s.on('data', (c: Buffer) => {
      buf += c.toString();
      if (buf.includes('\n')) end(buf.startsWith('SSH-2.0-'));
    });
    s.on('error', () => end(false));
  });
}

export interface StartOptions {
  /** Unique among the test files running at once: names the container and the network. */
  name: string;
  /** Which /24 of the pool (see hostSubnet); each test file its own, 0-15 (moved by 16 per concurrent suite). */
  slot: number;
  pool?: string;
  /** Debian 13 (default), Debian 12 with its Podman 4.3, or Ubuntu 24.04 (see HostSuite). */
  suite?: HostSuite;
}

export async function startServerHost(opts: StartOptions): Promise<ServerHost> {
  if (!/^[a-z0-9][a-z0-9-]{0,24}$/.test(opts.name)) throw new Error(`test host name must be [a-z0-9-], at most 25 characters: ${opts.name}`);
  if (process.getuid?.() !== 0) throw new Error('A test host needs root (overlay mounts and a privileged container).');
  // Suites running at once (scripts/test.sh slots, CODEB_TEST_SLOT k) must not share a host name or
  // subnet: slots 0-15 of a test file move by 16k (k < 8: up to 10.71.127.0/24), and the names carry
  // the suite's slot. Slots from 128 up (bench:server: 200) stay where they are.
  const suite = process.env.CODEB_TEST_SLOT ? Number(process.env.CODEB_TEST_SLOT) : 0;
  const slot = opts.slot < 16 ? opts.slot + 16 * suite : opts.slot;
  const name = suite ? `${opts.name}-s${suite}` : opts.name;
  const lower = await serverRootfs(opts.suite);
  const { subnet, address, gateway } = hostSubnet(slot, opts.pool);
  const container = `codeb-th-${name}`;
  const network = `codeb-th-${name}`;
  // A running host of that name belongs to another run (two suites without CODEB_TEST_SLOT): never
  // touch it. A stopped one is a leftover of an interrupted run and would block this one: removed.
  if ((await podman(['container', 'inspect', '--format', '{{.State.Running}}', container], { allowFail: true })).trim() === 'true') {
    throw new Error(
      `A test host ${container} is running already (another test run?). Run suites through scripts/test.sh (it sets CODEB_TEST_SLOT), or give this one CODEB_TEST_SLOT=1..7. ` +
        `If no run uses it (a run killed before its afterAll), remove it: podman rm -f ${container} && podman network rm ${network}, then umount and delete its /tmp/${container}-* folder.`,
    );
  }
  await podman(['rm', '-f', '-t', '0', container], { allowFail: true });
  await podman(['network', 'rm', '-f', network], { allowFail: true });

  const dir = mkdtempSync(join(process.env.CODEB_TEST_HOST_DIR || tmpdir(), `codeb-th-${name}-`));
  const merged = join(dir, 'root');
  for (const d of ['upper', 'work', 'root', 'containers']) mkdirSync(join(dir, d));

  let mounted = false;
  const cleanup = async () => {
    await podman(['rm', '-f', '-t', '0', container], { allowFail: true });
    await podman(['network', 'rm', '-f', network], { allowFail: true });
    if (mounted) await run('umount', [merged]).catch(() => run('umount', ['-l', merged]).catch(() => {}));
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    await run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${join(dir, 'upper')},workdir=${join(dir, 'work')}`, merged]);
    mounted = true;

    // Identity: a client key root trusts, and a host key of this host's own (not the cached one).
    const clientKey = join(dir, 'client_ed25519');
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'codeb-test-client', '-f', clientKey]);
    const hostKey = join(merged, 'etc', 'ssh', 'ssh_host_ed25519_key');
    rmSync(hostKey, { force: true });
    rmSync(`${hostKey}.pub`, { force: true });
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `root@${name}`, '-f', hostKey]);
    const hostPub = readFileSync(`${hostKey}.pub`, 'utf8').trim().split(' ').slice(0, 2).join(' ');
    const knownHosts = join(dir, 'known_hosts');
    writeFileSync(knownHosts, `${address} ${hostPub}\n`);
    mkdirSync(join(merged, 'root', '.ssh'), { recursive: true, mode: 0o700 });
    chmodSync(join(merged, 'root', '.ssh'), 0o700);
    writeFileSync(join(merged, 'root', '.ssh', 'authorized_keys'), readFileSync(`${clientKey}.pub`), { mode: 0o600 });
    mkdirSync(join(merged, 'etc', 'ssh', 'sshd_config.d'), { recursive: true });
    writeFileSync(
      join(merged, 'etc', 'ssh', 'sshd_config.d', 'codeb-test-host.conf'),
      ['HostKey /etc/ssh/ssh_host_ed25519_key', 'PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'PermitRootLogin prohibit-password', 'MaxStartups 50', 'MaxSessions 50', ''].join('\n'),
    );
    writeFileSync(join(merged, 'etc', 'hostname'), `${name}\n`);
    // A container cannot load kernel modules: this unit would fail on every boot and leave systemd
    // "degraded", which a real server is not. Masked like an administrator would.
    symlinkSync('/dev/null', join(merged, 'etc', 'systemd', 'system', 'systemd-modules-load.service'));
    // A throwaway disk: dpkg need not fsync every file it unpacks (minutes saved on a busy machine;
    // what gets installed is the same).
    writeFileSync(join(merged, 'etc', 'dpkg', 'dpkg.cfg.d', 'codeb-test-host-unsafe-io'), 'force-unsafe-io\n');

    await podman(['network', 'create', '--internal', '--subnet', subnet, '--gateway', gateway, network]);
    await podman([
      'run', '-d', '--name', container, '--hostname', name,
      '--privileged', '--systemd=always',
      '--network', network, '--ip', address,
      '-v', `${join(dir, 'containers')}:/var/lib/containers`,
      '--rootfs', merged, '/sbin/init',
    ]);
  } catch (err) {
    await cleanup();
    throw err;
  }

  /** This machine's side of the internal network: the gateway address on the bridge (idempotent). */
  const attach = async () => {
    const bridge = (await podman(['network', 'inspect', '--format', '{{.NetworkInterface}}', network])).trim();
    await run('ip', ['addr', 'replace', `${gateway}/24`, 'dev', bridge]);
    await run('ip', ['link', 'set', bridge, 'up']);
  };
  try {
    await attach();
  } catch (err) {
    await cleanup();
    throw err;
  }

  const clientKey = join(dir, 'client_ed25519');
  const knownHosts = join(dir, 'known_hosts');
  const ssh = sshArgs(clientKey, knownHosts, address);

  const exec: ServerHost['exec'] = (argv, o = {}) =>
    new Promise((resolveExec, reject) => {
      const child = spawn('ssh', [...ssh, shellQuote(argv)], { stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 300_000);
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolveExec({ code: code ?? (signal ? 128 : 1), stdout, stderr });
      });
      child.stdin.end(o.input ?? '');
    });

  const sh: ServerHost['sh'] = async (script, o = {}) => {
    const r = await exec(['sh', '-c', script], o);
    if (r.code !== 0) throw new Error(`on test host ${name}: sh -c ${JSON.stringify(script)} exited ${r.code}:\n${r.stdout}${r.stderr}`);
    return r.stdout;
  };

  const waitReady: ServerHost['waitReady'] = async (timeoutMs = 180_000) => {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      if (await sshBanner(address)) {
        const r = await exec(['timeout', '120', 'systemctl', 'is-system-running', '--wait'], { timeoutMs: 130_000 }).catch((e: Error) => ({ code: 1, stdout: '', stderr: e.message }));
        const state = r.stdout.trim();
        // "degraded": a unit failed (systemd-modules-load cannot load modules in a container); the system is up.
        if (state === 'running' || state === 'degraded') return;
        last = `systemd state "${state}" ${r.stderr.trim()}`;
      } else last = `no SSH banner at ${address}:22`;
      await new Promise((r) => setTimeout(r, 250));
    }
    const logs = await podman(['logs', '--tail', '30', container], { allowFail: true });
    throw new Error(`test host ${name} did not come up within ${timeoutMs} ms (${last}). Console:\n${logs}`);
  };

  const host: ServerHost = {
    name: name,
    address,
    gateway,
    target: `root@${address}`,
    clientKey,
    knownHosts,
    sshEnv: () => ({ ...process.env, CODEB_SSH_KEY_FILE: clientKey, CODEB_KNOWN_HOSTS: knownHosts }),
    exec,
    sh,
    waitReady,
    restart: async () => {
      await podman(['restart', '-t', '60', container]);
      await attach();
      await waitReady();
    },
    stop: async () => void (await podman(['stop', '-t', '60', container])),
    start: async () => {
      await podman(['start', container]);
      await attach();
      await waitReady();
    },
    loadImage: async (ref, o = {}) => {
      const saveArgs = [...(o.podmanSocket ? ['--url', `unix://${o.podmanSocket.replace(/^unix:\/\//, '')}`] : []), 'save', ref];
      await new Promise<void>((resolveLoad, reject) => {
        const save = spawn('podman', saveArgs, { env: podmanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
        const load = spawn('ssh', [...ssh, 'podman load'], { stdio: ['pipe', 'pipe', 'pipe'] });
        let err = '';
        save.stderr.on('data', (c: Buffer) => (err += c.toString()));
        load.stderr.on('data', (c: Buffer) => (err += c.toString()));
        load.stdout.resume();
        save.stdout.pipe(load.stdin);
        let saveCode: number | null = null;
        save.on('close', (c) => (saveCode = c));
        load.on('close', (c) => (c === 0 && saveCode === 0 ? resolveLoad() : reject(new Error(`loading ${ref} into test host ${name} failed (save ${saveCode}, load ${c}): ${err.trim()}`))));
      });
    },
    remove: cleanup,
  };
  try {
    await waitReady();
  } catch (err) {
    await cleanup();
    throw err;
  }
  return host;
}

/** This checkout's built CLI (bin/codeb.js), run as a client would: its own empty CODEB_HOME, the host's key and known_hosts. */
export function codebCli(host: ServerHost, args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<ExecResult> {
  const home = mkdtempSync(join(tmpdir(), 'codeb-client-'));
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    CODEB_HOME: home,
    CODEB_SSH_KEY_FILE: host.clientKey,
    CODEB_KNOWN_HOSTS: host.knownHosts,
    SSH_AUTH_SOCK: '',
    NO_COLOR: '1',
    ...extraEnv,
  };
  return new Promise((resolveRun, reject) => {
    const child = spawn(process.execPath, [join(ROOT, 'bin', 'codeb.js'), ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      rmSync(home, { recursive: true, force: true });
      resolveRun({ code: code ?? 1, stdout, stderr });
    });
  });
}

/**
 * The unit runtime driver (test/helpers/unit-driver-probe.ts) bundled into one CommonJS file in
 * `work` and installed on the host as /opt/codeb-probe/probe.cjs with its templates beside it (as
 * findTemplatesDir expects), so a test drives it there as codeb does over SSH.
 */
export async function installUnitDriverProbe(host: ServerHost, work: string): Promise<void> {
  const bundle = join(work, 'probe.cjs');
  await promisify(execFile)(join(ROOT, 'node_modules', '.bin', 'esbuild'), [join(ROOT, 'test', 'helpers', 'unit-driver-probe.ts'), '--bundle', '--platform=node', '--format=cjs', '--target=node20', '--log-level=error', '--external:cpu-features', '--external:*.node', `--outfile=${bundle}`,
    // CommonJS has no import.meta.url (units.ts finds its templates from it): the file's own URL.
    "--banner:js=const importMetaUrl = require('node:url').pathToFileURL(__filename).href;", '--define:import.meta.url=importMetaUrl']);
  await host.sh('mkdir -p /opt/codeb-probe/templates');
  await host.exec(['sh', '-c', 'cat > /opt/codeb-probe/probe.cjs'], { input: readFileSync(bundle) });
  for (const t of ['quadlet.container.tmpl', 'podman-run.service.tmpl']) {
    await host.exec(['sh', '-c', 'cat > "$1"', 'sh', `/opt/codeb-probe/templates/${t}`], { input: readFileSync(join(ROOT, 'templates', t)) });
  }
}

/**
 * Everything `codeb server init` may change on a host, as one text (packages, codeb, units and
 * their start times, settings): equal before and after a run that must change nothing.
 */
export const INIT_SNAPSHOT = [
  'dpkg-query -W -f "\\${Package} \\${Status}\\n" | sort | md5sum',
  'cat /opt/codeb/.codeb-bundle 2>/dev/null',
  'ls -la --time-style=full-iso /opt/codeb /etc/systemd/system 2>/dev/null | md5sum',
  'cat /etc/systemd/system/codeb-*.service 2>/dev/null | md5sum',
  'md5sum /opt/codeb/settings.json 2>/dev/null',
  'for u in codeb-network codeb-postgres codeb-redis codeb-s3 codeb-forwarder codeb-caddy podman.socket; do systemctl show -p Id -p ActiveState -p ExecMainStartTimestampMonotonic -p NRestarts "$u"; done',
].join('; ');

/**
 * GET `path` through the host's own Caddy (port 80, Host: `domain`), asked on the host itself by its
 * node (a server has no curl). Bounded: 5 s. Status 0 with the error text when nothing answered.
 */
export async function viaHostCaddy(host: ServerHost, domain: string, path: string): Promise<{ status: number; body: string }> {
  const script = `require('node:http').get({ host: '127.0.0.1', port: 80, path: ${JSON.stringify(path)}, headers: { host: ${JSON.stringify(domain)} }, timeout: 5000 }, (res) => { let b = ''; res.on('data', (c) => (b += c)); res.on('end', () => console.log(JSON.stringify({ status: res.statusCode, body: b }))); }).on('timeout', function () { this.destroy(new Error('timeout')); }).on('error', (e) => console.log(JSON.stringify({ status: 0, body: e.message })))`;
  const r = await host.exec(['node', '-e', script]);
  return r.code === 0 && r.stdout.trim() ? (JSON.parse(r.stdout.trim()) as { status: number; body: string }) : { status: 0, body: `${r.stdout}${r.stderr}` };
}

/**
 * A Node 20+ the way an operator installs one where the distribution ships an older one (Debian 12,
 * Ubuntu 24.04: 18): a release binary in /usr/local/bin (this machine's node, copied).
 */
export async function installThisNode(host: ServerHost): Promise<void> {
  const r = await host.exec(['sh', '-c', 'mkdir -p /usr/local/bin && cat > /usr/local/bin/node.new && chmod 755 /usr/local/bin/node.new && mv /usr/local/bin/node.new /usr/local/bin/node'], { input: readFileSync(process.execPath) });
  if (r.code !== 0) throw new Error(`copying node to test host ${host.name} failed (exit ${r.code}): ${r.stdout}${r.stderr}`);
}

/**
 * Stop the periodic codeb timers that `server init` installs (controller/server/timers.ts) and wait
 * until none of their commands still runs: for a test that compares snapshots of the registry,
 * which `codeb monitor`'s health record would otherwise change once a minute. Returns the function
 * that starts them again.
 */
export async function holdTimers(host: ServerHost, timeoutMs = 300_000): Promise<() => Promise<void>> {
  const timers = SERVER_TIMER_NAMES.map((n) => `${n}.timer`);
  const services = SERVER_TIMER_NAMES.map((n) => `${n}.service`);
  await host.exec(['systemctl', 'stop', ...timers]);
  const until = Date.now() + timeoutMs;
  for (;;) {
    const states = (await host.exec(['systemctl', 'show', '-p', 'ActiveState', '--value', ...services])).stdout.split('\n').filter(Boolean);
    if (states.every((s) => s === 'inactive' || s === 'failed')) break;
    if (Date.now() > until) throw new Error(`codeb's timer services still run after ${timeoutMs} ms: ${states.join(' ')}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return async () => {
    await host.exec(['systemctl', 'start', ...timers]);
  };
}
