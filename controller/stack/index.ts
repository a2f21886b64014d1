/**
 * The embedded local stack: Postgres, Redis, S3 (s3rver), Caddy and the Podman API as background
 * processes on 127.0.0.1, all state under one folder (default $CODEB_HOME/stack).
 *
 *   ensureStack(opts)  start whatever is not running, write settings.json, return the Settings
 *   upStack(opts)      the same with a report per part (used by `codeb stack up`)
 *   stackStatus(opts)  observe only: which parts answer, where
 *   stopStack(opts)    stop what the stack started (pid files), optionally delete its data
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import type { Settings } from '../settings.js';
import { CodebError } from '../errors.js';
import { findBinaries } from './binaries.js';
import { buildSettings, loadOrCreateCredentials, writeSettings, type StackCredentials } from './credentials.js';
import { chooseS3Kind, PART_NAMES, resolveStack, type PartName, type ResolvedStack, type S3Kind, type StackOptions, type StackPorts } from './layout.js';
import { ensureRootfs } from './rootfs.js';
import type { Part, PartContext, StartContext } from './part.js';
import { livePidRecord, portFree, processAlive, readPidRecord, sleep, spawnDetached, stopProcess, tailFile, writePidRecord } from './process.js';
import { postgresPart } from './postgres.js';
import { redisPart } from './redis.js';
import { rgwCommand, s3Part } from './s3.js';
import { caddyPart } from './caddy.js';
import { podmanPart, podmanEnv } from './podman.js';
import { forwarderPart } from './forwarder.js';
import { ensureServicesInterface, removeServicesInterface } from './network.js';

export { PART_NAMES, stackPorts, stackPaths, resolveStack, DEFAULT_PORT_BASE } from './layout.js';
export type { PartName, StackOptions, StackPorts, StackPaths, StackNetwork } from './layout.js';
export { podmanEnv };

const PARTS: Record<PartName, Part> = { postgres: postgresPart, redis: redisPart, s3: s3Part, caddy: caddyPart, podman: podmanPart, forwarder: forwarderPart };

export interface PartReport {
  name: PartName;
  /** up: `started` now or already `running`; `failed` to start. */
  state: 'started' | 'running' | 'failed';
  address: string;
  ms: number;
  pid?: number;
  reason?: string;
  logFile: string;
  logTail?: string[];
}

export interface UpOptions extends StackOptions {
  /** Only these parts (default: all five). */
  parts?: readonly PartName[];
  /** Called as each part is up or has failed. */
  onProgress?: (report: PartReport) => void;
}

export interface UpResult {
  dir: string;
  settingsFile: string;
  settings: Settings;
  parts: PartReport[];
  /** Things worth telling the user (e.g. a permission that was changed). */
  notes: string[];
}

/** `up` could not start every part; `result` says which did. */
export class StackStartError extends CodebError {
  constructor(readonly result: UpResult) {
    const failed = result.parts.filter((p) => p.state === 'failed');
    const details = failed
      .map((p) => {
        const tail = p.logTail?.length ? `\n  --- last lines of ${p.logFile} ---\n${p.logTail.map((l) => `  | ${l}`).join('\n')}` : '';
        return `${p.name}: ${p.reason}${tail}`;
      })
      .join('\n');
    super(`the local stack did not start completely (${failed.map((p) => p.name).join(', ')} failed).\n${details}`, {
      hint: `Fix the cause above and run \`codeb stack up\` again (parts already up are left alone). Logs: ${result.dir}/logs/.`,
    });
  }
}

const isRoot = (): boolean => process.getuid?.() === 0;

/** Same endpoints: compares the address:port pairs (or the socket path), not the wording. */
function sameAddress(a: string, b: string): boolean {
  const key = (s: string): string => (s.startsWith('unix://') ? s : [...s.matchAll(/([\d.]+):(\d+)/g)].map((m) => `${m[1]}:${m[2]}`).join(','));
  return key(a) === key(b);
}

async function withLock<T>(r: ResolvedStack, body: () => Promise<T>): Promise<T> {
  // As root, Postgres runs as the postgres user and must be able to enter these folders (not list them).
  mkdirSync(r.paths.dir, { recursive: true, mode: isRoot() ? 0o711 : 0o700 });
  const { default: lockfile } = await import('proper-lockfile');
  let release: () => Promise<void>;
  try {
    release = await lockfile.lock(r.paths.dir, {
      lockfilePath: r.paths.lockFile,
      realpath: false,
      stale: 20_000,
      update: 5_000,
      retries: { retries: 1200, factor: 1, minTimeout: 150, maxTimeout: 150 },
    });
  } catch (err) {
    throw new CodebError(`Another codeb is starting or stopping the stack in ${r.paths.dir} and did not finish in 3 minutes.`, {
      hint: `Wait for it, or remove ${r.paths.lockFile} if no codeb process is running.`,
      cause: err,
    });
  }
  try {
    return await body();
  } finally {
    await release().catch(() => {});
  }
}

