/**
 * The registry file (controller/registry/store.ts): reading and refusing bad documents, atomic
 * validated writes, the cross-process lock and its holder file, stale takeover, and a lost lock.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CodebError } from '../../controller/errors.js';
import { validateRegistry } from '../../controller/generated/validators.js';
import {
  DEFAULT_LOCK_STALE_MS,
  DEFAULT_LOCK_WAIT_MS,
  lockTimings,
  readLockHolder,
  readRegistryFile,
  safeUser,
  updateRegistry,
  withRegistryLock,
  type LockHolder,
} from '../../controller/registry/store.js';
import { emptyRegistry, type EnvironmentRecord, type RegistryDocument } from '../../controller/registry/types.js';
import { bundleChild, repoRoot } from '../helpers/bundle-child.js';

const NOW = '2025-01-01T00:00:00.000Z';
let dir: string;
let n = 0;
let child: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'codeb-store-'));
  child = await bundleChild(join(repoRoot, 'test/helpers/registry-child.ts'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(child, { force: true });
});

/** A fresh registry path (in a folder that does not exist yet) per test. */
function freshFile(): string {
  return join(dir, `case-${++n}`, 'registry', 'projects.json');
}

function envRecord(over: Partial<EnvironmentRecord> = {}): EnvironmentRecord {
  return {
    env: 'production',
    status: 'allocated',
    createdAt: NOW,
    updatedAt: NOW,
    domain: 'alpha.localhost',
    aliases: [],
    ports: { web: { blue: 3000, green: 3001, entry: 3002 } },
    redisDb: 2,
    redisUser: 'alpha',
    database: 'alpha_db',
    databaseRole: 'alpha',
    bucket: 'alpha-uploads',
    buckets: ['alpha-uploads'],
    liveSlot: null,
    containers: [],
    health: { status: 'unknown', lastCheck: null },
    history: [],
    ...over,
  };
}

function docWithAlpha(): RegistryDocument {
  const doc = emptyRegistry(NOW);
  doc.projects.alpha = { id: 'alpha', name: 'Alpha', createdAt: NOW, updatedAt: NOW, environments: { production: envRecord() } };
  return doc;
}

function writeJson(file: string, value: unknown): void {
  mkdirSync(join(file, '..'), { recursive: true });
  writeFileSync(file, typeof value === 'string' ? value : JSON.stringify(value, null, 2));
}

function catchError(fn: () => unknown): CodebError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CodebError);
    return err as CodebError;
  }
  throw new Error('expected an error, none was thrown');
}

function runChild(args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  return spawn(process.execPath, [child, ...args], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
}

function collect(p: ChildProcess): Promise<{ code: number | null; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  p.stdout!.on('data', (d) => (stdout += d));
  p.stderr!.on('data', (d) => (stderr += d));
  return new Promise((resolve) => p.on('close', (code) => resolve({ code, stdout, stderr })));
}

/** Resolves with the first stdout line that starts with `prefix`. */
function waitForLine(p: ChildProcess, prefix: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (d: Buffer): void => {
      buf += d.toString();
      const line = buf.split('\n').find((l) => l.startsWith(prefix));
      if (line !== undefined) {
        p.stdout!.off('data', onData);
        resolve(line);
      }
    };
    p.stdout!.on('data', onData);
    p.on('exit', (code) => reject(new Error(`child exited (${code}) before printing "${prefix}"`)));
  });
}

