/**
 * Shared by the apply/plan/destroy integration tests (apply-*.test.ts): a sandbox with its own
 * registry file that runs the built CLI and keeps every output (for the secret check), each file's
 * own Redis DBs (REDIS_DBS) so parallel test files never claim the same slot, and direct clients for the stack's
 * Postgres, Redis, S3, Caddy and Podman so a test can look at what really exists.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';
import { Redis } from 'ioredis';
import { Client as MinioClient } from 'minio';
import pg from 'pg';
import { afterAll } from 'vitest';
import { parseDocument } from 'yaml';
import { SLOT_MARKER } from '../../../controller/providers/redis.js';
import { updateRegistry } from '../../../controller/registry/store.js';
import type { EnvironmentRecord, RegistryDocument } from '../../../controller/registry/types.js';
import { LABEL } from '../../../controller/runtime/types.js';
import { placeholderRecord } from '../../helpers/records.js';
import type { Settings } from '../../../controller/settings.js';
import { ForwarderClient } from '../../../controller/deploy/forwarder-client.js';
import { networkRangeFor } from './stack.js';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

let snapshot: string | undefined;

/**
 * The built CLI, copied once per test process into .codeb/test-build/ (inside the repository, so
 * its packages resolve from node_modules and schemas/ is found). Other people rebuild dist/ in this
 * tree while tests run; a codeb started from dist/ while it is swapped could read the loader
 * (codeb.mjs) of one build and the bundle (codeb.cjs) of another. A private copy of one consistent
 * build avoids that; it shares the code caches of that build (node_modules/.cache/codeb/<build id>).
 */
