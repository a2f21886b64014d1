/**
 * Postgres: one login role and one database per deployment (see docs/providers.md).
 *
 * - `postgres.role`     name = role name; spec { login: true, claimedBy: '<project>/<env>', secret: 'postgres' }.
 * - `postgres.database` name = database;  spec { owner, claimedBy, publicConnect: false,
 *   systemDatabasesClosed: true, extensions: string[] }.
 *
 * Talks to the admin database with a small pool (connected on first use). Identifiers and literals in
 * DDL (which takes no bind parameters) go through pg's escapeIdentifier / escapeLiteral; every other
 * query uses $n parameters. Passwords never appear in SQL text: the SCRAM-SHA-256 verifier is computed
 * here and sent instead, so server logs, pg_stat_activity and error messages never see the password.
 *
 * Ownership: a role codeb creates carries the comment `codeb: owner=<project>/<env>; ...`, and its
 * database the same comment. An existing role without a codeb comment, or a database owned by such a
 * role, is reported as a conflict: codeb never takes over what another application created. A comment
 * naming another project or environment is a conflict too: kept data (destroy without --delete-data)
 * stays with its owner, and a new project deriving the same names never adopts it. A comment from an
 * earlier codeb that names no owner is taken over only by a deployment the registry already knows
 * (`adoptLegacy`), never by a new one.
 *
 * `systemDatabasesClosed`: CONNECT and TEMPORARY on `postgres` and `template1` revoked from PUBLIC,
 * observed and planned with every database so drift (a GRANT by hand) shows in `plan`. Postgres 15
 * cannot hide pg_database or pg_roles from a role that is logged in: names of databases and roles stay
 * visible, which is why no name carries a secret (docs/providers.md).
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import type pg from 'pg';
import { lazyModule } from '../lazy-module.js';
import { CodebError, ServiceUnavailableError } from '../errors.js';
import type { Action, ExecContext, Observed, Provider, Resource } from '../reconcile/model.js';
import type { Settings } from '../settings.js';

const pgModule = lazyModule<typeof pg>('pg');
const ident = (name: string): string => pgModule().escapeIdentifier(name);
const literal = (text: string): string => pgModule().escapeLiteral(text);

type PgSettings = Settings['postgres'];

/** The comment that marks a role as created (and so owned) by codeb. */
export const ROLE_MARKER_PREFIX = 'codeb:';
/** An earlier codeb's marker: codeb's, but names no owner. */
const LEGACY_ROLE_MARKER = 'codeb: created by codeb; password in the deployment secrets file';
const OWNER_IN_MARKER = /^codeb: owner=([a-z](?:[a-z0-9]|-(?=[a-z0-9]))*\/[a-z](?:[a-z0-9]|-(?=[a-z0-9]))*);/;

/** The marker of a role or database codeb created for one deployment (`<project>/<env>`). */
export function ownerMarker(owner: string | undefined): string {
  if (owner === undefined) return LEGACY_ROLE_MARKER;
  if (!OWNER_IN_MARKER.test(`codeb: owner=${owner};`)) throw new CodebError(`Invalid owner ${JSON.stringify(owner)} for a Postgres marker.`);
  return `codeb: owner=${owner}; created by codeb; password in the deployment secrets file`;
}

/** undefined: not codeb's; null: codeb's, from an earlier version that named no owner; else the owner. */
export function markerOwner(marker: string | null | undefined): string | null | undefined {
  if (!marker?.startsWith(ROLE_MARKER_PREFIX)) return undefined;
  return OWNER_IN_MARKER.exec(marker)?.[1] ?? null;
}

/**
 * Why `want` may not use an object whose marker says `have` (null when it may). `what` names the
 * object in the message.
 */
