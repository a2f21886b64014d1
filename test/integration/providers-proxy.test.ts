/**
 * ProxyProvider against the real Caddy (2.6+) and forwarder of the local stack: a route is a
 * forwarder host-table entry behind Caddy's static front. It is created once (a second apply plans
 * nothing and Caddy's config is never written), answers through Caddy with the security headers,
 * sends path prefixes to their own service, streams server-sent events event by event without gzip
 * while HTML is gzipped, rides out a slot that starts a second late, passes websocket upgrades, is
 * seen when removed behind codeb's back, refuses a domain another route holds, serves tls
 * 'internal' with on-demand certificates only for its own domains, and unknown hosts get 404.
 * On a private Caddy + forwarder pair (started by the stack's own code): a broken front is drift
 * that apply repairs, routes survive a restart of Caddy and of the forwarder, and Caddy's admin
 * API is a 0600 socket with no TCP listener.
 *
 * Slots are tiny node servers on random 127.0.0.1 ports behind forwarder entries; hosts are
 * <unique>.localhost.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CodebError, ServiceUnavailableError } from '../../controller/errors.js';
import { ForwarderClient } from '../../controller/deploy/forwarder-client.js';
import { FRONT_IDS } from '../../controller/providers/caddy-front.js';
import { caddyAdminRequest, ProxyProvider, type AdminMethod } from '../../controller/providers/proxy.js';
import type { RouteSpec } from '../../controller/reconcile/desired.js';
import { makeResource, type Action, type ExecContext, type Resource } from '../../controller/reconcile/model.js';
import { planApply, planDestroy } from '../../controller/reconcile/plan.js';
import type { Settings } from '../../controller/settings.js';
import { freePort, privateProxyPair, stackSettings, uniqueId } from './helpers/stack.js';

let settings: Settings;
let provider: ProxyProvider;
let forwarder: ForwarderClient;
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

/** The admin API directly (over its Unix socket for the stack's Caddy). */
async function adminJson(path: string, method: AdminMethod = 'GET', body?: unknown, adminUrl = settings.caddy.adminUrl): Promise<{ status: number; body: unknown }> {
  const res = await caddyAdminRequest(adminUrl, method, path, body);
  return { status: res.status, body: res.text ? (JSON.parse(res.text) as unknown) : null };
}

/**
 * A forwarder entry (as a deploy makes one) in front of a slot port: the route's upstream port is
 * the entry's, the router forwards to the entry's live slot.
 */
async function entryFor(service: string, slotPort: number, fwd = forwarder): Promise<number> {
  const entry = await freePort();
  const id = `${run}-${service}-${entry}`;
  await fwd.set(id, entry, slotPort);
  cleanup.push(() => fwd.remove(id).catch(() => false));
  return entry;
}