export function cliEntry(): string {
  if (snapshot) return join(snapshot, 'codeb.mjs');
  const dist = join(root, 'dist');
  removeStaleSnapshots();
  for (let attempt = 0; attempt < 50; attempt++) {
    const dest = join(root, '.codeb', 'test-build', `dist-${process.pid}-${Date.now()}-${attempt}`);
    try {
      if (!existsSync(join(dist, 'BUILT'))) throw new Error('dist/ is being replaced');
      const built = readFileSync(join(dist, 'BUILT'), 'utf8');
      cpSync(dist, dest, { recursive: true });
      // A consistent copy: the same build before and after, and every relative import is there.
      if (readFileSync(join(dist, 'BUILT'), 'utf8') !== built) throw new Error('dist/ changed while copying');
      for (const f of readdirSync(dest).filter((n) => n.endsWith('.mjs'))) {
        for (const m of readFileSync(join(dest, f), 'utf8').matchAll(/["']\.\/([\w.-]+\.mjs)["']/g)) {
          if (!existsSync(join(dest, m[1]!))) throw new Error(`${f} imports a missing ${m[1]}`);
        }
      }
      snapshot = dest;
      process.on('exit', () => rmSync(dest, { recursive: true, force: true }));
      // Registered while the file's tests are collected, so it runs after the file's own afterAll
      // hooks (vitest runs them in reverse); workers are often ended without an 'exit' event.
      afterAll(() => rmSync(dest, { recursive: true, force: true }));
      return join(dest, 'codeb.mjs');
    } catch (err) {
      rmSync(dest, { recursive: true, force: true });
      if (attempt === 49) throw new Error(`cannot copy a consistent build of dist/: ${(err as Error).message}; run \`npm run build\``);
      spawnSync('sleep', ['0.1']);
    }
  }
  throw new Error('unreachable');
}

/** Copies left by test processes that are gone (a worker killed at teardown never runs 'exit'). */
function removeStaleSnapshots(): void {
  const dir = join(root, '.codeb', 'test-build');
  if (!existsSync(dir)) return;
  for (const name of readdirSync(dir)) {
    const pid = Number(/^dist-(\d+)-/.exec(name)?.[1]);
    if (!pid || pid === process.pid) continue;
    try {
      process.kill(pid, 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') rmSync(join(dir, name), { recursive: true, force: true });
    }
  }
}

export interface Run {
  args: string[];
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** One temporary folder with its own registry (secrets beside it) and a log of every output. */
export class Sandbox {
  readonly dir: string;
  readonly registry: string;
  readonly secretsDir: string;
  /** Every stdout and stderr of every command run here, for the "no secret is printed" check. */
  readonly outputs: string[] = [];

  constructor(
    name: string,
    /** Environment for every command (e.g. CODEB_PORT_RANGE: appPorts(...) so test files and suites never share ports). */
    public env: NodeJS.ProcessEnv = {},
  ) {
    if (env.CODEB_PORT_RANGE && !env.CODEB_NETWORK_RANGE) this.env = { ...env, CODEB_NETWORK_RANGE: networkRangeFor(env.CODEB_PORT_RANGE) };
    this.dir = mkdtempSync(join(tmpdir(), `codeb-${name}-`));
    this.registry = join(this.dir, 'registry', 'projects.json');
    this.secretsDir = join(this.dir, 'registry', 'secrets');
    mkdirSync(dirname(this.registry), { recursive: true });
    cliEntry(); // copy the CLI now, while the test file is being collected (see cliEntry)
  }

  /** Start `codeb --registry <file> ...args` without waiting (stdin is not a terminal). */
  start(args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
    return spawn(process.execPath, [cliEntry(), '--registry', this.registry, ...args], {
      cwd: this.dir,
      env: { ...process.env, CODEB_REGISTRY: '', CI: 'true', ...this.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  }

  finish(p: ChildProcess, args: string[] = []): Promise<Run> {
    let stdout = '';
    let stderr = '';
    p.stdout!.on('data', (d) => (stdout += d));
    p.stderr!.on('data', (d) => (stderr += d));
    return new Promise((resolve) =>
      p.on('close', (code, signal) => {
        this.outputs.push(stdout, stderr);
        resolve({ args, code, signal, stdout, stderr });
      }),
    );
  }

  run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
    return this.finish(this.start(args, env), args);
  }

  /**
   * Commands run here use these settings (a 0600 copy in the sandbox, passed as CODEB_SETTINGS),
   * e.g. the stack's with another object store. Returns them.
   */
  useSettings(settings: Settings): Settings {
    const file = join(this.dir, 'settings.json');
    writeFileSync(file, JSON.stringify(settings, null, 2), { mode: 0o600 });
    this.env.CODEB_SETTINGS = file;
    return settings;
  }

  /** Remove the sandbox's folder. */
  async close(): Promise<void> {
    rmSync(this.dir, { recursive: true, force: true });
  }

  write(name: string, text: string): string {
    const file = join(this.dir, name);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, text);
    return file;
  }

  envFile(projectId: string, env = 'production'): string {
    return join(this.secretsDir, `${projectId}.${env}.env`);
  }

  readRegistry(): RegistryDocument {
    return JSON.parse(readFileSync(this.registry, 'utf8')) as RegistryDocument;
  }

  record(projectId: string, env = 'production'): EnvironmentRecord | undefined {
    return this.readRegistry().projects[projectId]?.environments[env];
  }
}

export function describeRun(r: Run): string {
  return `codeb ${r.args.join(' ')} -> exit ${r.code}${r.signal ? ` (${r.signal})` : ''}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

export function json<T = Record<string, unknown>>(r: Run): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`not JSON: ${describeRun(r)}`);
  }
}

/**
 * The deploy windows every test manifest uses: health probes every 200 ms and a 1 s watch after the
 * switch (fast runs), and a generous 120 s gate deadline: a healthy container passes as soon as it
 * answers, so the deadline only bounds a failure, and a loaded machine can take long to start one.
 */
export const FAST_DEPLOY = { healthInterval: '200ms', deadline: '120s', watchAfterSwitch: '1s' };

/**
 * A copy of a manifest from manifests/ with another project id and domain and the fast deploy
 * windows; everything else is kept as it is.
 */
export function copyExample(example: string, projectId: string, domain: string): string {
  const doc = parseDocument(readFileSync(join(root, 'manifests', example), 'utf8'));
  doc.setIn(['project', 'id'], projectId);
  doc.setIn(['environment', 'domain'], domain);
  const services = doc.getIn(['services']) as { items: Array<{ key: { value: string } }> };
  for (const item of services.items) {
    const name = item.key.value;
    if (doc.getIn(['services', name, 'port']) !== undefined) doc.setIn(['services', name, 'healthCheck', 'http', 'interval'], FAST_DEPLOY.healthInterval);
  }
  doc.setIn(['deploy', 'healthGate', 'deadline'], FAST_DEPLOY.deadline);
  doc.setIn(['deploy', 'healthGate', 'watchAfterSwitch'], FAST_DEPLOY.watchAfterSwitch);
  return doc.toString();
}

/** A small project with every kind of resource: database, cache, storage and one web service. */
export function fullManifest(projectId: string, opts: { cache?: boolean; image?: string; extensions?: string[] } = {}): string {
  return `apiVersion: codeb/v1
project:
  id: ${projectId}
environment:
  domain: ${projectId}.localhost
services:
  web:
    image: ${opts.image ?? 'localhost/codeb-testapp:v1'}
    port: 8080
    healthCheck:
      http:
        interval: ${FAST_DEPLOY.healthInterval}
features:
  database:
    extensions: [${(opts.extensions ?? []).join(', ')}]
  cache: ${opts.cache ?? true}
  storage: true
deploy:
  healthGate:
    deadline: ${FAST_DEPLOY.deadline}
    watchAfterSwitch: ${FAST_DEPLOY.watchAfterSwitch}
`;
}

/** KEY=VALUE lines of an env file. */
export function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

/** The secret values in an env file: passwords inside URLs and values of secret-looking keys. */
export function secretValues(env: Record<string, string>): string[] {
  const out = new Set<string>();
  for (const [k, v] of Object.entries(env)) {
    if (/PASSWORD|SECRET|TOKEN/i.test(k) && v) out.add(v);
    if (/^[a-z]+:\/\//.test(v)) {
      try {
        const u = new URL(v);
        if (u.password) out.add(decodeURIComponent(u.password));
      } catch {
        // not a URL after all
      }
    }
  }
  return [...out].filter((s) => s.length >= 8);
}

// ------------------------------------------------------------------------------ Redis slots

const RESERVED_PREFIX = 'zz-hold-redis-';

/**
 * The Redis DBs of each test file that claims some (docs/stack.md, "Redis DBs of the test files"),
 * the way each file has its own app ports: registries are per file but Redis is shared, and the
 * allocator hands a fresh registry the lowest DB that is empty now, so two files applying at once
 * would both pick it and the later claim is refused ("Redis DB 3 is claimed by ..."). Claimants
 * take DBs from the top; 2 and 3 stay unclaimed for the commands that only look (bad-input cases
 * in a fresh registry, which allocate the lowest empty DB and then observe it).
 */
export const REDIS_DBS = {
  'providers-redis': [15, 14, 13, 12, 11],
  'apply-e2e': [10, 9],
  'apply-crash': [8, 7],
  'tenant-network': [6, 5],
  'secrets-rotate': [4],
  // Never claimed (the test fills its registry up to "all taken"): shares the look-only DBs.
  'apply-bad-input': [3, 2],
} as const satisfies Record<string, readonly number[]>;

/**
 * Makes the registry hand out only this file's Redis DBs: picks `count` of them that are empty
 * right now and records placeholder deployments holding every other project DB. Returns the picked.
 */
export async function reserveRedisDbs(settings: Settings, registry: string, file: keyof typeof REDIS_DBS, count = 1): Promise<number[]> {
  const dbs = await emptyRedisDbs(settings, file, count);
  const now = new Date().toISOString();
  await updateRegistry(registry, { command: 'test: reserve Redis DBs' }, (doc) => {
    for (let db = 2; db < settings.redis.databases; db++) {
      if (dbs.includes(db)) continue;
      const id = `${RESERVED_PREFIX}${db}`;
      doc.projects[id] = {
        id,
        name: `placeholder holding Redis DB ${db}`,
        createdAt: now,
        updatedAt: now,
        environments: { production: placeholderRecord({ redisDb: db, now }) },
      };
    }
  });
  return dbs;
}

/** `count` of the file's Redis DBs that hold nothing now, or an error saying which hold what. */
export async function emptyRedisDbs(settings: Settings, file: keyof typeof REDIS_DBS, count: number): Promise<number[]> {
  const admin = redisAdmin(settings, 0);
  const picked: number[] = [];
  const full: string[] = [];
  try {
    for (const db of REDIS_DBS[file]) {
      if (picked.length === count) break;
      await admin.select(db);
      const size = await admin.dbsize();
      if (size === 0) picked.push(db);
      else full.push(`DB ${db}: ${size} keys, owner ${(await admin.get(SLOT_MARKER)) ?? 'none'}`);
    }
  } finally {
    admin.disconnect();
  }
  if (picked.length < count) {
    throw new Error(
      `${file} needs ${count} empty Redis DBs of its own (${REDIS_DBS[file].join(', ')}) and found ${picked.length}; ${full.join('; ')}. ` +
        `They hold data of a killed run (or of a file that claims them without being listed in REDIS_DBS): empty each with \`redis-cli -p ${settings.redis.port} --user ${settings.redis.user} --askpass -n <db> flushdb\` (the password is redis.password in the test stack's settings.json).`,
    );
  }
  return picked;
}

export { placeholderRecord };

export function redisAdmin(settings: Settings, db: number): Redis {
  return new Redis({
    host: settings.redis.host,
    port: settings.redis.port,
    username: settings.redis.user,
    password: settings.redis.password,
    db,
    maxRetriesPerRequest: 1,
    retryStrategy: () => null,
  });
}

export async function slotOwner(settings: Settings, db: number): Promise<string | null> {
  const r = redisAdmin(settings, db);
  try {
    return await r.get(SLOT_MARKER);
  } finally {
    r.disconnect();
  }
}

export async function redisUserExists(settings: Settings, user: string): Promise<boolean> {
  const r = redisAdmin(settings, 0);
  try {
    return (await r.call('ACL', 'GETUSER', user)) !== null;
  } finally {
    r.disconnect();
  }
}

// ------------------------------------------------------------------------------ Postgres

export async function pgQuery<R extends pg.QueryResultRow = pg.QueryResultRow>(settings: Settings, sql: string, values: unknown[] = [], database?: string): Promise<R[]> {
  const c = new pg.Client({
    host: settings.postgres.host,
    port: settings.postgres.port,
    user: settings.postgres.user,
    password: settings.postgres.password,
    database: database ?? settings.postgres.database,
  });
  c.on('error', () => {});
  await c.connect();
  try {
    return (await c.query<R>(sql, values)).rows;
  } finally {
    await c.end();
  }
}

export interface DatabaseFacts {
  exists: boolean;
  owner?: string;
  publicConnect?: boolean;
  extensions?: string[];
}

export async function databaseFacts(settings: Settings, database: string): Promise<DatabaseFacts> {
  const rows = await pgQuery<{ owner: string; public_connect: boolean }>(
    settings,
    `SELECT r.rolname AS owner, has_database_privilege('public', d.oid, 'CONNECT') AS public_connect
       FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = $1`,
    [database],
  );
  if (!rows[0]) return { exists: false };
  const ext = await pgQuery<{ extname: string }>(settings, 'SELECT extname FROM pg_extension ORDER BY extname', [], database);
  return { exists: true, owner: rows[0].owner, publicConnect: rows[0].public_connect, extensions: ext.map((e) => e.extname) };
}

export async function roleExists(settings: Settings, role: string): Promise<boolean> {
  return (await pgQuery(settings, 'SELECT 1 FROM pg_roles WHERE rolname = $1', [role])).length === 1;
}

// ------------------------------------------------------------------------------ S3

export function s3(settings: Settings): MinioClient {
  const s = settings.storage;
  return new MinioClient({ endPoint: s.endPoint, port: s.port, useSSL: s.useSSL, accessKey: s.accessKey, secretKey: s.secretKey, region: s.region });
}

// ------------------------------------------------------------------------------ routes (forwarder host table) and Caddy

/** A route in the forwarder's host table (status 404 when it has none), as JSON text. */
export async function proxyRoute(settings: Settings, id: string): Promise<{ status: number; body: string }> {
  const route = await new ForwarderClient(settings.forwarder.socketPath).route(id);
  return route ? { status: 200, body: JSON.stringify(route) } : { status: 404, body: '' };
}

/** Remove a route from the forwarder's host table behind codeb's back (drift); true when it was there. */
export function deleteProxyRoute(settings: Settings, id: string): Promise<boolean> {
  return new ForwarderClient(settings.forwarder.socketPath).removeRoute(id);
}

/** GET through Caddy's HTTP port with the project's domain as Host. */
export function viaCaddy(settings: Settings, domain: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: settings.caddy.httpPort, path, headers: { host: domain }, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${domain}${path} through Caddy timed out`)));
    req.on('error', reject);
    req.end();
  });
}

// ------------------------------------------------------------------------------ Podman

export function podman(settings: Settings): Docker {
  return new Docker({ socketPath: settings.podman.socketPath });
}

export interface ContainerInfo {
  name: string;
  state: string;
  slot: string | undefined;
}

export async function projectContainers(settings: Settings, projectId: string): Promise<ContainerInfo[]> {
  const list = await podman(settings).listContainers({ all: true, filters: { label: [`${LABEL.project}=${projectId}`] } });
  return list.map((c) => ({ name: (c.Names[0] ?? '').replace(/^\//, ''), state: c.State, slot: c.Labels[LABEL.slot] }));
}

export async function removeContainer(settings: Settings, name: string): Promise<void> {
  await podman(settings).getContainer(name).remove({ force: true });
}

/** Registry-wide holdings: every port and Redis DB with the deployment holding it (duplicates kept). */
export function holdings(doc: RegistryDocument): { ports: Array<[number, string]>; redis: Array<[number, string]> } {
  const ports: Array<[number, string]> = [];
  const redis: Array<[number, string]> = [];
  for (const p of Object.values(doc.projects)) {
    for (const e of Object.values(p.environments)) {
      const who = `${p.id}/${e.env}`;
      for (const pair of Object.values(e.ports)) for (const port of [pair.blue, pair.green, pair.entry]) ports.push([port, who]);
      if (e.redisDb !== null) redis.push([e.redisDb, who]);
    }
  }
  return { ports, redis };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
