/**
 * Redis: one DB slot and one ACL user per deployment (see docs/providers.md).
 *
 * - `redis.slot` name = String(db); spec { db, owner: '<project>/<env>' }. The slot is claimed by an
 *   owner marker key (SLOT_MARKER) inside that DB. A DB whose marker names someone else, or that holds
 *   keys but no marker, is reported as a conflict: codeb never shares a DB silently.
 * - `redis.user` name = ACL user; spec { db, isolation: 'db' | 'prefix', keyPrefix, secret: 'redis' }.
 *   The rule set is aclRules() below. A DB index is not a security boundary in Redis 7: ACLs cannot
 *   limit which DB a user SELECTs, and clients given redis://user:pw@host:port/N send SELECT N, so
 *   SELECT stays allowed. Only the 'prefix' mode (the default: key and channel patterns, and no
 *   command that lists keys or channels) isolates tenants; 'db' trusts every other db-mode tenant.
 *   In both modes the slot marker is out of the tenant's reach: it starts with `_`, which no
 *   prefix (a project id) starts with and which the db mode's key pattern `~[^_]*` leaves out, so
 *   a tenant can neither forge nor remove the claim on its own or another DB.
 *
 * Connects as the admin user from the settings, failing fast (short timeout, two retries, no offline
 * queue) with ServiceUnavailableError. Passwords go to Redis only as SHA-256 hashes (`#<hex>`), so no
 * rule, error or log line can carry one.
 */
import { createHash } from 'node:crypto';
import type { Redis, RedisOptions } from 'ioredis';
import { CodebError, ServiceUnavailableError } from '../errors.js';
import type { Action, ExecContext, Observed, Provider, Resource } from '../reconcile/model.js';
import type { Settings } from '../settings.js';
import { RedisReader, RedisReplyError } from './redis-read.js';

type RedisSettings = Settings['redis'];

/**
 * The owner marker in each claimed DB. Project ids are lowercase letters, digits and dashes, so no
 * project's key prefix (<project>:) can cover a key that starts with an underscore.
 */
export const SLOT_MARKER = '_codeb:owner';

export type Isolation = 'db' | 'prefix';

/** Appended to progress when the server has no aclfile: the change lasts until Redis restarts. */
const NOT_SAVED = '; not saved: Redis has no aclfile';

/**
 * Commands every codeb ACL user is denied, on top of -@admin -@dangerous (listed by name too, so the
 * rule set does not depend on how a Redis version files commands into categories):
 * server administration, persistence and replication control, whole-DB or whole-server wipes,
 * keyspace enumeration (KEYS; SCAN stays allowed and obeys key patterns), moving keys between DBs,
 * and the server-global script and function registries that every tenant shares.
 */
export const DENIED_COMMANDS = [
  'flushall', 'flushdb', 'swapdb', 'move', 'migrate', 'keys',
  'config', 'acl', 'shutdown', 'debug', 'module', 'monitor', 'replicaof', 'slaveof', 'sync', 'psync', 'failover',
  'save', 'bgsave', 'bgrewriteaof', 'lastsave',
  'client|kill', 'client|list', 'client|pause', 'client|unpause', 'client|no-evict',
  'function', 'script|flush', 'script|kill',
] as const;

/**
 * Denied on top in prefix mode: commands that reveal keys or channels outside the user's patterns.
 * Redis 7 checks key patterns only on commands that name keys, so SCAN and RANDOMKEY would list
 * every key of the DB, DBSIZE counts them, PUBSUB CHANNELS/NUMPAT/SHARDCHANNELS list other tenants'
 * channels. (KEYS, MONITOR, CLIENT LIST, DEBUG, CONFIG, FLUSH*, SWAPDB are denied in every mode.)
 */
export const PREFIX_DENIED_COMMANDS = ['scan', 'randomkey', 'dbsize', 'pubsub|channels', 'pubsub|numpat', 'pubsub|shardchannels'] as const;

/** Key pattern of the db mode: every key except codeb's own (`_codeb:...`), so the slot marker is codeb's alone. */
export const DB_MODE_KEYS = '~[^_]*';

