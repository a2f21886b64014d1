/**
 * `codeb forwarder run`: the long-running process that owns every entry port on this machine and
 * the host router Caddy's static route proxies to (a second Unix socket, owner and group: 0660).
 * Controlled over HTTP on a Unix socket (owner-only), so only local codeb commands can switch or
 * change a route:
 *   GET /entries, PUT|DELETE /entries/<id>, POST /entries/<id>/retire   blue-green entries
 *   GET /routes, GET|PUT|DELETE /routes/<id>                            host routes (HostRoute)
 * On a server it runs as the codeb-forwarder systemd unit; locally `codeb stack up` starts it.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Socket } from 'node:net';
import { Forwarder } from './forwarder.js';
import { RouteRefused, type HostRoute } from './host-routes.js';
import { buildId } from '../build-id.js';

async function body(req: IncomingMessage): Promise<Record<string, unknown>> {
  let text = '';
  for await (const chunk of req) text += chunk;
  return text ? (JSON.parse(text) as Record<string, unknown>) : {};
}

function send(res: ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(value));
}

const ID = /^[a-z0-9-]{1,120}$/;

const ROUTE_ID = /^[a-z0-9][a-z0-9._-]{0,159}$/;

export interface ForwarderDaemonOptions {
  /** The host router's socket (Caddy's static route dials it); none: no host routing. */
  routerSocket?: string;
  /** The public HTTPS port, for redirects of TLS hosts asked for over plain HTTP. */
  httpsPort?: number;
  /** Where containers reach entries (docs/runtime.md, "Networks"); none: entries on 127.0.0.1 only. */
  servicesAddress?: string | null;
}

async function listenUnix(server: ReturnType<typeof createServer>, path: string, mode: number): Promise<void> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  rmSync(path, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  chmodSync(path, mode);
}

export async function runForwarder(socketPath: string, tableFile: string, opts: ForwarderDaemonOptions = {}): Promise<() => Promise<void>> {
  const fwd = new Forwarder(tableFile, { httpsPort: opts.httpsPort, servicesAddress: opts.servicesAddress ?? null });
  await fwd.restore();
  const control = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://forwarder');
      const m = /^\/entries\/([^/]+)(\/retire)?$/.exec(url.pathname);
      const r = /^\/routes\/([^/]+)$/.exec(url.pathname);
      try {
        if (req.method === 'GET' && url.pathname === '/health') {
          return send(res, 200, { ok: true, pid: process.pid, entries: fwd.list().length, routes: fwd.routes().length, router: opts.routerSocket ?? null, answers: true, targets: true, sites: true, routeAuth: true, build: buildId() });
        }
        if (req.method === 'GET' && url.pathname === '/entries') return send(res, 200, { entries: fwd.list() });
        if (req.method === 'GET' && url.pathname === '/routes') return send(res, 200, { routes: fwd.routes() });
        if (r) {
          const id = decodeURIComponent(r[1]!);
          if (!ROUTE_ID.test(id)) return send(res, 400, { error: `not a route name: ${JSON.stringify(id)}` });
          if (req.method === 'GET') {
            const route = fwd.route(id);
            return route ? send(res, 200, route) : send(res, 404, { error: `no route ${id}` });
          }
          if (req.method === 'PUT') {
            const b = (await body(req)) as Partial<HostRoute>;
            await fwd.setRoute({ ...(b as HostRoute), id });
            return send(res, 200, fwd.route(id));
          }
          if (req.method === 'DELETE') return send(res, 200, { removed: await fwd.removeRoute(id) });
          return send(res, 405, { error: 'method not allowed' });
        }
        if (!m || !ID.test(m[1]!)) return send(res, 404, { error: 'no such endpoint' });
        const id = m[1]!;
        if (req.method === 'PUT' && !m[2]) {
          const b = await body(req);
          const entryPort = Number(b.entryPort);
          // targets (a list, one per replica) when given; target alone from older clients.
          const targets = Array.isArray(b.targets) ? b.targets.map(Number) : [Number(b.target)];
          if (!Number.isInteger(entryPort) || !targets.length || !targets.every((t) => Number.isInteger(t) && t > 0 && t <= 65535)) return send(res, 400, { error: 'entryPort and target (or targets) must be port numbers' });
          const allow = typeof b.allow === 'string' ? b.allow : null;
          return send(res, 200, await fwd.set(id, entryPort, targets, true, allow));
        }
        if (req.method === 'POST' && m[2]) {
          const b = await body(req);
          return send(res, 200, { closed: await fwd.retire(id, Number(b.port), Number(b.graceMs ?? 0)) });
        }
        if (req.method === 'DELETE' && !m[2]) return send(res, 200, { removed: await fwd.remove(id) });
        return send(res, 405, { error: 'method not allowed' });
      } catch (err) {
        if (err instanceof RouteRefused) return send(res, err.status, { error: err.message });
        if (err instanceof SyntaxError) return send(res, 400, { error: `the body is not JSON: ${err.message}` });
        send(res, 500, { error: (err as Error).message });
      }
    })();
  });
  await listenUnix(control, socketPath, 0o600);
  let router: ReturnType<typeof createServer> | undefined;
  if (opts.routerSocket) {
    router = createServer((req, res) => fwd.routeRequest(req, res));
    router.keepAliveTimeout = 65_000;
    router.on('upgrade', (req, socket, head) => fwd.routeUpgrade(req, socket as Socket, head));
    // Group-readable: on a server Caddy runs as its own user in codeb's group (docs/stack.md).
    await listenUnix(router, opts.routerSocket, 0o660);
  }
  return async () => {
    if (router) {
      router.close();
      router.closeAllConnections();
    }
    await new Promise<void>((resolve) => control.close(() => resolve()));
    await fwd.close();
    rmSync(socketPath, { force: true });
    if (opts.routerSocket) rmSync(opts.routerSocket, { force: true });
  };
}
