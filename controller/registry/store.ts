/**
 * The registry file: one JSON document, read freely, changed only under a cross-process lock,
 * written atomically (temp file, fsync, rename) so a crash at any instant leaves the old or the
 * new document, never a torn one. The lock holder is recorded so a waiting command can say who.
 */
import { chmodSync, mkdirSync, readFileSync, existsSync, statSync, writeFileSync, rmSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { dirname } from 'node:path';
import lockfile from 'proper-lockfile';
import writeFileAtomic from 'write-file-atomic';
import { CodebError } from '../errors.js';
import { validateRegistry } from '../generated/validators.js';
import { emptyRegistry, REGISTRY_FORMAT_VERSION, type RegistryDocument } from './types.js';

export interface LockHolder {
  host: string;
  pid: number;
  user: string;
  since: string;
  command: string;
}

export interface LockOptions {
  /** What the holder is doing, shown to anyone who has to wait. */
  command: string;
  /** How long to wait for another holder before giving up (ms). Default: CODEB_LOCK_TIMEOUT_MS or 60 s. */
  waitMs?: number;
  /**
   * A lock not refreshed for this long (ms) belongs to a dead process and is taken over.
   * Default: CODEB_LOCK_STALE_MS or 10 s; at least 2 s (proper-lockfile refreshes it every stale/2, at most every 1 s).
   */
  staleMs?: number;
  /**
   * Told (once, from a timer) when the lock was taken over while this process held it: a long body
   * can stop early; its writes are refused from then on either way.
   */
  onLost?: (err: Error) => void;
}

export const DEFAULT_LOCK_WAIT_MS = 60_000;
export const DEFAULT_LOCK_STALE_MS = 10_000;
/** proper-lockfile's floor: it refreshes a held lock at most once a second, so stale must be >= 2 s. */
export const MIN_LOCK_STALE_MS = 2_000;

function msFromEnv(name: string, fallback: number, min: number, env: NodeJS.ProcessEnv): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const ms = Number(raw);
  if (!Number.isInteger(ms) || ms < min) {
    throw new CodebError(`Invalid ${name} ${JSON.stringify(raw)}.`, { exitCode: 2, hint: `Give a whole number of milliseconds, at least ${min}.` });
  }
  return ms;
}

/** Lock timings from the options, else the environment (CODEB_LOCK_TIMEOUT_MS, CODEB_LOCK_STALE_MS), else the defaults. */
export function lockTimings(opts: Pick<LockOptions, 'waitMs' | 'staleMs'>, env: NodeJS.ProcessEnv = process.env): { waitMs: number; staleMs: number } {
  return {
    waitMs: opts.waitMs ?? msFromEnv('CODEB_LOCK_TIMEOUT_MS', DEFAULT_LOCK_WAIT_MS, 0, env),
    staleMs: Math.max(opts.staleMs ?? msFromEnv('CODEB_LOCK_STALE_MS', DEFAULT_LOCK_STALE_MS, MIN_LOCK_STALE_MS, env), MIN_LOCK_STALE_MS),
  };
}

export interface RegistryTx {
  read(): RegistryDocument;
  write(doc: RegistryDocument): Promise<void>;
}

export function readRegistryFile(file: string): RegistryDocument {
  if (!existsSync(file)) return emptyRegistry();
  const text = readFileSync(file, 'utf8');
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new CodebError(`The registry ${file} is not valid JSON: ${(err as Error).message}`, {
      hint: 'codeb writes it atomically, so this file was changed by hand or by another program. Restore it from a backup.',
    });
  }
  const version = (doc as { formatVersion?: unknown } | null)?.formatVersion;
  if (version !== REGISTRY_FORMAT_VERSION) {
    throw new CodebError(`The registry ${file} has format version ${JSON.stringify(version)}; this codeb reads version ${REGISTRY_FORMAT_VERSION}.`, {
      hint: 'Use the codeb version that wrote it, or upgrade codeb.',
    });
  }
  assertValidRegistry(doc, file);
  return doc as RegistryDocument;
}

export function assertValidRegistry(doc: unknown, file: string): void {
  if (!validateRegistry(doc)) {
    const first = validateRegistry.errors?.[0];
    throw new CodebError(`The registry ${file} does not match schemas/registry.schema.json at ${first?.instancePath || '/'}: ${first?.message ?? 'invalid'}`, {
      hint: 'It was edited by hand or by another program. Restore it from a backup.',
    });
  }
}

function lockPath(file: string): string {
  return `${file}.lock`;
}
function holderPath(file: string): string {
  return `${file}.lock-holder.json`;
}

export function readLockHolder(file: string): LockHolder | undefined {
  try {
    return JSON.parse(readFileSync(holderPath(file), 'utf8')) as LockHolder;
  } catch {
    return undefined;
  }
}