/** Escape Redis glob metacharacters so a prefix matches only itself. */
export function globEscape(s: string): string {
  return s.replace(/[\\*?[\]^]/g, (c) => `\\${c}`);
}

function globUnescape(s: string): string {
  return s.replace(/\\(.)/g, '$1');
}

/** The SHA-256 form Redis stores and accepts for a password (`#<hex>` rules). */
export function passwordHash(password: string): string {
  return createHash('sha256').update(password, 'utf8').digest('hex');
}

/**
 * The full ACL rule list for a user, without its password rule. `reset` first, so applying it again
 * converges on exactly this set whatever was there before.
 *
 * - db:     ~[^_]* &*       every key but codeb's marker, all channels (channels are server-wide);
 * - prefix: ~<prefix>* &<prefix>*  only the deployment's keys and pub/sub channels, in any DB,
 *           and PREFIX_DENIED_COMMANDS.
 * Commands: +@all -@admin -@dangerous +info, then DENIED_COMMANDS. INFO is given back because job
 * queues (BullMQ, ...) read the server version from it; it shows server statistics (its keyspace
 * section: key counts per DB), not keys or values.
 */
export function aclRules(isolation: Isolation, keyPrefix: string | null): string[] {
  let keys: string[];
  if (isolation === 'prefix') {
    if (!keyPrefix) throw new CodebError('Redis prefix isolation needs a key prefix.');
    const p = globEscape(keyPrefix);
    keys = [`~${p}*`, `&${p}*`];
  } else {
    keys = [DB_MODE_KEYS, '&*'];
  }
  const denied: readonly string[] = isolation === 'prefix' ? [...DENIED_COMMANDS, ...PREFIX_DENIED_COMMANDS] : DENIED_COMMANDS;
  return [...keys, '+@all', '-@admin', '-@dangerous', '+info', ...denied.map((c) => `-${c}`)];
}

/** ACL DRYRUN probes: what a codeb user must and must not be able to run (checked by observe). */
function probes(isolation: Isolation, keyPrefix: string): { allowed: string[][]; denied: string[][] } {
  const k = `${keyPrefix}codeb-probe`;
  const listing = [['scan', '0'], ['randomkey'], ['dbsize'], ['pubsub', 'channels']];
  return {
    allowed: [['get', k], ['set', k, 'v'], ['del', k], ['select', '0'], ['info'], ['publish', k, 'm'], ['ping'], ...(isolation === 'prefix' ? [] : listing)],
    denied: [
      ['flushall'], ['flushdb'], ['keys', '*'], ['config', 'get', 'maxmemory'], ['acl', 'list'], ['shutdown'], ['debug', 'sleep', '0'],
      ['monitor'], ['swapdb', '0', '1'], ['move', k, '1'], ['module', 'list'], ['replicaof', 'no', 'one'], ['client', 'list'],
      ['function', 'flush'], ['script', 'flush'], ['save'], ['set', SLOT_MARKER, 'x'], ['del', SLOT_MARKER],
      ...(isolation === 'prefix' ? listing : []),
    ],
  };
}

interface AclUser {
  flags: string[];
  keys: string;
  channels: string;
  hasPassword: boolean;
}

/** ACL GETUSER's flat [field, value, ...] reply as an object (password hashes are dropped here). */
function parseGetUser(reply: unknown): AclUser | null {
  if (!Array.isArray(reply)) return null;
  const m = new Map<string, unknown>();
  for (let i = 0; i + 1 < reply.length; i += 2) m.set(String(reply[i]), reply[i + 1]);
  const str = (v: unknown): string => (Array.isArray(v) ? v.map(String).join(' ') : v == null ? '' : String(v));
  const passwords = m.get('passwords');
  return {
    flags: Array.isArray(m.get('flags')) ? (m.get('flags') as unknown[]).map(String) : [],
    keys: str(m.get('keys')),
    channels: str(m.get('channels')),
    hasPassword: Array.isArray(passwords) && passwords.length > 0,
  };
}

