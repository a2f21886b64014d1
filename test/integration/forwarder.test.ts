import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import bcrypt from 'bcryptjs';
import { createServer, get, request, type IncomingMessage, type Server } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Forwarder } from '../../controller/deploy/forwarder.js';
import { until } from './helpers/deploy.js';
import { probeHttp } from '../../controller/deploy/health.js';
import { ANSWER_HEADER, answerToken, newNonce, VERIFY_HEADER } from '../../controller/deploy/verify-answer.js';
import { freePort, stackSettings } from './helpers/stack.js';

function app(version: string): Server {
  return createServer((req, res) => {
    if (req.url === '/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write(`data: ${version}-0\n\n`);
      const t = setInterval(() => res.write(`data: ${version}\n\n`), 50);
      res.on('close', () => clearInterval(t));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(version);
  });
}

function fetchText(port: number, path = '/'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}


/** Scratch folders of this file (tables, sockets), removed when the file is done. */
const scratchDirs: string[] = [];
function scratch(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  scratchDirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const d of scratchDirs) rmSync(d, { recursive: true, force: true });
});

describe('forwarder (the blue-green switch)', () => {
  let blue: Server, green: Server, bluePort: number, greenPort: number, entry: number;
  let fwd: Forwarder;
  const table = join(scratch('codeb-fwd-'), 'table.json');

  beforeAll(async () => {
    [bluePort, greenPort, entry] = [await freePort(), await freePort(), await freePort()];
    blue = app('v1').listen(bluePort, '127.0.0.1');
    green = app('v2').listen(greenPort, '127.0.0.1');
    fwd = new Forwarder(table);
    await fwd.set('shop-production-web', entry, bluePort);
  });
  afterAll(async () => {
    await fwd.close();
    blue.close();
    green.close();
  });

  it('forwards to the assigned slot and switches new requests at once', async () => {
    expect((await fetchText(entry)).body).toBe('v1');
    const { previous } = await fwd.set('shop-production-web', entry, greenPort);
    expect(previous).toBe(bluePort);
    expect((await fetchText(entry)).body).toBe('v2');
    await fwd.set('shop-production-web', entry, bluePort);
    expect((await fetchText(entry)).body).toBe('v1');
  });

  it('loses no request while switching back and forth under load', async () => {
    let failed = 0;
    let ok = 0;
    const seen = new Set<string>();
    const worker = async () => {
      for (let i = 0; i < 150; i++) {
        try {
          const r = await fetchText(entry);
          if (r.status === 200) {
            ok++;
            seen.add(r.body);
          } else failed++;
        } catch {
          failed++;
        }
      }
    };
    const switcher = async () => {
      for (let i = 0; i < 20; i++) {
        await fwd.set('shop-production-web', entry, i % 2 ? bluePort : greenPort);
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    await Promise.all([worker(), worker(), worker(), worker(), switcher()]);
    expect(failed).toBe(0);
    expect(ok).toBe(600);
    expect([...seen].sort()).toEqual(['v1', 'v2']);
  });

  it('keeps an event stream on its slot across a switch and ends it when that slot retires', async () => {
    await fwd.set('shop-production-web', entry, bluePort);
    const events: string[] = [];
    const ended = new Promise<void>((resolve) => {
      get({ host: '127.0.0.1', port: entry, path: '/events' }, (res) => {
        res.setEncoding('utf8');
        res.on('data', (c: string) => events.push(...c.split('\n\n').filter(Boolean)));
        res.on('end', () => resolve());
        res.on('error', () => resolve());
      });
    });
    await until(() => events.length > 0, 30_000, 'the first event from v1');
    await fwd.set('shop-production-web', entry, greenPort);
    expect((await fetchText(entry)).body).toBe('v2');
    const before = events.length;
    await until(() => events.length > before, 30_000, 'more events from v1 after the switch'); // still streaming from v1
    expect(events.every((e) => e.startsWith('data: v1'))).toBe(true);
    const closed = await fwd.retire('shop-production-web', bluePort, 0);
    expect(closed).toBeGreaterThanOrEqual(1);
    await ended;
  });

  it('passes a websocket-style upgrade through to the slot', async () => {
    const upPort = await freePort();
    const upgradeServer = createServer();
    upgradeServer.on('upgrade', (_req, socket) => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
      socket.on('data', (d) => socket.write(`echo:${d.toString()}`));
    });
    upgradeServer.listen(upPort, '127.0.0.1');
    await fwd.set('ws-production-web', await freePort().then(async (p) => p), upPort);
    const e = fwd.list().find((x) => x.id === 'ws-production-web')!;
    const reply = await new Promise<string>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: e.entryPort, path: '/ws', headers: { connection: 'Upgrade', upgrade: 'websocket' } });
      req.on('upgrade', (_res, socket) => {
        socket.write('hello');
        socket.once('data', (d) => {
          resolve(d.toString());
          socket.destroy();
        });
      });
      req.on('error', reject);
      req.end();
    });
    expect(reply).toBe('echo:hello');
    await fwd.remove('ws-production-web');
    upgradeServer.close();
  });

  it('answers 502 with the reason when the slot is down, and restores its table after a restart', async () => {
    const dead = await freePort();
    const deadEntry = await freePort();
    await fwd.set('dead-production-web', deadEntry, dead);
    const r = await fetchText(deadEntry);
    expect(r.status).toBe(502);
    expect(r.body).toContain('ECONNREFUSED');
    await fwd.close();
    fwd = new Forwarder(table);
    await fwd.restore();
    expect(fwd.list().map((x) => x.id).sort()).toEqual(['dead-production-web', 'shop-production-web']);
    expect((await fetchText(entry)).body).toBe('v2');
  });
});