function describeHolder(h: LockHolder | undefined): string {
  if (!h) return 'another codeb process';
  return `${h.user}@${h.host} pid ${h.pid} (${h.command}) since ${h.since}`;
}

/**
 * The registry names every project, domain and port and history says what failed: 0700 folder,
 * 0600 file, also for a registry written by an older codeb (fixed on the next write). A folder
 * codeb does not own, or a shared sticky one like /tmp (an explicit --registry), is left alone.
 */
export function ensurePrivateFolder(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = statSync(dir);
  const sticky = (st.mode & 0o1000) !== 0;
  if (!sticky && st.uid === process.getuid?.() && (st.mode & 0o077) !== 0) chmodSync(dir, 0o700);
}

export async function withRegistryLock<T>(file: string, opts: LockOptions, body: (tx: RegistryTx) => Promise<T>): Promise<T> {
  ensurePrivateFolder(dirname(file));
  const { waitMs, staleMs } = lockTimings(opts);
  const started = Date.now();
  let release: (() => Promise<void>) | undefined;
  // Set when proper-lockfile finds our lock taken over (we were stalled longer than `stale`):
  // from then on another process may be writing, so this one must not.
  let compromised: Error | undefined;
  // proper-lockfile's own retries have no overall deadline, so poll with a bounded loop.
  for (;;) {
    try {
      release = await lockfile.lock(file, {
        realpath: false,
        lockfilePath: lockPath(file),
        // A holder refreshes the lock's mtime every `update` ms; a lock older than `stale` belongs
        // to a process that died (SIGKILL) and is taken over.
        stale: staleMs,
        update: Math.min(2_000, staleMs / 2),
        // Called from a timer: throwing here would crash the process, so only remember it.
        onCompromised: (err) => {
          compromised = err;
          opts.onLost?.(err);
        },
      });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ELOCKED') throw err;
      if (Date.now() - started >= waitMs) {
        throw new CodebError(`The registry ${file} is locked by ${describeHolder(readLockHolder(file))}; waited ${Math.round((Date.now() - started) / 1000)} s.`, {
          hint: `Wait for that command to finish and run again. If that process is gone, the lock is taken over by itself once it is ${Math.round(staleMs / 1000)} s old (CODEB_LOCK_STALE_MS).`,
        });
      }
      await new Promise((r) => setTimeout(r, 25 + Math.random() * 75));
    }
  }
  const lost = (): CodebError =>
    new CodebError(`Lost the registry lock on ${file}: ${compromised?.message}. Nothing was written.`, {
      hint: 'This process stalled longer than the stale time and another process took the lock over; re-run the command.',
    });
  const holder: LockHolder = { host: hostname(), pid: process.pid, user: safeUser(), since: new Date().toISOString(), command: opts.command };
  writeFileSync(holderPath(file), JSON.stringify(holder) + '\n', { mode: 0o600 });
  try {
    const tx: RegistryTx = {
      read: () => readRegistryFile(file),
      write: async (doc) => {
        if (compromised) throw lost();
        doc.updatedAt = new Date().toISOString();
        assertValidRegistry(doc, file);
        await writeFileAtomic(file, JSON.stringify(doc, null, 2) + '\n', { fsync: true, mode: 0o600 });
      },
    };
    return await body(tx);
  } finally {
    // A taken-over lock and its holder file belong to the new holder now.
    if (!compromised) {
      rmSync(holderPath(file), { force: true });
      await release();
    }
  }
}

/** Read, change and write the registry under the lock. */
export async function updateRegistry<T>(file: string, opts: LockOptions, change: (doc: RegistryDocument) => T | Promise<T>): Promise<T> {
  return withRegistryLock(file, opts, async (tx) => {
    const doc = tx.read();
    const result = await change(doc);
    await tx.write(doc);
    return result;
  });
}

export function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return String(process.getuid?.() ?? 'unknown');
  }
}

/**
 * Who is acting, for history and audit entries: user@host; under GitHub Actions the workflow's
 * actor; on a server reached over SSH, the CODEB_ACTOR the client passed (validated, short).
 */
export function actor(env: NodeJS.ProcessEnv = process.env): string {
  const given = env.CODEB_ACTOR;
  if (given && /^[A-Za-z0-9._@() -]{1,100}$/.test(given)) return given;
  if (env.GITHUB_ACTIONS === 'true' && env.GITHUB_ACTOR && /^[A-Za-z0-9-]{1,39}$/.test(env.GITHUB_ACTOR)) {
    return `${env.GITHUB_ACTOR} (GitHub Actions${env.GITHUB_RUN_ID && /^\d+$/.test(env.GITHUB_RUN_ID) ? ` run ${env.GITHUB_RUN_ID}` : ''})`;
  }
  return `${safeUser()}@${hostname()}`;
}
