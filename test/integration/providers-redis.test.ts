/**
 * RedisProvider against the real Redis of the local stack: slots claimed by an owner marker, clashes
 * reported as conflicts, ACL users that cannot administer or wipe the server (and in prefix mode
 * cannot leave their prefix), drift seen and fixed, secrets kept out of messages, and an
 * unreachable server failing fast with ServiceUnavailableError.
 *
 * Dangerous commands are first checked with ACL DRYRUN as the admin; only when Redis confirms they
 * are denied are they sent for real as the user, so a broken rule set cannot wipe the shared stack.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CodebError, ServiceUnavailableError } from '../../controller/errors.js';
import { RedisProvider, SLOT_MARKER } from '../../controller/providers/redis.js';
import { makeResource, type Action, type ExecContext, type Resource } from '../../controller/reconcile/model.js';
import { planApply, planDestroy } from '../../controller/reconcile/plan.js';
import { generateSecret } from '../../controller/reconcile/secrets.js';
import { registerSecret } from '../../controller/redact.js';
import type { Settings } from '../../controller/settings.js';
import { REDIS_DBS } from './helpers/apply.js';
import { freePort, stackSettings, uniqueId } from './helpers/stack.js';

let settings: Settings;
let provider: RedisProvider;
let admin: Redis;
const run = uniqueId('rt');
const secrets: string[] = [];
const messages: string[] = [];
const users: string[] = [];
/** DB indexes this file claimed (empty and unclaimed when taken), emptied again at the end. */
const claimed: number[] = [];

function adminClient(db = 0): Redis {
  const r = settings.redis;
  return new Redis({ host: r.host, port: r.port, username: r.user, password: r.password, db, lazyConnect: true, maxRetriesPerRequest: 1 });
}

/** The next of this file's DBs (REDIS_DBS), which must be empty (so unclaimed). */
async function freeDb(): Promise<number> {
  const mine = REDIS_DBS['providers-redis'].filter((db) => !claimed.includes(db));
  for (const db of mine) {
    await admin.select(db);
    const size = await admin.dbsize();
    await admin.select(0);
    if (size === 0) {
      claimed.push(db);
      return db;
    }
  }
  throw new Error(`no empty Redis DB left of this file's ${REDIS_DBS['providers-redis'].join(', ')} (test/integration/helpers/apply.ts REDIS_DBS): empty the one a killed run left with FLUSHDB`);
}

interface Deployment {
  owner: string;
  db: number;
  user: string;
  prefix: string | null;
  password: string;
  resources: Resource[];
  ctx: ExecContext;
}

async function deployment(tag: string, isolation: 'db' | 'prefix'): Promise<Deployment> {
  const db = await freeDb();
  const project = `${run}-${tag}`;
  const owner = `${project}/production`;
  const user = `codeb-${project}--prod`;
  const prefix = isolation === 'prefix' ? `${project}:` : null;
  const password = generateSecret();
  registerSecret(password);
  secrets.push(password);
  users.push(user);
  const slot = makeResource('redis.slot', String(db), { db, owner });
  const u = makeResource('redis.user', user, { db, isolation, keyPrefix: prefix, secret: 'redis' }, [slot.key]);
  return {
    owner,
    db,
    user,
    prefix,
    password,
    resources: [slot, u],
    ctx: {
      secret: (n) => {
        if (n !== 'redis') throw new Error(`unexpected secret ${n}`);
        return password;
      },
      progress: (m) => messages.push(m),
    },
  };
}

async function plan(d: Deployment): Promise<Action[]> {
  return planApply(d.resources, await provider.observe(d.resources));
}

