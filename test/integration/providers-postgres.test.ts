/**
 * PostgresProvider against the real Postgres of the local stack: create twice changes nothing,
 * drift made by hand is seen and fixed, a role cannot enter another project's database, foreign
 * roles are conflicts, passwords are SCRAM and never appear in messages, and an unreachable server
 * gives ServiceUnavailableError.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServiceUnavailableError } from '../../controller/errors.js';
import { PostgresProvider } from '../../controller/providers/postgres.js';
import { makeResource, type Action, type ExecContext, type Resource } from '../../controller/reconcile/model.js';
import { planApply, planDestroy } from '../../controller/reconcile/plan.js';
import { generateSecret } from '../../controller/reconcile/secrets.js';
import { registerSecret } from '../../controller/redact.js';
import type { Settings } from '../../controller/settings.js';
import { freePort, stackSettings, uniqueId } from './helpers/stack.js';

let settings: Settings;
let provider: PostgresProvider;
let admin: pg.Client;
const run = uniqueId('pgt').replaceAll('-', '_');

/** Every secret generated here and every message the provider produced, checked at the end. */
const secrets: string[] = [];
const messages: string[] = [];

interface Deployment {
  role: string;
  database: string;
  password: string;
  resources: Resource[];
  ctx: ExecContext;
}

/** The project/environment a deployment's markers name (labels: dashes, not underscores). */
const ownerOf = (tag: string) => `${run.replaceAll('_', '-')}-${tag}/production`;

function deployment(tag: string, extensions: string[] = [], claimedBy = ownerOf(tag), adoptLegacy = false): Deployment {
  const database = `${run}_${tag}_db`;
  const role = `${database}_owner`;
  const password = generateSecret();
  registerSecret(password);
  secrets.push(password);
  const roleRes = makeResource('postgres.role', role, { login: true, claimedBy, adoptLegacy, secret: 'postgres' }, [], true);
  const dbRes = makeResource(
    'postgres.database',
    database,
    { owner: role, claimedBy, adoptLegacy, publicConnect: false, systemDatabasesClosed: true, extensions: [...extensions].sort() },
    [roleRes.key],
    true,
  );
  const ctx: ExecContext = {
    secret: (name) => {
      if (name !== 'postgres') throw new Error(`unexpected secret ${name}`);
      return password;
    },
    progress: (m) => messages.push(m),
  };
  return { role, database, password, resources: [roleRes, dbRes], ctx };
}

const made: Deployment[] = [];

async function apply(d: Deployment): Promise<Action[]> {
  const actions = planApply(d.resources, await provider.observe(d.resources));
  for (const a of actions) {
    try {
      await provider.execute(a, d.ctx);
    } catch (err) {
      messages.push((err as Error).message);
      throw err;
    }
  }
  return actions;
}

async function plan(d: Deployment): Promise<Action[]> {
  return planApply(d.resources, await provider.observe(d.resources));
}

async function connectAs(user: string, password: string, database: string): Promise<pg.Client> {
  const c = new pg.Client({ host: settings.postgres.host, port: settings.postgres.port, user, password, database, connectionTimeoutMillis: 30_000 });
  c.on('error', () => {});
  await c.connect();
  return c;
}

async function refusedConnect(user: string, password: string, database: string): Promise<{ code?: string; message: string }> {
  try {
    const c = await connectAs(user, password, database);
    await c.end();
  } catch (err) {
    return { code: (err as { code?: string }).code, message: (err as Error).message };
  }
  throw new Error(`${user} could connect to ${database}`);
}


beforeAll(async () => {
  settings = stackSettings();
  provider = new PostgresProvider(settings.postgres);
  const s = settings.postgres;
  admin = new pg.Client({ host: s.host, port: s.port, user: s.user, password: s.password, database: s.database });
  await admin.connect();
});

