/**
 * The registry under real concurrency and real crashes, through the built CLI (bin/codeb.js):
 * 20 allocations at once, Redis slot exhaustion, SIGKILL at random moments inside the lock, and the
 * read-only commands (list, inspect, redaction) plus release on the result. No services needed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateRegistry } from '../../controller/generated/validators.js';
import type { PortPair, RegistryDocument } from '../../controller/registry/types.js';
import { appPort } from './helpers/stack.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = join(root, 'bin', 'codeb.js');
const COUNT = 20;

let dir: string;
let home: string;

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

// This file's own ports (slot 0: 4300-4599), outside the default 3000-3999 a running demo stack allocates from.
const PORT_RANGE = { min: appPort(4300), max: appPort(4599) };

function start(args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  return spawn(process.execPath, [cli, ...args], {
    cwd: dir,
    env: { ...process.env, CODEB_HOME: home, CODEB_REGISTRY: '', CODEB_DEBUG: '1', CODEB_PORT_RANGE: `${PORT_RANGE.min}-${PORT_RANGE.max}`, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

function finish(p: ChildProcess): Promise<Run> {
  let stdout = '';
  let stderr = '';
  p.stdout!.on('data', (d) => (stdout += d));
  p.stderr!.on('data', (d) => (stderr += d));
  return new Promise((resolve) => p.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
}

function codeb(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return finish(start(args, env));
}

function json<T = Record<string, unknown>>(r: Run): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`not JSON (exit ${r.code}): ${r.stdout}\n${r.stderr}`);
  }
}

function manifest(id: string, opts: { cache?: boolean; hostPorts?: { blue: number; green: number; entry?: number } } = {}): string {
  const file = join(dir, 'manifests', `${id}.yaml`);
  mkdirSync(dirname(file), { recursive: true });
  const hp = opts.hostPorts;
  const hostPorts = hp ? `\n    hostPorts: { blue: ${hp.blue}, green: ${hp.green}${hp.entry === undefined ? '' : `, entry: ${hp.entry}`} }` : '';
  writeFileSync(
    file,
    `apiVersion: codeb/v1
project:
  id: ${id}
  name: Project ${id}
services:
  web:
    image: localhost/codeb-testapp:v1
    port: 8080${hostPorts}
  worker:
    type: worker
    image: localhost/codeb-testapp:v1
    command: ["node", "worker.js"]
features:
  cache: ${opts.cache ?? true}
`,
  );
  return file;
}

function readDoc(file: string): RegistryDocument {
  return JSON.parse(readFileSync(file, 'utf8')) as RegistryDocument;
}

function expectValid(doc: unknown): void {
  const ok = validateRegistry(doc);
  expect(validateRegistry.errors ?? [], 'registry validates against schemas/registry.schema.json').toEqual([]);
  expect(ok).toBe(true);
}

/** Every port and Redis DB in the document, with duplicates if any. */
function holdings(doc: RegistryDocument): { ports: number[]; redis: number[] } {
  const ports: number[] = [];
  const redis: number[] = [];
  for (const p of Object.values(doc.projects)) {
    for (const e of Object.values(p.environments)) {
      for (const pair of Object.values(e.ports)) ports.push(pair.blue, pair.green, pair.entry);
      if (e.redisDb !== null) redis.push(e.redisDb);
    }
  }
  return { ports, redis };
}

const ids = Array.from({ length: COUNT }, (_, i) => `conc-${String(i + 1).padStart(2, '0')}`);
let manifests: string[];

