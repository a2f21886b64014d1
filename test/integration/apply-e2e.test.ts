/**
 * `codeb plan`, `apply` and `destroy` end to end on the local stack, through the built CLI, with
 * the minimal and the food-delivery examples (copied with a unique project id and domain and short
 * deploy windows). After each command the test looks at the real systems: Postgres (database, role,
 * owner, CONNECT revoked from PUBLIC, pg_trgm), Redis (slot marker, ACL user with the env file's
 * REDIS_URL, FLUSHALL refused), S3 (bucket), the route (forwarder host table), Podman (containers) and
 * the app itself through Caddy. Drift made by hand shows in `plan` and is repaired by `apply`.
 * No secret from the env file appears in any output.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Settings } from '../../controller/settings.js';
import {
  Sandbox,
  proxyRoute,
  copyExample,
  databaseFacts,
  deleteProxyRoute,
  describeRun,
  holdings,
  json,
  parseEnvFile,
  pgQuery,
  projectContainers,
  redisAdmin,
  redisUserExists,
  removeContainer,
  reserveRedisDbs,
  roleExists,
  s3,
  secretValues,
  slotOwner,
  viaCaddy,
  type Run,
} from './helpers/apply.js';
import { appPorts, stackSettings, uniqueId } from './helpers/stack.js';
import { networkName } from '../../controller/manifest/names.js';

let settings: Settings;
// Ports 4600-4689 are this file's own (outside the default 3000-3999 and the deploy tests' 4100-4249 and bench:switch's 4250-4299),
// so parallel test files never pick the same ones.
const box = new Sandbox('apply-e2e', { CODEB_PORT_RANGE: appPorts('4600-4689') });
let redisDb: number;
/** Secret values seen in env and secrets files, checked against every output at the end. */
const secrets = new Set<string>();
/** Projects to remove at the end whatever happened. */
const created: string[] = [];

interface PlanOut {
  changed: boolean;
  summary: Record<string, number>;
  actions: Array<{ op: string; kind: string; name: string; reason: string; changes: Array<{ field: string }> }>;
}

async function plan(file: string): Promise<{ run: Run; out: PlanOut }> {
  const run = await box.run(['plan', file, '--json']);
  return { run, out: json<PlanOut>(run) };
}

function ops(out: PlanOut): Record<string, string> {
  return Object.fromEntries(out.actions.map((a) => [`${a.kind} ${a.name}`, a.op]));
}

async function apply(file: string): Promise<Run> {
  const r = await box.run(['apply', file, '--json']);
  expect(r.code, describeRun(r)).toBe(0);
  return r;
}

function collectSecrets(projectId: string): Record<string, string> {
  const env = parseEnvFile(readFileSync(box.envFile(projectId), 'utf8'));
  for (const s of secretValues(env)) secrets.add(s);
  const secretsJson = box.envFile(projectId).replace(/\.env$/, '.secrets.json');
  if (existsSync(secretsJson)) for (const v of Object.values(JSON.parse(readFileSync(secretsJson, 'utf8')) as Record<string, string>)) secrets.add(v);
  return env;
}

function fileState(file: string): { bytes: string; mtimeMs: number } {
  return { bytes: readFileSync(file, 'utf8'), mtimeMs: statSync(file).mtimeMs };
}