/** Probe until it answers, the process dies, the answer is final, or time runs out. */
async function waitReady(
  part: Part,
  ctx: PartContext,
  proc: { pid: number; startTime?: string },
  exited?: Promise<string>,
): Promise<string | undefined> {
  const deadline = Date.now() + part.startTimeoutMs;
  let last = 'no answer yet';
  let interval = 50;
  let exitText: string | undefined;
  void exited?.then((t) => (exitText = t));
  for (;;) {
    const r = await part.probe(ctx);
    if (r.ok) return undefined;
    if (r.fatal) return r.reason;
    last = r.reason;
    if (!processAlive(proc.pid, proc.startTime)) {
      const server = part.findServer?.(ctx); // handed over to a child?
      if (server) {
        proc = server;
      } else {
        await sleep(20);
        return `the process ${exitText ?? 'ended'} before answering at ${part.address(ctx)}`;
      }
    }
    if (Date.now() > deadline) return `no answer at ${part.address(ctx)} within ${part.startTimeoutMs / 1000}s (last: ${last})`;
    await sleep(interval);
    interval = Math.min(interval * 1.5, 300);
  }
}

async function startPart(part: Part, ctx: StartContext): Promise<PartReport> {
  const t0 = Date.now();
  const pidFile = ctx.paths.pidFile(part.name);
  const logFile = ctx.paths.log(part.name);
  const address = part.address(ctx);
  const report = (state: PartReport['state'], extra: Partial<PartReport> = {}): PartReport => ({
    name: part.name,
    state,
    address,
    ms: Date.now() - t0,
    logFile,
    ...extra,
  });
  const fail = (reason: string, withLog = true): PartReport =>
    report('failed', { reason, ...(withLog ? { logTail: tailFile(logFile, 20) } : {}) });

  try {
    let rec = livePidRecord(pidFile);
    if (rec && !sameAddress(rec.address, address)) {
      return fail(`it is already running at ${rec.address} (pid ${rec.pid}), not at ${address}; run \`codeb stack down\` first to move it`, false);
    }
    const freshCreds = part.name in ctx.creds.fresh && ctx.creds.fresh[part.name as keyof StackCredentials['fresh']];
    if (rec && freshCreds) {
      // It still uses credentials the settings file no longer has: restart it with the current ones.
      await stopProcess(rec, part.stopSignal, 30_000);
      rmSync(pidFile, { force: true });
      rec = undefined;
    }
    const outdated = rec ? await part.outdated?.(ctx) : null;
    if (rec && outdated) {
      ctx.notes.push(`restarted the ${part.name}: ${outdated}`);
      await stopProcess(rec, part.stopSignal, 30_000);
      rmSync(pidFile, { force: true });
      rec = undefined;
    }
    if (rec) {
      const problem = await waitReady(part, ctx, rec);
      return problem ? fail(problem) : report('running', { pid: rec.pid });
    }

    // Not ours: is something else in the way?
    for (const port of part.tcpPorts(ctx)) {
      if (!(await portFree('127.0.0.1', port))) {
        return fail(
          `port ${port} on 127.0.0.1 is in use by another program (not started by this stack); ` +
            `stop it or move the stack's ports (CODEB_STACK_PORT_BASE=30000, see docs/stack.md)`,
          false,
        );
      }
    }
    if ((await part.probe({ ...ctx, creds: undefined })).ok) {
      return fail(`something not started by this stack already answers at ${address}`, false);
    }

    await part.prepare(ctx);
    const spec = part.launch(ctx);
    const started = await spawnDetached({ ...spec, logFile, pidFile, address });
    const startTime = readPidRecord(pidFile)?.startTime;
    const problem = await waitReady(part, ctx, { pid: started.pid, startTime }, started.exited);
    const server = part.findServer?.(ctx);
    if (server && server.pid !== started.pid) {
      // Record the process that really serves, so `down` stops that one.
      writePidRecord(pidFile, { pid: server.pid, startTime: server.startTime, address, startedAt: new Date().toISOString() });
    }
    if (problem) {
      const r = readPidRecord(pidFile);
      if (r && processAlive(r.pid, r.startTime)) await stopProcess(r, part.stopSignal, 10_000);
      rmSync(pidFile, { force: true });
      return fail(problem);
    }
    return report('started', { pid: readPidRecord(pidFile)?.pid ?? started.pid });
  } catch (err) {
    return fail(err instanceof Error ? err.message : String(err));
  }
}