/** A read's answer, or its error reply thrown (named by the command). */
function answer(what: string, reply: unknown): unknown {
  if (reply instanceof RedisReplyError) throw new RedisReplyError(`${what}: ${reply.message}`);
  return reply;
}

/** A slot as observed from its marker (null: none) and the number of keys in its DB. */
function slotObserved(r: Resource, db: number, owner: string | null, size: number): Observed {
  const want = typeof r.spec.owner === 'string' ? r.spec.owner : undefined;
  if (owner !== null) {
    const o: Observed = { key: r.key, exists: true, spec: { db, owner } };
    if (want !== undefined && owner !== want) o.conflict = `Redis DB ${db} is claimed by ${owner}`;
    return o;
  }
  if (size > 0) {
    // Reported as existing so the plan blocks instead of creating (and so taking over) the slot.
    return {
      key: r.key,
      exists: true,
      spec: { db, owner: null },
      conflict:
        `Redis DB ${db} holds ${size} key${size === 1 ? '' : 's'} of another application (no ${SLOT_MARKER} marker). ` +
        `If they are ${want ?? "this deployment's"} own, claim the DB with: redis-cli -n ${db} SET ${SLOT_MARKER} ${want ?? '<project>/<env>'}`,
    };
  }
  return { key: r.key, exists: false };
}

interface UserRules {
  spec: Record<string, unknown>;
  problems: string[];
  /** The rule set the probes check the user against. */
  mode: Isolation;
  keyPrefix: string;
}

/** What an existing user's ACL entry amounts to, before its command permissions are probed. */
function userRules(r: Resource, u: AclUser): UserRules {
  // The DB is not a property of an ACL user (see the file comment): it lives in the connection
  // URL, so the desired one is reported.
  const spec: Record<string, unknown> = { db: r.spec.db ?? null };
  const problems: string[] = [];
  if (!u.flags.includes('on')) problems.push('user is off');
  if (u.flags.includes('nopass') || !u.hasPassword) problems.push('no password');
  if (u.keys === DB_MODE_KEYS) {
    spec.isolation = 'db';
    spec.keyPrefix = null;
    if (u.channels !== '&*' && !u.flags.includes('allchannels')) problems.push(`channels ${u.channels || 'none'}`);
  } else if (u.flags.includes('allkeys') || u.keys === '~*') {
    // An earlier codeb's db mode: the tenant could overwrite the slot marker.
    spec.isolation = 'db (every key, codeb\'s slot marker included)';
    spec.keyPrefix = null;
    if (u.channels !== '&*' && !u.flags.includes('allchannels')) problems.push(`channels ${u.channels || 'none'}`);
  } else if (/^~\S+\*$/.test(u.keys) && !u.keys.includes(' ') && u.channels === `&${u.keys.slice(1)}`) {
    spec.isolation = 'prefix';
    spec.keyPrefix = globUnescape(u.keys.slice(1, -1));
  } else {
    spec.isolation = `custom (keys ${u.keys || 'none'}, channels ${u.channels || 'none'})`;
    spec.keyPrefix = null;
  }
  return { spec, problems, mode: spec.isolation === 'prefix' ? 'prefix' : 'db', keyPrefix: typeof spec.keyPrefix === 'string' ? spec.keyPrefix : '' };
}

/** The observed user. Anything that differs from codeb's rule set shows up as a different isolation, so the plan updates the user (which rewrites every rule). */
function userObserved(r: Resource, rules: UserRules, commandProblems: string[]): Observed {
  const spec = { ...rules.spec };
  const problems = [...rules.problems, ...commandProblems];
  if (problems.length) spec.isolation = `${String(spec.isolation)}, ${problems.join(', ')}`;
  return { key: r.key, exists: true, spec };
}

/**
 * The user's command permissions against codeb's rule set, from the ACL DRYRUN answers (allowed
 * probes first, then denied). Redis < 7 has no DRYRUN: nothing can be checked there.
 */
