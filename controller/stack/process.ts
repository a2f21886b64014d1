/**
 * Detached background processes with pid files. A pid file records the pid, the kernel's start
 * time of that process and the address it serves, so a recycled pid is never mistaken for ours
 * and `down` only ever signals processes the stack itself started.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname } from 'node:path';

export interface PidRecord {
  pid: number;
  /** Field 22 of /proc/<pid>/stat: start time in clock ticks since boot. */
  startTime: string;
  address: string;
  startedAt: string;
}

function procStat(pid: number): { state: string; startTime: string } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may contain spaces: split after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: rest[0] ?? '?', startTime: rest[19] ?? '' };
  } catch {
    return undefined;
  }
}

export function processStartTime(pid: number): string | undefined {
  return procStat(pid)?.startTime;
}

/** A process that exists and is not a zombie. */
export function processAlive(pid: number, startTime?: string): boolean {
  const st = procStat(pid);
  if (st) return st.state !== 'Z' && st.state !== 'X' && (startTime === undefined || st.startTime === startTime);
  if (existsSync('/proc/self/stat')) return false; // Linux and no entry: gone
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function readPidRecord(file: string): PidRecord | undefined {
  try {
    const rec = JSON.parse(readFileSync(file, 'utf8')) as PidRecord;
    return Number.isInteger(rec.pid) && rec.pid > 0 ? rec : undefined;
  } catch {
    return undefined;
  }
}

/** The pid record if that process is still the one we started; stale files are removed. */
export function livePidRecord(file: string): PidRecord | undefined {
  const rec = readPidRecord(file);
  if (!rec) {
    if (existsSync(file)) rmSync(file, { force: true });
    return undefined;
  }
  if (processAlive(rec.pid, rec.startTime)) return rec;
  rmSync(file, { force: true });
  return undefined;
}

export function writePidRecord(file: string, rec: PidRecord): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(rec) + '\n', { mode: 0o644 });
  renameSync(tmp, file);
}

export interface SpawnSpec {
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  cwd: string;
  logFile: string;
  uid?: number;
  gid?: number;
  umask?: number;
  pidFile: string;
  address: string;
}

export interface Started {
  pid: number;
  /** Resolves with the exit code (or signal) if the process ends while we still watch it. */
  exited: Promise<string>;
}

/** Start a process in its own session, output appended to its log, and record its pid file. */
export async function spawnDetached(spec: SpawnSpec): Promise<Started> {
  mkdirSync(dirname(spec.logFile), { recursive: true });
  const fd = openSync(spec.logFile, 'a', 0o600);
  try {
    writeFileSync(fd, `\n=== ${new Date().toISOString()} codeb stack: starting ${spec.command} ===\n`);
    // A child inherits the umask at spawn: set it for this one spawn only (spawn is synchronous).
    const umask = spec.umask === undefined ? undefined : process.umask(spec.umask);
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(spec.command, spec.args, {
        cwd: spec.cwd,
        env: spec.env,
        detached: true,
        stdio: ['ignore', fd, fd],
        uid: spec.uid,
        gid: spec.gid,
      });
    } finally {
      if (umask !== undefined) process.umask(umask);
    }
    const exited = new Promise<string>((resolve) => {
      child.once('exit', (code, signal) => resolve(signal ? `was killed by ${signal}` : `exited with code ${code}`));
      child.once('error', (err) => resolve(`could not be started: ${err.message}`));
    });
    const pid = await new Promise<number | undefined>((resolve) => {
      child.once('spawn', () => resolve(child.pid));
      child.once('error', () => resolve(undefined));
    });
    child.unref();
    if (!pid) throw new Error(`${spec.command} ${await exited}`);
    const startTime = procStat(pid)?.startTime ?? '';
    writePidRecord(spec.pidFile, { pid, startTime, address: spec.address, startedAt: new Date().toISOString() });
    return { pid, exited };
  } finally {
    closeSync(fd);
  }
}

/**
 * The newest live process of ours whose arguments (after argv[0]) are exactly `args` — for programs
 * that re-exec themselves, like rootless podman, which continues in a child inside a user namespace.
 */
export function findOwnProcess(args: string[]): { pid: number; startTime: string } | undefined {
  const uid = process.getuid?.();
  let best: { pid: number; startTime: string } | undefined;
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc');
  } catch {
    return undefined;
  }
  const want = args.join('\0');
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (statSync(`/proc/${e}`).uid !== uid) continue;
      const argv = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0');
      if (argv[argv.length - 1] === '') argv.pop();
      if (argv.slice(1).join('\0') !== want) continue;
      const st = procStat(Number(e));
      if (!st || st.state === 'Z' || st.state === 'X') continue;
      if (!best || Number(st.startTime) >= Number(best.startTime)) best = { pid: Number(e), startTime: st.startTime };
    } catch {
      /* gone meanwhile */
    }
  }
  return best;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Signal our process, wait for it to end, and escalate to SIGKILL after `timeoutMs`. */
export async function stopProcess(rec: PidRecord, signal: NodeJS.Signals, timeoutMs: number): Promise<'stopped' | 'killed'> {
  const signalIt = (s: NodeJS.Signals): void => {
    try {
      process.kill(rec.pid, s);
    } catch {
      /* already gone */
    }
  };
  signalIt(signal);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!processAlive(rec.pid, rec.startTime)) return 'stopped';
    await sleep(50);
  }
  signalIt('SIGKILL');
  for (let i = 0; i < 100 && processAlive(rec.pid, rec.startTime); i++) await sleep(50);
  return 'killed';
}

/** True when nothing listens on host:port (we can bind it ourselves). */
export function portFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

export function tailFile(file: string, lines = 20): string[] {
  try {
    const text = readFileSync(file, 'utf8');
    const all = text.split('\n');
    if (all[all.length - 1] === '') all.pop();
    return all.slice(-lines);
  } catch {
    return [];
  }
}