describe('readRegistryFile', () => {
  it('gives an empty, valid document for a missing file', () => {
    const doc = readRegistryFile(freshFile());
    expect(doc.formatVersion).toBe(1);
    expect(doc.projects).toEqual({});
    expect(validateRegistry(doc)).toBe(true);
  });

  it('reads back a valid document', () => {
    const file = freshFile();
    writeJson(file, docWithAlpha());
    expect(readRegistryFile(file)).toEqual(docWithAlpha());
  });

  it('refuses a file that is not JSON, with a hint', () => {
    const file = freshFile();
    writeJson(file, '{"formatVersion": 1, "projects": {');
    const err = catchError(() => readRegistryFile(file));
    expect(err.message).toContain(file);
    expect(err.message).toMatch(/not valid JSON/);
    expect(err.hint).toMatch(/backup/);
  });

  it.each([
    ['a newer version', { ...emptyRegistry(NOW), formatVersion: 2 }, '2'],
    ['no version', { updatedAt: NOW, projects: {} }, 'undefined'],
    ['a JSON array', [], 'undefined'],
    ['JSON null', 'null', 'undefined'],
    ['an empty file', '', null],
  ])('refuses %s, with a hint', (_case, content, shown) => {
    const file = freshFile();
    writeJson(file, content);
    const err = catchError(() => readRegistryFile(file));
    if (shown === null) {
      // An empty file is not JSON at all.
      expect(err.message).toMatch(/not valid JSON/);
      return;
    }
    expect(err.message).toContain(`format version ${shown}`);
    expect(err.message).toContain('reads version 1');
    expect(err.hint).toMatch(/codeb version/);
  });

  it.each([
    ['a Redis DB that is not a number', (d: RegistryDocument) => ((d.projects.alpha!.environments.production as unknown as Record<string, unknown>).redisDb = 'two'), '/projects/alpha/environments/production/redisDb'],
    ['an unknown status', (d: RegistryDocument) => ((d.projects.alpha!.environments.production as unknown as Record<string, unknown>).status = 'sleeping'), '/projects/alpha/environments/production/status'],
    ['a port out of range', (d: RegistryDocument) => (d.projects.alpha!.environments.production!.ports.web!.green = 70000), '/projects/alpha/environments/production/ports/web/green'],
    ['an entry port out of range', (d: RegistryDocument) => (d.projects.alpha!.environments.production!.ports.web!.entry = 70000), '/projects/alpha/environments/production/ports/web/entry'],
    ['a service without an entry port', (d: RegistryDocument) => delete (d.projects.alpha!.environments.production!.ports.web as unknown as Record<string, unknown>).entry, '/projects/alpha/environments/production/ports/web'],
    ['an unknown port role', (d: RegistryDocument) => ((d.projects.alpha!.environments.production!.ports.web as unknown as Record<string, unknown>).canary = 3003), '/projects/alpha/environments/production/ports/web'],
    ['a missing field', (d: RegistryDocument) => delete (d.projects.alpha!.environments.production as unknown as Record<string, unknown>).health, '/projects/alpha/environments/production'],
    ['an unknown top-level key', (d: RegistryDocument) => ((d as unknown as Record<string, unknown>).extra = 1), '/'],
  ])('refuses a document with %s, naming where', (_case, spoil, where) => {
    const file = freshFile();
    const doc = docWithAlpha();
    spoil(doc);
    writeJson(file, doc);
    const err = catchError(() => readRegistryFile(file));
    expect(err.message).toContain('does not match schemas/registry.schema.json');
    expect(err.message).toContain(`at ${where}:`);
    expect(err.hint).toMatch(/backup/);
  });
});