function spec(domains: string[], upstreams: RouteSpec['upstreams'], over: Partial<RouteSpec> = {}): RouteSpec {
  return { domains, tls: 'off', upstreams, websockets: true, caddyFront: true, ...over };
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
  provider = new ProxyProvider(settings.caddy, settings.forwarder);
  forwarder = new ForwarderClient(settings.forwarder.socketPath);
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


describe('ProxyProvider (the stack: Caddy front + forwarder host table)', () => {
  const name = `codeb-${run}-prod`;
  const domain = `${run}.localhost`;
  const alias = `www.${run}.localhost`;
  let web: Upstream;
  let api: Upstream;
  let lateUp: number;
  let ports: { web: number; api: number; late: number };
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
    ports = { web: await entryFor('web', web.port), api: await entryFor('api', api.port), late: await entryFor('late', lateUp) };
    res = routeResource(
      name,
      spec([domain], [
        { path: '/late', port: ports.late, service: 'late' },
        { path: '/api', port: ports.api, service: 'api' },
        { path: null, port: ports.web, service: 'web' },
      ]),
    );
  });

  it('creates the route once, without writing Caddy: the second plan is unchanged, a repeated create changes nothing', async () => {
    const caddyBefore = await adminJson('/config/');
    const calls: string[] = [];
    const watched = new ProxyProvider(settings.caddy, settings.forwarder, {
      adminRequest: (url, method, path, body, timeout) => (calls.push(`${method} ${path}`), caddyAdminRequest(url, method, path, body, timeout)),
    });
    const [first] = planApply([res], await watched.observe([res]));
    expect(first!.op).toBe('create');
    await watched.execute(first!, ctx);
    const again = await plan(res);
    expect(again.op, JSON.stringify(again.changes)).toBe('unchanged');
    // create again (a crashed apply re-run): still unchanged, still one route
    await watched.execute(first!, ctx);
    expect((await forwarder.routes()).filter((r) => r.id === name)).toHaveLength(1);
    expect((await plan(res)).op).toBe('unchanged');
    // Caddy was only read: its configuration is what `stack up` wrote
    expect(calls.filter((c) => !c.startsWith('GET '))).toEqual([]);
    expect(await adminJson('/config/')).toEqual(caddyBefore);

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
    // the host matches whatever its case, with or without the port
    expect((await get(`${domain.toUpperCase()}:${settings.caddy.httpPort}`, '/case')).body.toString()).toBe('web /case');
  });

  it('answers an unknown host with 404 (with the security headers), not an empty 200', async () => {
    for (const host of [`nobody-${run}.localhost`, '127.0.0.1', `${run}.localhost.example`]) {
      const r = await get(host, '/');
      expect(r.status, host).toBe(404);
      expect(r.headers['x-frame-options']).toBe('DENY');
    }
  });

  it('sends a path prefix to its own service, and only that prefix', async () => {
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
    // The upstream ends the stream only after the client has the first event: if anything on the
    // way buffered (as a gzip encoder without flush does on Caddy 2.6), the first event would never arrive.
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
    await apply(routeResource(sseName, spec([sseDomain], [{ path: null, port: await entryFor('events', sse.port), service: 'events' }])));

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
  });

  it('waits for a slot that is briefly down (starts 1 s after the request) instead of failing', async () => {
    const pending = get(domain, '/late/ping');
    // Still waiting a second later (no slot answers yet): not failed, not answered.
    const early = await Promise.race([pending.then(() => 'settled', () => 'settled'), new Promise((r) => setTimeout(() => r('pending'), 1000))]);
    expect(early).toBe('pending');
    const late = await upstream('late', undefined, lateUp);
    const r = await pending;
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('late /late/ping');
    expect(late.hits).toEqual(['/late/ping']);
  });

  it('passes a websocket upgrade through to the service', async () => {
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
    await apply(routeResource(wsName, spec([wsDomain], [{ path: '/socket', port: await entryFor('gateway', ws.port), service: 'gateway' }, { path: null, port: ports.web, service: 'web' }])));

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
    res = changed;
  });

  it('sees the route removed behind its back, and creates it again', async () => {
    expect(await forwarder.removeRoute(name)).toBe(true);
    const observed = await provider.observe([res]);
    expect(observed[0]).toEqual({ key: res.key, exists: false });
    expect((await get(domain, '/gone')).status).toBe(404);
    expect((await plan(res)).op).toBe('create');
    await apply(res);
    expect((await plan(res)).op).toBe('unchanged');
    expect((await get(domain, '/back')).body.toString()).toBe('web /back');
  });

  it("refuses a domain another route serves: blocked in plan naming the holder, and the holder keeps serving", async () => {
    const thief = routeResource(`codeb-${run}-thief`, spec([`other-${run}.localhost`, alias], [{ path: null, port: ports.api, service: 'web' }]));
    routes.delete(thief.name);
    const action = await plan(thief);
    expect(action.op).toBe('blocked');
    expect(action.reason).toContain(`domain ${alias} is served by route ${name}`);
    // even if executed anyway, the forwarder refuses it and changes nothing
    await expect(provider.execute({ ...action, op: 'create' }, ctx)).rejects.toThrow(/refused route .* served by route/);
    expect(await forwarder.route(thief.name)).toBeUndefined();
    expect((await get(alias, '/still')).body.toString()).toBe('web /still');
    expect((await get(`other-${run}.localhost`, '/')).status).toBe(404);
  });

  it('deletes the route: the host answers 404', async () => {
    const sseName = `codeb-${run}-sse`;
    const r = makeResource('proxy.route', sseName, {});
    const [action] = planDestroy([r], await provider.observe([r]), false);
    expect(action!.op).toBe('delete');
    await provider.execute(action!, ctx);
    expect((await provider.observe([r]))[0]!.exists).toBe(false);
    // deleting again is a no-op
    await provider.execute(action!, ctx);
    routes.delete(sseName);
    expect((await get(`sse-${run}.localhost`, '/events')).status).toBe(404);
  });

  it('rejects a spec where two services share a path, before anything is written', async () => {
    const bad = routeResource(`codeb-${run}-bad`, spec([`bad-${run}.localhost`], [{ path: null, port: ports.web, service: 'a' }, { path: null, port: ports.api, service: 'b' }]));
    routes.delete(bad.name);
    await expect(apply(bad)).rejects.toThrow(CodebError);
    expect((await provider.observe([bad]))[0]!.exists).toBe(false);
  });
});