async function eventually<T>(what: string, fn: () => Promise<T>, ok: (v: T) => boolean, tries = 40): Promise<T> {
  let last: T | undefined;
  let err: unknown;
  for (let i = 0; i < tries; i++) {
    try {
      last = await fn();
      if (ok(last)) return last;
    } catch (e) {
      err = e;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${what}: last ${JSON.stringify(last)} ${err ? String(err) : ''}`);
}

async function running(projectId: string): Promise<string[]> {
  return (await projectContainers(settings, projectId)).filter((c) => c.state === 'running').map((c) => c.name);
}

beforeAll(async () => {
  settings = stackSettings();
  for (const s of [settings.postgres.password, settings.redis.password, settings.storage.secretKey]) if (s) secrets.add(s);
  redisDb = (await reserveRedisDbs(settings, box.registry, 'apply-e2e'))[0]!;
});

afterAll(async () => {
  for (const id of created) {
    if (!box.record(id)) continue;
    const r = await box.run(['destroy', id, '--yes', '--delete-data']);
    if (r.code !== 0) console.error(`cleanup failed: ${describeRun(r)}`);
  }
  await box.close();
});

describe('the minimal example', () => {
  const id = uniqueId('e2emin');
  const domain = `${id}.localhost`;
  const route = `codeb-${id}--production`;
  let file: string;

  beforeAll(() => {
    file = box.write('minimal.yaml', copyExample('minimal.yaml', id, domain));
  });

  it('plan shows every resource to create and exits 10, changing nothing', async () => {
    const before = fileState(box.registry);
    const { run, out } = await plan(file);
    expect(run.code, describeRun(run)).toBe(10);
    expect(ops(out)).toEqual({
      [`network.project ${networkName(id, 'production')}`]: 'create',
      [`files.envfile ${id}.production.env`]: 'create',
      [`proxy.route ${route}`]: 'create',
      [`runtime.release ${id}--production`]: 'create',
    });
    expect(out.summary).toMatchObject({ create: 4, update: 0, delete: 0 });
    const text = await box.run(['plan', file]);
    expect(text.code).toBe(10);
    expect(text.stdout).toContain('4 to create, 0 to update, 0 to delete');
    expect(fileState(box.registry)).toEqual(before);
    expect((await proxyRoute(settings, route)).status).not.toBe(200);
  });

  it('apply creates the network, the env file (0600), the Caddy route and the container; the app answers through Caddy', async () => {
    created.push(id);
    const r = await apply(file);
    const out = json<{ applied: boolean; summary: Record<string, number>; url: string; ports: Record<string, { entry: number }> }>(r);
    expect(out.applied).toBe(true);
    expect(out.summary).toMatchObject({ create: 4 });
    expect(out.url).toBe(`http://${domain}:${settings.caddy.httpPort}/`);
    expect(statSync(box.envFile(id)).mode & 0o777).toBe(0o600);
    collectSecrets(id);

    const caddy = await proxyRoute(settings, route);
    expect(caddy.status).toBe(200);
    expect(caddy.body).toContain(domain);
    expect(caddy.body).toContain(`"port":${out.ports.web!.entry}`);
    expect(await running(id)).toEqual([`${id}--production--web--blue`]);
    expect(await viaCaddy(settings, domain, '/')).toEqual({ status: 200, body: 'hello from v1\n' });

    const rec = box.record(id)!;
    expect(rec.status).toBe('running');
    expect(rec.liveSlot).toBe('blue');
    expect(rec.journal?.map((j) => j.status)).toEqual(['done', 'done', 'done', 'done']);
  });

  it('plan then exits 0 and a second apply prints "No changes." without touching the registry file', async () => {
    const before = fileState(box.registry);
    const p = await plan(file);
    expect(p.run.code, describeRun(p.run)).toBe(0);
    expect(new Set(p.out.actions.map((a) => a.op))).toEqual(new Set(['unchanged']));
    const again = await box.run(['apply', file]);
    expect(again.code, describeRun(again)).toBe(0);
    expect(again.stdout).toMatch(/^No changes\./);
    expect(fileState(box.registry)).toEqual(before);
  });

  it('drift: a container removed by hand shows in plan and apply starts it again', async () => {
    const [name] = await running(id);
    await removeContainer(settings, name!);
    expect(await running(id)).toEqual([]);
    const { run, out } = await plan(file);
    expect(run.code, describeRun(run)).toBe(10);
    expect(ops(out)[`runtime.release ${id}--production`]).toMatch(/^(create|update)$/);
    expect(Object.values(ops(out)).filter((op) => op !== 'unchanged')).toHaveLength(1);

    await apply(file);
    expect(await running(id)).toHaveLength(1);
    expect(await viaCaddy(settings, domain, '/')).toEqual({ status: 200, body: 'hello from v1\n' });
    expect((await plan(file)).run.code).toBe(0);
  });

  it('drift: a route deleted by hand from the forwarder shows in plan and apply puts it back', async () => {
    expect(await deleteProxyRoute(settings, route)).toBe(true);
    expect((await proxyRoute(settings, route)).status).not.toBe(200);
    const { run, out } = await plan(file);
    expect(run.code, describeRun(run)).toBe(10);
    expect(ops(out)[`proxy.route ${route}`]).toBe('create');
    expect(Object.values(ops(out)).filter((op) => op !== 'unchanged')).toHaveLength(1);

    await apply(file);
    expect((await proxyRoute(settings, route)).status).toBe(200);
    expect(await viaCaddy(settings, domain, '/')).toEqual({ status: 200, body: 'hello from v1\n' });
    expect((await plan(file)).run.code).toBe(0);
  });

  it('destroy without --yes and without a terminal exits 2 and changes nothing', async () => {
    const before = fileState(box.registry);
    const r = await box.run(['destroy', id]);
    expect(r.code, describeRun(r)).toBe(2);
    expect(r.stderr).toContain('--yes');
    expect(fileState(box.registry)).toEqual(before);
    expect(await running(id)).toHaveLength(1);
    expect((await proxyRoute(settings, route)).status).toBe(200);
    expect(existsSync(box.envFile(id))).toBe(true);
  });

  it('destroy --yes removes the container, the route and the env file and releases the ports', async () => {
    const ports = Object.values(box.record(id)!.ports).flatMap((p) => [p.blue, p.green, p.entry]);
    const r = await box.run(['destroy', id, '--yes']);
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.stdout).toContain(`Destroyed ${id} (production)`);
    expect(await projectContainers(settings, id)).toEqual([]);
    expect((await proxyRoute(settings, route)).status).not.toBe(200);
    expect(existsSync(box.envFile(id))).toBe(false);
    expect(box.record(id)).toBeUndefined();
    const held = holdings(box.readRegistry()).ports.map(([p]) => p);
    for (const p of ports) expect(held).not.toContain(p);
    const list = json<{ deployments: Array<{ project: string }> }>(await box.run(['registry', 'list', '--json']));
    expect(list.deployments.map((d) => d.project)).not.toContain(id);
    // An unknown host: 404 from the router, through Caddy.
    expect(await viaCaddy(settings, domain, '/')).toMatchObject({ status: 404 });
  });
});