describe('updateRegistry', () => {
  it('creates the folder and writes a document that validates', async () => {
    const file = freshFile();
    const result = await updateRegistry(file, { command: 'test add alpha' }, (doc) => {
      doc.projects.alpha = docWithAlpha().projects.alpha!;
      return 'changed';
    });
    expect(result).toBe('changed');
    const text = readFileSync(file, 'utf8');
    expect(text.endsWith('}\n')).toBe(true);
    const written = JSON.parse(text) as RegistryDocument;
    expect(validateRegistry(written)).toBe(true);
    expect(written.projects.alpha).toEqual(docWithAlpha().projects.alpha);
    expect(written.updatedAt).not.toBe(NOW);
    expect(Date.parse(written.updatedAt)).not.toBeNaN();
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('sees the previous write: updates accumulate', async () => {
    const file = freshFile();
    for (const id of ['alpha', 'beta', 'gamma']) {
      await updateRegistry(file, { command: `add ${id}` }, (doc) => {
        doc.projects[id] = { ...docWithAlpha().projects.alpha!, id, name: id };
      });
    }
    expect(Object.keys(readRegistryFile(file).projects)).toEqual(['alpha', 'beta', 'gamma']);
  });

  it('refuses to write a document that would not validate, and leaves the file as it was', async () => {
    const file = freshFile();
    writeJson(file, docWithAlpha());
    const before = readFileSync(file, 'utf8');
    await expect(
      updateRegistry(file, { command: 'spoil' }, (doc) => {
        (doc.projects.alpha!.environments.production as unknown as Record<string, unknown>).redisDb = -1;
      }),
    ).rejects.toThrow(/does not match schemas\/registry.schema.json at \/projects\/alpha\/environments\/production\/redisDb/);
    expect(readFileSync(file, 'utf8')).toBe(before);
  });

  it('leaves the file alone and releases the lock when the change throws', async () => {
    const file = freshFile();
    writeJson(file, docWithAlpha());
    const before = readFileSync(file, 'utf8');
    await expect(
      updateRegistry(file, { command: 'boom' }, (doc) => {
        delete doc.projects.alpha;
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(readFileSync(file, 'utf8')).toBe(before);
    expect(existsSync(`${file}.lock`)).toBe(false);
    expect(existsSync(`${file}.lock-holder.json`)).toBe(false);
    // Not waiting at all: the lock must be free right away.
    await updateRegistry(file, { command: 'after boom', waitMs: 0 }, () => undefined);
  });
});

describe('registry file modes (issue 9, finding 6)', () => {
  it('writes the file 0600 in a 0700 folder, and fixes a world-readable registry of an older codeb on the next write', async () => {
    const file = freshFile();
    const folder = join(file, '..');
    mkdirSync(folder, { recursive: true, mode: 0o755 });
    chmodSync(folder, 0o755);
    writeFileSync(file, JSON.stringify(emptyRegistry(NOW)), { mode: 0o644 });
    chmodSync(file, 0o644);
    await updateRegistry(file, { command: 'test' }, (doc) => {
      doc.updatedAt = NOW;
    });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(folder).mode & 0o777).toBe(0o700);
    const fresh = freshFile();
    await updateRegistry(fresh, { command: 'test' }, () => undefined);
    expect(statSync(fresh).mode & 0o777).toBe(0o600);
    expect(statSync(join(fresh, '..')).mode & 0o777).toBe(0o700);
  });

  it('leaves a shared sticky folder (an explicit --registry in /tmp) as it is', async () => {
    const file = join(tmpdir(), `codeb-store-sticky-${process.pid}-${++n}.json`);
    try {
      await updateRegistry(file, { command: 'test' }, () => undefined);
      expect(statSync(tmpdir()).mode & 0o1777).toBe(0o1777);
      expect(statSync(file).mode & 0o777).toBe(0o600);
    } finally {
      rmSync(file, { force: true });
    }
  });
});

describe('the registry lock', () => {
  it('records who holds it while held and removes the record after', async () => {
    const file = freshFile();
    let seen: LockHolder | undefined;
    let lockDirWhileHeld = false;
    await withRegistryLock(file, { command: 'codeb registry allocate x.yaml' }, async () => {
      seen = readLockHolder(file);
      lockDirWhileHeld = existsSync(`${file}.lock`);
    });
    expect(lockDirWhileHeld).toBe(true);
    expect(seen).toMatchObject({ host: hostname(), pid: process.pid, user: safeUser(), command: 'codeb registry allocate x.yaml' });
    expect(Date.parse(seen!.since)).not.toBeNaN();
    expect(readLockHolder(file)).toBeUndefined();
    expect(existsSync(`${file}.lock-holder.json`)).toBe(false);
    expect(existsSync(`${file}.lock`)).toBe(false);
  });

  it('makes a second attempt with a small wait fail, naming the holder', async () => {
    const file = freshFile();
    const err = await withRegistryLock(file, { command: 'codeb apply long.yaml' }, async () =>
      withRegistryLock(file, { command: 'second', waitMs: 150 }, async () => 'got it').catch((e: unknown) => e),
    );
    expect(err).toBeInstanceOf(CodebError);
    const e = err as CodebError;
    expect(e.message).toContain(`is locked by ${safeUser()}@${hostname()} pid ${process.pid} (codeb apply long.yaml)`);
    expect(e.hint).toMatch(/taken over by itself once it is 10 s old/);
  });

  it('makes a child process give up, naming this process as the holder', async () => {
    const file = freshFile();
    const result = await withRegistryLock(file, { command: 'codeb apply held-by-parent.yaml' }, async () => collect(runChild(['try', file, '300'])));
    expect(result.stderr).toBe('');
    expect(result.code).toBe(1);
    const out = JSON.parse(result.stdout) as { ok: boolean; message: string };
    expect(out.ok).toBe(false);
    expect(out.message).toContain(`pid ${process.pid} (codeb apply held-by-parent.yaml)`);
    // And once released, the child gets it.
    expect((await collect(runChild(['try', file, '300']))).code).toBe(0);
  });

  it('makes this process give up while a child holds it, naming the child', async () => {
    const file = freshFile();
    const holder = runChild(['hold', file, 'codeb apply held-by-child.yaml']);
    const done = collect(holder);
    try {
      const line = await waitForLine(holder, 'locked ');
      const childPid = Number(line.split(' ')[1]);
      expect(childPid).toBe(holder.pid);
      expect(readLockHolder(file)).toMatchObject({ pid: childPid, command: 'codeb apply held-by-child.yaml', host: hostname() });
      await expect(updateRegistry(file, { command: 'parent', waitMs: 200 }, () => undefined)).rejects.toThrow(`pid ${childPid} (codeb apply held-by-child.yaml)`);
    } finally {
      holder.stdin!.end();
    }
    expect((await done).code).toBe(0);
    expect(readLockHolder(file)).toBeUndefined();
    await updateRegistry(file, { command: 'parent again', waitMs: 2_000 }, () => undefined);
  });

  it('takes over a stale lock left by a process that died', async () => {
    const file = freshFile();
    writeJson(file, docWithAlpha());
    // What a SIGKILLed holder leaves: the lock folder, no longer refreshed, and its holder record.
    mkdirSync(`${file}.lock`);
    writeJson(`${file}.lock-holder.json`, { host: hostname(), pid: 999999, user: 'ghost', since: NOW, command: 'killed' });
    const old = new Date(Date.now() - 60_000);
    utimesSync(`${file}.lock`, old, old);
    await updateRegistry(file, { command: 'after a crash', waitMs: 0 }, (doc) => {
      expect(readLockHolder(file)).toMatchObject({ pid: process.pid, command: 'after a crash' });
      delete doc.projects.alpha;
    });
    expect(readRegistryFile(file).projects).toEqual({});
    expect(existsSync(`${file}.lock`)).toBe(false);
  });

  it('does not take over a fresh lock even when its holder record is missing', async () => {
    const file = freshFile();
    mkdirSync(join(file, '..'), { recursive: true });
    mkdirSync(`${file}.lock`);
    const err = await updateRegistry(file, { command: 'x', waitMs: 100 }, () => undefined).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CodebError);
    expect((err as CodebError).message).toContain('is locked by another codeb process');
    rmSync(`${file}.lock`, { recursive: true });
  });

  it('refuses to write after the lock was taken over while this process stalled', async () => {
    const file = freshFile();
    writeJson(file, docWithAlpha());
    const before = readFileSync(file, 'utf8');
    let noticed!: () => void;
    const lost = new Promise<void>((r) => (noticed = r));
    const err = await withRegistryLock(file, { command: 'slow', staleMs: 2_000, onLost: () => noticed() }, async (tx) => {
      const doc = tx.read();
      // Another process decides the lock is stale and takes it: a new lock folder with a new mtime.
      rmSync(`${file}.lock`, { recursive: true });
      mkdirSync(`${file}.lock`);
      writeJson(`${file}.lock-holder.json`, { host: 'other', pid: 1, user: 'other', since: NOW, command: 'the new holder' });
      // proper-lockfile checks the lock every stale/2 = 1 s and notices it is not ours any more
      // (however long a busy machine delays its timer: wait for that, not for a guessed time).
      await lost;
      delete doc.projects.alpha;
      return tx.write(doc).catch((e: unknown) => e);
    });
    expect(err).toBeInstanceOf(CodebError);
    expect((err as CodebError).message).toMatch(/Lost the registry lock/);
    expect(readFileSync(file, 'utf8')).toBe(before);
    // The new holder's lock and record are left alone.
    expect(existsSync(`${file}.lock`)).toBe(true);
    expect(readLockHolder(file)?.command).toBe('the new holder');
    rmSync(`${file}.lock`, { recursive: true });
  });
});

describe('lockTimings', () => {
  it('defaults to a 60 s wait and a 10 s stale time', () => {
    expect(lockTimings({}, {})).toEqual({ waitMs: DEFAULT_LOCK_WAIT_MS, staleMs: DEFAULT_LOCK_STALE_MS });
    expect(DEFAULT_LOCK_WAIT_MS).toBe(60_000);
    expect(DEFAULT_LOCK_STALE_MS).toBe(10_000);
  });

  it('reads CODEB_LOCK_TIMEOUT_MS and CODEB_LOCK_STALE_MS; options win', () => {
    const env = { CODEB_LOCK_TIMEOUT_MS: '0', CODEB_LOCK_STALE_MS: '3000' };
    expect(lockTimings({}, env)).toEqual({ waitMs: 0, staleMs: 3000 });
    expect(lockTimings({ waitMs: 5, staleMs: 4000 }, env)).toEqual({ waitMs: 5, staleMs: 4000 });
  });

  it('never goes below proper-lockfile’s 2 s stale floor', () => {
    expect(lockTimings({ staleMs: 10 }, {}).staleMs).toBe(2000);
  });

  it.each([
    ['CODEB_LOCK_TIMEOUT_MS', 'soon'],
    ['CODEB_LOCK_TIMEOUT_MS', '-1'],
    ['CODEB_LOCK_STALE_MS', '1.5'],
    ['CODEB_LOCK_STALE_MS', '500'],
  ])('rejects %s=%j instead of waiting forever or never', (name, value) => {
    const err = catchError(() => lockTimings({}, { [name]: value }));
    expect(err.message).toContain(name);
    expect(err.exitCode).toBe(2);
  });
});

describe('actor (who is named in history)', () => {
  it('is user@host by default, the validated CODEB_ACTOR when a client passed one, the GitHub actor in Actions', async () => {
    const { actor } = await import('../../controller/registry/store.js');
    expect(actor({})).toMatch(/^.+@.+$/);
    expect(actor({ CODEB_ACTOR: 'alice@laptop' })).toBe('alice@laptop');
    expect(actor({ CODEB_ACTOR: 'x; rm -rf /' })).not.toContain(';');
    expect(actor({ GITHUB_ACTIONS: 'true', GITHUB_ACTOR: 'octocat', GITHUB_RUN_ID: '42' })).toBe('octocat (GitHub Actions run 42)');
  });
});
