/**
 * Postgres for backups: pg_dump / pg_restore of the major version that matches the server, row
 * counts taken in the same snapshot as the dump, scratch and restore databases. The Postgres
 * adapter for controller/ops.
 *
 * The admin password reaches pg_dump and pg_restore through PGPASSWORD in their environment, never
 * their arguments (which any user on the machine can read in /proc). Database names passed here are
 * validated SQL identifiers (names.ts rules); DDL quotes them with pg's escapeIdentifier.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { CodebError, ServiceUnavailableError } from '../errors.js';
import type { Settings } from '../settings.js';
import { findProgram } from '../stack/binaries.js';
import type { TableCount } from './backup-layout.js';

const { Client, escapeIdentifier: ident } = pg;

const SQL_IDENT = /^[a-z_][a-z0-9_]{0,62}$/;

export function assertDatabaseName(name: string): string {
  if (!SQL_IDENT.test(name)) throw new CodebError(`Invalid database name ${JSON.stringify(name)}: lowercase letters, digits and _, at most 63 characters.`, { exitCode: 2 });
  return name;
}

const TABLES_SQL = `
  SELECT n.nspname AS schema, c.relname AS table
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'p')
     AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
     AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
   ORDER BY 1, 2`;

async function countTables(c: pg.Client): Promise<TableCount[]> {
  const tables = (await c.query<{ schema: string; table: string }>(TABLES_SQL)).rows;
  const out: TableCount[] = [];
  for (const t of tables) {
    const r = await c.query<{ n: string }>(`SELECT count(*) AS n FROM ${ident(t.schema)}.${ident(t.table)}`);
    out.push({ schema: t.schema, table: t.table, rows: Number(r.rows[0]!.n) });
  }
  return out;
}

interface Tool {
  path: string;
  version: string;
  major: number;
}

export class BackupDatabase {
  constructor(
    private readonly settings: Settings['postgres'],
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  get address(): string {
    return `${this.settings.host}:${this.settings.port}`;
  }

  private async connect(database: string): Promise<pg.Client> {
    const c = new Client({
      host: this.settings.host,
      port: this.settings.port,
      user: this.settings.user,
      password: this.settings.password,
      database,
      connectionTimeoutMillis: 5000,
      application_name: 'codeb-backup',
    });
    c.on('error', () => {});
    try {
      await c.connect();
    } catch (err) {
      await c.end().catch(() => {});
      const code = (err as { code?: string }).code;
      if (code === '3D000') throw new CodebError(`Postgres database ${database} does not exist on ${this.address}.`, { hint: 'Apply the project first (`codeb apply`), or check the project and environment names.' });
      throw new ServiceUnavailableError('Postgres', this.address, err);
    }
    return c;
  }

  private async admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
    const c = await this.connect(this.settings.database);
    try {
      return await fn(c);
    } finally {
      await c.end().catch(() => {});
    }
  }

  async serverVersion(): Promise<{ text: string; major: number }> {
    return this.admin(async (c) => {
      const r = await c.query<{ v: string; n: string }>(`SELECT current_setting('server_version') AS v, current_setting('server_version_num') AS n`);
      return { text: r.rows[0]!.v, major: Math.floor(Number(r.rows[0]!.n) / 10000) };
    });
  }

  /**
   * pg_dump or pg_restore able to talk to a server of this major version: Debian keeps one per
   * major in /usr/lib/postgresql/<major>/bin; the same major is taken first, else the newest
   * newer one (pg_dump reads older servers, never newer ones), else the one on PATH if new enough.
   */
  async tool(program: 'pg_dump' | 'pg_restore', serverMajor: number): Promise<Tool> {
    const root = '/usr/lib/postgresql';
    const dirs: string[] = [];
    if (this.env.CODEB_PG_BINDIR) dirs.push(this.env.CODEB_PG_BINDIR);
    if (existsSync(root)) {
      const majors = readdirSync(root).filter((v) => /^\d+$/.test(v)).map(Number).filter((m) => m >= serverMajor);
      majors.sort((a, b) => (a === serverMajor ? -1 : b === serverMajor ? 1 : b - a));
      dirs.push(...majors.map((m) => join(root, String(m), 'bin')));
    }
    const candidates = [...dirs.map((d) => join(d, program)).filter((f) => existsSync(f)), findProgram(program, this.env)].filter((f): f is string => Boolean(f));
    for (const path of candidates) {
      const out = await run(path, ['--version'], {}).catch(() => null);
      const m = out && /(\d+)(?:\.\d+)?/.exec(out.stdout);
      if (m && Number(m[1]) >= serverMajor) return { path, version: out!.stdout.trim(), major: Number(m[1]) };
    }
    throw new CodebError(`No ${program} for Postgres ${serverMajor} (the server's major version) is installed.`, {
      hint: `Install it: \`apt-get install postgresql-client-${serverMajor}\` (Debian/PGDG), or set CODEB_PG_BINDIR to a folder holding ${program} ${serverMajor} or newer.`,
    });
  }

  private childEnv(): NodeJS.ProcessEnv {
    const keep = ['PATH', 'LANG', 'LC_ALL', 'TZ', 'HOME'];
    const env: NodeJS.ProcessEnv = {};
    for (const k of keep) if (this.env[k] !== undefined) env[k] = this.env[k];
    if (this.settings.password) env.PGPASSWORD = this.settings.password;
    return env;
  }

  private connArgs(database: string): string[] {
    return ['--host', this.settings.host, '--port', String(this.settings.port), '--username', this.settings.user, '--no-password', `--dbname=${assertDatabaseName(database)}`];
  }

  /**
   * pg_dump (custom format) of `database` into `file`, and the row count of every table taken in
   * the same snapshot (an exported snapshot held open for the dump), so the counts describe
   * exactly the rows in the dump even while the app keeps writing.
   */
  async dump(database: string, file: string, tool: Tool, onTable: (name: string) => void): Promise<TableCount[]> {
    const c = await this.connect(assertDatabaseName(database));
    try {
      await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const snap = (await c.query<{ s: string }>('SELECT pg_export_snapshot() AS s')).rows[0]!.s;
      const tables = await countTables(c);
      await run(tool.path, ['--format=custom', '--verbose', `--snapshot=${snap}`, `--file=${file}`, ...this.connArgs(database)], this.childEnv(), (line) => {
        const m = /dumping contents of table "?([^"\s]+)"?(?:\."?([^"\s]+)"?)?/.exec(line);
        if (m) onTable(m[2] ? `${m[1]}.${m[2]}` : m[1]!);
      });
      await c.query('COMMIT');
      return tables;
    } finally {
      await c.end().catch(() => {});
    }
  }

  /** The owning role of a database, or null when it does not exist. */
  async ownerOf(database: string): Promise<string | null> {
    return this.admin(async (c) => {
      const r = await c.query<{ owner: string }>('SELECT r.rolname AS owner FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = $1', [database]);
      return r.rows[0]?.owner ?? null;
    });
  }

  async exists(database: string): Promise<boolean> {
    return this.admin(async (c) => (await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [database])).rowCount === 1);
  }

  /** A new empty database; with an owner it is that role's and closed to everyone else, as codeb makes them. */
  async create(database: string, owner: string | null): Promise<void> {
    const db = ident(assertDatabaseName(database));
    await this.admin(async (c) => {
      await c.query(`CREATE DATABASE ${db}${owner ? ` OWNER ${ident(assertDatabaseName(owner))}` : ''} ENCODING 'UTF8' TEMPLATE template0`);
      await c.query(`REVOKE CONNECT, TEMPORARY ON DATABASE ${db} FROM PUBLIC`);
      if (owner) await c.query(`GRANT CONNECT, TEMPORARY ON DATABASE ${db} TO ${ident(owner)}`);
    });
  }

  /** pg_restore into an existing empty database. `keepOwners`: objects keep the roles they had (restore); off for scratch checks. */
  async restore(file: string, database: string, tool: Tool, opts: { keepOwners: boolean; clean?: boolean }, onLine?: (line: string) => void): Promise<void> {
    const args = [
      '--exit-on-error',
      '--verbose',
      ...(opts.keepOwners ? [] : ['--no-owner', '--no-privileges']),
      // In place: drop what the dump recreates, all or nothing.
      ...(opts.clean ? ['--clean', '--if-exists', '--single-transaction'] : []),
      ...this.connArgs(database),
      file,
    ];
    await run(tool.path, args, this.childEnv(), onLine);
  }

  async counts(database: string): Promise<TableCount[]> {
    const c = await this.connect(assertDatabaseName(database));
    try {
      return await countTables(c);
    } finally {
      await c.end().catch(() => {});
    }
  }

  async drop(database: string): Promise<void> {
    await this.admin((c) => c.query(`DROP DATABASE IF EXISTS ${ident(assertDatabaseName(database))} WITH (FORCE)`));
  }
}

/** Run a program (argument array, no shell); stderr lines go to onLine; non-zero exit is an error with stderr's tail. */
function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, onLine?: (line: string) => void): Promise<{ stdout: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let tail: string[] = [];
    let partial = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => {
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) {
        onLine?.(l);
        tail = [...tail.slice(-9), l];
      }
    });
    p.on('error', (err) => reject(new CodebError(`Could not run ${cmd}: ${err.message}`, { cause: err })));
    p.on('close', (code, signal) => {
      if (partial) tail.push(partial);
      if (code === 0) return resolve({ stdout });
      const errors = tail.filter((l) => !/: (dumping|processing|creating|restoring|executing|connecting|reading|last built-in|identifying|finding|flagging|saving|implied data-only)/.test(l) || /error/i.test(l));
      reject(new CodebError(`${cmd.split('/').pop()} failed (${signal ?? `exit ${code}`}): ${(errors.slice(-3).join(' | ') || tail.slice(-3).join(' | ')).trim()}`));
    });
  });
}
