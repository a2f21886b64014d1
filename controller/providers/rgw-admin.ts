/**
 * `radosgw-admin`, the Ceph RADOS Gateway's user tool, run with an argument array (never a shell).
 * Standalone gateways with the dbstore backend have no user admin REST API, so users are made here.
 *
 * Secret keys never go on the command line (any local user can read /proc/<pid>/cmdline): they are
 * handed over in CEPH_ARGS, which Ceph programs append to their arguments, in the environment of a
 * child only its owner can read. Output that holds keys is parsed, never printed or logged.
 */
import { spawn } from 'node:child_process';
import { CodebError } from '../errors.js';

/** radosgw-admin's exit code when the user does not exist (ENOENT is 2; RGW answers EINVAL=22). */
const NO_SUCH_USER = new Set([2, 22]);
const NOT_FOUND_TEXT = /could not fetch user info|no user info saved/i;
/** How long a command that has answered may take to exit before it is killed (see run()). */
const EXIT_GRACE_MS = 500;

/**
 * The exit code a complete answer implies, or null while it is not complete: a whole JSON document
 * on stdout is success; "could not fetch user info" is radosgw-admin's not-found (exit 22). Pure.
 */
export function answered(stdout: string, stderr: string): number | null {
  const out = stdout.trim();
  if (out.startsWith('{') && out.endsWith('}')) {
    try {
      JSON.parse(out);
      return 0;
    } catch {
      // not complete yet
    }
  }
  return NOT_FOUND_TEXT.test(stderr) ? 22 : null;
}

export interface RgwKey {
  accessKey: string;
  secretKey: string;
}

export interface RgwUser {
  id: string;
  /** S3 access keys only (no secrets). */
  accessKeys: string[];
  /** Whether this exact pair is one of the user's keys. */
  hasKey(key: RgwKey): boolean;
  maxBuckets: number;
  suspended: boolean;
}

/** A gateway user id codeb makes: lowercase letters, digits, dots and dashes (names.ts storageUser). */
const USER_ID = /^[a-z0-9][a-z0-9.-]{0,62}$/;
/** Keys codeb hands over in CEPH_ARGS, which is split on spaces: no spaces, nothing to quote. */
const KEY = /^[A-Za-z0-9_+/=-]{8,128}$/;

export function checkUserId(id: string): string {
  if (!USER_ID.test(id)) throw new CodebError(`"${id}" is not a valid RADOS Gateway user id for codeb (lowercase letters, digits, dots, dashes).`);
  return id;
}

function checkKey(key: RgwKey): RgwKey {
  if (!KEY.test(key.accessKey) || !KEY.test(key.secretKey)) {
    throw new CodebError('An S3 key pair for the RADOS Gateway has characters codeb cannot pass safely (letters, digits, _ - + / = only).');
  }
  return key;
}

/** CEPH_ARGS carrying a key pair (the environment, not the command line). Pure. */
export function keyEnv(key: RgwKey): Record<string, string> {
  const k = checkKey(key);
  return { CEPH_ARGS: `--access-key ${k.accessKey} --secret-key ${k.secretKey}` };
}

/** The arguments of each command, after the configured prefix. Pure; tested as exact lists. */
export const rgwArgs = {
  userInfo: (id: string) => ['user', 'info', `--uid=${checkUserId(id)}`],
  /** With keys from keyEnv(); max-buckets -1 = the user cannot create buckets (codeb makes them). */
  userCreate: (id: string, displayName: string, maxBuckets: number) => [
    'user',
    'create',
    `--uid=${checkUserId(id)}`,
    `--display-name=${displayName.replace(/[^\w .:/@-]/g, '_')}`,
    `--max-buckets=${maxBuckets}`,
    '--key-type=s3',
  ],
  userModify: (id: string, maxBuckets: number) => ['user', 'modify', `--uid=${checkUserId(id)}`, `--max-buckets=${maxBuckets}`],
  /** With keys from keyEnv(). */
  keyCreate: (id: string) => ['key', 'create', `--uid=${checkUserId(id)}`, '--key-type=s3'],
  keyRemove: (id: string, accessKey: string) => ['key', 'rm', `--uid=${checkUserId(id)}`, '--key-type=s3', `--access-key=${checkKey({ accessKey, secretKey: 'xxxxxxxx' }).accessKey}`],
  /** The user's buckets are codeb's, not the user's: they are never purged with the user. */
  userRemove: (id: string) => ['user', 'rm', `--uid=${checkUserId(id)}`],
};

interface UserJson {
  user_id?: string;
  max_buckets?: number;
  suspended?: number;
  keys?: Array<{ access_key?: string; secret_key?: string }>;
}

export class RgwAdmin {
  constructor(
    /** Program and leading arguments (from settings.storage.rgwAdmin), e.g. ['radosgw-admin', '--cluster=ceph']. */
    private readonly command: readonly string[],
    /** A command that neither answers nor exits in this time is killed (and fails). */
    private readonly timeoutMs = 20_000,
  ) {
    if (!command.length) throw new CodebError('settings.storage.rgwAdmin is empty: codeb cannot run radosgw-admin.', { hint: 'Run `codeb stack up` with CODEB_STACK_S3=radosgw, or set it to the radosgw-admin command of your gateway.' });
  }