function probeProblems(allowed: string[][], denied: string[][], answers: unknown[]): string[] {
  const passes = (reply: unknown): boolean | undefined => {
    if (reply instanceof RedisReplyError) {
      if (/unknown subcommand|wrong number/i.test(reply.message)) return undefined;
      throw new RedisReplyError(`ACL DRYRUN: ${reply.message}`);
    }
    return reply === 'OK';
  };
  const ok = allowed.map((_, i) => passes(answers[i]));
  const through = denied.map((_, i) => passes(answers[allowed.length + i]));
  if (ok.includes(undefined)) return [];
  const problems: string[] = [];
  allowed.forEach((cmd, i) => ok[i] === false && problems.push(`${cmd[0]} denied`));
  denied.forEach((cmd, i) => through[i] === true && problems.push(`${cmd.slice(0, cmd[0] === 'function' || cmd[0] === 'script' || cmd[0] === 'client' || cmd[0] === 'config' || cmd[0] === 'acl' || cmd[0] === 'pubsub' ? 2 : 1).join(' ')} allowed`));
  return problems;
}

function msgOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

const UNREACHABLE = /ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ECONNRESET|EPIPE|connect ETIMEDOUT|Connection is closed|Stream isn't writeable|enableOfflineQueue|WRONGPASS|NOAUTH|NOPERM this user has no permissions to run the 'auth'|Reached the max retries|max retries/i;

export class RedisProvider implements Provider {
  readonly system = 'redis' as const;
  /** One connection per DB index (ioredis' `db` option), opened on first use. */
  private readonly conns = new Map<number, Promise<Redis>>();

  constructor(private readonly settings: RedisSettings) {}

  get address(): string {
    return `${this.settings.host}:${this.settings.port}`;
  }

  private options(db: number): RedisOptions {
    return {
      host: this.settings.host,
      port: this.settings.port,
      username: this.settings.user || undefined,
      password: this.settings.password,
      db,
      lazyConnect: true,
      connectTimeout: 10_000,
      commandTimeout: 15_000,
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      // Fail fast: two quick retries, then give up instead of reconnecting forever.
      retryStrategy: (times) => (times > 2 ? null : 100 * times),
      reconnectOnError: () => false,
      connectionName: 'codeb',
    };
  }

  private unavailable(err: unknown): ServiceUnavailableError {
    return new ServiceUnavailableError('Redis', this.address, err);
  }

  private conn(db: number): Promise<Redis> {
    let p = this.conns.get(db);
    if (!p) {
      p = (async () => {
        // `default` is the package's CommonJS exports object, both from node_modules and from the
        // bundle's chunk (which has no named exports).
        const { Redis } = (await import('ioredis')).default;
        const r = new Redis(this.options(db));
        let lastError: unknown;
        r.on('error', (err: unknown) => (lastError = err)); // reported through the rejected command
        try {
          await r.connect();
          return r;
        } catch (err) {
          r.disconnect();
          const why = lastError ?? err;
          if (/DB index is out of range/i.test(msgOf(why)) || /DB index is out of range/i.test(msgOf(err))) {
            throw new CodebError(`Redis at ${this.address} has no DB ${db} (DB index is out of range).`, {
              hint: `Raise \`databases\` in redis.conf (and settings.redis.databases) to more than ${db}, or give this deployment a lower slot.`,
            });
          }
          throw this.unavailable(why);
        }
      })();
      p.catch(() => this.conns.delete(db));
      this.conns.set(db, p);
    }
    return p;
  }

  /** Run fn on the connection for a DB; connection-level failures become ServiceUnavailableError. */
  private async on<T>(db: number, fn: (r: Redis) => Promise<T>): Promise<T> {
    let r = await this.conn(db);
    if (r.status === 'end') {
      // Lost and given up on (no endless reconnects): try once more with a fresh connection.
      this.conns.delete(db);
      r = await this.conn(db);
    }
    try {
      return await fn(r);
    } catch (err) {
      if (!(err instanceof CodebError) && UNREACHABLE.test(msgOf(err)) && r.status !== 'ready') throw this.unavailable(err);
      throw err;
    }
  }

  private checkDb(db: unknown): number {
    const n = Number(db);
    if (!Number.isInteger(n) || n < 0) throw new CodebError(`Invalid Redis DB index ${JSON.stringify(db)}.`);
    return n;
  }

