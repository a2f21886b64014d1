/**
 * Where the local stack keeps its files and which loopback ports it uses.
 * Pure functions of the environment; nothing here touches the disk.
 */
import { dirname, join, resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { settingsPath, stackDir } from '../settings.js';
import { CodebError, EXIT } from '../errors.js';
import { DEFAULT_NETWORK_POOL, formatCidr, parsePool, servicesAddress, servicesInterfaceName } from '../runtime/network.js';

export const PART_NAMES = ['postgres', 'redis', 's3', 'caddy', 'podman', 'forwarder'] as const;
export type PartName = (typeof PART_NAMES)[number];

export const LOOPBACK = '127.0.0.1';

export interface StackPorts {
  postgres: number;
  redis: number;
  s3: number;
  http: number;
  https: number;
}

/**
 * Default ports are the services' usual ports plus a base of 20000 (25432, 26379, 29000, 28080,
 * 28443), so they never collide with system services on 5432, 6379, 9000, 80, 443. Caddy's admin
 * API has no port: it listens on a Unix socket (caddy/run/admin.sock).
 * CODEB_STACK_PORT_BASE moves them all at once (base 30000 -> 35432, 36379, ...);
 * the per-service variables win over the base.
 */
export const DEFAULT_PORT_BASE = 20000;
const OFFSETS: StackPorts = { postgres: 5432, redis: 6379, s3: 9000, http: 8080, https: 8443 };
export const PORT_ENV: Record<keyof StackPorts, string> = {
  postgres: 'CODEB_STACK_PG_PORT',
  redis: 'CODEB_STACK_REDIS_PORT',
  s3: 'CODEB_STACK_S3_PORT',
  http: 'CODEB_STACK_HTTP_PORT',
  https: 'CODEB_STACK_HTTPS_PORT',
};

function parsePort(name: string, raw: string, min: number, max: number): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new CodebError(`${name}=${raw} is not a valid value (expected a whole number from ${min} to ${max}).`, {
      exitCode: EXIT.invalid,
      hint: `Unset ${name} or give it a number in range, e.g. ${name}=${min === 1024 ? 30000 : 30432}.`,
    });
  }
  return n;
}

export function stackPorts(env: NodeJS.ProcessEnv = process.env, base?: number): StackPorts {
  const maxOffset = Math.max(...Object.values(OFFSETS));
  const b =
    base ??
    (env.CODEB_STACK_PORT_BASE
      ? parsePort('CODEB_STACK_PORT_BASE', env.CODEB_STACK_PORT_BASE, 1024, 65535 - maxOffset)
      : DEFAULT_PORT_BASE);
  const out = {} as StackPorts;
  for (const key of Object.keys(OFFSETS) as (keyof StackPorts)[]) {
    const raw = env[PORT_ENV[key]];
    out[key] = raw ? parsePort(PORT_ENV[key], raw, 1024, 65535) : b + OFFSETS[key];
  }
  const seen = new Map<number, string>();
  for (const [key, port] of Object.entries(out)) {
    const other = seen.get(port);
    if (other) {
      throw new CodebError(`The local stack would use port ${port} for both ${other} and ${key}.`, {
        exitCode: EXIT.invalid,
        hint: 'Give each CODEB_STACK_*_PORT its own value.',
      });
    }
    seen.set(port, key);
  }
  return out;
}

/** Every file the stack writes, relative to one directory. */
export interface StackPaths {
  dir: string;
  logs: string;
  run: string;
  log(part: PartName): string;
  pidFile(part: PartName): string;
  lockFile: string;
  postgres: { root: string; data: string; socketDir: string };
  redis: { root: string; conf: string; data: string };
  /** data: s3rver's buckets; rgw: the RADOS Gateway's dbstore (CODEB_STACK_S3=radosgw). */
  s3: { root: string; data: string; rgw: string };
  /** adminSocket: Caddy's admin API (in a 0700 folder). */
  caddy: { root: string; config: string; xdgConfig: string; xdgData: string; adminSocket: string };
  podman: {
    root: string;
    containersConf: string;
    storageConf: string;
    graphRoot: string;
    runRoot: string;
    tmp: string;
    networks: string;
    xdgRuntime: string;
    socket: string;
  };
  /** The forwarder: control socket, host router socket (Caddy dials it), persisted entries and routes. */
  forwarder: { root: string; socket: string; router: string; table: string };
}