describe('the food-delivery example', () => {
  // The id keeps the example's trailing -app, so the naming rule (drop -app, _db suffix) is exercised.
  const id = `${uniqueId('e2efood')}-app`;
  const base = id.slice(0, -'-app'.length);
  const domain = `${base}.localhost`;
  const database = `${base.replaceAll('-', '_')}_db`;
  const role = `${database}_owner`;
  const bucket = `${base}-uploads`;
  const redisUser = `codeb-${id}--prod`;
  const route = `codeb-${id}--production`;
  let file: string;
  let env: Record<string, string>;

  beforeAll(() => {
    file = box.write('food-delivery-app.yaml', copyExample('food-delivery-app.yaml', id, domain));
  });

  it('plan lists database, role, Redis slot and user, buckets, env file, route and containers to create (exit 10)', async () => {
    const { run, out } = await plan(file);
    expect(run.code, describeRun(run)).toBe(10);
    expect(ops(out)).toMatchObject({
      [`postgres.role ${role}`]: 'create',
      [`postgres.database ${database}`]: 'create',
      [`redis.slot ${redisDb}`]: 'create',
      [`redis.user ${redisUser}`]: 'create',
      [`storage.bucket ${bucket}`]: 'create',
      [`files.envfile ${id}.production.env`]: 'create',
      [`proxy.route ${route}`]: 'create',
      [`runtime.release ${id}--production`]: 'create',
    });
    expect(await databaseFacts(settings, database)).toEqual({ exists: false });
  });

  it('apply creates every resource for real', async () => {
    created.push(id);
    const r = await apply(file);
    const out = json<{ applied: boolean; database: string; redisDb: number; buckets: string[] }>(r);
    expect(out).toMatchObject({ applied: true, database, redisDb, buckets: [bucket] });
    expect(statSync(box.envFile(id)).mode & 0o777).toBe(0o600);
    env = collectSecrets(id);

    // Postgres: database owned by its role, nobody else may connect, pg_trgm installed.
    const facts = await databaseFacts(settings, database);
    expect(facts).toMatchObject({ exists: true, owner: role, publicConnect: false });
    expect(facts.extensions).toContain('pg_trgm');
    expect(await roleExists(settings, role)).toBe(true);
    const app = new pg.Client({ connectionString: env.DATABASE_URL });
    await app.connect();
    try {
      expect((await app.query('SELECT current_user AS u, current_database() AS d')).rows[0]).toEqual({ u: role, d: database });
    } finally {
      await app.end();
    }

    // Redis: the slot is claimed; the ACL user works with the env file's REDIS_URL under its key
    // prefix (the default isolation), may not FLUSHALL nor touch keys outside the prefix.
    expect(await slotOwner(settings, redisDb)).toBe(`${id}/production`);
    expect(env.REDIS_URL).toContain(`/${redisDb}`);
    expect(env.REDIS_KEY_PREFIX).toBe(`${id}:`);
    const user = new Redis(env.REDIS_URL!, { maxRetriesPerRequest: 1, retryStrategy: () => null });
    try {
      expect(await user.set(`${id}:e2e-key`, 'v')).toBe('OK');
      expect(await user.get(`${id}:e2e-key`)).toBe('v');
      await expect(user.set('e2e-key', 'v')).rejects.toThrow(/NOPERM/);
      await expect(user.flushall()).rejects.toThrow(/NOPERM/);
      await user.del(`${id}:e2e-key`);
    } finally {
      user.disconnect();
    }

    // S3, Caddy, Podman, and the app through Caddy reaching its database and Redis.
    expect(await s3(settings).bucketExists(bucket)).toBe(true);
    const caddy = await proxyRoute(settings, route);
    expect(caddy.status).toBe(200);
    expect(caddy.body).toContain(domain);
    expect(await running(id)).toEqual([`${id}--production--web--blue`]);
    expect(await viaCaddy(settings, domain, '/')).toEqual({ status: 200, body: 'hello from v1\n' });
    const health = await viaCaddy(settings, domain, '/api/health');
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body)).toMatchObject({ ok: true, database: 'ok', redis: 'ok' });
  });

  it('plan exits 0 and a second apply prints "No changes." without touching the registry file', async () => {
    const before = fileState(box.registry);
    expect((await plan(file)).run.code).toBe(0);
    const again = await box.run(['apply', file]);
    expect(again.code, describeRun(again)).toBe(0);
    expect(again.stdout).toMatch(/^No changes\./);
    expect(fileState(box.registry)).toEqual(before);
  });

  it('drift: a database dropped by hand is planned and re-created (owner, CONNECT revoked, pg_trgm)', async () => {
    await pgQuery(settings, `DROP DATABASE "${database}" WITH (FORCE)`);
    expect(await databaseFacts(settings, database)).toEqual({ exists: false });
    const { run, out } = await plan(file);
    expect(run.code, describeRun(run)).toBe(10);
    expect(ops(out)[`postgres.database ${database}`]).toBe('create');
    expect(Object.values(ops(out)).filter((op) => op !== 'unchanged')).toHaveLength(1);

    await apply(file);
    const facts = await databaseFacts(settings, database);
    expect(facts).toMatchObject({ exists: true, owner: role, publicConnect: false });
    expect(facts.extensions).toContain('pg_trgm');
    const health = await eventually('the app reaches its database again', () => viaCaddy(settings, domain, '/api/health'), (h) => h.status === 200);
    expect(JSON.parse(health.body)).toMatchObject({ database: 'ok', redis: 'ok' });
    expect((await plan(file)).run.code).toBe(0);
  });

  it('drift: CONNECT granted to PUBLIC by hand is planned as an update and revoked again', async () => {
    await pgQuery(settings, `GRANT CONNECT ON DATABASE "${database}" TO PUBLIC`);
    const { run, out } = await plan(file);
    expect(run.code, describeRun(run)).toBe(10);
    const action = out.actions.find((a) => a.kind === 'postgres.database')!;
    expect(action.op).toBe('update');
    expect(action.changes.map((c) => c.field)).toEqual(['publicConnect']);
    await apply(file);
    expect((await databaseFacts(settings, database)).publicConnect).toBe(false);
  });

  it('drift: a bucket deleted by hand is planned and re-created', async () => {
    await s3(settings).removeBucket(bucket);
    expect(await s3(settings).bucketExists(bucket)).toBe(false);
    const { run, out } = await plan(file);
    expect(run.code, describeRun(run)).toBe(10);
    expect(ops(out)[`storage.bucket ${bucket}`]).toBe('create');
    await apply(file);
    expect(await s3(settings).bucketExists(bucket)).toBe(true);
    expect((await plan(file)).run.code).toBe(0);
  });

  it('drift: a Redis ACL user deleted by hand is planned and re-created with the same password', async () => {
    const admin = redisAdmin(settings, 0);
    try {
      await admin.call('ACL', 'DELUSER', redisUser);
    } finally {
      admin.disconnect();
    }
    const { run, out } = await plan(file);
    expect(run.code, describeRun(run)).toBe(10);
    expect(ops(out)[`redis.user ${redisUser}`]).toBe('create');
    await apply(file);
    const user = new Redis(env.REDIS_URL!, { maxRetriesPerRequest: 1, retryStrategy: () => null });
    try {
      expect(await user.ping()).toBe('PONG');
    } finally {
      user.disconnect();
    }
  });

  it('drift: the container removed by hand is planned and deployed again', async () => {
    for (const name of await running(id)) await removeContainer(settings, name);
    const { run, out } = await plan(file);
    expect(run.code, describeRun(run)).toBe(10);
    expect(ops(out)[`runtime.release ${id}--production`]).toMatch(/^(create|update)$/);
    await apply(file);
    expect(await running(id)).toHaveLength(1);
    const health = await viaCaddy(settings, domain, '/api/health');
    expect(health.status).toBe(200);
    expect((await plan(file)).run.code).toBe(0);
  });

  it('destroy without --yes and without a terminal exits 2 and changes nothing', async () => {
    const before = fileState(box.registry);
    const r = await box.run(['destroy', id]);
    expect(r.code, describeRun(r)).toBe(2);
    expect(fileState(box.registry)).toEqual(before);
    expect(await running(id)).toHaveLength(1);
    expect((await databaseFacts(settings, database)).exists).toBe(true);
    expect((await proxyRoute(settings, route)).status).toBe(200);
  });

  it('destroy --yes keeps the database and the bucket (with their data) and releases ports and the Redis slot', async () => {
    // Some data to keep: a table in the database, an object in the bucket.
    await pgQuery(settings, `CREATE TABLE orders (id int); INSERT INTO orders VALUES (42)`, [], database);
    await s3(settings).putObject(bucket, 'menu.txt', Buffer.from('noodles'));
    const ports = Object.values(box.record(id)!.ports).flatMap((p) => [p.blue, p.green, p.entry]);

    const r = await box.run(['destroy', id, '--yes']);
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.stdout).toContain(`Destroyed ${id} (production)`);
    expect(r.stdout).toMatch(new RegExp(`kept \\(holds data\\): .*postgres\\.database ${database}`));
    expect(r.stdout).toContain(`storage.bucket ${bucket}`);
    expect(r.stdout).toContain('--delete-data');

    // Kept, with their data.
    expect(await databaseFacts(settings, database)).toMatchObject({ exists: true, owner: role });
    expect(await pgQuery(settings, 'SELECT id FROM orders', [], database)).toEqual([{ id: 42 }]);
    expect(await roleExists(settings, role)).toBe(true);
    expect(await s3(settings).bucketExists(bucket)).toBe(true);
    // The kept data stays claimed by its owner (a tombstone): `registry list --all` shows it, and a
    // new project deriving the same names is refused before anything changes (issue 9, finding 5).
    const all = json<{ tombstones: Array<Record<string, unknown>> }>(await box.run(['registry', 'list', '--all', '--json']));
    expect(all.tombstones).toEqual([expect.objectContaining({ project: id, env: 'production', database, databaseRole: role, buckets: expect.arrayContaining([bucket]) })]);
    expect((await box.run(['registry', 'list', '--all'])).stdout).toMatch(new RegExp(`${id}\\s+production\\s+destroyed, data kept`));
    const thief = box.write('thief.yaml', copyExample('food-delivery-app.yaml', base, `thief-${base}.localhost`).replace(/aliases:.*\n/, ''));
    const registryBefore = fileState(box.registry);
    const stolen = await box.run(['apply', thief]);
    expect(stolen.code, describeRun(stolen)).toBe(1);
    expect(stolen.stderr).toContain(`which destroyed project "${id}" (production) kept`);
    expect(stolen.stderr).toContain(`codeb destroy ${id} --env production --delete-data`);
    expect(fileState(box.registry)).toEqual(registryBefore);
    // Gone: containers, route, env file, Redis slot and user.
    expect(await projectContainers(settings, id)).toEqual([]);
    expect((await proxyRoute(settings, route)).status).not.toBe(200);
    expect(existsSync(box.envFile(id))).toBe(false);
    expect(await slotOwner(settings, redisDb)).toBeNull();
    expect(await redisUserExists(settings, redisUser)).toBe(false);
    // Released in the registry: no record, its ports and Redis DB held by nobody.
    expect(box.record(id)).toBeUndefined();
    const held = holdings(box.readRegistry());
    for (const p of ports) expect(held.ports.map(([x]) => x)).not.toContain(p);
    expect(held.redis.map(([db]) => db)).not.toContain(redisDb);
    const list = json<{ deployments: Array<{ project: string }> }>(await box.run(['registry', 'list', '--json']));
    expect(list.deployments.map((d) => d.project)).not.toContain(id);
  });

  it('applying again adopts the kept database and bucket with their data', async () => {
    const r = await apply(file);
    expect(json<{ redisDb: number }>(r).redisDb).toBe(redisDb);
    const steps = json<{ steps: Array<{ kind: string; op: string }> }>(r).steps;
    // The kept data-holding resources are found as they are; only what destroy removed is created.
    for (const s of steps.filter((x) => x.kind === 'postgres.database' || x.kind === 'postgres.role' || x.kind === 'storage.bucket')) expect(s.op).toBe('unchanged');
    expect(steps.find((s) => s.kind === 'redis.slot')!.op).toBe('create');
    expect(await pgQuery(settings, 'SELECT id FROM orders', [], database)).toEqual([{ id: 42 }]);
    expect(box.readRegistry().tombstones).toBeUndefined();
    const health = await viaCaddy(settings, domain, '/api/health');
    expect(JSON.parse(health.body)).toMatchObject({ ok: true, database: 'ok', redis: 'ok' });
    collectSecrets(id);
  });

  it('destroy --delete-data --yes deletes the database, its role and the bucket and says so', async () => {
    const r = await box.run(['destroy', id, '--yes', '--delete-data']);
    expect(r.code, describeRun(r)).toBe(0);
    const deleted = /deleted: (.*)/.exec(r.stdout)?.[1] ?? '';
    for (const what of [`postgres.database ${database}`, `postgres.role ${role}`, `storage.bucket ${bucket}`, `proxy.route ${route}`, `runtime.release ${id}--production`]) {
      expect(deleted).toContain(what);
    }
    expect(r.stdout).not.toContain('kept (holds data)');
    expect(await databaseFacts(settings, database)).toEqual({ exists: false });
    expect(await roleExists(settings, role)).toBe(false);
    expect(await s3(settings).bucketExists(bucket)).toBe(false);
    expect(await projectContainers(settings, id)).toEqual([]);
    expect(existsSync(box.envFile(id).replace(/\.env$/, '.secrets.json'))).toBe(false);
    expect(box.record(id)).toBeUndefined();
  });

  it('destroy <project> --delete-data after a keeping destroy deletes exactly the kept data and its tombstone', async () => {
    await apply(file);
    collectSecrets(id);
    expect((await box.run(['destroy', id, '--yes'])).code).toBe(0);
    expect(box.readRegistry().tombstones).toHaveLength(1);
    // Without --delete-data there is nothing else to destroy: exit 2, nothing changed.
    const nothing = await box.run(['destroy', id, '--yes']);
    expect(nothing.code, describeRun(nothing)).toBe(2);
    expect(nothing.stderr).toContain('only its kept data is left');
    const r = await box.run(['destroy', id, '--yes', '--delete-data']);
    expect(r.code, describeRun(r)).toBe(0);
    const deleted = /deleted: (.*)/.exec(r.stdout)?.[1] ?? '';
    for (const what of [`postgres.database ${database}`, `postgres.role ${role}`, `storage.bucket ${bucket}`]) expect(deleted).toContain(what);
    expect(deleted).not.toContain('proxy.route');
    expect(await databaseFacts(settings, database)).toEqual({ exists: false });
    expect(await roleExists(settings, role)).toBe(false);
    expect(await s3(settings).bucketExists(bucket)).toBe(false);
    expect(box.readRegistry().tombstones).toBeUndefined();
    expect((await box.run(['destroy', id, '--yes', '--delete-data'])).code).not.toBe(0);
  }, 240_000);
});

describe('secrets', () => {
  it('no secret value of an env file (or an admin password) appears in any output, nor in the registry', () => {
    expect(secrets.size).toBeGreaterThanOrEqual(5);
    expect(box.outputs.length).toBeGreaterThan(30);
    const all = box.outputs.join('\n') + readFileSync(box.registry, 'utf8');
    for (const s of secrets) expect(all.includes(s), `a secret (${s.slice(0, 3)}...) was printed`).toBe(false);
  });
});