/** One HTTPS request to the stack's Caddy with SNI `host`: the answer and the certificate's issuer, or the TLS error. */
function httpsGet(host: string, path: string): Promise<{ status: number; body: string; issuer: string } | { error: string }> {
  return new Promise((resolve) => {
    const req = httpsRequest({ host: '127.0.0.1', port: settings.caddy.httpsPort, servername: host, path, headers: { host }, rejectUnauthorized: false, agent: false }, (res) => {
      const issuer = String((res.socket as TLSSocket).getPeerCertificate().issuer?.CN ?? '');
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, issuer }));
    });
    req.setTimeout(20_000, () => req.destroy(new Error('timed out')));
    req.on('error', (e) => resolve({ error: (e as NodeJS.ErrnoException).code ?? e.message }));
    req.end();
  });
}

describe('ProxyProvider tls internal (on-demand certificates)', () => {
  it("serves the route over HTTPS with a certificate from Caddy's internal CA; plain HTTP redirects; tls off gets no certificate", async () => {
    const name = `codeb-${run}-tls`;
    const domain = `tls-${run}.localhost`;
    const web = await upstream('secure');
    const r = routeResource(name, spec([domain], [{ path: null, port: await entryFor('secure', web.port), service: 'web' }], { tls: 'internal' }));
    await apply(r);
    expect((await plan(r)).op).toBe('unchanged');

    // The certificate is obtained during the first handshake (Caddy asks the router first).
    const reply = await httpsGet(domain, '/s');
    expect(reply).toMatchObject({ status: 200, body: 'secure /s' });
    expect((reply as { issuer: string }).issuer).toMatch(/Caddy Local Authority/);
    const redirect = await get(domain, '/p?q=1');
    expect(redirect.status).toBe(308);
    expect(redirect.headers.location).toBe(`https://${domain}:${settings.caddy.httpsPort}/p?q=1`);
    // A host without a TLS route gets no certificate: the handshake fails.
    expect(await httpsGet(`nobody-${run}.localhost`, '/')).toHaveProperty('error');

    // switching the route to tls off: served on plain HTTP, and no new certificate for it
    const off = routeResource(name, { ...(r.spec as RouteSpec), tls: 'off' });
    const change = await plan(off);
    expect(change.changes.map((c) => c.field)).toEqual(['tls']);
    await provider.execute(change, ctx);
    expect((await plan(off)).op).toBe('unchanged');
    expect((await get(domain, '/plain')).body.toString()).toBe('secure /plain');
  });
});