export function ownerConflict(what: string, want: unknown, have: string | null | undefined, adoptLegacy: unknown): string | null {
  if (typeof want !== 'string' || have === undefined) return null;
  if (have === want) return null;
  if (have !== null) {
    return `${what} belongs to ${have} (codeb's marker names that project and environment); codeb never hands one deployment's data to another. Destroy it with \`codeb destroy ${have.split('/')[0]} --env ${have.split('/')[1]} --delete-data\`, or choose another project id`;
  }
  if (adoptLegacy === true) return null;
  return (
    `${what} was kept by an earlier codeb whose marker names no owner (data of a destroyed deployment?); a new deployment never adopts it. ` +
    `If it is ${want}'s, claim it with: COMMENT ON ${what.split(' ')[1]!.toUpperCase()} ${ident(what.split(' ')[2]!)} IS ${literal(ownerMarker(want))}`
  );
}

/** The databases every role can reach by default; codeb revokes PUBLIC's CONNECT and TEMPORARY on them. */
export const SYSTEM_DATABASES = ['postgres', 'template1'];

/** Extensions Postgres installs in every database; never reported, never managed. */
const BUILTIN_EXTENSIONS = new Set(['plpgsql']);

/**
 * Refuse extensions the server cannot create (pure): every name the manifest asks for must be in
 * the server's pg_available_extensions. Exit 2, listing what the server has, before any change.
 */
export function extensionsRefusal(where: string, wanted: readonly string[], available: readonly string[]): CodebError | null {
  const have = new Set(available);
  const missing = wanted.filter((e) => !have.has(e));
  if (!missing.length) return null;
  const list = [...available].filter((e) => !BUILTIN_EXTENSIONS.has(e)).sort();
  return new CodebError(`${where}: extension${missing.length === 1 ? '' : 's'} ${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} not available on this Postgres server.`, {
    exitCode: 2,
    hint: `Available: ${list.join(', ') || '(none)'}. Install the extension's package on the database server, or remove it from features.database.extensions. Nothing was changed.`,
  });
}

/** Error codes and messages meaning "cannot reach or log in to the server", not "this query failed". */
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET', 'EPIPE',
  '28P01', // invalid_password
  '28000', // invalid_authorization_specification (no pg_hba entry, role cannot log in)
  '57P03', // cannot_connect_now (starting up, shutting down)
  '53300', // too_many_connections
]);

function errCode(err: unknown): string | undefined {
  const c = (err as { code?: unknown } | null)?.code;
  return typeof c === 'string' ? c : undefined;
}

function isUnreachable(err: unknown): boolean {
  const code = errCode(err);
  if (code && UNREACHABLE_CODES.has(code)) return true;
  const msg = err instanceof Error ? err.message : String(err);
  return /timeout expired|Connection terminated|connect ECONNREFUSED|Connection refused|server closed the connection/i.test(msg);
}

function msgOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * The SCRAM-SHA-256 verifier Postgres stores for a password (as PQencryptPasswordConn builds it):
 * SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>. Postgres normalises passwords with
 * SASLprep, which leaves printable ASCII unchanged; for anything else this returns undefined and
 * the server hashes the password itself (password_encryption = scram-sha-256).
 */
