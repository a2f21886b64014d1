/**
 * Caddy for the local stack: JSON config only, written once per start and never changed by codeb
 * afterwards (controller/providers/caddy-front.ts: one static route per server into the codeb
 * forwarder's host router; certificates on demand from Caddy's internal CA, only for domains the
 * router confirms). Project routes live in the forwarder's table, which survives restarts of
 * either process. The admin API listens on a Unix socket in a 0700 folder of the stack, never on
 * TCP: nothing but this user (and root) can reach it.
 */
import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { adminOnSocket, frontServers, frontTlsApp, PKI_APP, type FrontIssuer } from '../providers/caddy-front.js';
import { LOOPBACK } from './layout.js';
import { baseEnv, errorText, httpGet, type Part, type PartContext, type ProbeResult, type StartContext } from './part.js';

export interface CaddyConfigOptions {
  adminSocket: string;
  routerSocket: string;
  httpPort: number;
  httpsPort: number;
  /** Default 'internal': the local stack reaches no ACME server. */
  issuer?: FrontIssuer;
  /** Where the front listens: default loopback (the local stack); '' = every address (a server). */
  listenHost?: string;
}

type Json = Record<string, unknown>;

/** The whole configuration (pure): admin on the socket, the two front servers, on-demand TLS. */
export function caddyConfig(o: CaddyConfigOptions): Json {
  const issuer = o.issuer ?? 'internal';
  return {
    // No autosave: the configuration is this file, and it does not change while Caddy runs.
    admin: { ...adminOnSocket(o.adminSocket), config: { persist: false } },
    apps: {
      http: { http_port: o.httpPort, https_port: o.httpsPort, servers: frontServers(o.listenHost ?? LOOPBACK, o.httpPort, o.httpsPort, o.routerSocket) },
      tls: frontTlsApp({ routerSocket: o.routerSocket, httpPort: o.httpPort, issuer }),
      ...(issuer === 'internal' ? { pki: PKI_APP } : {}),
    },
    // The stack probes the admin API often; keep those requests out of the log unless they fail.
    logging: { logs: { default: { exclude: ['admin.api'] }, admin: { include: ['admin.api'], level: 'WARN' } } },
  };
}

export function stackCaddyConfig(ctx: PartContext): Json {
  const front = { adminSocket: ctx.paths.caddy.adminSocket, routerSocket: ctx.paths.forwarder.router, httpPort: ctx.ports.http, httpsPort: ctx.ports.https };
  // A server's front is public and gets real certificates; the local stack's stays on loopback.
  return caddyConfig(ctx.server ? { ...front, listenHost: '', issuer: 'acme' } : front);
}

/** GET on the admin socket (Host localhost, which the config allows). */
export function adminGet(socketPath: string, path: string, timeoutMs = 1500) {
  return httpGet({ socketPath, path }, timeoutMs);
}

export const caddyPart: Part = {
  name: 'caddy',
  stopSignal: 'SIGTERM',
  startTimeoutMs: 20_000,
  address: (ctx) => `${LOOPBACK}:${ctx.ports.http} and :${ctx.ports.https}, admin unix://${ctx.paths.caddy.adminSocket}`,
  tcpPorts: (ctx) => [ctx.ports.http, ctx.ports.https],

  async prepare(ctx: StartContext): Promise<void> {
    const c = ctx.paths.caddy;
    for (const d of [c.root, c.xdgConfig, c.xdgData, dirname(c.adminSocket)]) mkdirSync(d, { recursive: true, mode: 0o700 });
    // The socket's folder is the lock on the admin API: owner only, whatever umask made it.
    chmodSync(dirname(c.adminSocket), 0o700);
    if (existsSync(c.adminSocket)) rmSync(c.adminSocket, { force: true });
    writeFileSync(c.config, JSON.stringify(stackCaddyConfig(ctx), null, 2) + '\n', { mode: 0o600 });
  },

  launch(ctx: StartContext) {
    const c = ctx.paths.caddy;
    return {
      command: ctx.bins.caddy,
      args: ['run', '--config', c.config],
      env: baseEnv(ctx.env, { XDG_CONFIG_HOME: c.xdgConfig, XDG_DATA_HOME: c.xdgData, HOME: c.root }),
      cwd: c.root,
      // Caddy 2.6 cannot set its admin socket's mode: with this umask it is made 0600 (srw-------).
      umask: 0o077,
    };
  },

  async probe(ctx: PartContext): Promise<ProbeResult> {
    try {
      const a = await adminGet(ctx.paths.caddy.adminSocket, '/config/');
      return a.status === 200 ? { ok: true } : { ok: false, reason: `admin API answered HTTP ${a.status}` };
    } catch (err) {
      return { ok: false, reason: errorText(err) };
    }
  },
};
