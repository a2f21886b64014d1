/**
 * ProxyProvider against the real Caddy (2.6+) of the local stack: a route is created once (a second
 * apply plans nothing), answers through Caddy with the security headers, sends path prefixes to
 * their own upstream, streams server-sent events event by event without gzip while HTML is gzipped,
 * rides out an upstream that starts a second late, passes websocket upgrades, is seen when removed
 * behind codeb's back, serves tls 'internal' with Caddy's own CA, is restored from Caddy's autosave
 * after a restart, and an unreachable admin API is a ServiceUnavailableError naming it.
 *
 * Upstreams are tiny node servers on random 127.0.0.1 ports; hosts are <unique>.localhost.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CodebError, ServiceUnavailableError } from '../../controller/errors.js';
import { buildRoute, caddyAdminRequest, parseRoute, ProxyProvider, subIds, type AdminMethod } from '../../controller/providers/proxy.js';
import type { RouteSpec } from '../../controller/reconcile/desired.js';
import { makeResource, type Action, type ExecContext, type Resource } from '../../controller/reconcile/model.js';
import { planApply, planDestroy } from '../../controller/reconcile/plan.js';
import type { Settings } from '../../controller/settings.js';
import { caddyConfig } from '../../controller/stack/caddy.js';
import { resolveStack } from '../../controller/stack/layout.js';
import type { PartContext } from '../../controller/stack/part.js';
import { freePort, stackSettings, uniqueId } from './helpers/stack.js';

let settings: Settings;
let provider: ProxyProvider;
const run = uniqueId('px');
const messages: string[] = [];
const ctx: ExecContext = { secret: () => '', progress: (m) => messages.push(m) };
const cleanup: (() => Promise<unknown> | unknown)[] = [];
const routes = new Set<string>();

// ---------------------------------------------------------------------------------------------
// Helpers: upstreams, raw HTTP through Caddy, free ports, the admin API.

interface Upstream {
  port: number;
  server: Server;
  hits: string[];
}

async function listen(server: Server, port = 0): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const addr = server.address();
  if (!addr || typeof addr === 'string') throw new Error('no port');
  return addr.port;
}

async function upstream(name: string, handler?: (req: IncomingMessage, res: ServerResponse) => void, port = 0): Promise<Upstream> {
  const hits: string[] = [];
  const server = createServer((req, res) => {
    hits.push(req.url ?? '');
    if (handler) return handler(req, res);
    res.writeHead(200, { 'content-type': 'text/plain', server: `upstream-${name}` });
    res.end(`${name} ${req.url}`);
  });
  const p = await listen(server, port);
  cleanup.push(() => new Promise((r) => server.close(r)));
  cleanup.push(() => server.closeAllConnections());
  return { port: p, server, hits };
}

/** A port nobody listens on right now (bound then released). */