afterAll(async () => {
  for (const d of made) {
    await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(d.database)} WITH (FORCE)`).catch(() => {});
    await admin.query(`DROP ROLE IF EXISTS ${pg.escapeIdentifier(d.role)}`).catch(() => {});
  }
  await admin?.end();
  await provider?.close();
});

describe('PostgresProvider', () => {
  const a = deployment('a', ['uuid-ossp', 'pgcrypto']);
  const b = deployment('b');
  made.push(a, b);

  it('creates a role and a database, and a second run changes nothing', async () => {
    const first = await apply(a);
    expect(first.map((x) => x.op)).toEqual(['create', 'create']);
    const second = await plan(a);
    expect(second.map((x) => [x.op, x.changes])).toEqual([
      ['unchanged', []],
      ['unchanged', []],
    ]);
    // Executing the (unchanged) second plan is a no-op too.
    for (const x of second) await provider.execute(x, a.ctx);
    expect((await plan(a)).map((x) => x.op)).toEqual(['unchanged', 'unchanged']);

    const obs = await provider.observe(a.resources);
    expect(obs[0]).toEqual({ key: a.resources[0]!.key, exists: true, spec: { login: true, claimedBy: ownerOf('a') } });
    expect(obs[1]).toEqual({
      key: a.resources[1]!.key,
      exists: true,
      spec: { owner: a.role, claimedBy: ownerOf('a'), publicConnect: false, systemDatabasesClosed: true, extensions: ['pgcrypto', 'uuid-ossp'] },
    });
  }, 60_000);

  it('stores the password as SCRAM-SHA-256 and the role can use its own database', async () => {
    const row = await admin.query<{ rolpassword: string }>('SELECT rolpassword FROM pg_authid WHERE rolname = $1', [a.role]);
    expect(row.rows[0]!.rolpassword).toMatch(/^SCRAM-SHA-256\$4096:/);
    const c = await connectAs(a.role, a.password, a.database);
    try {
      await c.query('CREATE TABLE t (id uuid PRIMARY KEY DEFAULT uuid_generate_v4(), h text DEFAULT encode(digest($$x$$, $$sha256$$), $$hex$$))');
      await c.query('INSERT INTO t DEFAULT VALUES');
      expect((await c.query('SELECT count(*)::int AS n FROM t')).rows[0].n).toBe(1);
    } finally {
      await c.end();
    }
    // A wrong password is refused.
    expect((await refusedConnect(a.role, 'not-the-password', a.database)).code).toBe('28P01');
  }, 60_000);

  it("keeps one project's role out of another project's database", async () => {
    await apply(b);
    const denied = await refusedConnect(a.role, a.password, b.database);
    expect(denied.code).toBe('42501');
    expect(denied.message).toMatch(/permission denied for database/);
    // Nor can any other role: CONNECT is revoked from PUBLIC.
    const acl = await admin.query<{ c: boolean }>(`SELECT has_database_privilege('public', $1, 'CONNECT') AS c`, [b.database]);
    expect(acl.rows[0]!.c).toBe(false);
    // b's role can enter its own.
    const c = await connectAs(b.role, b.password, b.database);
    await c.end();
  }, 60_000);

  it('sees changes made behind its back and fixes only what differs', async () => {
    const db = pg.escapeIdentifier(a.database);
    await admin.query(`GRANT CONNECT ON DATABASE ${db} TO PUBLIC`);
    await admin.query(`ALTER ROLE ${pg.escapeIdentifier(a.role)} NOLOGIN`);
    const ext = await connectAs(settings.postgres.user, settings.postgres.password!, a.database);
    await ext.query('DROP EXTENSION pgcrypto CASCADE'); // the table's default uses digest()
    await ext.query('CREATE EXTENSION IF NOT EXISTS citext'); // added by hand: not drift, never dropped
    await ext.end();

    const drift = await plan(a);
    expect(drift[0]!.op).toBe('update');
    expect(drift[0]!.changes).toEqual([{ field: 'login', from: false, to: true }]);
    expect(drift[1]!.op).toBe('update');
    expect(drift[1]!.changes).toEqual([
      { field: 'publicConnect', from: true, to: false },
      { field: 'extensions', from: ['uuid-ossp'], to: ['pgcrypto', 'uuid-ossp'] },
    ]);
    await apply(a);
    expect((await plan(a)).map((x) => x.op)).toEqual(['unchanged', 'unchanged']);
    const still = await connectAs(settings.postgres.user, settings.postgres.password!, a.database);
    const names = (await still.query<{ extname: string }>('SELECT extname FROM pg_extension ORDER BY 1')).rows.map((r) => r.extname);
    await still.end();
    expect(names).toEqual(['citext', 'pgcrypto', 'plpgsql', 'uuid-ossp']);
  }, 60_000);

  it('sees a database dropped behind its back and creates it again', async () => {
    const c = deployment('c');
    made.push(c);
    await apply(c);
    await admin.query(`DROP DATABASE ${pg.escapeIdentifier(c.database)} WITH (FORCE)`);
    const obs = await provider.observe(c.resources);
    expect(obs[1]).toEqual({ key: c.resources[1]!.key, exists: false });
    expect((await plan(c)).map((x) => x.op)).toEqual(['unchanged', 'create']);
    await apply(c);
    expect((await plan(c)).map((x) => x.op)).toEqual(['unchanged', 'unchanged']);
  }, 60_000);

  it('reports a role or database it did not create as a conflict and refuses to touch it', async () => {
    const f = deployment('f');
    made.push(f);
    await admin.query(`CREATE ROLE ${pg.escapeIdentifier(f.role)} LOGIN`);
    await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(f.database)} OWNER ${pg.escapeIdentifier(f.role)}`);
    const actions = await plan(f);
    expect(actions.map((x) => x.op)).toEqual(['blocked', 'blocked']);
    expect(actions[0]!.reason).toMatch(new RegExp(`role ${f.role} exists but was not created by codeb`));
    expect(actions[1]!.reason).toMatch(new RegExp(`database ${f.database} exists and is owned by role ${f.role}, which codeb did not create`));
    const destroy = planDestroy(f.resources, await provider.observe(f.resources), true);
    expect(destroy.map((x) => x.op)).toEqual(['blocked', 'blocked']);
    // Even when asked directly, it does not change the foreign role's password.
    await expect(provider.execute({ ...actions[0]!, op: 'create' }, f.ctx)).rejects.toThrow(/not created by codeb/);
    await expect(provider.setPassword(f.role, f.password)).rejects.toThrow(/not created by codeb/);
  }, 60_000);

  it('kept data stays with its owner: another deployment deriving the same names is blocked, naming the owner (issue 9, finding 5)', async () => {
    const g = deployment('g');
    made.push(g);
    await apply(g);
    // Same role and database names, another project: every step is blocked and nothing changes.
    const thief = { ...g, resources: deployment('g', [], 'other-project/production').resources };
    const actions = await plan(thief);
    expect(actions.map((x) => x.op)).toEqual(['blocked', 'blocked']);
    expect(actions[0]!.reason).toContain(`role ${g.role} belongs to ${ownerOf('g')}`);
    expect(actions[1]!.reason).toContain(`database ${g.database} belongs to ${ownerOf('g')}`);
    await expect(provider.execute({ ...actions[0]!, op: 'update' }, g.ctx)).rejects.toThrow(/belongs to/);
    expect(planDestroy(thief.resources, await provider.observe(thief.resources), true).map((x) => x.op)).toEqual(['blocked', 'blocked']);
    const c = await connectAs(g.role, g.password, g.database); // the owner's password still works
    await c.end();
  }, 60_000);

  it("an earlier codeb's marker without an owner is adopted only by a deployment the registry knew", async () => {
    const h = deployment('h');
    made.push(h);
    await apply(h);
    await admin.query(`COMMENT ON ROLE ${pg.escapeIdentifier(h.role)} IS 'codeb: created by codeb; password in the deployment secrets file'`);
    await admin.query(`COMMENT ON DATABASE ${pg.escapeIdentifier(h.database)} IS NULL`);
    const fresh = await plan(h);
    expect(fresh.map((x) => x.op)).toEqual(['blocked', 'blocked']);
    expect(fresh[0]!.reason).toMatch(/earlier codeb whose marker names no owner.*never adopts it/);
    const known = deployment('h', [], ownerOf('h'), true);
    const adopt = planApply(known.resources, await provider.observe(known.resources));
    expect(adopt.map((x) => [x.op, x.changes.map((c) => c.field)])).toEqual([
      ['update', ['claimedBy']],
      ['update', ['claimedBy']],
    ]);
    for (const x of adopt) await provider.execute(x, h.ctx);
    expect((await plan(h)).map((x) => x.op)).toEqual(['unchanged', 'unchanged']);
  }, 60_000);

  it("closes postgres and template1 to every project role: no CONNECT, no TEMP; drift shows in plan (issue 9, finding 9)", async () => {
    for (const db of ['postgres', 'template1']) {
      const denied = await refusedConnect(a.role, a.password, db);
      expect(denied.code, db).toBe('42501');
      expect(denied.message).toMatch(/permission denied for database/);
    }
    await admin.query('GRANT TEMPORARY ON DATABASE template1 TO PUBLIC');
    const drift = await plan(a);
    expect(drift[1]!.changes).toEqual([{ field: 'systemDatabasesClosed', from: false, to: true }]);
    await apply(a);
    const acl = await admin.query<{ open: boolean }>(
      `SELECT bool_or(has_database_privilege('public', oid, 'CONNECT') OR has_database_privilege('public', oid, 'TEMPORARY')) AS open FROM pg_database WHERE datname IN ('postgres', 'template1')`,
    );
    expect(acl.rows[0]!.open).toBe(false);
    // What Postgres 15 cannot hide from a logged-in role: the names of other databases and roles.
    const c = await connectAs(a.role, a.password, a.database);
    try {
      const listed = (await c.query<{ datname: string }>('SELECT datname FROM pg_database')).rows.map((r) => r.datname);
      expect(listed).toContain(b.database);
      // ...but not their contents: the other database refuses the connection (above) and TEMP here is its own.
    } finally {
      await c.end();
    }
  }, 60_000);

  it('rotates a password with setPassword', async () => {
    const next = generateSecret();
    registerSecret(next);
    secrets.push(next);
    await provider.setPassword(b.role, next);
    expect((await refusedConnect(b.role, b.password, b.database)).code).toBe('28P01');
    const c = await connectAs(b.role, next, b.database);
    await c.end();
    b.password = next;
    await expect(provider.setPassword(`${run}_missing`, next)).rejects.toThrow(/does not exist/);
  }, 60_000);

  it('keeps a role that still owns its database, and drops both on a data-deleting destroy', async () => {
    const d = deployment('d', ['pg_trgm']);
    made.push(d);
    await apply(d);
    const [roleAction] = planDestroy([d.resources[0]!], await provider.observe([d.resources[0]!]), true);
    expect(roleAction!.op).toBe('delete');
    const notes: string[] = [];
    await provider.execute(roleAction!, { ...d.ctx, progress: (m) => (notes.push(m), messages.push(m)) });
    expect(notes.join(' ')).toMatch(new RegExp(`kept: it still owns database ${d.database}`));
    expect((await provider.observe([d.resources[0]!]))[0]!.exists).toBe(true);

    // Destroy without --delete-data keeps both; with it, the database goes first, then the role.
    expect(planDestroy(d.resources, await provider.observe(d.resources), false).map((x) => x.op)).toEqual(['keep', 'keep']);
    // A session open in the database does not stop the drop.
    const open = await connectAs(d.role, d.password, d.database);
    open.on('error', () => {});
    const steps = planDestroy(d.resources, await provider.observe(d.resources), true);
    expect(steps.map((x) => [x.kind, x.op])).toEqual([
      ['postgres.database', 'delete'],
      ['postgres.role', 'delete'],
    ]);
    for (const s of steps) await provider.execute(s, d.ctx);
    await open.end().catch(() => {});
    expect((await provider.observe(d.resources)).map((o) => o.exists)).toEqual([false, false]);
    // Deleting again is a no-op.
    for (const s of steps) await provider.execute(s, d.ctx);
  }, 60_000);

  it('reports a failing statement as a CodebError naming the resource', async () => {
    const e = deployment('e', ['no_such_extension_x']);
    made.push(e);
    const err = await apply(e).then(
      () => undefined,
      (x: unknown) => x as Error,
    );
    expect(err?.name).toBe('CodebError');
    expect(err?.message).toMatch(new RegExp(`create postgres.database ${e.database} failed: .*no_such_extension_x`));
  }, 60_000);

  it('never puts a password into a progress line or an error message', () => {
    expect(messages.length).toBeGreaterThan(5);
    for (const m of messages) for (const s of secrets) expect(m).not.toContain(s);
    if (settings.postgres.password) for (const m of messages) expect(m).not.toContain(settings.postgres.password);
  });

  it('gives ServiceUnavailableError naming Postgres and its address when nothing listens', async () => {
    const port = await freePort();
    const p = new PostgresProvider({ ...settings.postgres, host: '127.0.0.1', port });
    try {
      const err = await p.observe(a.resources).then(
        () => undefined,
        (x: unknown) => x,
      );
      expect(err).toBeInstanceOf(ServiceUnavailableError);
      expect((err as Error).message).toContain(`Postgres is not reachable at 127.0.0.1:${port}`);
      expect((err as ServiceUnavailableError).hint).toMatch(/codeb stack up/);
    } finally {
      await p.close();
    }
  }, 30_000);

  it('gives ServiceUnavailableError when the admin password is wrong', async () => {
    const p = new PostgresProvider({ ...settings.postgres, password: 'wrong-admin-password' });
    try {
      await expect(p.observe(a.resources)).rejects.toBeInstanceOf(ServiceUnavailableError);
    } finally {
      await p.close();
    }
  }, 30_000);
});