  // ---------------------------------------------------------------- observe

  /**
   * Every slot and user in two round trips on one connection (redis-read.ts): the slots' markers
   * and sizes with the users' ACL entries, then the ACL DRYRUN probes of the users that exist.
   */
  async observe(resources: Resource[]): Promise<Observed[]> {
    const slots = resources.filter((r) => r.kind === 'redis.slot').map((r) => ({ r, db: this.checkDb(r.spec.db ?? r.name) }));
    const users = resources.filter((r) => r.kind === 'redis.user');
    if (!slots.length && !users.length) return [];
    return this.reading(async (reader) => {
      const first = await reader.send([...slots.flatMap(({ db }) => [['SELECT', String(db)], ['GET', SLOT_MARKER], ['DBSIZE']]), ...users.map((u) => ['ACL', 'GETUSER', u.name])]);
      const out = new Map<string, Observed>();
      slots.forEach(({ r, db }, i) => {
        const [selected, owner, size] = first.slice(3 * i, 3 * i + 3);
        this.selected(db, selected);
        out.set(r.key, slotObserved(r, db, answer(`GET ${SLOT_MARKER}`, owner) as string | null, Number(answer('DBSIZE', size))));
      });
      const found = users.map((r, i) => ({ r, u: parseGetUser(answer(`ACL GETUSER ${r.name}`, first[3 * slots.length + i])) }));
      for (const { r, u } of found) if (!u) out.set(r.key, { key: r.key, exists: false });
      // The probes of every user that exists, in one batch.
      const probing = found.flatMap(({ r, u }) => {
        if (!u) return [];
        const rules = userRules(r, u);
        const { allowed, denied } = probes(rules.mode, rules.keyPrefix);
        return [{ r, rules, allowed, denied, commands: [...allowed, ...denied].map((cmd) => ['ACL', 'DRYRUN', r.name, ...cmd]) }];
      });
      const results = probing.length ? await reader.send(probing.flatMap((p) => p.commands)) : [];
      let at = 0;
      for (const p of probing) {
        const answers = results.slice(at, (at += p.commands.length));
        out.set(p.r.key, userObserved(p.r, p.rules, probeProblems(p.allowed, p.denied, answers)));
      }
      return resources.filter((r) => out.has(r.key)).map((r) => out.get(r.key)!);
    });
  }

  /**
   * DBs in [first, databases) that belong to someone else: another owner's marker, or keys without
   * a marker. Allocation skips them, so a Redis shared with another registry (or an application
   * that is not codeb's) never makes codeb hand out a slot it would then refuse to claim.
   * One round trip for all of them (SELECT, GET, DBSIZE per DB).
   */
  async occupiedDbs(owner: string, first: number, databases: number): Promise<Set<number>> {
    const dbs = Array.from({ length: Math.max(0, databases - first) }, (_, i) => first + i);
    if (!dbs.length) return new Set();
    return this.reading(async (reader) => {
      const answers = await reader.send(dbs.flatMap((db) => [['SELECT', String(db)], ['GET', SLOT_MARKER], ['DBSIZE']]));
      const out = new Set<number>();
      dbs.forEach((db, i) => {
        const [selected, marker, size] = answers.slice(3 * i, 3 * i + 3);
        this.selected(db, selected);
        const m = answer(`GET ${SLOT_MARKER}`, marker);
        if ((m !== null && m !== owner) || (m === null && Number(answer('DBSIZE', size)) > 0)) out.add(db);
      });
      return out;
    });
  }

  /** Run reads on a connection of their own, closed (not waited for) when they are done. */
  private async reading<T>(fn: (reader: RedisReader) => Promise<T>): Promise<T> {
    const reader = new RedisReader({ host: this.settings.host, port: this.settings.port, user: this.settings.user || undefined, password: this.settings.password });
    try {
      return await fn(reader);
    } catch (err) {
      if (err instanceof CodebError) throw err;
      // Refused, reset, timed out, or the login refused (WRONGPASS): the service is unavailable.
      if (!(err instanceof RedisReplyError) || UNREACHABLE.test(msgOf(err))) throw this.unavailable(err);
      throw new CodebError(`Redis at ${this.address} refused a read: ${msgOf(err)}`, { hint: 'The admin user in the settings needs every command (the local stack\'s has them).', cause: err });
    } finally {
      reader.close();
    }
  }

