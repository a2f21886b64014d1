/**
 * Admin credentials of the local stack. Generated once, kept only in settings.json (mode 0600),
 * reused on every later `stack up`, and never printed.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Settings } from '../settings.js';
import { CodebError } from '../errors.js';
import { LOOPBACK, type StackNetwork, type StackPaths, type StackPorts } from './layout.js';

export const PG_ADMIN_USER = 'codeb';
export const REDIS_USER = 'default';
export const S3_REGION = 'us-east-1';

export interface StackCredentials {
  pgPassword: string;
  redisPassword: string;
  s3AccessKey: string;
  s3SecretKey: string;
  /** Which of them were generated just now (so a running service still has the old one). */
  fresh: { postgres: boolean; redis: boolean; s3: boolean };
}

const secret = (bytes = 24): string => randomBytes(bytes).toString('base64url');
const accessKey = (): string => 'CODEB' + randomBytes(8).toString('hex').toUpperCase();

function readExisting(file: string): Partial<Settings> | undefined {
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Partial<Settings>;
  } catch {
    return undefined; // unreadable: treated as absent; the new file replaces it
  }
}

/** Reuse what the settings file already holds for the stack; generate whatever is missing. */
export function loadOrCreateCredentials(settingsFile: string): StackCredentials {
  const old = readExisting(settingsFile);
  if (old?.storage?.kind && old.storage.kind !== 's3rver' && old.storage.kind !== 'radosgw') {
    throw new CodebError(
      `${settingsFile} points at a real ${old.storage.kind} server, not the local stack; \`codeb stack up\` will not overwrite it.`,
      {
        hint: 'Use another file for the local stack (CODEB_SETTINGS=/path/to/local-settings.json or another CODEB_HOME), or move that file away.',
      },
    );
  }
  const pg = old?.postgres?.user === PG_ADMIN_USER ? old.postgres.password : undefined;
  const redis = old?.redis?.password;
  const ak = old?.storage?.accessKey;
  const sk = old?.storage?.secretKey;
  return {
    pgPassword: pg ?? secret(),
    redisPassword: redis ?? secret(),
    s3AccessKey: ak && sk ? ak : accessKey(),
    s3SecretKey: ak && sk ? sk : secret(30),
    fresh: { postgres: !pg, redis: !redis, s3: !(ak && sk) },
  };
}

/** s3: which S3 server the stack runs, and for radosgw how to run radosgw-admin on its store. */
export function buildSettings(creds: StackCredentials, ports: StackPorts, paths: StackPaths, network: StackNetwork, s3: { kind: 's3rver' } | { kind: 'radosgw'; rgwAdmin: string[] } = { kind: 's3rver' }): Settings {
  return {
    postgres: { host: LOOPBACK, port: ports.postgres, user: PG_ADMIN_USER, password: creds.pgPassword, database: 'postgres' },
    redis: { host: LOOPBACK, port: ports.redis, user: REDIS_USER, password: creds.redisPassword, databases: 16 },
    storage: {
      endPoint: LOOPBACK,
      port: ports.s3,
      useSSL: false,
      accessKey: creds.s3AccessKey,
      secretKey: creds.s3SecretKey,
      region: S3_REGION,
      ...s3,
    },
    caddy: { adminUrl: `unix://${paths.caddy.adminSocket}`, httpPort: ports.http, httpsPort: ports.https, tlsIssuer: 'internal' },
    podman: { socketPath: paths.podman.socket },
    forwarder: { socketPath: paths.forwarder.socket, routerSocket: paths.forwarder.router },
    network: { ...network },
  };
}

/** Atomic write, mode 0600 from the first byte on: temp file, fsync, rename. */
export function writeSettings(file: string, settings: Settings): void {
  mkdirSync(dirname(file), { recursive: true, mode: process.getuid?.() === 0 ? 0o711 : 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  rmSync(tmp, { force: true });
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, JSON.stringify(settings, null, 2) + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}