describe("Caddy's front, restarts and the admin API (a private Caddy + forwarder started by the stack's code)", () => {
  let dir: string;
  let pair: Awaited<ReturnType<typeof privateProxyPair>>;
  let p: ProxyProvider;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'codeb-proxy-pair-'));
    pair = await privateProxyPair(dir, stackSettings());
    p = new ProxyProvider(pair.settings.caddy, pair.settings.forwarder);
  });
  afterAll(async () => {
    await pair?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const viaPair = (host: string, path: string) => get(host, path, {}, pair.settings.caddy.httpPort);
  const applyTo = async (r: Resource) => {
    const [action] = planApply([r], await p.observe([r]));
    await p.execute(action!, ctx);
    return action!;
  };

  it("admin API: an owner-only socket in a 0700 folder, and Caddy listens on no TCP port but HTTP and HTTPS", async () => {
    const admin = pair.settings.caddy.adminUrl;
    expect(admin).toMatch(/^unix:\/\//);
    const sock = admin.slice('unix://'.length);
    // Owner only (Caddy 2.6 cannot set the mode; the stack starts it with umask 077), in a 0700 folder.
    expect(statSync(sock).mode & 0o077).toBe(0);
    expect(statSync(dirname(sock)).mode & 0o777).toBe(0o700);
    expect((await adminJson('/config/', 'GET', undefined, admin)).status).toBe(200);
    // The TCP ports the Caddy process listens on, from /proc (its socket inodes in LISTEN state).
    const pid = Number(JSON.parse(readFileSync(join(dir, 'proxy', 'run', 'caddy.pid'), 'utf8')).pid);
    const inodes = new Set(readdirSync(`/proc/${pid}/fd`).map((fd) => /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1]).filter(Boolean));
    const listening = ['/proc/net/tcp', '/proc/net/tcp6'].flatMap((f) =>
      readFileSync(f, 'utf8').split('\n').slice(1).map((l) => l.trim().split(/\s+/)).filter((c) => c[3] === '0A' && inodes.has(c[9])).map((c) => parseInt(c[1]!.split(':')[1]!, 16)),
    );
    expect(listening.sort()).toEqual([pair.settings.caddy.httpPort, pair.settings.caddy.httpsPort].sort());
  });

  it('a broken front is drift: plan shows caddyFront, apply puts the front back', async () => {
    const web = await upstream('front');
    const r = routeResource(`codeb-${run}-front`, spec([`front-${run}.localhost`], [{ path: null, port: await entryFor('front', web.port, new ForwarderClient(pair.settings.forwarder.socketPath)), service: 'web' }]));
    routes.delete(r.name);
    await applyTo(r);
    expect((await viaPair(`front-${run}.localhost`, '/a')).body.toString()).toBe('front /a');
    const good = await adminJson('/config/', 'GET', undefined, pair.settings.caddy.adminUrl);

    expect((await adminJson(`/id/${FRONT_IDS.http}`, 'DELETE', undefined, pair.settings.caddy.adminUrl)).status).toBe(200);
    const [drift] = planApply([r], await p.observe([r]));
    expect(drift!.op).toBe('update');
    expect(drift!.changes).toEqual([{ field: 'caddyFront', from: false, to: true }]);
    await p.execute(drift!, ctx);
    expect(planApply([r], await p.observe([r]))[0]!.op).toBe('unchanged');
    expect((await viaPair(`front-${run}.localhost`, '/b')).body.toString()).toBe('front /b');
    expect(await adminJson('/config/', 'GET', undefined, pair.settings.caddy.adminUrl)).toEqual(good);
  });

  it('routes survive a restart of Caddy and of the forwarder (`codeb stack down` + `up` of the pair)', async () => {
    const web = await upstream('restarted');
    const fwd = new ForwarderClient(pair.settings.forwarder.socketPath);
    const r = routeResource(`codeb-${run}-restart`, spec([`restart-${run}.localhost`], [{ path: null, port: await entryFor('restarted', web.port, fwd), service: 'web' }]));
    routes.delete(r.name);
    await applyTo(r);
    await pair.stop();
    expect((await viaPair(`restart-${run}.localhost`, '/').catch((e: Error) => e)) instanceof Error).toBe(true);
    pair = await privateProxyPair(dir, stackSettings());
    p = new ProxyProvider(pair.settings.caddy, pair.settings.forwarder);
    expect(planApply([r], await p.observe([r]))[0]!.op).toBe('unchanged');
    const after = await viaPair(`restart-${run}.localhost`, '/after');
    expect(after.status).toBe(200);
    expect(after.body.toString()).toBe('restarted /after');
    expect(after.headers['x-frame-options']).toBe('DENY');
  });

  it('Caddy rejecting a config is a CodebError with Caddy\'s own error text', async () => {
    // a route whose handler has a field Caddy 2.6 does not know: the admin API refuses it
    const admin = p as unknown as { admin(m: string, path: string, body?: unknown): Promise<unknown> };
    const err = await admin.admin('POST', '/config/apps/http/servers/codeb/routes', { handle: [{ handler: 'encode', stream_close_delay: '1s' }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CodebError);
    expect((err as Error).message).toMatch(/Caddy rejected POST .*unknown field/);
  });
});

describe('ProxyProvider errors', () => {
  it('an unreachable admin API is a ServiceUnavailableError naming it', async () => {
    const missing = join(tmpdir(), `codeb-no-caddy-${run}.sock`);
    const p = new ProxyProvider({ ...settings.caddy, adminUrl: `unix://${missing}` }, settings.forwarder);
    const r = makeResource('proxy.route', `codeb-${run}-x`, spec(['x.localhost'], [{ path: null, port: 3000, service: 'web' }]));
    const err = await p.observe([r]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServiceUnavailableError);
    expect((err as Error).message).toContain('Caddy admin API');
    expect((err as Error).message).toContain(missing);
  });
});