  /** SELECT's answer: a DB the server does not have is a clear error, as in conn(). */
  private selected(db: number, reply: unknown): void {
    if (!(reply instanceof RedisReplyError)) return;
    if (/DB index is out of range/i.test(reply.message)) {
      throw new CodebError(`Redis at ${this.address} has no DB ${db} (DB index is out of range).`, {
        hint: `Raise \`databases\` in redis.conf (and settings.redis.databases) to more than ${db}, or give this deployment a lower slot.`,
      });
    }
    throw reply;
  }

  private async getUser(name: string): Promise<AclUser | null> {
    return this.on(0, async (c) => parseGetUser(await c.call('ACL', 'GETUSER', name)));
  }

  // ---------------------------------------------------------------- execute

  async execute(action: Action, ctx: ExecContext): Promise<void> {
    if (action.op !== 'create' && action.op !== 'update' && action.op !== 'delete') return;
    try {
      switch (action.kind) {
        case 'redis.slot':
          if (action.op === 'delete') return await this.releaseSlot(action.resource, ctx);
          return await this.claimSlot(action.resource, ctx);
        case 'redis.user':
          if (action.op === 'delete') return await this.deleteUser(action.name, ctx);
          return await this.ensureUser(action.resource, ctx);
        default:
          throw new CodebError(`The Redis provider does not handle ${action.kind} resources.`);
      }
    } catch (err) {
      if (err instanceof CodebError) throw err;
      throw new CodebError(`Redis: ${action.op} ${action.kind} ${action.name} failed: ${msgOf(err)}`, { cause: err });
    }
  }

  /** Claim atomically: set the marker only if the DB is unclaimed and empty. */
  private async claimSlot(r: Resource, ctx: ExecContext): Promise<void> {
    const db = this.checkDb(r.spec.db ?? r.name);
    const owner = String(r.spec.owner ?? '');
    if (!owner) throw new CodebError(`Redis slot ${db} has no owner in its spec.`);
    const script = `
      local cur = redis.call('GET', KEYS[1])
      if cur then return {'owner', cur} end
      local n = redis.call('DBSIZE')
      if n > 0 then return {'keys', tostring(n)} end
      redis.call('SET', KEYS[1], ARGV[1])
      return {'claimed', ARGV[1]}`;
    const [what, value] = (await this.on(db, (c) => c.eval(script, 1, SLOT_MARKER, owner))) as [string, string];
    if (what === 'owner' && value !== owner) {
      throw new CodebError(`Redis DB ${db} is claimed by ${value}.`, { hint: 'Another deployment got this slot first; check `codeb registry list` and apply again.' });
    }
    if (what === 'keys') {
      throw new CodebError(`Redis DB ${db} holds ${value} keys of another application; refusing to share it.`, {
        hint: `Empty that DB or have the registry assign another slot; if the keys are ${owner}'s own, run: redis-cli -n ${db} SET ${SLOT_MARKER} ${owner}`,
      });
    }
    ctx.progress(what === 'claimed' ? `DB ${db} claimed for ${owner}` : `DB ${db} already claimed for ${owner}`);
  }

