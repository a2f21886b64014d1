/**
 * Where codeb keeps its state and how it finds the services it provisions into.
 *
 * CODEB_HOME (default: /opt/codeb when that folder exists, i.e. on a server; otherwise ~/.codeb)
 *   registry/projects.json   the registry (override: --registry or CODEB_REGISTRY)
 *   registry/secrets/        per-project env files with connection details, mode 0600
 *   stack/                   the embedded local stack's data, logs and sockets
 *   settings.json            service endpoints (written by `codeb stack up`; override: CODEB_SETTINGS)
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { CodebError } from './errors.js';

/** How codeb runs on a server made by `codeb server init` (its launcher finds node through `#!/usr/bin/env node`). */
export const SERVER_CODEB = '/opt/codeb/bin/codeb.js';

export function codebHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.CODEB_HOME) return resolve(env.CODEB_HOME);
  if (existsSync('/opt/codeb')) return '/opt/codeb';
  return join(homedir(), '.codeb');
}

export function registryPath(explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (explicit) return resolve(explicit);
  if (env.CODEB_REGISTRY) return resolve(env.CODEB_REGISTRY);
  return join(codebHome(env), 'registry', 'projects.json');
}

/** Secrets live beside the registry so one folder holds everything that must be backed up. */
export function secretsDir(registryFile: string): string {
  return join(dirname(registryFile), 'secrets');
}

export function stackDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.CODEB_STACK_DIR ? resolve(env.CODEB_STACK_DIR) : join(codebHome(env), 'stack');
}

export function settingsPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.CODEB_SETTINGS ? resolve(env.CODEB_SETTINGS) : join(codebHome(env), 'settings.json');
}

/** Endpoints of the shared services (layer 2). Secrets in here are admin credentials: file mode 0600. */
export interface Settings {
  postgres: { host: string; port: number; user: string; password?: string; database: string };
  redis: { host: string; port: number; user: string; password?: string; databases: number };
  storage: {
    endPoint: string;
    port: number;
    useSSL: boolean;
    accessKey: string;
    secretKey: string;
    region: string;
    /**
     * s3rver: buckets and objects only (no policies, lifecycle or users: every project shares this key).
     * radosgw: Ceph RADOS Gateway: policies, lifecycle, and a user + key per deployment (rgwAdmin).
     * minio: policies and lifecycle (per-project users need its admin API; not driven yet).
     */
    kind: 'minio' | 's3rver' | 'radosgw';
    /**
     * radosgw only: the argument list that runs `radosgw-admin` against this gateway's store (its
     * subcommand and options are appended). The local stack runs it in its Debian 13 rootfs.
     */
    rgwAdmin?: string[];
  };
  /**
   * adminUrl: `unix:///path/admin.sock` (the stack's; never TCP there) or `http://host:port`.
   * tlsIssuer: who signs the front's on-demand certificates (default 'acme'; the stack: 'internal').
   */
  caddy: { adminUrl: string; httpPort: number; httpsPort: number; tlsIssuer?: 'internal' | 'acme' };
  podman: { socketPath: string };
  /** The codeb forwarder: control socket (entries, host routes) and the host router Caddy proxies to. */
  forwarder: { socketPath: string; routerSocket: string };
  /**
   * Container networking (docs/runtime.md, "Networks"): project networks are /26 subnets of
   * `pool`; containers reach the shared services and their project's entries at
   * `servicesAddress`, a host address on `interface` (made by `codeb stack up` or `server init`).
   */
  network: { pool: string; servicesAddress: string; interface: string };
}

/** Environment variables override single fields so CI or a server can point codeb elsewhere. */
export function loadSettings(env: NodeJS.ProcessEnv = process.env): Settings {
  const file = settingsPath(env);
  if (!existsSync(file)) {
    throw new CodebError(`No service settings found at ${file}.`, {
      hint: 'Start the local stack with `codeb stack up` (it writes this file), or set CODEB_SETTINGS to a settings file (see docs/stack.md).',
    });
  }
  let parsed: Settings;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8')) as Settings;
  } catch (err) {
    throw new CodebError(`The settings file ${file} is not valid JSON: ${(err as Error).message}`, {
      hint: 'Fix or delete it; `codeb stack up` writes a fresh one for the local stack.',
    });
  }
  if (!parsed.network) {
    throw new CodebError(`The settings file ${file} has no container network (written by an older codeb).`, {
      hint: 'Run `codeb stack up` again: it adds the network section (docs/stack.md).',
    });
  }
  return applyEnvOverrides(parsed, env);
}

export function applyEnvOverrides(s: Settings, env: NodeJS.ProcessEnv): Settings {
  const out: Settings = structuredClone(s);
  if (env.CODEB_PG_HOST) out.postgres.host = env.CODEB_PG_HOST;
  if (env.CODEB_PG_PORT) out.postgres.port = Number(env.CODEB_PG_PORT);
  if (env.CODEB_PG_USER) out.postgres.user = env.CODEB_PG_USER;
  if (env.CODEB_PG_PASSWORD) out.postgres.password = env.CODEB_PG_PASSWORD;
  if (env.CODEB_REDIS_HOST) out.redis.host = env.CODEB_REDIS_HOST;
  if (env.CODEB_REDIS_PORT) out.redis.port = Number(env.CODEB_REDIS_PORT);
  if (env.CODEB_REDIS_PASSWORD) out.redis.password = env.CODEB_REDIS_PASSWORD;
  if (env.CODEB_S3_ENDPOINT) out.storage.endPoint = env.CODEB_S3_ENDPOINT;
  if (env.CODEB_S3_PORT) out.storage.port = Number(env.CODEB_S3_PORT);
  if (env.CODEB_S3_ACCESS_KEY) out.storage.accessKey = env.CODEB_S3_ACCESS_KEY;
  if (env.CODEB_S3_SECRET_KEY) out.storage.secretKey = env.CODEB_S3_SECRET_KEY;
  if (env.CODEB_CADDY_ADMIN) out.caddy.adminUrl = env.CODEB_CADDY_ADMIN;
  if (env.CODEB_PODMAN_SOCKET) out.podman.socketPath = env.CODEB_PODMAN_SOCKET;
  if (env.CODEB_FORWARDER_SOCKET) out.forwarder.socketPath = env.CODEB_FORWARDER_SOCKET;
  return out;
}