  async userInfo(id: string): Promise<RgwUser | null> {
    const r = await this.run(rgwArgs.userInfo(id));
    if (r.code !== 0 && NO_SUCH_USER.has(r.code ?? -1) && NOT_FOUND_TEXT.test(r.stderr)) return null;
    if (r.code !== 0) throw this.failed(`read user ${id}`, r);
    return parseUser(r.stdout, id);
  }

  async createUser(id: string, displayName: string, key: RgwKey, maxBuckets: number): Promise<void> {
    const r = await this.run(rgwArgs.userCreate(id, displayName, maxBuckets), keyEnv(key));
    if (r.code !== 0) throw this.failed(`create user ${id}`, r);
  }

  async setMaxBuckets(id: string, maxBuckets: number): Promise<void> {
    const r = await this.run(rgwArgs.userModify(id, maxBuckets));
    if (r.code !== 0) throw this.failed(`change user ${id}`, r);
  }

  /** Make `key` the user's only S3 key. */
  async replaceKeys(id: string, key: RgwKey): Promise<void> {
    const user = await this.userInfo(id);
    if (!user) throw new CodebError(`RADOS Gateway user ${id} does not exist.`);
    if (!user.hasKey(key)) {
      const r = await this.run(rgwArgs.keyCreate(id), keyEnv(key));
      if (r.code !== 0) throw this.failed(`set the key of user ${id}`, r);
    }
    for (const old of user.accessKeys.filter((k) => k !== key.accessKey)) {
      const r = await this.run(rgwArgs.keyRemove(id, old));
      if (r.code !== 0) throw this.failed(`remove an old key of user ${id}`, r);
    }
  }

  /** Remove the user; done when it is gone (user rm prints nothing, so the result is read back). */
  async removeUser(id: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      if (!(await this.userInfo(id))) return;
      // It prints nothing: a hang on exit is only seen as the time running out (a few seconds).
      const r = await this.run(rgwArgs.userRemove(id), {}, 5_000);
      if (!(await this.userInfo(id))) return;
      if (attempt >= 3) throw this.failed(`remove user ${id}`, r);
    }
  }

  /**
   * Run one command. radosgw-admin 18 with dbstore sometimes hangs on exit after it has done its
   * work and printed its answer (seen here in about one run in five, output complete): once the
   * answer is complete (a whole JSON document, or a final error line) it gets a moment to exit and
   * is then killed, with the exit code the answer implies. Commands that print nothing (user rm)
   * are checked afterwards by the caller.
   */
  private run(args: string[], extraEnv: Record<string, string> = {}, timeoutMs = this.timeoutMs): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const [program, ...lead] = this.command;
    return new Promise((resolve, reject) => {
      const child = spawn(program!, [...lead, ...args], {
        env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C', ...extraEnv },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      let implied: number | null = null;
      let grace: NodeJS.Timeout | undefined;
      const timeout = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const check = (): void => {
        if (implied !== null) return;
        implied = answered(stdout, stderr);
        if (implied !== null) grace = setTimeout(() => child.kill('SIGKILL'), EXIT_GRACE_MS);
      };
      child.stdout.on('data', (c: Buffer) => {
        stdout += c.toString();
        check();
      });
      child.stderr.on('data', (c: Buffer) => {
        stderr += c.toString();
        check();
      });
      child.on('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timeout);
        clearTimeout(grace);
        reject(
          new CodebError(`Cannot run radosgw-admin (${program}): ${err.code ?? err.message}.`, {
            hint: 'Is the local stack up with CODEB_STACK_S3=radosgw (and codeb running as root)? See docs/stack.md.',
          }),
        );
      });
      child.on('close', (code) => {
        clearTimeout(timeout);
        clearTimeout(grace);
        resolve({ code: code ?? implied, stdout, stderr });
      });
    });
  }

  /** stderr only: stdout can hold keys. */
  private failed(what: string, r: { code: number | null; stderr: string }): CodebError {
    const lines = r.stderr
      .split('\n')
      .filter((l) => l.trim() && !/did not load config file|Errors while parsing config file|can't open ceph.conf|DBStore backend|rgw dbstore:/.test(l))
      .slice(-3)
      .join(' | ');
    return new CodebError(`radosgw-admin could not ${what} (exit ${r.code ?? 'timeout'}): ${lines || 'no message'}`, {
      hint: 'Check that the gateway\'s store is the one settings.storage.rgwAdmin points at; re-running converges once the cause is fixed.',
    });
  }
}

/** radosgw-admin's user JSON -> what codeb needs (secrets are compared, never kept). */
export function parseUser(stdout: string, id: string): RgwUser {
  let j: UserJson;
  try {
    j = JSON.parse(stdout) as UserJson;
  } catch {
    throw new CodebError(`radosgw-admin answered something other than JSON for user ${id}.`);
  }
  const keys = (j.keys ?? []).filter((k) => typeof k.access_key === 'string');
  return {
    id: j.user_id ?? id,
    accessKeys: keys.map((k) => k.access_key!),
    hasKey: (key) => keys.some((k) => k.access_key === key.accessKey && k.secret_key === key.secretKey),
    maxBuckets: j.max_buckets ?? 0,
    suspended: (j.suspended ?? 0) !== 0,
  };
}
