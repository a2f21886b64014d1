/**
 * The registry file: one JSON document, read freely, changed only under a cross-process lock,
 * written atomically (temp file, fsync, rename) so a crash at any instant leaves the old or the
 * new document, never a torn one. The lock holder is recorded so a waiting command can say who.
 */
import { mkdirSync, readFileSync, existsSync, writeFileSync, rmSync } from 'node:fs';
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
  /** How long to wait for another holder before giving up (ms). Default: CODEB_LOCK_TIMEOUT or 60 s. */
  waitMs?: number;
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
  const version = (doc as { formatVersion?: unknown }).formatVersion;
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

export async function withRegistryLock<T>(file: string, opts: LockOptions, body: (tx: RegistryTx) => Promise<T>): Promise<T> {
  mkdirSync(dirname(file), { recursive: true });
  const waitMs = opts.waitMs ?? Number(process.env.CODEB_LOCK_TIMEOUT_MS ?? 60_000);
  const started = Date.now();
  let release: (() => Promise<void>) | undefined;
  // proper-lockfile's own retries have no overall deadline, so poll with a bounded loop.
  for (;;) {
    try {
      release = await lockfile.lock(file, {
        realpath: false,
        lockfilePath: lockPath(file),
        // A holder refreshes the lock's mtime every `update` ms; a lock older than `stale` belongs
        // to a process that died (SIGKILL) and is taken over.
        stale: 10_000,
        update: 2_000,
        onCompromised: (err) => {
          throw new CodebError(`Lost the registry lock: ${err.message}`, { hint: 'Another process took it over; re-run the command.' });
        },
      });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ELOCKED') throw err;
      if (Date.now() - started >= waitMs) {
        throw new CodebError(`The registry ${file} is locked by ${describeHolder(readLockHolder(file))}; waited ${Math.round((Date.now() - started) / 1000)} s.`, {
          hint: 'Wait for that command to finish and run again. If that process is gone, the lock is taken over after 10 s by itself.',
        });
      }
      await new Promise((r) => setTimeout(r, 25 + Math.random() * 75));
    }
  }
  const holder: LockHolder = { host: hostname(), pid: process.pid, user: safeUser(), since: new Date().toISOString(), command: opts.command };
  writeFileSync(holderPath(file), JSON.stringify(holder) + '\n');
  try {
    const tx: RegistryTx = {
      read: () => readRegistryFile(file),
      write: async (doc) => {
        doc.updatedAt = new Date().toISOString();
        assertValidRegistry(doc, file);
        await writeFileAtomic(file, JSON.stringify(doc, null, 2) + '\n', { fsync: true, mode: 0o644 });
      },
    };
    return await body(tx);
  } finally {
    rmSync(holderPath(file), { force: true });
    await release();
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

/** user@host, for history and audit entries. */
export function actor(): string {
  return `${safeUser()}@${hostname()}`;
}
