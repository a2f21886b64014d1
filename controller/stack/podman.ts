/**
 * Podman for the local stack: `podman system service` serving the Docker-compatible API on
 * <stack>/podman/podman.sock, with its own containers.conf (runc, no default ulimits, cgroupfs,
 * file events) and storage.conf, so images, containers and networks live under the stack folder
 * and never mix with the machine's own Podman.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import type { StackPaths } from './layout.js';
import { findProgram } from './binaries.js';
import { findOwnProcess, processAlive, processStartTime, stopProcess } from './process.js';
import { baseEnv, errorText, httpGet, type Part, type PartContext, type ProbeResult, type StartContext } from './part.js';

const run = promisify(execFile);
const toml = (s: string): string => JSON.stringify(s); // TOML basic strings escape like JSON

export function containersConf(paths: StackPaths): string {
  const p = paths.podman;
  return `# Written by codeb stack up on every start; edits are overwritten.
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = ${toml(p.tmp)}
static_dir = ${toml(`${p.graphRoot}/libpod`)}
volume_path = ${toml(`${p.graphRoot}/volumes`)}

[network]
network_config_dir = ${toml(p.networks)}
`;
}

export function storageConf(paths: StackPaths, env: NodeJS.ProcessEnv): string {
  const p = paths.podman;
  return `# Written by codeb stack up on every start; edits are overwritten.
[storage]
driver = ${toml(env.CODEB_STACK_PODMAN_DRIVER ?? 'overlay')}
graphroot = ${toml(p.graphRoot)}
runroot = ${toml(p.runRoot)}
`;
}

/**
 * The environment that points the podman CLI at the stack's storage and configuration, for code or
 * tests that run `podman` directly (e.g. `podman import`) against the stack's image store.
 */
export function podmanEnv(paths: StackPaths, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const extra: Record<string, string> = {
    CONTAINERS_CONF: paths.podman.containersConf,
    CONTAINERS_STORAGE_CONF: paths.podman.storageConf,
  };
  if (process.getuid?.() !== 0) extra.XDG_RUNTIME_DIR = env.XDG_RUNTIME_DIR ?? paths.podman.xdgRuntime;
  return baseEnv(env, extra);
}

/** Mount points at or below `root`, deepest first (Podman leaves its overlay folder bind-mounted). */
function mountsBelow(root: string): string[] {
  try {
    const points = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4])
      .filter((m): m is string => !!m)
      .map((m) => m.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
      .filter((m) => m === root || m.startsWith(root + '/'));
    return [...new Set(points)].sort((a, b) => b.length - a.length);
  } catch {
    return [];
  }
}

const serviceArgs = (paths: StackPaths): string[] => ['system', 'service', '--time=0', `unix://${paths.podman.socket}`];

export const podmanPart: Part = {
  name: 'podman',
  stopSignal: 'SIGTERM',
  startTimeoutMs: 30_000,
  address: (ctx) => `unix://${ctx.paths.podman.socket}`,
  tcpPorts: () => [],

  async prepare(ctx: StartContext): Promise<void> {
    const p = ctx.paths.podman;
    for (const d of [p.root, p.graphRoot, p.runRoot, p.tmp, p.networks]) mkdirSync(d, { recursive: true, mode: 0o700 });
    if (!ctx.isRoot && !ctx.env.XDG_RUNTIME_DIR) mkdirSync(p.xdgRuntime, { recursive: true, mode: 0o700 });
    writeFileSync(p.containersConf, containersConf(ctx.paths), { mode: 0o644 });
    writeFileSync(p.storageConf, storageConf(ctx.paths, ctx.env), { mode: 0o644 });
    rmSync(p.socket, { force: true }); // a socket left by a killed service would block the new one
  },

  launch(ctx: StartContext) {
    return {
      command: ctx.bins.podman,
      args: serviceArgs(ctx.paths),
      env: podmanEnv(ctx.paths, ctx.env),
      cwd: ctx.paths.podman.root,
    };
  },

  async probe(ctx: PartContext): Promise<ProbeResult> {
    if (!existsSync(ctx.paths.podman.socket)) return { ok: false, reason: 'socket does not exist' };
    try {
      const a = await httpGet({ socketPath: ctx.paths.podman.socket, path: '/_ping' });
      return a.status === 200 && a.body.trim() === 'OK' ? { ok: true } : { ok: false, reason: `_ping answered HTTP ${a.status}` };
    } catch (err) {
      return { ok: false, reason: errorText(err) };
    }
  },

  // Rootless podman re-executes itself inside a user namespace: the service is then a child
  // process with the same arguments, and the process we started may already have exited.
  findServer: (ctx) => (ctx.isRoot ? undefined : findOwnProcess(serviceArgs(ctx.paths))),

  /** The stack's containers belong to the stack: stop them before the API goes away. */
  async beforeStop(ctx: PartContext): Promise<void> {
    const podman = findProgram('podman', ctx.env);
    if (!podman || !existsSync(ctx.paths.podman.storageConf) || !existsSync(ctx.paths.podman.graphRoot)) return;
    const env = podmanEnv(ctx.paths, ctx.env);
    try {
      const { stdout } = await run(podman, ['ps', '-q'], { env, timeout: 30_000 });
      if (stdout.trim()) await run(podman, ['stop', '--all', '--time', '10'], { env, timeout: 120_000 });
    } catch {
      /* best effort: the service is stopped next either way */
    }
  },

  async afterStop(ctx: PartContext): Promise<void> {
    if (!ctx.isRoot) {
      // Rootless: podman keeps a pause process (catatonit -P) holding the user namespace; with the
      // stack's own tmp_dir it is the stack's, recorded in tmp/pause.pid. Nothing needs it any more.
      const pauseFile = `${ctx.paths.podman.tmp}/pause.pid`;
      const pid = Number(existsSync(pauseFile) ? readFileSync(pauseFile, 'utf8').trim() : NaN);
      if (Number.isInteger(pid) && pid > 0 && processAlive(pid)) {
        const argv0 = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] ?? '';
        if (/catatonit|pause/.test(argv0)) await stopProcess({ pid, startTime: processStartTime(pid) ?? '', address: '', startedAt: '' }, 'SIGKILL', 5_000);
      }
      rmSync(pauseFile, { force: true });
      return;
    }
    const umount = findProgram('umount', ctx.env);
    if (!umount) return;
    for (const m of mountsBelow(ctx.paths.podman.root)) {
      await run(umount, [m]).catch(() => run(umount, ['-l', m]).catch(() => {}));
    }
  },
};
