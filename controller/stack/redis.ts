/**
 * Redis for the local stack: the `default` user needs the generated password, 16 databases, data
 * in <stack>/redis/data. Users live in an aclfile (<stack>/redis/users.acl, passwords only as
 * SHA-256), so users that codeb's Redis provider creates and saves with ACL SAVE survive a restart.
 */
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LOOPBACK } from './layout.js';
import { REDIS_USER } from './credentials.js';
import { baseEnv, errorText, tcpExchange, type Part, type PartContext, type ProbeResult, type StartContext } from './part.js';

const quote = (s: string): string => `"${s.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;

const aclFile = (ctx: PartContext): string => join(ctx.paths.redis.root, 'users.acl');

/** The aclfile with the `default` user (re)set to the stack's password; other users are kept. */
export function aclFileText(ctx: StartContext, previous = ''): string {
  const hash = createHash('sha256').update(ctx.creds.redisPassword).digest('hex');
  const others = previous.split('\n').filter((l) => l.trim() !== '' && !/^user\s+default\s/.test(l));
  return [`user ${REDIS_USER} on #${hash} ~* &* +@all`, ...others, ''].join('\n');
}

export function redisConf(ctx: StartContext): string {
  return [
    '# Written by codeb stack up on every start; edits are overwritten.',
    // Loopback for codeb, the services address for containers (their own ACL users and passwords).
    `bind ${LOOPBACK} ${ctx.network.servicesAddress}`,
    `port ${ctx.ports.redis}`,
    'protected-mode yes',
    'daemonize no',
    'supervised no',
    'logfile ""',
    `dir ${quote(ctx.paths.redis.data)}`,
    'databases 16',
    'save 3600 1 300 100 60 10000',
    'appendonly no',
    // Every client must log in (the default user has a password); ACL SAVE writes here.
    `aclfile ${quote(aclFile(ctx))}`,
    '',
  ].join('\n');
}

export const redisPart: Part = {
  name: 'redis',
  stopSignal: 'SIGTERM', // saves the dataset, then exits
  startTimeoutMs: 20_000,
  address: (ctx) => `${LOOPBACK}:${ctx.ports.redis}, ${ctx.network.servicesAddress}:${ctx.ports.redis}`,
  tcpPorts: (ctx) => [ctx.ports.redis],

  async prepare(ctx: StartContext): Promise<void> {
    mkdirSync(ctx.paths.redis.data, { recursive: true, mode: 0o700 });
    writeFileSync(ctx.paths.redis.conf, redisConf(ctx), { mode: 0o600 });
    chmodSync(ctx.paths.redis.conf, 0o600);
    const acl = aclFile(ctx);
    writeFileSync(acl, aclFileText(ctx, existsSync(acl) ? readFileSync(acl, 'utf8') : ''), { mode: 0o600 });
    chmodSync(acl, 0o600);
  },

  launch(ctx: StartContext) {
    return {
      command: ctx.bins.redis,
      args: [ctx.paths.redis.conf],
      env: baseEnv(ctx.env),
      cwd: ctx.paths.redis.root,
    };
  },

  async probe(ctx: PartContext): Promise<ProbeResult> {
    try {
      if (!ctx.creds) {
        const a = (await tcpExchange(LOOPBACK, ctx.ports.redis, 'PING\r\n', (b) => b.includes('\r\n'))).toString();
        return a.startsWith('+PONG') || a.startsWith('-NOAUTH') ? { ok: true } : { ok: false, reason: `unexpected answer ${JSON.stringify(a.slice(0, 60))}` };
      }
      const cmd = (...parts: string[]): string => `*${parts.length}\r\n${parts.map((p) => `$${Buffer.byteLength(p)}\r\n${p}\r\n`).join('')}`;
      const a = (
        await tcpExchange(LOOPBACK, ctx.ports.redis, cmd('AUTH', REDIS_USER, ctx.creds.redisPassword) + cmd('PING'), (b) => b.toString().split('\r\n').length >= 3)
      ).toString();
      if (a.startsWith('+OK\r\n+PONG')) return { ok: true };
      if (a.startsWith('-WRONGPASS')) return { ok: false, fatal: true, reason: "Redis answers but rejects the stack's password from the settings file" };
      if (a.startsWith('-LOADING')) return { ok: false, reason: 'loading its dataset' };
      return { ok: false, reason: `unexpected answer ${JSON.stringify(a.slice(0, 60))}` };
    } catch (err) {
      return { ok: false, reason: errorText(err) };
    }
  },
};