export function scramVerifier(password: string, iterations = 4096, salt: Buffer = randomBytes(16)): string | undefined {
  if (!/^[\x20-\x7e]+$/.test(password)) return undefined;
  const salted = pbkdf2Sync(Buffer.from(password, 'utf8'), salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

/** The PASSWORD clause value: the verifier when we can compute it, else the password (server hashes it). */
function passwordClause(password: string): string {
  if (!password) throw new CodebError('Refusing to set an empty Postgres password.');
  return literal(scramVerifier(password) ?? password);
}

interface RoleRow {
  rolname: string;
  rolcanlogin: boolean;
  marker: string | null;
}

interface DatabaseRow {
  datname: string;
  owner: string | null;
  owner_marker: string | null;
  marker: string | null;
  public_connect: boolean;
  datallowconn: boolean;
}

/** A database resource that wants no extensions: none are reported, and it is never entered. */
function noExtensions(r: Resource): boolean {
  return Array.isArray(r.spec.extensions) && r.spec.extensions.length === 0;
}

export class PostgresProvider implements Provider {
  readonly system = 'postgres' as const;
  private pool: pg.Pool | undefined;

  constructor(private readonly settings: PgSettings) {}

  /** host:port, as named in errors. */
  get address(): string {
    return `${this.settings.host}:${this.settings.port}`;
  }

  private clientConfig(database: string): pg.ClientConfig {
    return {
      host: this.settings.host,
      port: this.settings.port,
      user: this.settings.user,
      password: this.settings.password,
      database,
      // A new connection (a forked backend, SCRAM) can take seconds on a loaded machine; waiting
      // costs nothing, an unreachable server still fails at once (connection refused).
      connectionTimeoutMillis: 30_000,
      application_name: 'codeb',
    };
  }

  private unavailable(err: unknown): ServiceUnavailableError {
    return new ServiceUnavailableError('Postgres', this.address, err);
  }

  private getPool(): pg.Pool {
    if (!this.pool) {
      this.pool = new (pgModule().Pool)({ ...this.clientConfig(this.settings.database), max: 2, idleTimeoutMillis: 10_000 });
      // An idle connection dropped by the server must not crash the process; the next query reconnects.
      this.pool.on('error', () => {});
    }
    return this.pool;
  }

  /** One query on the admin database; connection problems become ServiceUnavailableError. */
  private async q<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>> {
    try {
      return await this.getPool().query<R>(text, values);
    } catch (err) {
      if (isUnreachable(err)) throw this.unavailable(err);
      throw err;
    }
  }

  /** Several statements on one admin connection, in one transaction. */
  private async tx(fn: (c: pg.PoolClient) => Promise<void>): Promise<void> {
    let c: pg.PoolClient;
    try {
      c = await this.getPool().connect();
    } catch (err) {
      throw this.unavailable(err);
    }
    try {
      await c.query('BEGIN');
      await fn(c);
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => {});
      if (isUnreachable(err)) throw this.unavailable(err);
      throw err;
    } finally {
      c.release();
    }
  }

  /**
   * Run fn connected to another database as the admin. Returns undefined (instead of throwing)
   * when that database cannot be entered and `tolerant` is set: observe reports what it can.
   */
  private async inDatabase<T>(database: string, fn: (c: pg.Client) => Promise<T>, tolerant = false): Promise<T | undefined> {
    const c = new (pgModule().Client)(this.clientConfig(database));
    c.on('error', () => {});
    try {
      await c.connect();
    } catch (err) {
      await c.end().catch(() => {});
      const code = errCode(err);
      if (tolerant && (code === '3D000' || code === '42501' || code === '55000')) return undefined;
      if (isUnreachable(err)) throw this.unavailable(err);
      throw err;
    }
    try {
      return await fn(c);
    } catch (err) {
      if (isUnreachable(err)) throw this.unavailable(err);
      throw err;
    } finally {
      await c.end().catch(() => {});
    }
  }

  // ---------------------------------------------------------------- observe

  async observe(resources: Resource[]): Promise<Observed[]> {
    const roles = resources.filter((r) => r.kind === 'postgres.role');
    const dbs = resources.filter((r) => r.kind === 'postgres.database');
    // Entering a database (a backend start and a login) is the slowest read here, so the databases
    // whose extensions are reported are entered while the admin connection reads the catalog;
    // an answer is used only where the catalog says the database exists and accepts connections
    // (entering one that does not exist just answers "does not exist", which is tolerated).
    const entered = new Map(dbs.filter((r) => !noExtensions(r)).map((r) => [r.name, this.installedExtensions(r.name)]));
    for (const p of entered.values()) p.catch(() => {}); // awaited below, or the catalog failed first
    try {
      const out = new Map<string, Observed>();
      if (roles.length) for (const o of await this.observeRoles(roles)) out.set(o.key, o);
      if (dbs.length) for (const o of await this.observeDatabases(dbs, entered)) out.set(o.key, o);
      return resources.filter((r) => out.has(r.key)).map((r) => out.get(r.key)!);
    } finally {
      // No connection outlives observe.
      await Promise.allSettled(entered.values());
    }
  }

  private async observeRoles(roles: Resource[]): Promise<Observed[]> {
    const res = await this.q<RoleRow>(
      `SELECT rolname, rolcanlogin, shobj_description(oid, 'pg_authid') AS marker FROM pg_roles WHERE rolname = ANY($1::text[])`,
      [roles.map((r) => r.name)],
    );
    const found = new Map(res.rows.map((row) => [row.rolname, row]));
    return roles.map((r): Observed => {
      const row = found.get(r.name);
      if (!row) return { key: r.key, exists: false };
      const have = markerOwner(row.marker);
      const o: Observed = { key: r.key, exists: true, spec: { login: row.rolcanlogin, claimedBy: have ?? null } };
      if (have === undefined) {
        o.conflict =
          `Postgres role ${r.name} exists but was not created by codeb (it has no codeb comment), so it may belong to another application. ` +
          `If it is this deployment's, mark it with: COMMENT ON ROLE ${ident(r.name)} IS ${literal(ownerMarker(typeof r.spec.claimedBy === 'string' ? r.spec.claimedBy : undefined))}`;
      }
      const taken = ownerConflict(`Postgres role ${r.name}`, r.spec.claimedBy, have, r.spec.adoptLegacy);
      if (taken) o.conflict = taken;
      return o;
    });
  }

  private async observeDatabases(dbs: Resource[], entered = new Map<string, Promise<string[] | undefined>>()): Promise<Observed[]> {
    // One round trip: the databases asked for (none found: one row of nulls) and, on every row,
    // whether PUBLIC has neither CONNECT nor TEMPORARY on the system databases.
    const res = await this.q<Omit<DatabaseRow, 'datname'> & { datname: string | null; system_closed: boolean }>(
      `SELECT d.datname, r.rolname AS owner, shobj_description(r.oid, 'pg_authid') AS owner_marker,
              shobj_description(d.oid, 'pg_database') AS marker,
              has_database_privilege('public', d.oid, 'CONNECT') AS public_connect, d.datallowconn,
              (SELECT NOT coalesce(bool_or(has_database_privilege('public', s.oid, 'CONNECT') OR has_database_privilege('public', s.oid, 'TEMPORARY')), false)
                 FROM pg_database s WHERE s.datname = ANY($2::text[])) AS system_closed
         FROM (SELECT 1) AS one
         LEFT JOIN (pg_database d LEFT JOIN pg_roles r ON r.oid = d.datdba) ON d.datname = ANY($1::text[])`,
      [dbs.map((r) => r.name), SYSTEM_DATABASES],
    );
    const found = new Map(res.rows.flatMap((row) => (row.datname === null ? [] : [[row.datname, { ...row, datname: row.datname }] as const])));
    const systemDatabasesClosed = res.rows[0]?.system_closed !== false;
    return Promise.all(
      dbs.map(async (r): Promise<Observed> => {
        const row = found.get(r.name);
        if (!row) return { key: r.key, exists: false };
        const have = markerOwner(row.marker);
        const spec: Record<string, unknown> = { owner: row.owner, claimedBy: have ?? null, publicConnect: row.public_connect, systemDatabasesClosed };
        // codeb adds extensions and never drops one, so only the ones it manages are reported:
        // an extension someone added by hand is not drift. Wanting none, there is nothing to
        // report, and no connection into the database is opened (a backend and a login each apply).
        const want = r.spec.extensions;
        if (noExtensions(r)) spec.extensions = [];
        else {
          const installed = row.datallowconn ? await (entered.get(r.name) ?? this.installedExtensions(r.name)) : undefined;
          if (installed) spec.extensions = Array.isArray(want) ? installed.filter((e) => want.includes(e)) : installed;
        }
        const o: Observed = { key: r.key, exists: true, spec };
        if (!row.owner_marker?.startsWith(ROLE_MARKER_PREFIX)) {
          o.conflict =
            `Postgres database ${r.name} exists and is owned by role ${row.owner ?? '(unknown)'}, which codeb did not create, ` +
            'so it may belong to another application';
        }
        // A database without its own marker (made by an earlier codeb) is judged by its owner role's.
        const taken = ownerConflict(`Postgres database ${r.name}`, r.spec.claimedBy, row.marker === null ? markerOwner(row.owner_marker) : have, r.spec.adoptLegacy);
        if (taken && !o.conflict) o.conflict = taken;
        return o;
      }),
    );
  }

  /** What the server can CREATE EXTENSION (pg_available_extensions), sorted. */
  async availableExtensions(): Promise<string[]> {
    return (await this.q<{ name: string }>('SELECT name FROM pg_available_extensions ORDER BY name')).rows.map((r) => r.name);
  }

  /** Installed extensions of a database (sorted, plpgsql left out); undefined if it cannot be entered. */
  private async installedExtensions(database: string): Promise<string[] | undefined> {
    return this.inDatabase(
      database,
      async (c) => {
        const res = await c.query<{ extname: string }>('SELECT extname FROM pg_extension');
        return res.rows.map((row) => row.extname).filter((e) => !BUILTIN_EXTENSIONS.has(e)).sort();
      },
      true,
    );
  }

  // ---------------------------------------------------------------- execute

  async execute(action: Action, ctx: ExecContext): Promise<void> {
    if (action.op !== 'create' && action.op !== 'update' && action.op !== 'delete') return;
    try {
      switch (action.kind) {
        case 'postgres.role':
          if (action.op === 'delete') return await this.deleteRole(action.name, action.resource.spec, ctx);
          return await this.ensureRole(action.name, action.resource.spec, ctx);
        case 'postgres.database':
          if (action.op === 'delete') return await this.deleteDatabase(action.name, action.resource.spec, ctx);
          return await this.ensureDatabase(action.name, action.resource.spec, ctx);
        default:
          throw new CodebError(`The Postgres provider does not handle ${action.kind} resources.`);
      }
    } catch (err) {
      if (err instanceof CodebError) throw err;
      // pg's messages name objects, never statement text or parameter values.
      throw new CodebError(`Postgres: ${action.op} ${action.kind} ${action.name} failed: ${msgOf(err)}`, {
        cause: err,
        hint: hintFor(err),
      });
    }
  }

  /** Create or fix the role: LOGIN, codeb's marker, and the password from the secret store. */
  private async ensureRole(name: string, spec: Record<string, unknown>, ctx: ExecContext): Promise<void> {
    const password = ctx.secret(typeof spec.secret === 'string' ? spec.secret : 'postgres');
    const login = spec.login === false ? 'NOLOGIN' : 'LOGIN';
    let created = false;
    await this.tx(async (c) => {
      await c.query(`SET LOCAL password_encryption = 'scram-sha-256'`);
      const row = await c.query<RoleRow>(`SELECT rolname, rolcanlogin, shobj_description(oid, 'pg_authid') AS marker FROM pg_roles WHERE rolname = $1`, [name]);
      const existing = row.rows[0];
      const want = typeof spec.claimedBy === 'string' ? spec.claimedBy : undefined;
      if (existing && !existing.marker?.startsWith(ROLE_MARKER_PREFIX)) {
        throw new CodebError(`Postgres role ${name} exists but was not created by codeb; refusing to change its password.`, {
          hint: `If it belongs to this deployment, mark it with COMMENT ON ROLE ${ident(name)} IS ${literal(ownerMarker(want))} and apply again.`,
        });
      }
      const taken = existing ? ownerConflict(`Postgres role ${name}`, want, markerOwner(existing.marker), spec.adoptLegacy) : null;
      if (taken) throw new CodebError(`${taken}; refusing to change its password.`);
      if (existing) {
        await c.query(`ALTER ROLE ${ident(name)} ${login} PASSWORD ${passwordClause(password)}`);
      } else {
        await c.query(`CREATE ROLE ${ident(name)} ${login} PASSWORD ${passwordClause(password)}`);
        created = true;
      }
      // Same transaction as CREATE ROLE: a role without the marker would later look foreign.
      await c.query(`COMMENT ON ROLE ${ident(name)} IS ${literal(ownerMarker(want))}`);
    });
    ctx.progress(created ? 'role created with a SCRAM-SHA-256 password' : 'role updated (login, password)');
  }

  /** `codeb secrets rotate`: set a codeb-created role's password (stored as a SCRAM verifier). */
  async setPassword(role: string, password: string): Promise<void> {
    try {
      await this.tx(async (c) => {
        await c.query(`SET LOCAL password_encryption = 'scram-sha-256'`);
        const row = await c.query<RoleRow>(`SELECT rolname, rolcanlogin, shobj_description(oid, 'pg_authid') AS marker FROM pg_roles WHERE rolname = $1`, [role]);
        if (!row.rows[0]) throw new CodebError(`Postgres role ${role} does not exist.`, { hint: 'Run `codeb apply` first: it creates the role.' });
        if (!row.rows[0].marker?.startsWith(ROLE_MARKER_PREFIX)) throw new CodebError(`Postgres role ${role} was not created by codeb; refusing to change its password.`);
        await c.query(`ALTER ROLE ${ident(role)} PASSWORD ${passwordClause(password)}`);
      });
    } catch (err) {
      if (err instanceof CodebError) throw err;
      throw new CodebError(`Postgres: could not set the password of role ${role}: ${msgOf(err)}`, { cause: err, hint: hintFor(err) });
    }
  }

  private async deleteRole(name: string, spec: Record<string, unknown>, ctx: ExecContext): Promise<void> {
    const role = await this.q<RoleRow>(`SELECT rolname, rolcanlogin, shobj_description(oid, 'pg_authid') AS marker FROM pg_roles WHERE rolname = $1`, [name]);
    if (!role.rows[0]) {
      ctx.progress('already gone');
      return;
    }
    if (!role.rows[0].marker?.startsWith(ROLE_MARKER_PREFIX)) {
      throw new CodebError(`Postgres role ${name} was not created by codeb; refusing to drop it.`);
    }
    const taken = ownerConflict(`Postgres role ${name}`, spec.claimedBy, markerOwner(role.rows[0].marker), spec.adoptLegacy);
    if (taken) throw new CodebError(`${taken}; refusing to drop it.`);
    const owned = await this.q<{ datname: string }>(
      `SELECT d.datname FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE r.rolname = $1 ORDER BY 1`,
      [name],
    );
    if (owned.rows.length) {
      ctx.progress(`kept: it still owns database ${owned.rows.map((r) => r.datname).join(', ')}`);
      return;
    }
    try {
      await this.q(`DROP ROLE IF EXISTS ${ident(name)}`);
    } catch (err) {
      if (errCode(err) === '2BP01') {
        throw new CodebError(`Postgres role ${name} cannot be dropped: ${msgOf(err)}`, {
          cause: err,
          hint: `It still owns objects or holds privileges elsewhere. Move or drop them (REASSIGN OWNED BY ${ident(name)} TO <role>; DROP OWNED BY ${ident(name)}; in each database) and run destroy again.`,
        });
      }
      throw err;
    }
    ctx.progress('role dropped');
  }

  /** Create the database if missing, then fix owner, CONNECT privileges and extensions. */
  private async ensureDatabase(name: string, spec: Record<string, unknown>, ctx: ExecContext): Promise<void> {
    const owner = typeof spec.owner === 'string' ? spec.owner : undefined;
    if (!owner) throw new CodebError(`Postgres database ${name} has no owner in its spec.`);
    const extensions = Array.isArray(spec.extensions) ? (spec.extensions as string[]) : [];
    const db = ident(name);

    const before = (await this.observeDatabases([{ kind: 'postgres.database', name, key: `postgres.database/${name}`, spec, dependsOn: [] }]))[0]!;
    if (before.exists && before.conflict) throw new CodebError(before.conflict + '; refusing to change it.');
    if (!before.exists) {
      try {
        await this.q(`CREATE DATABASE ${db} OWNER ${ident(owner)} ENCODING 'UTF8' TEMPLATE template0`);
        ctx.progress('database created');
      } catch (err) {
        // Someone created it between observe and now: carry on and fix what differs.
        if (errCode(err) !== '42P04') throw err;
      }
    } else if (before.spec?.owner !== owner) {
      await this.q(`ALTER DATABASE ${db} OWNER TO ${ident(owner)}`);
      ctx.progress(`owner set to ${owner}`);
    }
    if (!before.exists || before.spec?.publicConnect !== false || spec.publicConnect === true) {
      if (spec.publicConnect === true) {
        await this.q(`GRANT CONNECT ON DATABASE ${db} TO PUBLIC`);
      } else {
        // Postgres grants CONNECT (and TEMPORARY) to PUBLIC on every new database: without this,
        // any role on the server could log in to it.
        await this.q(`REVOKE CONNECT, TEMPORARY ON DATABASE ${db} FROM PUBLIC`);
        if (before.exists) ctx.progress('CONNECT revoked from PUBLIC');
      }
    }
    await this.q(`GRANT CONNECT, TEMPORARY ON DATABASE ${db} TO ${ident(owner)}`);
    if (typeof spec.claimedBy === 'string' && before.spec?.claimedBy !== spec.claimedBy) {
      await this.q(`COMMENT ON DATABASE ${db} IS ${literal(ownerMarker(spec.claimedBy))}`);
    }
    if (spec.systemDatabasesClosed === true && before.spec?.systemDatabasesClosed !== true) {
      // Idempotent; a database missing on this server (template1 dropped by hand) is skipped.
      const present = await this.q<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname = ANY($1::text[]) ORDER BY 1`, [SYSTEM_DATABASES]);
      for (const { datname } of present.rows) await this.q(`REVOKE CONNECT, TEMPORARY ON DATABASE ${ident(datname)} FROM PUBLIC`);
      ctx.progress(`CONNECT and TEMPORARY on ${present.rows.map((r) => r.datname).join(', ')} revoked from PUBLIC`);
    }

    if (extensions.length) {
      const added = await this.inDatabase(name, async (c) => {
        const have = new Set((await c.query<{ extname: string }>('SELECT extname FROM pg_extension')).rows.map((r) => r.extname));
        const missing = extensions.filter((e) => !have.has(e));
        for (const e of missing) await c.query(`CREATE EXTENSION IF NOT EXISTS ${ident(e)}`);
        return missing;
      });
      if (added?.length) ctx.progress(`extension${added.length === 1 ? '' : 's'} ${added.join(', ')} created`);
    }
  }

  /** Explicit data-deleting destroy only: drop the database, ending its sessions. */
  private async deleteDatabase(name: string, spec: Record<string, unknown>, ctx: ExecContext): Promise<void> {
    const before = (await this.observeDatabases([{ kind: 'postgres.database', name, key: `postgres.database/${name}`, spec, dependsOn: [] }]))[0]!;
    if (!before.exists) {
      ctx.progress('already gone');
      return;
    }
    if (before.conflict) throw new CodebError(before.conflict + '; refusing to drop it.');
    const version = Number((await this.q<{ v: string }>(`SELECT current_setting('server_version_num') AS v`)).rows[0]?.v ?? 0);
    if (version >= 130000) {
      await this.q(`DROP DATABASE IF EXISTS ${ident(name)} WITH (FORCE)`);
    } else {
      await this.q(`UPDATE pg_database SET datallowconn = false WHERE datname = $1`, [name]);
      await this.q(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, [name]);
      await this.q(`DROP DATABASE IF EXISTS ${ident(name)}`);
    }
    ctx.progress('database dropped');
  }

  async close(): Promise<void> {
    const p = this.pool;
    this.pool = undefined;
    if (p) await p.end().catch(() => {});
  }
}

function hintFor(err: unknown): string | undefined {
  switch (errCode(err)) {
    case '42501':
      return 'The admin user in the settings lacks a privilege codeb needs (CREATEROLE, CREATEDB, and superuser for most extensions). Use a superuser, as the local stack does.';
    case '0A000':
    case '58P01':
      return 'The extension is not installed on the Postgres server: install its package (e.g. postgresql-contrib) there, or remove it from the manifest.';
    case '55006':
      return 'The database is in use by other sessions; stop the clients using it and try again.';
    default:
      return undefined;
  }
}