describe('forwarder entries for containers (the services address, owner subnet only)', () => {
  const at = stackSettings().network.servicesAddress;
  let upstream: Server, port: number, entry: number;
  let fwd: Forwarder;
  const table = join(scratch('codeb-fwd-allow-'), 'table.json');
  const fetchAt = (host: string, p: number) =>
    new Promise<string>((resolve) => {
      get({ host, port: p, path: '/', agent: false }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve(`${res.statusCode} ${body}`));
      }).on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    });

  beforeAll(async () => {
    [port, entry] = [await freePort(), await freePort()];
    upstream = app('v1').listen(port, '127.0.0.1');
    fwd = new Forwarder(table, { servicesAddress: at });
  });
  afterAll(async () => {
    await fwd.close();
    upstream.close();
  });

  it('answers a source inside the allowed subnet, closes any other, and keeps loopback for the host', async () => {
    // From this host a connection to the services address comes from that address itself.
    await fwd.set('allow-test', entry, port, true, `${at}/32`);
    expect(await fetchAt(at, entry)).toBe('200 v1');
    expect(await fetchAt('127.0.0.1', entry)).toBe('200 v1');
    expect(fwd.list()[0]).toMatchObject({ id: 'allow-test', allow: `${at}/32` });
    // Another owner's subnet: the same request is cut before it is read.
    await fwd.set('allow-test', entry, port, true, '192.0.2.0/26');
    expect(await fetchAt(at, entry)).toMatch(/ECONNRESET|socket hang up/);
    expect(await fetchAt('127.0.0.1', entry)).toBe('200 v1');
    // Without an owner subnet the entry is on loopback only.
    await fwd.set('allow-test', entry, port, true, null);
    expect(await fetchAt(at, entry)).toBe('ECONNREFUSED');
    await expect(fwd.set('allow-test', entry, port, true, 'not-a-subnet')).rejects.toThrow(/Invalid allowed subnet/);
  });
});

describe('forwarder restart with an entry port another program took', () => {
  it('restores the other entries, keeps the blocked one in its table, and forgets it when removed', async () => {
    const [port, free, taken] = [await freePort(), await freePort(), await freePort()];
    const upstream = app('v1').listen(port, '127.0.0.1');
    const table = join(scratch('codeb-fwd-restore-'), 'table.json');
    const first = new Forwarder(table);
    await first.set('ok', free, port);
    await first.set('blocked', taken, port);
    await first.close();
    const squatter = createServer().listen(taken, '127.0.0.1');
    const second = new Forwarder(table);
    try {
      await second.restore();
      expect(await fetchText(free)).toEqual({ status: 200, body: 'v1' });
      expect(second.list().map((e) => e.id)).toEqual(['ok']);
      await second.set('ok', free, port); // a save keeps the entry that could not listen
      expect((JSON.parse(readFileSync(table, 'utf8')) as { entries: Array<{ id: string }> }).entries.map((e) => e.id).sort()).toEqual(['blocked', 'ok']);
      expect(await second.remove('blocked')).toBe(true);
      expect((JSON.parse(readFileSync(table, 'utf8')) as { entries: Array<{ id: string }> }).entries.map((e) => e.id)).toEqual(['ok']);
    } finally {
      await second.close();
      squatter.close();
      upstream.close();
    }
  });
});