/** Start every part that is not running (idempotent); throws StackStartError if one fails. */
export async function upStack(opts: UpOptions = {}): Promise<UpResult> {
  const r = resolveStack(opts);
  const names = opts.parts ?? PART_NAMES;
  const bins = findBinaries(names, r.env);
  return withLock(r, async () => {
    mkdirSync(r.paths.logs, { recursive: true, mode: 0o700 });
    mkdirSync(r.paths.run, { recursive: true, mode: 0o755 });
    // Parts already running elsewhere: refuse before the settings file is rewritten with other ports.
    const probeCtx: PartContext = { paths: r.paths, ports: r.ports, network: r.network, env: r.env, isRoot: isRoot() };
    const before = readSettingsRaw(r.settingsFile)?.storage?.kind;
    const s3Kind: S3Kind = chooseS3Kind(r.env.CODEB_STACK_S3, before);
    const moved = names.flatMap((name) => {
      const rec = livePidRecord(r.paths.pidFile(name));
      const want = PARTS[name].address(probeCtx);
      if (rec && name === 's3' && before && before !== s3Kind) return [`s3 runs ${before}, not ${s3Kind}`];
      return rec && !sameAddress(rec.address, want) ? [`${name} runs at ${rec.address}, not ${want}`] : [];
    });
    if (moved.length > 0) {
      throw new CodebError(`The stack in ${r.paths.dir} already runs with other ports: ${moved.join('; ')}.`, {
        hint: 'Run `codeb stack down` first to move it, or use the same CODEB_STACK_PORT_BASE / CODEB_STACK_*_PORT as when it was started.',
      });
    }
    const creds = loadOrCreateCredentials(r.settingsFile);
    let rgwRootfs: string | undefined;
    if (s3Kind === 'radosgw') {
      if (!isRoot()) {
        throw new CodebError('CODEB_STACK_S3=radosgw needs root: the gateway runs chrooted in a Debian 13 root filesystem.', {
          hint: 'Run `sudo codeb stack up`, or use the default s3rver (unset CODEB_STACK_S3).',
        });
      }
      rgwRootfs = await ensureRootfs('radosgw', r.env); // cached after the first build
    }
    const s3 = rgwRootfs ? { kind: 'radosgw' as const, rgwAdmin: rgwCommand(rgwRootfs, r.paths, 'radosgw-admin') } : { kind: 's3rver' as const };
    const settings = buildSettings(creds, r.ports, r.paths, r.network, s3);
    writeSettings(r.settingsFile, settings); // before anything uses the credentials
    const notes: string[] = [];
    // Before the services start: they listen on the services address too.
    const servesContainers = names.some((n) => n === 'postgres' || n === 'redis' || n === 's3');
    const made = await ensureServicesInterface(r.network, r.env, isRoot(), !servesContainers);
    if (made) notes.push(made);
    const ctx: StartContext = { paths: r.paths, ports: r.ports, network: r.network, creds, bins, env: r.env, isRoot: isRoot(), notes, s3Kind, rgwRootfs };
    const parts = await Promise.all(
      names.map(async (name) => {
        const rep = await startPart(PARTS[name], ctx);
        opts.onProgress?.(rep);
        return rep;
      }),
    );
    const result: UpResult = { dir: r.paths.dir, settingsFile: r.settingsFile, settings, parts, notes };
    if (parts.some((p) => p.state === 'failed')) throw new StackStartError(result);
    return result;
  });
}

/** For tests and tools: make sure the stack runs and get its Settings (admin credentials included). */
export async function ensureStack(opts: UpOptions = {}): Promise<Settings> {
  return (await upStack(opts)).settings;
}

export interface PartStatus {
  name: PartName;
  /** up: ours and answering; unhealthy: ours, not answering; foreign: answering, not ours; down: neither. */
  state: 'up' | 'unhealthy' | 'foreign' | 'down';
  address: string;
  pid?: number;
  since?: string;
  reason?: string;
  logFile: string;
}

export interface StackStatus {
  dir: string;
  settingsFile: string;
  settingsPresent: boolean;
  allUp: boolean;
  parts: PartStatus[];
}