  /** Destroy: empty the DB (the marker goes with it), only if it is this owner's. */
  private async releaseSlot(r: Resource, ctx: ExecContext): Promise<void> {
    const db = this.checkDb(r.spec.db ?? r.name);
    const owner = String(r.spec.owner ?? '');
    const script = `
      local cur = redis.call('GET', KEYS[1])
      if not cur then
        if redis.call('DBSIZE') > 0 then return {'unclaimed', ''} end
        return {'gone', ''}
      end
      if cur ~= ARGV[1] then return {'owner', cur} end
      redis.call('FLUSHDB')
      return {'flushed', ''}`;
    const [what, value] = (await this.on(db, (c) => c.eval(script, 1, SLOT_MARKER, owner))) as [string, string];
    if (what === 'owner') throw new CodebError(`Redis DB ${db} is claimed by ${value}, not ${owner}; refusing to empty it.`);
    if (what === 'unclaimed') throw new CodebError(`Redis DB ${db} holds keys but no ${SLOT_MARKER} marker; refusing to empty a DB codeb cannot prove is ${owner}'s.`);
    ctx.progress(what === 'flushed' ? `DB ${db} emptied` : 'already empty');
  }

  private async ensureUser(r: Resource, ctx: ExecContext): Promise<void> {
    const isolation = r.spec.isolation === 'prefix' ? 'prefix' : r.spec.isolation === 'db' || r.spec.isolation === undefined ? 'db' : null;
    if (!isolation) throw new CodebError(`Unknown Redis isolation ${JSON.stringify(r.spec.isolation)} for user ${r.name}.`);
    const keyPrefix = typeof r.spec.keyPrefix === 'string' ? r.spec.keyPrefix : null;
    const password = ctx.secret(typeof r.spec.secret === 'string' ? r.spec.secret : 'redis');
    if (!password) throw new CodebError(`No password for Redis user ${r.name}.`);
    const existed = (await this.getUser(r.name)) !== null;
    await this.setUser(r.name, ['reset', 'on', `#${passwordHash(password)}`, ...aclRules(isolation, keyPrefix)]);
    const saved = await this.persist();
    const scope = isolation === 'prefix' ? `keys ${keyPrefix}*` : 'db mode: all keys';
    ctx.progress(`ACL user ${existed ? 'updated' : 'created'} (${scope})${saved ? '' : NOT_SAVED}`);
  }

  /** `codeb secrets rotate`: replace the user's password, keeping its rules. Open connections stay logged in. */
  async setPassword(user: string, password: string): Promise<void> {
    if (!password) throw new CodebError(`Refusing to set an empty password for Redis user ${user}.`);
    if (!(await this.getUser(user))) throw new CodebError(`Redis ACL user ${user} does not exist.`, { hint: 'Run `codeb apply` first: it creates the user.' });
    await this.setUser(user, ['resetpass', `#${passwordHash(password)}`]);
    await this.persist();
  }

  private async setUser(name: string, rules: string[]): Promise<void> {
    try {
      await this.on(0, (c) => c.call('ACL', 'SETUSER', name, ...rules));
    } catch (err) {
      if (err instanceof CodebError) throw err;
      // Redis echoes the offending rule; only the first line of the reason is kept, with hashes removed.
      const reason = msgOf(err).split('\n')[0]!.replace(/#[0-9a-f]{64}/gi, '#<hash>').replace(/>\S+/g, '><password>');
      throw new CodebError(`Redis: ACL SETUSER ${name} failed: ${reason}`, { hint: 'The Redis server must be version 7 or later, and the admin user needs the ACL command.' });
    }
  }

  private async deleteUser(name: string, ctx: ExecContext): Promise<void> {
    const n = Number(await this.on(0, (c) => c.call('ACL', 'DELUSER', name)));
    const saved = await this.persist();
    ctx.progress((n ? 'ACL user deleted' : 'already gone') + (saved || !n ? '' : NOT_SAVED));
  }

  /** ACL SAVE when the server keeps users in an aclfile; false when there is none (nothing persists). */
  private async persist(): Promise<boolean> {
    return this.on(0, async (c) => {
      const cfg = (await c.call('CONFIG', 'GET', 'aclfile')) as unknown[];
      const file = Array.isArray(cfg) ? String(cfg[1] ?? '') : '';
      if (!file) return false;
      await c.call('ACL', 'SAVE');
      return true;
    });
  }

  async close(): Promise<void> {
    const all = [...this.conns.values()];
    this.conns.clear();
    await Promise.allSettled(
      all.map(async (p) => {
        const r = await p;
        await r.quit().catch(() => r.disconnect());
      }),
    );
  }
}
