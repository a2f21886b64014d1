/**
 * Postgres for the local stack: one cluster in <stack>/postgres/data, superuser `codeb` with a SCRAM
 * password, listening on 127.0.0.1 and a unix socket in <stack>/postgres/run.
 * Postgres refuses to run as root: when codeb runs as root, the cluster belongs to the `postgres`
 * system user and every postgres program runs as that user.
 */
import { execFileSync, spawn } from 'node:child_process';
import { appendFileSync, chmodSync, chownSync, existsSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { CodebError } from '../errors.js';
import { PG_ADMIN_USER } from './credentials.js';
import { LOOPBACK } from './layout.js';
import { baseEnv, errorText, tcpExchange, type Part, type PartContext, type ProbeResult, type StartContext } from './part.js';

interface RunAs {
  uid: number;
  gid: number;
  name: string;
}

function lookupUser(name: string): RunAs | undefined {
  try {
    const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    return Number.isInteger(uid) && Number.isInteger(gid) ? { uid, gid, name } : undefined;
  } catch {
    return undefined;
  }
}

/** Who runs postgres: ourselves, or the `postgres` system user when we are root. */
function runAs(ctx: PartContext): RunAs | undefined {
  if (!ctx.isRoot) return undefined;
  const user = lookupUser(ctx.env.CODEB_STACK_PG_OS_USER ?? 'postgres');
  if (!user || user.uid === 0) {
    throw new CodebError('codeb runs as root, and Postgres refuses to run as root, but there is no `postgres` system user.', {
      hint: 'Install the postgresql package (`bash scripts/setup.sh` does) which creates that user, or run `codeb stack up` as a normal user.',
    });
  }
  return user;
}

/**
 * The postgres user must be able to walk down to its data folder. Folders we own that block it
 * (root's home is 0700, mkdtemp folders are 0700) get the search bit for others (o+x: enter, not list).
 */
function ensureReachable(target: string, user: RunAs, notes: string[]): void {
  const chain: string[] = [];
  for (let d = dirname(target); ; d = dirname(d)) {
    chain.unshift(d);
    if (dirname(d) === d) break;
  }
  for (const d of chain) {
    const st = statSync(d);
    const ok =
      (st.uid === user.uid && st.mode & 0o100) || (st.gid === user.gid && st.mode & 0o010) || st.mode & 0o001;
    if (ok) continue;
    if (st.uid === process.getuid?.()) {
      chmodSync(d, (st.mode & 0o7777) | 0o001);
      notes.push(`made ${d} enterable by others (chmod o+x) so the ${user.name} user can reach the Postgres data folder`);
    } else {
      throw new CodebError(`The ${user.name} user cannot reach ${target}: ${d} does not let it in.`, {
        hint: `Allow it with \`chmod o+x ${d}\`, or put the stack elsewhere (e.g. CODEB_HOME=/var/lib/codeb).`,
      });
    }
  }
}

function sh(cmd: string, args: string[], opts: { uid?: number; gid?: number; cwd: string; env: NodeJS.ProcessEnv; input?: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, uid: opts.uid, gid: opts.gid, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} exited with code ${code}:\n${out.trim()}`))));
    child.stdin.end(opts.input ?? '');
  });
}

/**
 * Password (SCRAM) logins only: on the local socket, loopback, and from the container network pool
 * at the services address — where the stack's superuser is refused even with its password, so a
 * container never gets admin rights whatever it learns.
 */
export function hbaConf(pool: string): string {
  return `# Written by codeb stack up: password (SCRAM) logins only; the superuser only from the host.
local   all   all                  scram-sha-256
host    all   all   127.0.0.1/32   scram-sha-256
host    all   all   ::1/128        scram-sha-256
host    all   ${PG_ADMIN_USER}   ${pool}   reject
host    all   all   ${pool}   scram-sha-256
`;
}

function socketDirFor(ctx: PartContext): string {
  // A unix socket path must fit in 107 bytes; without it Postgres still listens on TCP.
  return `${ctx.paths.postgres.socketDir}/.s.PGSQL.${ctx.ports.postgres}`.length <= 107 ? ctx.paths.postgres.socketDir : '';
}

export const postgresPart: Part = {
  name: 'postgres',
  stopSignal: 'SIGINT', // "fast" shutdown: roll back open transactions, checkpoint, exit
  startTimeoutMs: 60_000,
  address: (ctx) => `${LOOPBACK}:${ctx.ports.postgres}, ${ctx.network.servicesAddress}:${ctx.ports.postgres}`,
  tcpPorts: (ctx) => [ctx.ports.postgres],

  async prepare(ctx: StartContext): Promise<void> {
    const { root, data, socketDir } = ctx.paths.postgres;
    const user = runAs(ctx);
    mkdirSync(root, { recursive: true, mode: 0o755 });
    mkdirSync(socketDir, { recursive: true, mode: 0o755 });
    const fresh = !existsSync(join(data, 'PG_VERSION'));
    if (fresh) mkdirSync(data, { recursive: true, mode: 0o700 });
    if (user) {
      ensureReachable(root, user, ctx.notes);
      chownSync(socketDir, user.uid, user.gid);
      if (fresh) chownSync(data, user.uid, user.gid);
    }
    if (!socketDirFor(ctx)) ctx.notes.push(`the stack folder path is too long for a Postgres unix socket; Postgres listens on TCP only`);
    const env = baseEnv(ctx.env);
    const log = ctx.paths.log('postgres');
    mkdirSync(dirname(log), { recursive: true });

    if (fresh) {
      const pwfile = join(root, '.initdb-password');
      writeFileSync(pwfile, ctx.creds.pgPassword + '\n', { mode: 0o600 });
      if (user) chownSync(pwfile, user.uid, user.gid);
      try {
        const locale = existsSync('/usr/lib/locale/C.utf8') ? ['--locale=C.UTF-8'] : ['--no-locale'];
        const out = await sh(
          ctx.bins.initdb,
          ['-D', data, '-U', PG_ADMIN_USER, `--pwfile=${pwfile}`, '--auth-local=scram-sha-256', '--auth-host=scram-sha-256', '-E', 'UTF8', ...locale, '--no-sync'],
          { uid: user?.uid, gid: user?.gid, cwd: root, env },
        );
        appendFileSync(log, out);
      } catch (err) {
        rmSync(data, { recursive: true, force: true }); // a half-made cluster would fail every later start
        throw new Error(`initdb failed: ${errorText(err)}`);
      } finally {
        rmSync(pwfile, { force: true });
      }
    } else if (ctx.creds.fresh.postgres) {
      // The cluster exists but settings.json (which held its password) was lost: set a new one.
      // Single-user mode needs no login; the password goes over stdin, never on a command line.
      const sql = `ALTER ROLE "${PG_ADMIN_USER}" WITH PASSWORD '${ctx.creds.pgPassword.replaceAll("'", "''")}';\n`;
      // On an error Postgres logs the statement (STATEMENT: ALTER ROLE ... PASSWORD '...'): the
      // password is cut out of whatever this reports.
      const hide = (text: string) => text.replaceAll(ctx.creds.pgPassword.replaceAll("'", "''"), '[redacted]').replaceAll(ctx.creds.pgPassword, '[redacted]');
      const out = await sh(ctx.bins.postgres, ['--single', '-D', data, 'postgres'], { uid: user?.uid, gid: user?.gid, cwd: root, env, input: sql }).catch((err: Error) => {
        throw new Error(hide(err.message));
      });
      if (/\bERROR:/.test(out)) throw new Error(`could not reset the ${PG_ADMIN_USER} password: ${hide(out.trim())}`);
      ctx.notes.push(`settings had no Postgres password for the existing cluster: set a new one for role ${PG_ADMIN_USER}`);
    }
    writeFileSync(join(data, 'pg_hba.conf'), hbaConf(ctx.network.pool), { mode: 0o600 });
    if (user) chownSync(join(data, 'pg_hba.conf'), user.uid, user.gid);
  },

  launch(ctx: StartContext) {
    const user = runAs(ctx);
    return {
      command: ctx.bins.postgres,
      args: [
        '-D', ctx.paths.postgres.data,
        '-c', `listen_addresses=${LOOPBACK},${ctx.network.servicesAddress}`,
        '-c', `port=${ctx.ports.postgres}`,
        '-c', `unix_socket_directories=${socketDirFor(ctx)}`,
        '-c', 'logging_collector=off',
      ],
      env: baseEnv(ctx.env),
      cwd: ctx.paths.postgres.root,
      uid: user?.uid,
      gid: user?.gid,
    };
  },

  async probe(ctx: PartContext): Promise<ProbeResult> {
    const port = ctx.ports.postgres;
    if (!ctx.creds) {
      // No credentials to log in with: an SSLRequest answered with 'S' or 'N' proves Postgres listens.
      try {
        const a = await tcpExchange(LOOPBACK, port, Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]), (b) => b.length >= 1);
        return a[0] === 0x4e || a[0] === 0x53 ? { ok: true } : { ok: false, reason: 'something else answers on this port' };
      } catch (err) {
        return { ok: false, reason: errorText(err) };
      }
    }
    // `default` (the CommonJS exports object): the bundle's chunk of a CommonJS package has no named exports.
    const { Client } = (await import('pg')).default;
    const client = new Client({
      host: LOOPBACK,
      port,
      user: PG_ADMIN_USER,
      password: ctx.creds.pgPassword,
      database: 'postgres',
      connectionTimeoutMillis: 2000,
    });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.query('SELECT 1');
      return { ok: true };
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === '28P01' || code === '28000') {
        return { ok: false, fatal: true, reason: `Postgres answers but rejects the stack's ${PG_ADMIN_USER} password from the settings file` };
      }
      return { ok: false, reason: errorText(err) };
    } finally {
      await client.end().catch(() => {});
    }
  },
};