export function stackPaths(dir: string): StackPaths {
  const d = resolve(dir);
  const logs = join(d, 'logs');
  const run = join(d, 'run');
  const caddyRoot = join(d, 'caddy');
  const podmanRoot = join(d, 'podman');
  return {
    dir: d,
    logs,
    run,
    log: (part) => join(logs, `${part}.log`),
    pidFile: (part) => join(run, `${part}.pid`),
    lockFile: join(d, 'stack.lock'),
    postgres: { root: join(d, 'postgres'), data: join(d, 'postgres', 'data'), socketDir: join(d, 'postgres', 'run') },
    redis: { root: join(d, 'redis'), conf: join(d, 'redis', 'redis.conf'), data: join(d, 'redis', 'data') },
    s3: { root: join(d, 's3'), data: join(d, 's3', 'data'), rgw: join(d, 's3', 'rgw') },
    caddy: {
      root: caddyRoot,
      config: join(caddyRoot, 'caddy.json'),
      xdgConfig: join(caddyRoot, 'config'),
      xdgData: join(caddyRoot, 'data'),
      adminSocket: join(caddyRoot, 'run', 'admin.sock'),
    },
    podman: {
      root: podmanRoot,
      containersConf: join(podmanRoot, 'containers.conf'),
      storageConf: join(podmanRoot, 'storage.conf'),
      graphRoot: join(podmanRoot, 'storage'),
      runRoot: join(podmanRoot, 'run'),
      tmp: join(podmanRoot, 'tmp'),
      networks: join(podmanRoot, 'networks'),
      xdgRuntime: join(podmanRoot, 'xdg-runtime'),
      socket: join(podmanRoot, 'podman.sock'),
    },
    forwarder: {
      root: join(d, 'forwarder'),
      socket: join(d, 'forwarder', 'control.sock'),
      router: join(d, 'forwarder', 'router.sock'),
      table: join(d, 'forwarder', 'table.json'),
    },
  };
}

export type S3Kind = 's3rver' | 'radosgw';

/**
 * Which S3 server the stack runs: CODEB_STACK_S3 when set, else what the settings file says the
 * stack last ran (so a plain `up` keeps a radosgw stack a radosgw stack), else s3rver. Pure.
 */
export function chooseS3Kind(fromEnv: string | undefined, fromSettings: string | undefined): S3Kind {
  if (fromEnv !== undefined && fromEnv !== '') {
    if (fromEnv === 's3rver' || fromEnv === 'radosgw') return fromEnv;
    throw new CodebError(`CODEB_STACK_S3=${fromEnv} is not an S3 server the local stack can run.`, {
      exitCode: EXIT.invalid,
      hint: 'Use CODEB_STACK_S3=s3rver (the default: no root needed, one shared key) or CODEB_STACK_S3=radosgw (Ceph RADOS Gateway in a Debian 13 rootfs: root, a key per project).',
    });
  }
  return fromSettings === 'radosgw' ? 'radosgw' : 's3rver';
}

/** Options shared by ensureStack / stackStatus / stopStack. */
export interface StackOptions {
  /** Environment to read CODEB_HOME, CODEB_STACK_* from (default: process.env). */
  env?: NodeJS.ProcessEnv;
  /** Stack directory (default: stackDir(env), i.e. $CODEB_HOME/stack). */
  dir?: string;
  /** Where to write the Settings (default: settingsPath(env); `<dir>/settings.json` when `dir` is given). */
  settingsFile?: string;
  /** Move all ports at once (same as CODEB_STACK_PORT_BASE). */
  portBase?: number;
}

/** The stack's container network: the pool, the services address and the interface holding it. */
export interface StackNetwork {
  pool: string;
  servicesAddress: string;
  interface: string;
}

/** CODEB_NETWORK_POOL (default 10.99.0.0/16): two stacks running at once need pools of their own, like ports. */
export function stackNetwork(env: NodeJS.ProcessEnv, dir: string): StackNetwork {
  const pool = parsePool(env.CODEB_NETWORK_POOL || DEFAULT_NETWORK_POOL);
  return { pool: formatCidr(pool), servicesAddress: servicesAddress(pool), interface: servicesInterfaceName(resolve(dir)) };
}

export interface ResolvedStack {
  env: NodeJS.ProcessEnv;
  paths: StackPaths;
  ports: StackPorts;
  network: StackNetwork;
  settingsFile: string;
}

export function resolveStack(opts: StackOptions = {}): ResolvedStack {
  const env = opts.env ?? process.env;
  const dir = opts.dir ? resolve(opts.dir) : stackDir(env);
  const settingsFile = opts.settingsFile
    ? resolve(opts.settingsFile)
    : opts.dir
      ? join(dir, 'settings.json')
      : settingsPath(env);
  return { env, paths: stackPaths(dir), ports: stackPorts(env, opts.portBase), network: stackNetwork(env, dir), settingsFile };
}

/** The codeb install folder (holds scripts/), found from this module whether bundled (dist/) or not. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'scripts', 'stack-s3rver.mjs'))) return dir;
    dir = dirname(dir);
  }
  throw new CodebError('Cannot find the codeb install folder (scripts/stack-s3rver.mjs is missing).', {
    hint: 'Run codeb from its checkout or installed package (`node bin/codeb.js`).',
  });
}