function readSettingsRaw(file: string): Partial<Settings> | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Partial<Settings>;
  } catch {
    return undefined;
  }
}

/** The ports the stack was last started with (from its settings file), else the configured ones. */
function observedContext(r: ResolvedStack): { ctx: PartContext; settingsPresent: boolean } {
  const s = readSettingsRaw(r.settingsFile);
  let ports: StackPorts = r.ports;
  const network = s?.network ?? r.network;
  let creds: StackCredentials | undefined;
  const ours = s?.storage?.kind === 's3rver' || s?.storage?.kind === 'radosgw';
  if (ours && s?.storage && s.postgres && s.redis && s.caddy) {
    ports = { postgres: s.postgres.port, redis: s.redis.port, s3: s.storage.port, http: s.caddy.httpPort, https: s.caddy.httpsPort };
    if (s.postgres.password && s.redis.password) {
      creds = {
        pgPassword: s.postgres.password,
        redisPassword: s.redis.password,
        s3AccessKey: s.storage.accessKey,
        s3SecretKey: s.storage.secretKey,
        fresh: { postgres: false, redis: false, s3: false },
      };
    }
  }
  const s3Kind = s?.storage?.kind === 'radosgw' ? 'radosgw' : 's3rver';
  return { ctx: { paths: r.paths, ports, network, creds, env: r.env, isRoot: isRoot(), s3Kind }, settingsPresent: !!s };
}

/** Observe the stack: changes nothing. */
export async function stackStatus(opts: StackOptions = {}): Promise<StackStatus> {
  const r = resolveStack(opts);
  const { ctx, settingsPresent } = observedContext(r);
  const parts = await Promise.all(
    PART_NAMES.map(async (name): Promise<PartStatus> => {
      const part = PARTS[name];
      const rec = readPidRecord(r.paths.pidFile(name));
      const ours = rec && processAlive(rec.pid, rec.startTime) ? rec : undefined;
      const probe = await part.probe(ctx);
      const base = { name, address: ours?.address ?? part.address(ctx), logFile: r.paths.log(name) };
      if (ours) {
        return probe.ok
          ? { ...base, state: 'up', pid: ours.pid, since: ours.startedAt }
          : { ...base, state: 'unhealthy', pid: ours.pid, since: ours.startedAt, reason: probe.reason };
      }
      return probe.ok ? { ...base, state: 'foreign', reason: 'answers, but was not started by this stack' } : { ...base, state: 'down' };
    }),
  );
  return { dir: r.paths.dir, settingsFile: r.settingsFile, settingsPresent, allUp: parts.every((p) => p.state === 'up'), parts };
}

export interface StopReport {
  name: PartName;
  state: 'stopped' | 'killed' | 'not-running';
  pid?: number;
}

export interface DownOptions extends StackOptions {
  /** Also delete the stack folder (all data) and the settings file it wrote. */
  purge?: boolean;
  onProgress?: (report: StopReport) => void;
}

/** Stop the processes this stack started (by pid file); others are left alone. */
export async function stopStack(opts: DownOptions = {}): Promise<{ dir: string; parts: StopReport[]; purged: boolean }> {
  const r = resolveStack(opts);
  if (!existsSync(r.paths.dir)) return { dir: r.paths.dir, parts: PART_NAMES.map((name) => ({ name, state: 'not-running' })), purged: false };
  const { ctx } = observedContext(r);
  const parts = await withLock(r, () =>
    Promise.all(
      PART_NAMES.map(async (name): Promise<StopReport> => {
        const part = PARTS[name];
        const pidFile = r.paths.pidFile(name);
        const rec = livePidRecord(pidFile);
        await part.beforeStop?.(ctx);
        let rep: StopReport = { name, state: 'not-running' };
        if (rec) {
          rep = { name, state: await stopProcess(rec, part.stopSignal, 30_000), pid: rec.pid };
        }
        rmSync(pidFile, { force: true });
        await part.afterStop?.(ctx);
        opts.onProgress?.(rep);
        return rep;
      }),
    ),
  );
  // Every part is down: nothing listens on the services address any more.
  await removeServicesInterface(ctx.network, r.env);
  let purged = false;
  if (opts.purge) {
    rmSync(r.paths.dir, { recursive: true, force: true });
    const kind = readSettingsRaw(r.settingsFile)?.storage?.kind;
    if (kind === 's3rver' || kind === 'radosgw') rmSync(r.settingsFile, { force: true });
    purged = true;
  }
  return { dir: r.paths.dir, parts, purged };
}