describe('forwarder: which slot answered a verification (issue 9, finding 4)', () => {
  let upPort: number, entry: number, seen: Array<string | undefined>;
  let up: Server;
  const fwd = new Forwarder(join(scratch('codeb-fwd-'), 'table.json'));

  beforeAll(async () => {
    [upPort, entry] = [await freePort(), await freePort()];
    seen = [];
    // A hostile app: it forges the answer header and records whether it ever sees the nonce.
    up = createServer((req, res) => {
      seen.push(req.headers[VERIFY_HEADER] as string | undefined);
      res.writeHead(200, { [ANSWER_HEADER]: 'forged' });
      res.end('ok');
    }).listen(upPort, '127.0.0.1');
    await fwd.set('shop--production--web', entry, upPort);
  });
  afterAll(async () => {
    await fwd.close();
    up.close();
  });

  it('answers a nonce with a token of entry and slot port; the app never sees the nonce nor forges the answer', async () => {
    const nonce = newNonce();
    const ok = await probeHttp({ port: entry, path: '/', expectStatus: 200, timeoutMs: 5000, headers: { [VERIFY_HEADER]: nonce }, expectHeader: { name: ANSWER_HEADER, value: answerToken(nonce, 'shop--production--web', upPort), what: 'the new slot' } });
    expect(ok).toMatchObject({ ok: true, status: 200 });
    // Another entry id or another slot port is not the answer the deployer waits for.
    for (const [id, port] of [['shop--staging--web', upPort], ['shop--production--web', upPort + 1]] as const) {
      const wrong = await probeHttp({ port: entry, path: '/', expectStatus: 200, timeoutMs: 5000, headers: { [VERIFY_HEADER]: nonce }, expectHeader: { name: ANSWER_HEADER, value: answerToken(nonce, id, port), what: 'the new slot' } });
      expect(wrong).toMatchObject({ ok: false, status: 200 });
      expect(wrong.detail).toMatch(/not answered by the new slot/);
    }
    expect(seen.every((h) => h === undefined)).toBe(true);
    expect(seen.length).toBe(3);
  });

  it('strips a forged answer header when the request has no nonce', async () => {
    const r = await new Promise<Record<string, unknown>>((resolve, reject) => {
      get({ host: '127.0.0.1', port: entry, path: '/', agent: false }, (res) => {
        res.resume();
        resolve(res.headers);
      }).on('error', reject);
    });
    expect(r[ANSWER_HEADER]).toBeUndefined();
  });
});