beforeAll(() => {
  if (!existsSync(join(root, 'dist', 'codeb.mjs'))) throw new Error('The CLI is not built: run `npm run build` first (scripts/test.sh does).');
  dir = mkdtempSync(join(tmpdir(), 'codeb-registry-conc-'));
  home = join(dir, 'home');
  manifests = ids.map((id) => manifest(id));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

interface AllocateOut {
  registry: string;
  project: string;
  env: string;
  ports: Record<string, PortPair>;
  redisDb: number | null;
}

describe('20 allocations at once', () => {
  const registry = (): string => join(dir, 'wide', 'projects.json');

  it('all succeed with distinct ports and Redis DBs when Redis has 32 databases', async () => {
    const file = registry();
    const runs = await Promise.all(manifests.map((m) => codeb(['--registry', file, 'registry', 'allocate', m, '--json'], { CODEB_REDIS_DATABASES: '32' })));
    for (const r of runs) expect(r, r.stderr).toMatchObject({ code: 0, stderr: '' });
    const outs = runs.map((r) => json<AllocateOut>(r));
    expect(outs.map((o) => o.project).sort()).toEqual(ids);

    const triples = outs.map((o) => o.ports.web!);
    expect(outs.every((o) => Object.keys(o.ports).join() === 'web')).toBe(true); // the worker gets no ports
    for (const p of triples) expect(Object.keys(p).sort()).toEqual(['blue', 'entry', 'green']);
    expect(new Set(triples.map((p) => `${p.entry}>${p.blue}/${p.green}`)).size).toBe(COUNT);
    // 20 processes, three ports each (blue, green, entry): 60 distinct ports.
    const ports = triples.flatMap((p) => [p.blue, p.green, p.entry]);
    expect(ports).toHaveLength(3 * COUNT);
    expect(new Set(ports).size).toBe(3 * COUNT);
    for (const p of ports) expect(p >= PORT_RANGE.min && p <= PORT_RANGE.max, `port ${p} in ${PORT_RANGE.min}-${PORT_RANGE.max}`).toBe(true);
    const dbs = outs.map((o) => o.redisDb!);
    expect(new Set(dbs).size).toBe(COUNT);
    expect([...dbs].sort((a, b) => a - b)).toEqual(Array.from({ length: COUNT }, (_, i) => i + 2));

    // The file holds exactly what the commands reported, validates, and has no lock left behind.
    const doc = readDoc(file);
    expectValid(doc);
    expect(Object.keys(doc.projects).sort()).toEqual(ids);
    for (const o of outs) {
      const rec = doc.projects[o.project]!.environments.production!;
      expect(rec.ports).toEqual(o.ports);
      expect(rec.redisDb).toBe(o.redisDb);
    }
    const h = holdings(doc);
    expect(new Set(h.ports).size).toBe(h.ports.length);
    expect(new Set(h.redis).size).toBe(h.redis.length);
    expect(readdirSync(dirname(file)).sort()).toEqual(['projects.json']);
  });

  it('running them all again changes nothing: every deployment keeps its ports and DB', async () => {
    const file = registry();
    const before = readDoc(file);
    const runs = await Promise.all(manifests.map((m) => codeb(['--registry', file, 'registry', 'allocate', m, '--json'], { CODEB_REDIS_DATABASES: '32' })));
    for (const r of runs) expect(r.code, r.stdout + r.stderr).toBe(0);
    const after = readDoc(file);
    expectValid(after);
    for (const id of ids) {
      const a = after.projects[id]!.environments.production!;
      const b = before.projects[id]!.environments.production!;
      expect({ ports: a.ports, redisDb: a.redisDb, createdAt: a.createdAt }).toEqual({ ports: b.ports, redisDb: b.redisDb, createdAt: b.createdAt });
    }
  });

  it('with the default 16 Redis databases exactly 14 succeed and 6 fail cleanly', async () => {
    const file = join(dir, 'narrow', 'projects.json');
    const runs = await Promise.all(manifests.map((m) => codeb(['--registry', file, 'registry', 'allocate', m, '--json'], { CODEB_REDIS_DATABASES: '' })));
    const ok = runs.filter((r) => r.code === 0);
    const failed = runs.filter((r) => r.code !== 0);
    expect(ok).toHaveLength(14);
    expect(failed).toHaveLength(6);
    for (const r of failed) {
      expect(r.code).toBe(1);
      const out = json<{ ok: boolean; error: { message: string; hint: string; internal?: boolean } }>(r);
      expect(out.ok).toBe(false);
      expect(out.error.internal).toBeUndefined();
      expect(out.error.message).toBe('All Redis DBs 2-15 are taken (14 deployments hold one).');
      expect(out.error.hint).toMatch(/CODEB_REDIS_DATABASES/);
    }

    const doc = readDoc(file);
    expectValid(doc);
    const winners = ok.map((r) => json<AllocateOut>(r).project).sort();
    expect(Object.keys(doc.projects).sort()).toEqual(winners);
    const h = holdings(doc);
    expect([...h.redis].sort((a, b) => a - b)).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
    // 14 deployments, three ports each.
    expect(new Set(h.ports).size).toBe(42);
    expect(h.ports).toHaveLength(42);
    expect(readdirSync(dirname(file)).sort()).toEqual(['projects.json']);

    // Plain output says the same to a person, on stderr.
    const loser = manifests[ids.indexOf(ids.find((id) => !winners.includes(id))!)]!;
    const plain = await codeb(['--registry', file, 'registry', 'allocate', loser]);
    expect(plain.code).toBe(1);
    expect(plain.stderr).toContain('error: All Redis DBs 2-15 are taken');
    expect(plain.stderr).toContain('hint: ');
  });
});

describe('reading and releasing the result', () => {
  const file = (): string => join(dir, 'wide', 'projects.json');

  it('lists every deployment as JSON', async () => {
    const r = await codeb(['--registry', file(), 'registry', 'list', '--json']);
    expect(r.code).toBe(0);
    const out = json<{ registry: string; deployments: Array<{ project: string; env: string; ports: string; redisDb: number; status: string }> }>(r);
    expect(out.registry).toBe(file());
    expect(out.deployments.map((d) => d.project)).toEqual(ids);
    const doc = readDoc(file());
    for (const d of out.deployments) {
      const rec = doc.projects[d.project]!.environments.production!;
      const web = rec.ports.web!;
      expect(d).toMatchObject({ env: 'production', status: 'allocated', redisDb: rec.redisDb, ports: `web:${web.entry}>${web.blue}/${web.green}` });
    }
  });

  it('lists as a table for people, and finds the registry through CODEB_REGISTRY', async () => {
    const r = await codeb(['registry', 'list'], { CODEB_REGISTRY: file() });
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^PROJECT\s+ENV\s+STATUS\s+DOMAIN\s+PORTS \(entry>blue\/green\)\s/);
    expect(lines).toHaveLength(COUNT + 1);
    const web = readDoc(file()).projects['conc-07']!.environments.production!.ports.web!;
    expect(lines.find((l) => l.startsWith('conc-07 '))).toContain(` web:${web.entry}>${web.blue}/${web.green} `);
  });

  it('inspects one project, whole or one environment', async () => {
    const doc = readDoc(file());
    const whole = await codeb(['--registry', file(), 'registry', 'inspect', 'conc-07', '--json']);
    expect(whole.code).toBe(0);
    const view = json<{ id: string; name: string; environments: RegistryDocument['projects'][string]['environments'] }>(whole);
    expect(view.id).toBe('conc-07');
    expect(view.name).toBe('Project conc-07');
    expect(view.environments).toEqual(doc.projects['conc-07']!.environments);

    const one = await codeb(['--registry', file(), 'registry', 'inspect', 'conc-07', '--env', 'production', '--json']);
    expect(one.code).toBe(0);
    expect(Object.keys(json<{ environments: object }>(one).environments)).toEqual(['production']);

    const text = await codeb(['--registry', file(), 'registry', 'inspect', 'conc-07']);
    expect(text.code).toBe(0);
    const web = doc.projects['conc-07']!.environments.production!.ports.web!;
    expect(text.stdout).toContain(`web entry ${web.entry} (blue ${web.blue}, green ${web.green})`);
    expect(text.stdout).toContain(`redis db    ${doc.projects['conc-07']!.environments.production!.redisDb}`);
  });

  it('says which projects exist when asked for an unknown one', async () => {
    const r = await codeb(['--registry', file(), 'registry', 'inspect', 'conc-99']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('No project "conc-99"');
    // All of them, sorted like `registry list`.
    expect(r.stderr).toContain(`hint: Known projects: ${ids.join(', ')}.`);

    const j = await codeb(['--registry', file(), 'registry', 'inspect', 'conc-99', '--json']);
    expect(j.code).toBe(1);
    expect(json<{ error: { hint: string } }>(j).error.hint).toContain('conc-13');

    const env = await codeb(['--registry', file(), 'registry', 'inspect', 'conc-07', '--env', 'staging']);
    expect(env.code).toBe(1);
    expect(env.stderr).toContain('no environment "staging"');
    expect(env.stderr).toContain('It has: production.');
  });

  it('release frees the ports and the Redis slot of one deployment', async () => {
    const before = readDoc(file());
    const freed = before.projects['conc-03']!.environments.production!;
    // A newcomer that insists on conc-03's ports is refused while conc-03 holds them...
    const newcomer = manifest('newcomer', { hostPorts: freed.ports.web! });
    const refused = await codeb(['--registry', file(), 'registry', 'allocate', newcomer, '--json'], { CODEB_REDIS_DATABASES: '22' });
    expect(refused.code).toBe(1);
    expect(json<{ error: { message: string } }>(refused).error.message).toContain(`held by project "conc-03" (environment production, service web, blue)`);
    // ...and so is one that wants only conc-03's entry port.
    const entryOnly = manifest('entrycomer', { hostPorts: { blue: appPort(4590), green: appPort(4591), entry: freed.ports.web!.entry } });
    const refusedEntry = await codeb(['--registry', file(), 'registry', 'allocate', entryOnly, '--json'], { CODEB_REDIS_DATABASES: '22' });
    expect(refusedEntry.code).toBe(1);
    expect(json<{ error: { message: string } }>(refusedEntry).error.message).toBe(
      `Port ${freed.ports.web!.entry} (service web, entry port) is already held by project "conc-03" (environment production, service web, entry port).`,
    );
    expect(readDoc(file())).toEqual(before);

    const rel = await codeb(['--registry', file(), 'registry', 'release', 'conc-03', '--json']);
    expect(rel.code).toBe(0);
    expect(json(rel)).toEqual({ ok: true, project: 'conc-03', env: 'production' });
    const after = readDoc(file());
    expectValid(after);
    expect(after.projects['conc-03']).toBeUndefined();
    expect(Object.keys(after.projects)).toHaveLength(COUNT - 1);
    // An allocation alone names no data, so nothing stays claimed (records.test.ts: one that does).
    expect(after.tombstones ?? []).toEqual([]);

    // ...and gets them, and the freed Redis DB (the only free one of 2-21), once it is released.
    const got = await codeb(['--registry', file(), 'registry', 'allocate', newcomer, '--json'], { CODEB_REDIS_DATABASES: '22' });
    expect(got.code, got.stdout).toBe(0);
    expect(json<AllocateOut>(got)).toMatchObject({ ports: { web: freed.ports.web }, redisDb: freed.redisDb });

    const again = await codeb(['--registry', file(), 'registry', 'release', 'conc-03']);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('No deployment conc-03 (production)');
  });

  it('never shows secrets planted in the registry by hand', async () => {
    const planted = join(dir, 'planted', 'projects.json');
    mkdirSync(dirname(planted), { recursive: true });
    const doc = readDoc(file());
    const env = doc.projects['conc-05']!.environments.production! as unknown as Record<string, unknown>;
    env.databasePassword = 'hunter2-plain';
    env.redisSecret = 'redis-s3cret';
    env.apiToken = 'tok-123456';
    env.credentials = { user: 'admin', pass: 'nested-pass' };
    env.containers = [{ service: 'web', slot: 'blue', name: 'conc-05-web-blue', id: null, image: 'x', hostPort: null, state: 'running', startedAt: null, env: { DATABASE_PASSWORD: 'env-pw', S3_SECRET_KEY: 'env-sk', SESSION_TOKEN: 'env-tok' } }];
    env.history = [{ at: '2025-01-01T00:00:00.000Z', by: 'a@b', action: 'deploy', result: 'ok', detail: { accessKey: 'AKIA-PLANTED', privateKey: '-----BEGIN KEY-----', password: 'hist-pw' } }];
    writeFileSync(planted, JSON.stringify(doc, null, 2));
    expectValid(doc);
    const secrets = ['hunter2-plain', 'redis-s3cret', 'tok-123456', 'nested-pass', 'env-pw', 'env-sk', 'env-tok', 'AKIA-PLANTED', 'BEGIN KEY', 'hist-pw'];

    for (const args of [['inspect', 'conc-05', '--json'], ['inspect', 'conc-05', '--env', 'production', '--json'], ['inspect', 'conc-05'], ['list', '--json'], ['list']]) {
      const r = await codeb(['--registry', planted, 'registry', ...args]);
      expect(r.code, args.join(' ')).toBe(0);
      for (const s of secrets) expect(r.stdout + r.stderr, `${s} in registry ${args.join(' ')}`).not.toContain(s);
    }

    // Every key that names a secret is there only as "[redacted]".
    const view = json((await codeb(['--registry', planted, 'registry', 'inspect', 'conc-05', '--json'])));
    const offenders: string[] = [];
    const walk = (v: unknown, path: string): void => {
      if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${path}/${i}`));
      else if (v && typeof v === 'object') {
        for (const [k, x] of Object.entries(v)) {
          if (/pass|secret|token|private|credential|access[-_]?key/i.test(k) && x !== '[redacted]') offenders.push(`${path}/${k}`);
          walk(x, `${path}/${k}`);
        }
      }
    };
    walk(view, '');
    expect(offenders).toEqual([]);
    // Redaction hides values, not the rest of the record.
    expect((view.environments as Record<string, { redisDb: number }>).production!.redisDb).toBe(doc.projects['conc-05']!.environments.production!.redisDb);
  });
});

describe('crashes', () => {
  const LANES = 3;
  const PER_LANE = 10;
  // Projects in the crash test have no Redis limit to run into.
  const crashEnv = { CODEB_LOCK_STALE_MS: '2000', CODEB_REDIS_DATABASES: '200' };

  /** A ballast project with a long history makes every read and write of the document take a while. */
  function plantBallast(file: string, entries: number): void {
    const doc = readDoc(file);
    const first = Object.values(doc.projects)[0]!;
    const now = new Date().toISOString();
    first.environments.production!.history = Array.from({ length: entries }, (_, i) => ({ at: now, by: 'ci@build', action: `deploy ${i}`, result: 'ok' as const, detail: { image: `example/app:${i}`, note: 'n'.repeat(64) } }));
    writeFileSync(file, JSON.stringify(doc, null, 2) + '\n');
  }

  /**
   * Start an allocate; SIGKILL it `delayMs()` ms after it took the lock ('lock') or after it started
   * writing the new document's temp file ('write'), or let it finish if it is faster.
   */
  async function allocateAndKill(file: string, m: string, trigger: 'lock' | 'write', delayMs: () => number): Promise<{ run: Run; killedInLock: boolean }> {
    const folder = dirname(file);
    const tmp = /^projects\.json\.\d+$/;
    const list = (): string[] => (existsSync(folder) ? readdirSync(folder) : []);
    const before = new Set(list());
    const triggered = (): boolean =>
      trigger === 'lock' ? existsSync(`${file}.lock`) : list().some((f) => tmp.test(f) && !before.has(f));
    const p = start(['--registry', file, 'registry', 'allocate', m, '--json'], crashEnv);
    const done = finish(p);
    let exited = false;
    void done.then(() => (exited = true));
    let killedInLock = false;
    // Poll as tightly as timers allow.
    while (!exited) {
      if (triggered()) {
        const d = delayMs();
        if (d > 0) await new Promise((r) => setTimeout(r, d));
        killedInLock = !exited;
        p.kill('SIGKILL');
        break;
      }
      await new Promise((r) => setTimeout(r, 1));
    }
    return { run: await done, killedInLock };
  }

  async function lane(lane: number): Promise<{ outcomes: Record<string, number>; leftovers: string[] }> {
    const file = join(dir, `crash-${lane}`, 'projects.json');
    const outcomes: Record<string, number> = { absent: 0, old: 0, new: 0, finished: 0, killSentInsideLock: 0 };
    let windowMs = 40;
    for (let i = 0; i < PER_LANE; i++) {
      const id = `crash-${lane}-${i}`;
      const oldText = existsSync(file) ? readFileSync(file, 'utf8') : null;
      // Most kills anywhere in the locked section; every third one aimed at the write itself.
      const { run, killedInLock } =
        i % 3 === 2
          ? await allocateAndKill(file, manifest(id), 'write', () => Math.floor(Math.random() * 10))
          : await allocateAndKill(file, manifest(id), 'lock', () => Math.floor(Math.random() * windowMs));

      if (killedInLock) outcomes.killSentInsideLock!++;
      // Whatever the moment of the kill: no file (if there was none), the old document, or the new one.
      if (run.signal === 'SIGKILL') {
        if (!existsSync(file)) {
          expect(oldText, `lane ${lane} #${i}: the registry vanished`).toBeNull();
          outcomes.absent!++;
        } else {
          const text = readFileSync(file, 'utf8');
          const doc = JSON.parse(text) as RegistryDocument; // throws on a torn file
          expectValid(doc);
          if (text === oldText) outcomes.old!++;
          else {
            const { [id]: added, ...rest } = doc.projects;
            expect(added, `lane ${lane} #${i}: changed, but not by adding ${id}`).toBeDefined();
            expect(rest).toEqual(oldText === null ? {} : JSON.parse(oldText).projects);
            outcomes.new!++;
          }
        }
      } else {
        expect(run.code, run.stdout + run.stderr).toBe(0);
        outcomes.finished!++;
      }

      // The next command takes over the dead holder's lock and succeeds.
      const stateBefore = existsSync(file) ? readDoc(file) : null;
      const next = await codeb(['--registry', file, 'registry', 'allocate', manifest(`after-${lane}-${i}`), '--json'], crashEnv);
      expect(next.code, next.stdout + next.stderr).toBe(0);
      const doc = readDoc(file);
      expectValid(doc);
      const { [`after-${lane}-${i}`]: added, ...rest } = doc.projects;
      expect(added).toBeDefined();
      expect(rest).toEqual(stateBefore?.projects ?? {});
      const h = holdings(doc);
      expect(new Set(h.ports).size).toBe(h.ports.length);
      expect(new Set(h.redis).size).toBe(h.redis.length);
      expect(existsSync(`${file}.lock`)).toBe(false);
      expect(existsSync(`${file}.lock-holder.json`)).toBe(false);

      if (i === 0) {
        // From now on the document is big (~2 MB), so a kill lands in reading, validating or writing it.
        plantBallast(file, 6_000);
        // Calibrate the kill window: how long one allocate holds the lock on this machine right now.
        const probe = join(dirname(file), 'probe.json');
        copyFileSync(file, probe);
        const p = start(['--registry', probe, 'registry', 'allocate', manifest(`probe-${lane}`), '--json'], crashEnv);
        const done = finish(p);
        while (!existsSync(`${probe}.lock`) && p.exitCode === null) await new Promise((r) => setTimeout(r, 1));
        const t0 = performance.now();
        expect((await done).code).toBe(0);
        windowMs = Math.max(40, Math.ceil(performance.now() - t0));
        rmSync(probe);
      }
    }
    const leftovers = readdirSync(dirname(file)).filter((f) => f !== 'projects.json');
    return { outcomes, leftovers };
  }

  it(`SIGKILL at random moments (${LANES * PER_LANE} times) never leaves a torn or invalid registry, and the next command goes on`, async () => {
    const results = await Promise.all(Array.from({ length: LANES }, (_, l) => lane(l)));
    const total: Record<string, number> = {};
    for (const r of results) for (const [k, v] of Object.entries(r.outcomes)) total[k] = (total[k] ?? 0) + v;
    // Only atomic-write temp files of killed writers may remain beside the registry, never a lock.
    const leftovers = results.flatMap((r) => r.leftovers);
    for (const f of leftovers) expect(f).toMatch(/^projects\.json\.\d+$/);
    console.log(`crash outcomes over ${LANES * PER_LANE} runs: ${JSON.stringify(total)}; temp files left by killed writers: ${leftovers.length}`);
    expect(total.absent! + total.old! + total.new! + total.finished!).toBe(LANES * PER_LANE);
  }, 240_000);
});