interface Reply {
  status: number;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

function get(host: string, path: string, headers: Record<string, string> = {}, port = settings.caddy.httpPort): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host, ...headers }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.setTimeout(20_000, () => req.destroy(new Error(`GET ${host}${path}: timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** The admin API directly (fresh connections: Caddy drops kept-alive ones on every config change). */
async function adminJson(path: string, method: AdminMethod = 'GET', body?: unknown): Promise<{ status: number; body: unknown }> {
  const res = await caddyAdminRequest(settings.caddy.adminUrl, method, path, body);
  return { status: res.status, body: res.text ? (JSON.parse(res.text) as unknown) : null };
}

function spec(domains: string[], upstreams: RouteSpec['upstreams'], over: Partial<RouteSpec> = {}): RouteSpec {
  return { domains, tls: 'off', upstreams, websockets: true, sse: true, ...over };
}

function routeResource(name: string, s: RouteSpec): Resource {
  routes.add(name);
  return makeResource('proxy.route', name, s);
}

async function apply(r: Resource): Promise<Action> {
  const [action] = planApply([r], await provider.observe([r]));
  await provider.execute(action!, ctx);
  return action!;
}

async function plan(r: Resource): Promise<Action> {
  return planApply([r], await provider.observe([r]))[0]!;
}

// ---------------------------------------------------------------------------------------------

beforeAll(async () => {
  settings = stackSettings();
  provider = new ProxyProvider(settings.caddy);
});

afterAll(async () => {
  for (const name of routes) {
    const r = makeResource('proxy.route', name, {});
    const actions = planDestroy([r], await provider.observe([r]), true);
    for (const a of actions) if (a.op === 'delete') await provider.execute(a, ctx);
  }
  for (const c of cleanup.reverse()) await c();
  await provider?.close();
});

describe('ProxyProvider (real Caddy)', () => {
  const name = `codeb-${run}-prod`;
  const domain = `${run}.localhost`;
  const alias = `www.${run}.localhost`;
  let web: Upstream;
  let api: Upstream;
  let lateUp: number;
  let res: Resource;

  beforeAll(async () => {
    web = await upstream('web', (req, res) => {
      if (req.url === '/big.html') {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        res.end(`<html><body>${'<p>compress me, I am very repetitive</p>\n'.repeat(400)}</body></html>`);
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain', server: 'upstream-web' });
      res.end(`web ${req.url}`);
    });
    api = await upstream('api');
    lateUp = await freePort();
    res = routeResource(
      name,
      spec([domain], [
        { path: '/late', port: lateUp, service: 'late' },
        { path: '/api', port: api.port, service: 'api' },
        { path: null, port: web.port, service: 'web' },
      ]),
    );
  });

  it('creates the route once: the second plan is unchanged and a repeated create changes nothing', async () => {
    const first = await apply(res);
    expect(first.op).toBe('create');
    const again = await plan(res);
    expect(again.op, JSON.stringify(again.changes)).toBe('unchanged');

    // create again (a crashed apply re-run): no config change at all (a Caddy reload would close
    // every proxied websocket on 2.6), still one route with that @id, still unchanged
    const calls: string[] = [];
    const watched = new ProxyProvider(settings.caddy, {
      adminRequest: (url, method, path, body, timeout) => (calls.push(`${method} ${path}`), caddyAdminRequest(url, method, path, body, timeout)),
    });
    await watched.execute(first, ctx);
    expect(calls.filter((c) => !c.startsWith('GET '))).toEqual([]);
    const servers = (await adminJson('/config/apps/http/servers')).body as Record<string, { routes?: { '@id'?: string }[] }>;
    const count = Object.values(servers).flatMap((s) => s.routes ?? []).filter((r) => r['@id'] === name).length;
    expect(count).toBe(1);
    expect((await plan(res)).op).toBe('unchanged');

    const observed = (await provider.observe([res]))[0]!;
    expect(observed.spec).toEqual(res.spec);
  });

  it('answers through Caddy for the domain with the security headers and no Server header', async () => {
    const r = await get(domain, '/hello');
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('web /hello');
    expect(r.headers['strict-transport-security']).toBe('max-age=31536000');
    expect(r.headers['x-frame-options']).toBe('DENY');
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    expect(r.headers.server).toBeUndefined();
  });

  it('sends a path prefix to its own upstream, and only that prefix', async () => {
    expect((await get(domain, '/api')).body.toString()).toBe('api /api');
    expect((await get(domain, '/api/users?x=1')).body.toString()).toBe('api /api/users?x=1');
    expect((await get(domain, '/apiary')).body.toString()).toBe('web /apiary');
    expect((await get(domain, '/')).body.toString()).toBe('web /');
    expect(api.hits).toEqual(['/api', '/api/users?x=1']);
  });

  it('gzips a large HTML response', async () => {
    const r = await get(domain, '/big.html', { 'accept-encoding': 'gzip' });
    expect(r.status).toBe(200);
    expect(r.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(r.body).toString()).toContain('compress me');
  });

  it('streams server-sent events event by event, not gzip-encoded even when gzip is accepted', async () => {
    // The upstream ends the stream only after the client has the first event: if Caddy buffered
    // (as a gzip encoder without flush does on 2.6), the first event would never arrive.
    let clientGotFirst!: () => void;
    const firstSeen = new Promise<void>((r) => (clientGotFirst = r));
    const sse = await upstream('sse', (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      // Over 512 bytes (encode's minimum_length), so a gzip encoder would start compressing.
      res.write(`event: first\ndata: ${'x'.repeat(2000)}\n\n`);
      void firstSeen.then(() => {
        res.write('event: second\ndata: 2\n\n');
        setTimeout(() => res.end('event: last\ndata: 3\n\n'), 200);
      });
      const giveUp = setTimeout(() => res.end(), 8000);
      res.on('close', () => clearTimeout(giveUp));
    });
    const sseName = `codeb-${run}-sse`;
    const sseDomain = `sse-${run}.localhost`;
    const sseRes = routeResource(sseName, spec([sseDomain], [{ path: null, port: sse.port, service: 'events' }]));
    await apply(sseRes);

    const result = await new Promise<{ encoding: string | undefined; events: { name: string; at: number }[]; endedAt: number }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: settings.caddy.httpPort, path: '/events', headers: { host: sseDomain, 'accept-encoding': 'gzip', accept: 'text/event-stream' }, agent: false }, (res) => {
        const events: { name: string; at: number }[] = [];
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buf += chunk;
          for (let i = buf.indexOf('\n\n'); i !== -1; i = buf.indexOf('\n\n')) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const m = /^event: (\w+)/m.exec(block);
            events.push({ name: m?.[1] ?? '?', at: Date.now() });
            if (m?.[1] === 'first') clientGotFirst();
          }
        });
        res.on('end', () => resolve({ encoding: res.headers['content-encoding'], events, endedAt: Date.now() }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    expect(result.encoding).toBeUndefined();
    expect(result.events.map((e) => e.name)).toEqual(['first', 'second', 'last']);
    // the first event arrived well before the stream ended (the upstream waited for it)
    expect(result.endedAt - result.events[0]!.at).toBeGreaterThanOrEqual(150);
  });

  it('waits for an upstream that is briefly down (starts 1 s after the request) instead of failing', async () => {
    const t0 = Date.now();
    const pending = get(domain, '/late/ping');
    await new Promise((r) => setTimeout(r, 1000));
    const late = await upstream('late', undefined, lateUp);
    const r = await pending;
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('late /late/ping');
    expect(late.hits).toEqual(['/late/ping']);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1000);
  });

  it('passes a websocket upgrade through to the upstream', async () => {
    const ws = await upstream('ws');
    ws.server.on('upgrade', (req: IncomingMessage, socket: Socket) => {
      ws.hits.push(req.url ?? '');
      const key = String(req.headers['sec-websocket-key']);
      const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
      socket.on('data', (d: Buffer) => socket.write(Buffer.concat([Buffer.from('echo:'), d])));
      cleanup.push(() => socket.destroy());
    });
    const wsName = `codeb-${run}-ws`;
    const wsDomain = `ws-${run}.localhost`;
    await apply(routeResource(wsName, spec([wsDomain], [{ path: '/socket', port: ws.port, service: 'gateway' }, { path: null, port: web.port, service: 'web' }])));

    const key = randomBytes(16).toString('base64');
    const { status, accept, echoed } = await new Promise<{ status: number; accept: string; echoed: string }>((resolve, reject) => {
      const req = request({
        host: '127.0.0.1',
        port: settings.caddy.httpPort,
        path: '/socket/chat',
        agent: false,
        headers: { host: wsDomain, connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': key, 'sec-websocket-version': '13' },
      });
      req.on('upgrade', (res, socket) => {
        socket.once('data', (d: Buffer) => {
          resolve({ status: res.statusCode ?? 0, accept: String(res.headers['sec-websocket-accept']), echoed: d.toString() });
          socket.destroy();
        });
        socket.write('hello');
      });
      req.on('response', (res) => reject(new Error(`no upgrade: HTTP ${res.statusCode}`)));
      req.on('error', reject);
      req.setTimeout(10_000, () => req.destroy(new Error('websocket upgrade timed out')));
      req.end();
    });
    expect(status).toBe(101);
    expect(accept).toBe(createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64'));
    expect(echoed).toBe('echo:hello');
    expect(ws.hits).toEqual(['/socket/chat']);
  });

  it('updates the route in place when its domains change (one route, the new host answers)', async () => {
    const changed = routeResource(name, { ...(res.spec as RouteSpec), domains: [domain, alias] });
    const action = await plan(changed);
    expect(action.op).toBe('update');
    expect(action.changes.map((c) => c.field)).toEqual(['domains']);
    await provider.execute(action, ctx);
    expect((await plan(changed)).op).toBe('unchanged');
    expect((await get(alias, '/x')).body.toString()).toBe('web /x');
    // sub-parts keep their own @ids and can be read alone
    const up = await adminJson(`/id/${subIds(name).upstream('api')}`);
    expect(up.status).toBe(200);
    expect(JSON.stringify(up.body)).toContain(`127.0.0.1:${api.port}`);
    res = changed;
  });

  it('sees the route removed behind its back, and creates it again', async () => {
    expect((await adminJson(`/id/${name}`, 'DELETE')).status).toBe(200);
    const observed = await provider.observe([res]);
    expect(observed[0]).toEqual({ key: res.key, exists: false });
    expect((await plan(res)).op).toBe('create');
    await apply(res);
    expect((await plan(res)).op).toBe('unchanged');
    expect((await get(domain, '/back')).body.toString()).toBe('web /back');
  });

  it('reports a foreign object with the same @id as a conflict and does not touch it', async () => {
    const foreign = `codeb-${run}-foreign`;
    const foreignDomain = `foreign-${run}.localhost`;
    const add = await adminJson(`/config/apps/http/servers/${await serverName()}/routes/0`, 'PUT', {
      '@id': foreign,
      match: [{ host: [foreignDomain] }],
      handle: [{ handler: 'static_response', body: 'not codeb' }],
      terminal: true,
    });
    expect(add.status).toBe(200);
    cleanup.push(() => adminJson(`/id/${foreign}`, 'DELETE'));
    const r = routeResource(foreign, spec([foreignDomain], [{ path: null, port: web.port, service: 'web' }]));
    routes.delete(foreign);
    const action = await plan(r);
    expect(action.op).toBe('blocked');
    await expect(provider.execute({ ...action, op: 'create' }, ctx)).rejects.toThrow(/did not create/);
    await expect(provider.execute({ ...action, op: 'delete' }, ctx)).rejects.toThrow(/did not create/);
    expect((await get(foreignDomain, '/')).body.toString()).toBe('not codeb');
  });

  it('deletes the route: the host no longer reaches the upstream', async () => {
    const sseName = `codeb-${run}-sse`;
    const r = makeResource('proxy.route', sseName, {});
    const [action] = planDestroy([r], await provider.observe([r]), false);
    expect(action!.op).toBe('delete');
    await provider.execute(action!, ctx);
    expect((await provider.observe([r]))[0]!.exists).toBe(false);
    // deleting again is a no-op
    await provider.execute(action!, ctx);
    routes.delete(sseName);
    const after = await get(`sse-${run}.localhost`, '/events');
    expect(after.headers['content-type'] ?? '').not.toContain('text/event-stream');
  });

  it('rejects a spec where two services share a path, before calling Caddy', async () => {
    const bad = routeResource(`codeb-${run}-bad`, spec([`bad-${run}.localhost`], [{ path: null, port: web.port, service: 'a' }, { path: null, port: api.port, service: 'b' }]));
    routes.delete(bad.name);
    await expect(apply(bad)).rejects.toThrow(CodebError);
    expect((await provider.observe([bad]))[0]!.exists).toBe(false);
  });
});

describe('ProxyProvider tls internal', () => {
  it("serves the route over HTTPS with a certificate from Caddy's internal CA; observe reads tls back", async () => {
    const name = `codeb-${run}-tls`;
    const domain = `tls-${run}.localhost`;
    const web = await upstream('secure');
    const r = routeResource(name, spec([domain], [{ path: null, port: web.port, service: 'web' }], { tls: 'internal' }));
    // The provider creates an HTTPS server on httpsPort when there is none; this test removes it again.
    const before = await serverName(settings.caddy.httpsPort).catch(() => null);
    await apply(r);
    const httpsServer = await serverName(settings.caddy.httpsPort);
    if (before === null) cleanup.push(() => adminJson(`/config/apps/http/servers/${httpsServer}`, 'DELETE'));
    const again = await plan(r);
    expect(again.op, JSON.stringify(again.changes)).toBe('unchanged');
    expect((await adminJson(`/id/${subIds(name).tls}`)).status).toBe(200);

    // Caddy obtains the certificate in the background right after the config change.
    let reply: { status: number; body: string; issuer: string } | undefined;
    for (let i = 0; i < 40 && !reply; i++) {
      reply = await new Promise((resolve) => {
        const req = httpsRequest(
          { host: '127.0.0.1', port: settings.caddy.httpsPort, servername: domain, path: '/s', headers: { host: domain }, rejectUnauthorized: false, agent: false },
          (res) => {
            const issuer = String((res.socket as TLSSocket).getPeerCertificate().issuer?.CN ?? '');
            let body = '';
            res.on('data', (c) => (body += c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body, issuer }));
          },
        );
        req.on('error', () => resolve(undefined));
        req.end();
      });
      if (!reply) await new Promise((res) => setTimeout(res, 250));
    }
    expect(reply?.status).toBe(200);
    expect(reply?.body).toBe('secure /s');
    expect(reply?.issuer).toMatch(/Caddy Local Authority/);

    // switching the route to tls off moves it to the plain-HTTP server and drops the policy
    const off = routeResource(name, { ...(r.spec as RouteSpec), tls: 'off' });
    const change = await plan(off);
    expect(change.changes.map((c) => c.field)).toEqual(['tls']);
    await provider.execute(change, ctx);
    expect((await plan(off)).op).toBe('unchanged');
    expect((await adminJson(`/id/${subIds(name).tls}`)).status).toBe(404);
    expect((await get(domain, '/plain')).body.toString()).toBe('secure /plain');
  });
});

describe('ProxyProvider route restore after a Caddy restart', () => {
  it("is in Caddy's autosave, and a Caddy started the way `codeb stack up` restarts it serves the route again", async () => {
    const name = `codeb-${run}-restore`;
    const domain = `restore-${run}.localhost`;
    const web = await upstream('restored');
    await apply(routeResource(name, spec([domain], [{ path: null, port: web.port, service: 'web' }])));

    const autosave = process.env.CODEB_CADDY_AUTOSAVE ?? resolveStack().paths.caddy.autosave;
    expect(existsSync(autosave), `Caddy autosave at ${autosave}`).toBe(true);
    const saved = JSON.parse(readFileSync(autosave, 'utf8')) as unknown;
    expect(JSON.stringify(saved)).toContain(`"@id":"${name}"`);

    // A second Caddy on private ports from the saved config, rewritten exactly as the stack does on
    // `stack up` after a restart (controller/stack/caddy.ts); the shared Caddy is not disturbed.
    const dir = mkdtempSync(join(tmpdir(), 'codeb-caddy-restore-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const ports = { caddyAdmin: await freePort(), http: await freePort(), https: await freePort() };
    const cfg = caddyConfig({ ports } as unknown as PartContext, saved) as { apps: { http: { servers: Record<string, { listen?: string[] }> } } };
    // other servers (e.g. codeb-https from the tls test) would collide with the shared Caddy's ports
    for (const [k, s] of Object.entries(cfg.apps.http.servers)) if (k !== 'codeb') s.listen = [`127.0.0.1:${await freePort()}`];
    const file = join(dir, 'caddy.json');
    writeFileSync(file, JSON.stringify(cfg));
    const caddy: ChildProcess = spawn('caddy', ['run', '--config', file], {
      env: { PATH: process.env.PATH, HOME: dir, XDG_CONFIG_HOME: join(dir, 'config'), XDG_DATA_HOME: join(dir, 'data') },
      stdio: 'ignore',
    });
    cleanup.push(() => caddy.kill('SIGTERM'));
    let reply: Reply | undefined;
    for (let i = 0; i < 40 && reply?.status !== 200; i++) {
      reply = await get(domain, '/again', {}, ports.http).catch(() => undefined);
      if (reply?.status !== 200) await new Promise((r) => setTimeout(r, 250));
    }
    expect(reply?.status).toBe(200);
    expect(reply?.body.toString()).toBe('restored /again');
    expect(reply?.headers['x-frame-options']).toBe('DENY');
  });
});

describe('ProxyProvider route restore after a real restart of the stack\'s Caddy (opt-in)', () => {
  // Stops the shared Caddy for about a second, so only when asked: CODEB_TEST_RESTART_CADDY=1.
  it.runIf(process.env.CODEB_TEST_RESTART_CADDY === '1')('the route answers again after `caddy stop` + `codeb stack up`', async () => {
    const name = `codeb-${run}-restart`;
    const domain = `restart-${run}.localhost`;
    const web = await upstream('restarted');
    const r = routeResource(name, spec([domain], [{ path: null, port: web.port, service: 'web' }]));
    await apply(r);
    expect((await adminJson('/stop', 'POST')).status).toBe(200);
    await new Promise((res) => setTimeout(res, 1000));
    const up = spawn(process.execPath, [join(process.cwd(), 'bin', 'codeb.js'), 'stack', 'up'], { stdio: 'ignore', env: process.env });
    expect(await new Promise((res) => up.on('exit', res))).toBe(0);
    expect((await plan(r)).op).toBe('unchanged');
    expect((await get(domain, '/after')).body.toString()).toBe('restarted /after');
  });
});

describe('ProxyProvider errors', () => {
  it('an unreachable admin API is a ServiceUnavailableError naming it', async () => {
    const port = await freePort();
    const p = new ProxyProvider({ ...settings.caddy, adminUrl: `http://127.0.0.1:${port}` });
    const r = makeResource('proxy.route', `codeb-${run}-x`, spec(['x.localhost'], [{ path: null, port: 3000, service: 'web' }]));
    const err = await p.observe([r]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServiceUnavailableError);
    expect((err as Error).message).toContain('Caddy admin API');
    expect((err as Error).message).toContain(`127.0.0.1:${port}`);
  });

  it('Caddy rejecting a config is a CodebError with Caddy\'s own error text', async () => {
    // a route whose handler has a field Caddy 2.6 does not know: the admin API refuses it
    const p = provider as unknown as { admin(m: string, path: string, body?: unknown): Promise<unknown> };
    const err = await p.admin('POST', `/config/apps/http/servers/${await serverName()}/routes`, { handle: [{ handler: 'encode', stream_close_delay: '1s' }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CodebError);
    expect((err as Error).message).toMatch(/Caddy rejected POST .*unknown field/);
  });
});

describe('route JSON (pure)', () => {
  it('round-trips through parseRoute, with prefixes before the catch-all', () => {
    const s = spec(['a.example', 'b.example'], [{ path: null, port: 3001, service: 'web' }, { path: '/api', port: 3002, service: 'api' }, { path: '/', port: 3003, service: 'root' }]);
    const route = buildRoute('codeb-a-prod', { ...s, upstreams: s.upstreams.filter((u) => u.service !== 'root') });
    const parsed = parseRoute('codeb-a-prod', route);
    expect(parsed).toEqual({ domains: ['a.example', 'b.example'], upstreams: [{ path: '/api', port: 3002, service: 'api' }, { path: null, port: 3001, service: 'web' }], websockets: true, sse: true });
    expect(parseRoute('other', route)).toBeNull();
    const sub = (route.handle as { routes: { '@id': string }[] }[])[0]!.routes.map((r) => r['@id']);
    expect(sub).toEqual(['codeb-a-prod-meta', 'codeb-a-prod-headers', 'codeb-a-prod-encode', 'codeb-a-prod-upstream-api', 'codeb-a-prod-upstream-web']);
    expect(JSON.stringify(route)).not.toContain('text/event-stream');
  });
});

/** The name of the Caddy server listening on a port (default: the plain-HTTP one). */
async function serverName(port = settings.caddy.httpPort): Promise<string> {
  const servers = (await adminJson('/config/apps/http/servers')).body as Record<string, { listen?: string[] }>;
  const found = Object.entries(servers ?? {}).find(([, s]) => (s.listen ?? []).some((l) => l.endsWith(`:${port}`)));
  if (!found) throw new Error(`no Caddy server listens on ${port}`);
  return found[0];
}