describe('forwarder entries with several targets (replicas)', () => {
  const table = join(scratch('codeb-fwd-replicas-'), 'table.json');
  const servers: Server[] = [];
  let fwd: Forwarder;
  let entry: number;
  let blue: number[];
  let green: number[];

  /** A POST that sends a body; its status (or the connection error). */
  const post = (port: number) =>
    new Promise<number | string>((resolve) => {
      const req = request({ host: '127.0.0.1', port, path: '/', method: 'POST', agent: false, headers: { 'content-type': 'text/plain' } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      req.end('payload');
    });

  beforeAll(async () => {
    entry = await freePort();
    blue = [await freePort(), await freePort(), await freePort()];
    green = [await freePort(), await freePort(), await freePort()];
    const named = [...blue.map((port, i) => [`blue-${i + 1}`, port] as const), ...green.map((port, i) => [`green-${i + 1}`, port] as const)];
    for (const [version, port] of named) {
      const server = app(version);
      await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
      servers.push(server);
    }
    fwd = new Forwarder(table);
    await fwd.set('shop--production--web', entry, blue);
  });
  afterAll(async () => {
    await fwd.close();
    for (const s of servers) s.close();
  });

  it('spreads requests over every target in turn', async () => {
    const bodies: string[] = [];
    for (let i = 0; i < 9; i++) bodies.push((await fetchText(entry)).body);
    expect(bodies.filter((b) => b === 'blue-1')).toHaveLength(3);
    expect(bodies.filter((b) => b === 'blue-2')).toHaveLength(3);
    expect(bodies.filter((b) => b === 'blue-3')).toHaveLength(3);
    expect(fwd.list()).toEqual([expect.objectContaining({ target: blue[0], targets: blue })]);
  });

  it('moves all targets at once in one switch, and keeps them across a restart', async () => {
    await fwd.set('shop--production--web', entry, green);
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) seen.add((await fetchText(entry)).body);
    expect([...seen].sort()).toEqual(['green-1', 'green-2', 'green-3']);
    expect(JSON.parse(readFileSync(table, 'utf8')).entries[0]).toMatchObject({ target: green[0], targets: green, previous: blue[0] });
    await fwd.close();
    fwd = new Forwarder(table);
    await fwd.restore();
    const after = new Set<string>();
    for (let i = 0; i < 6; i++) after.add((await fetchText(entry)).body);
    expect([...after].sort()).toEqual(['green-1', 'green-2', 'green-3']);
  });

  it('skips a target that refuses for a safe request; a POST to it is not replayed (502)', async () => {
    // green-2 stops: no listener, and the forwarder's kept-alive connections to it are closed.
    const closed = new Promise<void>((resolve) => servers[4]!.close(() => resolve()));
    servers[4]!.closeAllConnections();
    await closed;
    const gets: Array<{ status: number; body: string }> = [];
    for (let i = 0; i < 9; i++) gets.push(await fetchText(entry));
    expect(gets.every((r) => r.status === 200)).toBe(true);
    expect(new Set(gets.map((r) => r.body))).toEqual(new Set(['green-1', 'green-3']));
    const posts: Array<number | string> = [];
    for (let i = 0; i < 6; i++) posts.push(await post(entry));
    // Round robin sends one in three POSTs to green-2: its body cannot be replayed elsewhere.
    expect(posts.filter((s) => s === 502)).toHaveLength(2);
    expect(posts.filter((s) => s === 200)).toHaveLength(4);
  });
});

describe('the host router: route auth on requests and websocket upgrades', () => {
  const dir = scratch('codeb-fwd-router-');
  const socketPath = join(dir, 'router.sock');
  const hash = bcrypt.hashSync('s3cret', 4);
  const good = `Basic ${Buffer.from('ops:s3cret').toString('base64')}`;
  let fwd: Forwarder;
  let appServer: Server;
  let router: Server;

  /** What the app saw of a request: its headers, as JSON (over the tunnel for an upgrade). */
  const seen = (req: IncomingMessage) => JSON.stringify(req.headers);

  /** A request through the router as Caddy sends it (its client header set); status and body. */
  const viaRouter = (headers: Record<string, string>) =>
    new Promise<{ status: number; body: string; challenge?: string }>((resolve, reject) => {
      const req = request({ socketPath, path: '/x', agent: false, headers: { host: 'admin.example.com', ...headers } }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, challenge: res.headers['www-authenticate'] }));
      });
      req.on('error', reject);
      req.end();
    });

  /** A websocket-style upgrade through the router: the app's echo of its headers, or the refusal's status. */
  const upgradeViaRouter = (headers: Record<string, string>) =>
    new Promise<{ upgraded: true; body: string } | { upgraded: false; status: number; body?: string }>((resolve, reject) => {
      const req = request({ socketPath, path: '/ws', agent: false, headers: { host: 'admin.example.com', connection: 'Upgrade', upgrade: 'websocket', ...headers } });
      req.on('upgrade', (_res, socket, head: Buffer) => {
        let body = head.toString();
        socket.on('data', (c: Buffer) => (body += c.toString()));
        socket.on('end', () => resolve({ upgraded: true, body }));
      });
      req.on('response', (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ upgraded: false, status: res.statusCode ?? 0, ...(res.statusCode === 400 ? { body } : {}) }));
      });
      req.on('error', reject);
      req.end();
    });

  beforeAll(async () => {
    const [appPort, entry] = [await freePort(), await freePort()];
    appServer = createServer((req, res) => res.end(seen(req)));
    appServer.on('upgrade', (req, socket) => socket.end(`HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\r\n${seen(req)}`));
    await new Promise<void>((resolve) => appServer.listen(appPort, '127.0.0.1', resolve));
    fwd = new Forwarder(join(dir, 'table.json'));
    await fwd.set('adm--production--web', entry, appPort);
    await fwd.setRoute({ id: 'codeb-adm--production', domains: ['admin.example.com'], tls: 'off', upstreams: [{ path: null, port: entry, service: 'web', auth: { basic: { user: 'ops', hash }, allow: ['127.0.0.0/8'] } }], websockets: true });
    router = createServer((req, res) => fwd.routeRequest(req, res));
    router.on('upgrade', (req, socket, head) => fwd.routeUpgrade(req, socket as Socket, head));
    await new Promise<void>((resolve) => router.listen(socketPath, resolve));
  });
  afterAll(async () => {
    router.close();
    router.closeAllConnections();
    await fwd.close();
    appServer.close();
  });

  it('asks for a password (401) without one or with a wrong one; with it, the app sees neither the credentials nor codeb headers', async () => {
    const none = await viaRouter({ 'x-codeb-client': '127.0.0.1' });
    expect([none.status, none.challenge]).toEqual([401, 'Basic realm="web", charset="UTF-8"']);
    expect((await viaRouter({ 'x-codeb-client': '127.0.0.1', authorization: 'Bearer app-token' })).status).toBe(401);
    expect((await viaRouter({ 'x-codeb-client': '127.0.0.1', authorization: `Basic ${Buffer.from('ops:wrong').toString('base64')}` })).status).toBe(401);
    const ok = await viaRouter({ 'x-codeb-client': '127.0.0.1', 'x-codeb-scheme': 'https', authorization: good });
    expect(ok.status).toBe(200);
    const headers = JSON.parse(ok.body) as Record<string, string>;
    expect(headers.host).toBe('admin.example.com');
    expect(Object.keys(headers).filter((h) => h === 'authorization' || h.startsWith('x-codeb-'))).toEqual([]);
  });

  it('refuses an address outside the allow-list (403) even with the password, and a request without a client address', async () => {
    expect((await viaRouter({ 'x-codeb-client': '192.0.2.7', authorization: good })).status).toBe(403);
    expect((await viaRouter({ authorization: good })).status).toBe(403);
  });

  it('checks a websocket upgrade the same way, and the tunnel carries neither the credentials nor codeb headers', async () => {
    expect(await upgradeViaRouter({ 'x-codeb-client': '127.0.0.1' })).toEqual({ upgraded: false, status: 401 });
    expect(await upgradeViaRouter({ 'x-codeb-client': '192.0.2.7', authorization: good })).toEqual({ upgraded: false, status: 403 });
    const ok = await upgradeViaRouter({ 'x-codeb-client': '127.0.0.1', 'x-codeb-scheme': 'https', authorization: good });
    expect(ok.upgraded).toBe(true);
    const headers = JSON.parse((ok as { body: string }).body) as Record<string, string>;
    expect(headers.upgrade).toBe('websocket');
    expect(Object.keys(headers).filter((h) => h === 'authorization' || h.startsWith('x-codeb-'))).toEqual([]);
  });

  it('refuses a websocket upgrade (400, naming the manifest field) for a route without websockets; passes it once the route has them', async () => {
    const entry = fwd.route('codeb-adm--production')!.upstreams[0]!.port;
    const plain = (websockets: boolean) => fwd.setRoute({ id: 'codeb-plain--production', domains: ['plain.example.com'], tls: 'off', upstreams: [{ path: null, port: entry, service: 'web' }], websockets });
    const upgrade = () => upgradeViaRouter({ host: 'plain.example.com', 'x-codeb-client': '127.0.0.1' });
    await plain(false);
    const refused = await upgrade();
    expect(refused).toMatchObject({ upgraded: false, status: 400 });
    expect((refused as { body: string }).body).toContain('`features.websockets: true`');
    // Plain requests to that route still pass.
    expect((await viaRouter({ host: 'plain.example.com', 'x-codeb-client': '127.0.0.1' })).status).toBe(200);
    await plain(true);
    expect((await upgrade()).upgraded).toBe(true);
  });

  it('lists the route with a fingerprint of the hash; only the 0600 table file keeps the hash', () => {
    expect(JSON.stringify(fwd.routes())).not.toContain(hash);
    expect(readFileSync(join(dir, 'table.json'), 'utf8')).toContain(hash);
    expect(statSync(join(dir, 'table.json')).mode & 0o777).toBe(0o600);
  });
});
