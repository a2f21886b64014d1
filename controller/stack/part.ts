/** What every part of the local stack (postgres, redis, s3, caddy, podman) provides to the orchestrator. */
import { request } from 'node:http';
import { connect } from 'node:net';
import type { Binaries } from './binaries.js';
import type { StackCredentials } from './credentials.js';
import type { PartName, S3Kind, StackNetwork, StackPaths, StackPorts } from './layout.js';

export interface PartContext {
  paths: StackPaths;
  ports: StackPorts;
  /** The container network: services (Postgres, Redis, S3) also listen on its services address. */
  network: StackNetwork;
  /** Absent when only observing (status) and no settings file exists. */
  creds?: StackCredentials;
  /** Environment of codeb itself: children get a small, explicit environment built from it. */
  env: NodeJS.ProcessEnv;
  isRoot: boolean;
  /** Which S3 server the s3 part runs (default s3rver). */
  s3Kind?: S3Kind;
  /** radosgw: the Debian 13 rootfs it runs in (scripts/build-rootfs.sh radosgw); '/' on a server (its own radosgw). */
  rgwRootfs?: string;
  /** A server (`codeb server init`): Caddy's front listens on every address, certificates from ACME. */
  server?: boolean;
}

export interface StartContext extends PartContext {
  creds: StackCredentials;
  bins: Binaries;
  /** Things worth telling the user (e.g. a permission that was changed). */
  notes: string[];
}

export type ProbeResult = { ok: true } | { ok: false; reason: string; /** retrying will not help */ fatal?: boolean };

export interface LaunchSpec {
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  cwd: string;
  uid?: number;
  gid?: number;
  /** The child's umask (e.g. 0o077 so the sockets it makes are owner-only). */
  umask?: number;
}

export interface Part {
  name: PartName;
  /** Where it answers, for people: host:port or a socket URL. */
  address(ctx: PartContext): string;
  /** TCP ports on 127.0.0.1 it will listen on (checked free before starting). */
  tcpPorts(ctx: PartContext): number[];
  /** Create data folders and configuration; runs only when the part is about to start. */
  prepare(ctx: StartContext): Promise<void>;
  launch(ctx: StartContext): LaunchSpec;
  /** Does it answer? With credentials, also checks they are accepted. */
  probe(ctx: PartContext): Promise<ProbeResult>;
  stopSignal: NodeJS.Signals;
  startTimeoutMs: number;
  /**
   * Why the running process must be restarted by `up` although it answers (another codeb build),
   * or null. Asked only of a process this stack started.
   */
  outdated?(ctx: PartContext): Promise<string | null>;
  /** The process that really serves, when the started one hands over to a child (rootless podman). */
  findServer?(ctx: PartContext): { pid: number; startTime: string } | undefined;
  /** Runs on `down` before the process is signalled (even when it is not running). */
  beforeStop?(ctx: PartContext): Promise<void>;
  /** Runs on `down` after the process ended (even when it was not running). */
  afterStop?(ctx: PartContext): Promise<void>;
}

/** A small environment for children: no secrets or CODEB_* variables leak from ours. */
export function baseEnv(env: NodeJS.ProcessEnv, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const path = [env.PATH, '/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']
    .filter(Boolean)
    .join(':');
  const out: NodeJS.ProcessEnv = { PATH: path, LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8' };
  if (env.HOME) out.HOME = env.HOME;
  if (env.TZ) out.TZ = env.TZ;
  return { ...out, ...extra };
}

/** Send bytes over TCP and collect the answer until `done(answer)` or the timeout. */
export function tcpExchange(
  host: string,
  port: number,
  payload: Buffer | string,
  done: (answer: Buffer) => boolean,
  timeoutMs = 1500,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host, port });
    let answer = Buffer.alloc(0);
    const finish = (err?: Error): void => {
      sock.destroy();
      clearTimeout(timer);
      if (err && answer.length === 0) reject(err);
      else resolve(answer);
    };
    const timer = setTimeout(() => finish(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    sock.once('connect', () => sock.write(payload));
    sock.on('data', (chunk: Buffer) => {
      answer = Buffer.concat([answer, chunk]);
      if (done(answer)) finish();
    });
    sock.once('error', (err) => finish(err));
    sock.once('end', () => finish(new Error('connection closed without an answer')));
  });
}

export interface HttpAnswer {
  status: number;
  body: string;
}

/** GET over TCP (`url`) or a unix socket (`socketPath` + path). */
export function httpGet(target: { url: string } | { socketPath: string; path: string }, timeoutMs = 1500): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const where =
      'url' in target
        ? (() => {
            const u = new URL(target.url);
            return { host: u.hostname, port: u.port, path: u.pathname + u.search };
          })()
        : { socketPath: target.socketPath, path: target.path, host: 'localhost' };
    const req = request({ ...where, method: 'GET', timeout: timeoutMs, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        if (body.length < 65536) body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

export function errorText(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'ECONNREFUSED') return 'connection refused';
  if (e?.code === 'ENOENT') return 'socket does not exist';
  return e instanceof Error ? e.message : String(err);
}