async function apply(d: Deployment): Promise<Action[]> {
  const actions = await plan(d);
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

async function asUser(d: Deployment, password = d.password): Promise<Redis> {
  const r = settings.redis;
  const c = new Redis({ host: r.host, port: r.port, username: d.user, password, db: d.db, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  let last: Error | undefined;
  c.on('error', (e: Error) => (last = e));
  try {
    await c.connect();
  } catch (err) {
    c.disconnect();
    throw last ?? err;
  }
  return c;
}

async function refused(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('the command was not refused');
}

/** Redis itself confirms (without running anything) that the user may not run this command. */
async function dryRunDenied(user: string, ...cmd: string[]): Promise<void> {
  const res = await admin.call('ACL', 'DRYRUN', user, ...cmd);
  expect(res, `${cmd.join(' ')} must be denied`).not.toBe('OK');
}


beforeAll(async () => {
  settings = stackSettings();
  provider = new RedisProvider(settings.redis);
  admin = adminClient();
  await admin.connect();
});

afterAll(async () => {
  for (const u of users) await admin.call('ACL', 'DELUSER', u).catch(() => {});
  const aclfile = ((await admin.call('CONFIG', 'GET', 'aclfile')) as string[])[1];
  if (aclfile) await admin.call('ACL', 'SAVE');
  for (const db of claimed) {
    await admin.select(db);
    const owner = await admin.get(SLOT_MARKER);
    // Only DBs this run holds (or left unclaimed while testing foreign keys) are emptied.
    if (owner === null || owner.startsWith(run)) await admin.flushdb();
  }
  await admin?.quit();
  await provider?.close();
});

describe('RedisProvider', () => {
  let a: Deployment; // db mode
  let b: Deployment; // prefix mode

  beforeAll(async () => {
    a = await deployment('a', 'db');
    b = await deployment('b', 'prefix');
  });

  it('claims a slot and creates a user, and a second run changes nothing', async () => {
    for (const d of [a, b]) {
      expect((await apply(d)).map((x) => x.op)).toEqual(['create', 'create']);
      const again = await plan(d);
      expect(again.map((x) => [x.op, x.changes])).toEqual([
        ['unchanged', []],
        ['unchanged', []],
      ]);
      for (const x of again) await provider.execute(x, d.ctx);
      // Re-running create (as after a crash) converges too.
      for (const x of await planApply(d.resources, [])) await provider.execute(x, d.ctx);
      expect((await plan(d)).map((x) => x.op)).toEqual(['unchanged', 'unchanged']);
    }
    const obs = await provider.observe(b.resources);
    expect(obs).toEqual([
      { key: b.resources[0]!.key, exists: true, spec: { db: b.db, owner: b.owner } },
      { key: b.resources[1]!.key, exists: true, spec: { db: b.db, isolation: 'prefix', keyPrefix: b.prefix } },
    ]);
    // The user's password is stored as a hash only, and observe does not report it.
    expect(JSON.stringify(obs)).not.toMatch(/[0-9a-f]{64}/);
  }, 60_000);

  it('lets a prefix-mode user use its own keys and nothing else', async () => {
    const c = await asUser(b);
    try {
      await c.set(`${b.prefix}greeting`, 'hi');
      expect(await c.get(`${b.prefix}greeting`)).toBe('hi');
      expect(await refused(c.get('other-project:secret'))).toMatch(/NOPERM/);
      expect(await refused(c.set('loose-key', 'x'))).toMatch(/NOPERM/);
      expect(await refused(c.get(SLOT_MARKER))).toMatch(/NOPERM/); // cannot forge or drop the owner marker
      expect(await refused(c.publish('other-project:events', 'x'))).toMatch(/NOPERM/);
      expect(await c.publish(`${b.prefix}events`, 'x')).toBe(0);

      for (const cmd of [['flushall'], ['flushdb'], ['config', 'get', 'maxmemory'], ['acl', 'list'], ['shutdown'], ['debug', 'sleep', '0'], ['keys', '*']]) {
        await dryRunDenied(b.user, ...cmd);
      }
      expect(await refused(c.flushall())).toMatch(/NOPERM/);
      expect(await refused(c.flushdb())).toMatch(/NOPERM/);
      expect(await refused(c.config('GET', 'maxmemory'))).toMatch(/NOPERM/);
      expect(await refused(c.call('ACL', 'LIST'))).toMatch(/NOPERM/);
      expect(await refused(c.call('SHUTDOWN'))).toMatch(/NOPERM/);
      // DEBUG is also off server-wide by default (enable-debug-command no), which answers first.
      expect(await refused(c.call('DEBUG', 'SLEEP', '0'))).toMatch(/NOPERM|DEBUG command not allowed/);
      expect(await refused(c.keys('*'))).toMatch(/NOPERM/);
      // Nothing that lists or counts other tenants' keys or channels (issue 9, finding 8).
      await admin.select(b.db);
      await admin.set('neighbour:key', 'x');
      await admin.select(0);
      for (const cmd of [['scan', '0'], ['randomkey'], ['dbsize'], ['pubsub', 'channels'], ['pubsub', 'numpat']]) await dryRunDenied(b.user, ...cmd);
      expect(await refused(c.scan('0'))).toMatch(/NOPERM/);
      expect(await refused(c.randomkey())).toMatch(/NOPERM/);
      expect(await refused(c.dbsize())).toMatch(/NOPERM/);
      expect(await refused(c.call('PUBSUB', 'CHANNELS'))).toMatch(/NOPERM/);
      expect(await refused(c.call('MONITOR'))).toMatch(/NOPERM/);
      expect(await refused(c.call('CLIENT', 'LIST'))).toMatch(/NOPERM/);
      expect(await refused(c.call('SWAPDB', '0', '1'))).toMatch(/NOPERM/);
      expect(await refused(c.set(SLOT_MARKER, 'attacker/production'))).toMatch(/NOPERM/);
      // A normal app's pub/sub on its own prefix works.
      const sub = await asUser(b);
      try {
        const got = new Promise<string>((resolve) => sub.on('message', (_ch: string, m: string) => resolve(m)));
        await sub.subscribe(`${b.prefix}events`);
        expect(await c.publish(`${b.prefix}events`, 'hello')).toBe(1);
        expect(await got).toBe('hello');
      } finally {
        sub.disconnect();
      }
      // Still alive after all that.
      expect(await admin.ping()).toBe('PONG');
    } finally {
      c.disconnect();
    }
  }, 60_000);

  it('lets a db-mode user work in its DB but, as documented, not be confined to it', async () => {
    const c = await asUser(a);
    try {
      await c.set('anything', '1');
      expect(await c.get('anything')).toBe('1');
      for (const cmd of [['flushall'], ['flushdb'], ['config', 'get', 'maxmemory'], ['acl', 'list'], ['shutdown'], ['debug', 'sleep', '0']]) {
        await dryRunDenied(a.user, ...cmd);
      }
      expect(await refused(c.flushall())).toMatch(/NOPERM/);
      expect(await refused(c.config('GET', 'maxmemory'))).toMatch(/NOPERM/);
      expect(await refused(c.call('ACL', 'LIST'))).toMatch(/NOPERM/);
      expect(await refused(c.call('SHUTDOWN'))).toMatch(/NOPERM/);
      // DEBUG is also off server-wide by default (enable-debug-command no), which answers first.
      expect(await refused(c.call('DEBUG', 'SLEEP', '0'))).toMatch(/NOPERM|DEBUG command not allowed/);
      expect(await refused(c.move('anything', String(b.db)))).toMatch(/NOPERM/);
      // The slot marker is codeb's alone, in its own DB and any other (issue 9, finding 8).
      expect(await refused(c.set(SLOT_MARKER, 'attacker/production'))).toMatch(/NOPERM/);
      expect(await refused(c.del(SLOT_MARKER))).toMatch(/NOPERM/);
      // Redis ACLs cannot restrict SELECT: this is why 'db' mode is not isolation (docs/providers.md).
      expect(await c.select(b.db)).toBe('OK');
      expect(await c.get(`${b.prefix}greeting`)).toBe('hi');
      expect(await refused(c.set(SLOT_MARKER, 'attacker/production'))).toMatch(/NOPERM/);
    } finally {
      c.disconnect();
    }
  }, 60_000);

  it('reports a slot claimed by another owner as a conflict and refuses to claim or empty it', async () => {
    const d = await deployment('c', 'db');
    const other = `${run}-someone-else/production`;
    const c = adminClient(d.db);
    await c.connect();
    try {
      await c.set(SLOT_MARKER, other);
      await c.set('their-key', '1');
      const actions = await plan(d);
      expect(actions[0]!.op).toBe('blocked');
      expect(actions[0]!.reason).toBe(`Redis DB ${d.db} is claimed by ${other}`);
      expect(planDestroy(d.resources.slice(0, 1), await provider.observe(d.resources.slice(0, 1)), true)[0]!.op).toBe('blocked');
      const claim = { ...actions[0]!, op: 'create' as const };
      await expect(provider.execute(claim, d.ctx)).rejects.toThrow(new RegExp(`Redis DB ${d.db} is claimed by ${other}`));
      await expect(provider.execute({ ...claim, op: 'delete' }, d.ctx)).rejects.toThrow(/refusing to empty it/);
      expect(await c.get('their-key')).toBe('1');
    } finally {
      await c.flushdb();
      c.disconnect();
    }
  }, 60_000);

  it('reports a DB holding keys but no marker as a conflict and never shares it', async () => {
    const d = await deployment('d', 'db');
    const c = adminClient(d.db);
    await c.connect();
    try {
      await c.set('legacy:1', 'x');
      await c.set('legacy:2', 'y');
      const actions = await plan(d);
      expect(actions[0]!.op).toBe('blocked');
      expect(actions[0]!.reason).toMatch(new RegExp(`^Redis DB ${d.db} holds 2 keys of another application`));
      const err = await provider.execute({ ...actions[0]!, op: 'create' }, d.ctx).then(
        () => undefined,
        (x: unknown) => x,
      );
      expect(err).toBeInstanceOf(CodebError);
      messages.push((err as Error).message);
      expect(await c.get(SLOT_MARKER)).toBeNull();
      await expect(provider.execute({ ...actions[0]!, op: 'delete' }, d.ctx)).rejects.toThrow(/refusing to empty/);
      expect(await c.dbsize()).toBe(2);
    } finally {
      await c.flushdb();
      c.disconnect();
    }
  }, 60_000);

  it('sees a user or a marker removed, or rules changed, behind its back', async () => {
    const d = await deployment('e', 'prefix');
    await apply(d);
    await admin.call('ACL', 'DELUSER', d.user);
    expect((await provider.observe(d.resources))[1]).toEqual({ key: d.resources[1]!.key, exists: false });
    expect((await plan(d)).map((x) => x.op)).toEqual(['unchanged', 'create']);
    await apply(d);

    // Someone widens the user's rights by hand: the plan shows it and the update puts codeb's rules back.
    await admin.call('ACL', 'SETUSER', d.user, '+flushall', '~*');
    const drift = await plan(d);
    expect(drift[1]!.op).toBe('update');
    expect(drift[1]!.changes.map((ch) => ch.field)).toEqual(['isolation', 'keyPrefix']);
    expect(String(drift[1]!.changes[0]!.from)).toMatch(/^db \(every key, codeb's slot marker included\), .*flushall allowed/);
    await apply(d);
    expect((await plan(d)).map((x) => x.op)).toEqual(['unchanged', 'unchanged']);
    await dryRunDenied(d.user, 'flushall');

    // The marker deleted in an empty DB: the slot is unclaimed and is claimed again.
    const c = adminClient(d.db);
    await c.connect();
    await c.del(SLOT_MARKER);
    c.disconnect();
    expect((await provider.observe(d.resources))[0]).toEqual({ key: d.resources[0]!.key, exists: false });
    await apply(d);
    expect((await plan(d)).map((x) => x.op)).toEqual(['unchanged', 'unchanged']);
  }, 60_000);

  it('rotates a password with setPassword, keeping the rules', async () => {
    const next = generateSecret();
    registerSecret(next);
    secrets.push(next);
    await provider.setPassword(b.user, next);
    expect(await refused(asUser(b))).toMatch(/WRONGPASS/);
    const c = await asUser(b, next);
    expect(await c.get(`${b.prefix}greeting`)).toBe('hi');
    expect(await refused(c.get('elsewhere'))).toMatch(/NOPERM/);
    c.disconnect();
    b.password = next;
    expect((await plan(b)).map((x) => x.op)).toEqual(['unchanged', 'unchanged']);
    await expect(provider.setPassword(`${run}-missing`, next)).rejects.toThrow(/does not exist/);
  }, 60_000);

  it('persists ACL changes with ACL SAVE when the server has an aclfile', async () => {
    const cfg = (await admin.call('CONFIG', 'GET', 'aclfile')) as string[];
    const notes = messages.filter((m) => m.startsWith('ACL user'));
    if (cfg[1]) {
      expect(notes.every((m) => !m.includes('has no aclfile'))).toBe(true);
      const dir = ((await admin.call('CONFIG', 'GET', 'dir')) as string[])[1]!;
      const saved = readFileSync(resolve(dir, cfg[1]), 'utf8');
      expect(saved).toMatch(new RegExp(`^user ${b.user} on `, 'm'));
      expect(saved).not.toContain(b.password);
    } else {
      expect(notes.some((m) => m.includes('not saved: Redis has no aclfile'))).toBe(true);
    }
  });

  it('on destroy empties the slot and deletes the user', async () => {
    const steps = planDestroy(a.resources, await provider.observe(a.resources), true);
    expect(steps.map((x) => [x.kind, x.op])).toEqual([
      ['redis.user', 'delete'],
      ['redis.slot', 'delete'],
    ]);
    for (const s of steps) await provider.execute(s, a.ctx);
    expect((await provider.observe(a.resources)).map((o) => o.exists)).toEqual([false, false]);
    const c = adminClient(a.db);
    await c.connect();
    expect(await c.dbsize()).toBe(0);
    c.disconnect();
    // Again: nothing to do, no error.
    for (const s of steps) await provider.execute(s, a.ctx);
  }, 60_000);

  it('never puts a password into a progress line or an error message', () => {
    expect(messages.length).toBeGreaterThan(5);
    for (const m of messages) for (const s of secrets) expect(m).not.toContain(s);
    if (settings.redis.password) for (const m of messages) expect(m).not.toContain(settings.redis.password);
  });

  it('fails with ServiceUnavailableError naming Redis and its address when nothing listens', async () => {
    const port = await freePort();
    const p = new RedisProvider({ ...settings.redis, host: '127.0.0.1', port });
    try {
      const err = await p.observe(a.resources).then(
        () => undefined,
        (x: unknown) => x,
      );
      expect(err).toBeInstanceOf(ServiceUnavailableError);
      expect((err as Error).message).toContain(`Redis is not reachable at 127.0.0.1:${port}`);
    } finally {
      await p.close();
    }
  }, 15_000); // hang guard: it must give up rather than retry forever

  it('gives ServiceUnavailableError when the admin password is wrong', async () => {
    const p = new RedisProvider({ ...settings.redis, password: 'wrong-admin-password' });
    try {
      const err = await p.observe(a.resources).then(
        () => undefined,
        (x: unknown) => x,
      );
      expect(err).toBeInstanceOf(ServiceUnavailableError);
      expect((err as Error).message).not.toContain('wrong-admin-password');
    } finally {
      await p.close();
    }
  }, 30_000);
});
