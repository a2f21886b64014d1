/**
 * The blue-green switch and the host router. Caddy (2.6) reloads its whole configuration on every admin API change and
 * drops in-flight connections doing so, so a deploy must not touch Caddy. Instead each web or
 * internal service has a stable entry port on 127.0.0.1 served by this forwarder; Caddy's route
 * points at the entry port once and for all, and a switch only changes which slot port the entry
 * forwards new requests to — an in-memory assignment, no reload, no dropped request.
 *
 * Per-request HTTP forwarding (not TCP splicing) so that Caddy's pooled keep-alive connections
 * follow the switch at the next request. Requests already in flight finish on the old slot.
 * Websockets and server-sent event streams opened before a switch stay on the old slot until it
 * is retired; retiring closes them cleanly so clients reconnect to the new slot (docs/deploy.md).
 *
 * An entry may have several targets (a service's replicas, each on its own slot port): requests
 * take turns over them (round robin), and a safe request a target refuses goes to the next one at
 * once. A switch replaces the whole list in one assignment, so all replicas move together.
 *
 * The router (routeRequest/routeUpgrade, on a Unix socket Caddy's one static route proxies to)
 * picks the deployment by Host and the service by path from the host table (host-routes.ts), then
 * forwards exactly as the service's entry port would: to the entry's live slot. Adding, changing or
 * removing a project's route is a table change here, never a Caddy config change, so neighbours
 * lose nothing. It also answers Caddy's on-demand TLS `ask` (only for domains of routes with TLS).
 *
 * Written on node:http because the maintained proxy libraries need Node 22 and the old ones are
 * unmaintained; the job is small: forward, retry once on connect failure, track streams per slot.
 */
import { ANSWER_HEADER, answerToken, isNonce, VERIFY_HEADER } from './verify-answer.js';
import { createServer, request as httpRequest, Agent, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import writeFileAtomic from 'write-file-atomic';
import { inCidr, parseCidr } from '../runtime/network.js';
import { CLIENT_HEADER, HostTable, normaliseHost, publicRoute, SCHEME_HEADER, TLS_ASK_PATH, type HostRoute, type HostUpstream } from './host-routes.js';
import { authDecision, BUSY, challenge, VerifiedCache } from './route-auth.js';

export interface ForwarderEntry {
  id: string;
  entryPort: number;
  /** The first target (the only one without replicas). */
  target: number;
  /** Every target, when there are several (replicas); absent means [target]. */
  targets?: number[];
  previous: number | null;
  updatedAt: string;
  /**
   * The owning project's container subnet: the entry also listens on the services address (for
   * containers) and accepts a connection there only from inside this subnet. null: loopback only.
   */
  allow?: string | null;
}

export interface SetResult {
  previous: number | null;
  /** How long the in-memory switch took. */
  switchMs: number;
  /**
   * When new requests started going to the new target: process.hrtime.bigint() (CLOCK_MONOTONIC,
   * the same clock in every process on the machine), as a decimal string. The answer itself comes
   * later: the table is persisted (fsync) first, and a busy forwarder answers later still.
   */
  switchedAt: string;
}

interface LiveEntry extends ForwarderEntry {
  targets: number[];
  /** Round-robin position over targets. */
  turn: number;
  server: Server;
  /** The listener on the services address, when the entry has an `allow` subnet. */
  containerServer: Server | null;
  /** Long-lived or in-flight connections per slot port, closed when that slot is retired. */
  open: Map<number, Set<Socket>>;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade']);
const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost']);

export interface RouterOptions {
  /** The public HTTPS port, for redirects of TLS hosts requested over plain HTTP (443: left out of the URL). */
  httpsPort?: number;
  /** How long a safe request (GET, HEAD, OPTIONS) is retried while its slot refuses connections (default 5 s). */
  retryWindowMs?: number;
  /** Where containers reach entries (docs/runtime.md, "Networks"); none: entries listen on 127.0.0.1 only. */
  servicesAddress?: string | null;
}
/** Headers a websocket tunnel never passes to the app: what codeb's front set, a verification nonce. */
const TUNNEL_DROPS = new Set([SCHEME_HEADER, CLIENT_HEADER, VERIFY_HEADER]);
const RETRYABLE = new Set(['GET', 'HEAD', 'OPTIONS']);
/** An answer the router gives itself. */
type Answer = { status: number; headers?: Record<string, string>; body: string };
const STATUS_TEXT: Record<number, string> = { 308: 'Permanent Redirect', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 500: 'Internal Server Error', 502: 'Bad Gateway' };

/** The answer to a websocket upgrade for a route whose manifest did not ask for websockets. */
const WEBSOCKETS_OFF: Answer = { status: 400, body: 'codeb: this site does not take websocket connections; set `features.websockets: true` in its manifest and apply\n' };

export class Forwarder {
  private readonly entries = new Map<string, LiveEntry>();
  /** The same entries by entry port: the router finds a route's entry on every request. */
  private readonly byPort = new Map<number, LiveEntry>();
  private readonly agents = new Map<number, Agent>();
  /** Saved entries that could not listen at restore: kept in the table so they are not forgotten. */
  private readonly unrestored: ForwarderEntry[] = [];
  private readonly hosts = new HostTable();
  /** Basic-auth checks that succeeded (route-auth.ts): a keep-alive client pays one bcrypt. */
  private readonly verified = new VerifiedCache();

  constructor(
    private readonly tableFile: string,
    private readonly router: RouterOptions = {},
  ) {
    this.router = { retryWindowMs: 5000, ...router };
  }

  /** The host routes as listings show them: basic-auth hashes as fingerprints (host-routes.ts publicRoute). */
  routes(): HostRoute[] {
    return this.hosts.list().map(publicRoute);
  }

  route(id: string): HostRoute | undefined {
    const r = this.hosts.get(id);
    return r && publicRoute(r);
  }

  /** Add or replace a host route (RouteRefused when invalid or a domain is another route's). */
  async setRoute(route: HostRoute): Promise<void> {
    this.hosts.set(route);
    await this.save();
  }

  async removeRoute(id: string): Promise<boolean> {
    const removed = this.hosts.remove(id);
    if (removed) await this.save();
    return removed;
  }

  list(): ForwarderEntry[] {
    return [...this.entries.values()].map(({ id, entryPort, target, targets, previous, updatedAt, allow }) => ({ id, entryPort, target, ...(targets.length > 1 ? { targets: [...targets] } : {}), previous, updatedAt, allow: allow ?? null }));
  }

  /** Load the persisted table and listen on every entry port (after a restart). */
  async restore(): Promise<void> {
    if (!existsSync(this.tableFile)) return;
    const saved = JSON.parse(readFileSync(this.tableFile, 'utf8')) as { entries: ForwarderEntry[]; routes?: HostRoute[] };
    for (const e of saved.entries) {
      // One entry whose port another program took meanwhile must not keep every other entry down;
      // it stays in the table (the next deploy or apply of its project sets it again).
      await this.set(e.id, e.entryPort, e.targets?.length ? e.targets : e.target, false, e.allow ?? null).catch((err: Error) => {
        console.error(`${new Date().toISOString()} entry ${e.id} (port ${e.entryPort}) not restored: ${err.message}`);
        this.unrestored.push(e);
      });
    }
    for (const r of saved.routes ?? []) {
      try {
        this.hosts.set(r);
      } catch (err) {
        // A route edited into an invalid state by hand: the others still serve; the next apply puts it back.
        process.stderr.write(`codeb forwarder: skipped a saved route: ${(err as Error).message}\n`);
      }
    }
  }

  /**
   * Point an entry at a slot port, or at several (one per replica). New requests go there from the
   * moment this returns; the returned time is how long the switch itself took.
   */
  async set(id: string, entryPort: number, to: number | readonly number[], persist = true, allow: string | null = null): Promise<SetResult> {
    const t0 = process.hrtime.bigint();
    const targets = [...new Set(typeof to === 'number' ? [to] : to)];
    if (!targets.length || !targets.every((t) => Number.isInteger(t) && t > 0 && t <= 65535)) throw new Error(`invalid targets ${JSON.stringify(to)} for entry ${id}`);
    const target = targets[0]!;
    if (allow !== null) parseCidr(allow, 'allowed subnet'); // refuse garbage before anything changes
    let e = this.entries.get(id);
    if (e && (e.entryPort !== entryPort || (e.allow ?? null) !== allow)) {
      // A new port or another owner subnet: listen afresh (the switch itself never comes here).
      await this.remove(id, false);
      e = undefined;
    }
    let previous: number | null = null;
    if (e) {
      previous = e.target === target ? e.previous : e.target;
      // One assignment of the whole list: every replica of the new slot takes requests at once.
      e.target = target;
      e.targets = targets;
      e.previous = previous;
      e.updatedAt = new Date().toISOString();
    } else {
      const live: LiveEntry = { id, entryPort, target, targets, turn: 0, previous: null, updatedAt: new Date().toISOString(), allow, server: this.entryServer(null), containerServer: null, open: new Map() };
      live.server.on('request', (req, res) => this.forward(live, req, res));
      live.server.on('upgrade', (req, socket, head) => this.tunnel(live, req, socket as Socket, head));
      await listen(live.server, entryPort, '127.0.0.1');
      if (allow !== null && this.router.servicesAddress) {
        // Containers of the owning project only: any other source is closed before a byte is read.
        const server = this.entryServer(parseCidr(allow, 'allowed subnet'));
        server.on('request', (req, res) => this.forward(live, req, res));
        server.on('upgrade', (req, socket, head) => this.tunnel(live, req, socket as Socket, head));
        try {
          await listen(server, entryPort, this.router.servicesAddress);
        } catch (err) {
          await new Promise<void>((resolve) => live.server.close(() => resolve()));
          throw err;
        }
        live.containerServer = server;
      }
      this.entries.set(id, live);
      this.byPort.set(entryPort, live);
    }
    const switchedAt = process.hrtime.bigint();
    const switchMs = Number(switchedAt - t0) / 1e6;
    if (persist) await this.save();
    return { previous, switchMs, switchedAt: switchedAt.toString() };
  }

  async remove(id: string, persist = true): Promise<boolean> {
    const stale = this.unrestored.findIndex((u) => u.id === id);
    if (stale >= 0 && persist) {
      this.unrestored.splice(stale, 1);
      if (!this.entries.has(id)) await this.save();
    }
    const e = this.entries.get(id);
    if (!e) return stale >= 0;
    this.entries.delete(id);
    if (this.byPort.get(e.entryPort) === e) this.byPort.delete(e.entryPort);
    for (const set of e.open.values()) for (const s of set) s.destroy();
    await new Promise<void>((resolve) => e.server.close(() => resolve()));
    if (e.containerServer) await new Promise<void>((resolve) => e.containerServer!.close(() => resolve()));
    if (persist) await this.save();
    return true;
  }

  /** Close what is still open to a retired slot port, after a grace period for in-flight requests. */
  async retire(id: string, port: number, graceMs: number): Promise<number> {
    const e = this.entries.get(id);
    if (!e) return 0;
    if (graceMs > 0) await new Promise((r) => setTimeout(r, graceMs));
    const set = e.open.get(port);
    let closed = 0;
    if (set) {
      for (const s of set) {
        s.end();
        closed++;
      }
      e.open.delete(port);
    }
    if (e.previous === port) {
      e.previous = null;
      await this.save();
    }
    this.agents.get(port)?.destroy();
    this.agents.delete(port);
    return closed;
  }

  async close(): Promise<void> {
    for (const id of [...this.entries.keys()]) await this.remove(id, false);
    for (const a of this.agents.values()) a.destroy();
  }

  private async save(): Promise<void> {
    mkdirSync(dirname(this.tableFile), { recursive: true });
    const live = this.list();
    const kept = this.unrestored.filter((u) => !this.entries.has(u.id));
    // 0600: routes with basic auth carry their bcrypt hash, which a restart needs.
    await writeFileAtomic(this.tableFile, JSON.stringify({ entries: [...live, ...kept], routes: this.hosts.list() }, null, 2) + '\n', { mode: 0o600 });
  }

  /** An HTTP server for one entry; with `allow`, connections from outside that subnet are closed at once. */
  private entryServer(allow: ReturnType<typeof parseCidr> | null): Server {
    const server = createServer();
    server.keepAliveTimeout = 65_000;
    if (allow) {
      server.on('connection', (socket: Socket) => {
        if (!inCidr(socket.remoteAddress ?? '', allow)) socket.destroy();
      });
    }
    return server;
  }

  /** The live entry behind an entry port (the route's upstream), if a deploy has made one. */
  private entryAt(port: number): LiveEntry | undefined {
    return this.byPort.get(port);
  }

  /**
   * Where a routed request goes: an entry (with the upstream, whose auth is checked next), or an
   * answer the router gives itself (unknown host 404, plain HTTP to a TLS host 308, no live slot
   * yet 502, the TLS ask).
   */
  private pick(req: IncomingMessage): { entry: LiveEntry; upstream: HostUpstream; websockets: boolean } | Answer {
    const url = req.url ?? '/';
    const hostHeader = req.headers.host;
    if (url.startsWith(TLS_ASK_PATH) && LOOPBACK_HOSTS.has(normaliseHost(hostHeader) ?? '')) {
      const domain = new URL(url, 'http://ask').searchParams.get('domain') ?? '';
      const r = this.hosts.site(domain);
      return r && r.site.tls !== 'off' ? { status: 200, body: 'ok\n' } : { status: 404, body: 'no TLS site with that domain\n' };
    }
    const found = this.hosts.site(hostHeader);
    if (!found) return { status: 404, body: 'codeb: no site is served at this host name\n' };
    if (found.site.tls !== 'off' && req.headers[SCHEME_HEADER] === 'http') {
      const host = normaliseHost(hostHeader)!;
      const port = this.router.httpsPort && this.router.httpsPort !== 443 ? `:${this.router.httpsPort}` : '';
      return { status: 308, headers: { location: `https://${host}${port}${url}` }, body: '' };
    }
    const upstream = HostTable.upstream(found.site, url);
    if (!upstream) return { status: 404, body: 'codeb: no service of this site answers this path\n' };
    const entry = this.entryAt(upstream.port);
    if (!entry) return { status: 502, body: `codeb: ${upstream.service} has no live version yet (deploy it)\n` };
    return { entry, upstream, websockets: found.route.websockets };
  }

  /**
   * The route's allow-list and basic auth (route-auth.ts): null when the request may pass, else the
   * answer (403, 401). Removes the headers only codeb's front sets and, once checked, the credentials.
   */
  private async admit(req: IncomingMessage, upstream: HostUpstream): Promise<Answer | null> {
    const client = req.headers[CLIENT_HEADER];
    delete req.headers[SCHEME_HEADER];
    delete req.headers[CLIENT_HEADER];
    const d = authDecision(upstream.auth, typeof client === 'string' ? client : null, req.headers.authorization);
    if (d.kind === 'open') return null;
    if (d.kind === 'refused') return { status: 403, body: 'codeb: this address may not use this site\n' };
    const verdict = d.kind === 'password' ? await this.verified.verify(d.password, d.hash) : false;
    if (verdict === true) {
      // The app never sees the route's password.
      delete req.headers.authorization;
      return null;
    }
    if (verdict === BUSY) return { status: 503, headers: { 'retry-after': '1' }, body: 'codeb: too many password checks at once; try again in a second\n' };
    return { status: 401, headers: { 'www-authenticate': challenge(upstream.service) }, body: 'codeb: this site needs a user name and password\n' };
  }

  /** A request from Caddy's static route: Host and path decide the entry, then it is forwarded like one. */
  routeRequest(req: IncomingMessage, res: ServerResponse): void {
    const to = this.pick(req);
    if ('entry' in to) {
      const needsCheck = to.upstream.auth !== undefined;
      if (!needsCheck) {
        delete req.headers[SCHEME_HEADER];
        delete req.headers[CLIENT_HEADER];
        return this.forward(to.entry, req, res);
      }
      void this.admit(req, to.upstream).then(
        (refused) => (refused ? this.answer(req, res, refused) : this.forward(to.entry, req, res)),
        () => this.answer(req, res, { status: 500, body: 'codeb: the route check failed\n' }),
      );
      return;
    }
    this.answer(req, res, to);
  }

  private answer(req: IncomingMessage, res: ServerResponse, a: Answer): void {
    req.resume();
    res.writeHead(a.status, { 'content-type': 'text/plain; charset=utf-8', ...a.headers });
    res.end(a.body);
  }

  /** A websocket upgrade from Caddy's static route: refused unless the route has websockets, then the same checks as a request. */
  routeUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    const to = this.pick(req);
    const refuse = (a: Answer) => {
      const extra = Object.entries(a.headers ?? {}).map(([k, v]) => `${k}: ${v}\r\n`).join('');
      socket.end(`HTTP/1.1 ${a.status} ${STATUS_TEXT[a.status] ?? 'Error'}\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(a.body)}\r\nconnection: close\r\n${extra}\r\n${a.body}`);
    };
    if (!('entry' in to)) return refuse(to);
    // The manifest's features.websockets: without it the app gets no upgrades (refused before the auth check: no bcrypt).
    if (!to.websockets) return refuse(WEBSOCKETS_OFF);
    // The checked credentials stay out of the tunnel too (it copies the raw headers).
    const drop = to.upstream.auth?.basic ? ['authorization'] : [];
    void this.admit(req, to.upstream).then(
      (refused) => (refused ? refuse(refused) : this.tunnel(to.entry, req, socket, head, drop)),
      () => refuse({ status: 500, body: 'codeb: the route check failed\n' }),
    );
  }

  private agent(port: number): Agent {
    let a = this.agents.get(port);
    if (!a) {
      a = new Agent({ keepAlive: true, maxSockets: 256 });
      this.agents.set(port, a);
    }
    return a;
  }

  /** Remember a connection to a slot until it closes; the returned function forgets it sooner. */
  private track(e: LiveEntry, port: number, socket: Socket): () => void {
    let set = e.open.get(port);
    if (!set) e.open.set(port, (set = new Set()));
    set.add(socket);
    const forget = () => set!.delete(socket);
    socket.once('close', forget);
    return forget;
  }

  private forward(e: LiveEntry, req: IncomingMessage, res: ServerResponse, attempt = 0, since = Date.now(), refused: readonly number[] = []): void {
    const port = takeTurn(e, refused);
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) headers[k] = v;
    // A deploy's verification nonce never reaches the app; the answer says which entry and slot served it.
    const nonce = headers[VERIFY_HEADER];
    delete headers[VERIFY_HEADER];
    const upstream = httpRequest({ host: '127.0.0.1', port, method: req.method, path: req.url, headers, agent: this.agent(port) });
    let responded = false;
    upstream.on('response', (up) => {
      responded = true;
      const out: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(up.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
      delete out[ANSWER_HEADER];
      if (isNonce(nonce)) out[ANSWER_HEADER] = answerToken(nonce, e.id, port);
      res.writeHead(up.statusCode ?? 502, up.statusMessage, out);
      // Streams (SSE) are flushed chunk by chunk and tracked so retiring the slot can end them.
      if (String(up.headers['content-type'] ?? '').startsWith('text/event-stream')) {
        res.flushHeaders();
        // Only while the stream lasts: Caddy reuses the connection afterwards (keep-alive), maybe
        // for requests to the other slot, which retiring this one must not cut.
        res.once('close', this.track(e, port, req.socket));
      }
      up.pipe(res);
    });
    upstream.on('error', (err: NodeJS.ErrnoException) => {
      if (responded || res.headersSent) {
        res.destroy(err);
        return;
      }
      // A slot that refuses a connection may have just been retired, or is restarting: a safe
      // method is retried against whatever the entry points at then (at once after 50 ms, then
      // every 250 ms for up to retryWindowMs, as Caddy's try_duration did when it dialled slots).
      // Bodies cannot be replayed, so no other method is.
      const retry =
        RETRYABLE.has(req.method ?? '') &&
        (err.code === 'ECONNREFUSED' || err.code === 'ECONNRESET') &&
        (attempt === 0 || Date.now() - since < this.router.retryWindowMs!);
      if (retry && !res.destroyed) {
        // Another replica that has not refused this request yet: try it at once.
        const skip = [...refused, port];
        if (err.code === 'ECONNREFUSED' && e.targets.some((t) => !skip.includes(t))) {
          setImmediate(() => this.forward(e, req, res, attempt + 1, since, skip));
          return;
        }
        setTimeout(() => this.forward(e, req, res, attempt + 1, since), attempt === 0 ? 50 : 250);
        return;
      }
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`codeb forwarder: upstream 127.0.0.1:${port} failed: ${err.code ?? err.message}\n`);
    });
    // A retry only happens for body-less methods whose request stream has already ended.
    if (attempt === 0) req.pipe(upstream);
    else upstream.end();
  }

  private tunnel(e: LiveEntry, req: IncomingMessage, client: Socket, head: Buffer, drop: string[] = []): void {
    const port = takeTurn(e, []);
    const upstream = connect(port, '127.0.0.1', () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) {
        const name = req.rawHeaders[i]!.toLowerCase();
        if (!TUNNEL_DROPS.has(name) && !drop.includes(name)) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      }
      upstream.write(lines.join('\r\n') + '\r\n\r\n');
      if (head.length) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    this.track(e, port, client);
    this.track(e, port, upstream);
    const closeBoth = () => {
      client.destroy();
      upstream.destroy();
    };
    upstream.on('error', closeBoth);
    client.on('error', closeBoth);
    upstream.on('end', () => client.end());
    client.on('end', () => upstream.end());
  }
}

/** The entry's next target in turn, leaving out those that refused this request (unless all did). */
function takeTurn(e: { targets: number[]; turn: number }, refused: readonly number[]): number {
  const port = pickTarget(e.targets, e.turn, refused);
  e.turn = (e.turn + 1) % 1_000_000;
  return port;
}

/** Round robin over `targets` at position `turn`, skipping `refused` ones while any other is left. Pure. */
export function pickTarget(targets: readonly number[], turn: number, refused: readonly number[]): number {
  if (refused.length === 0) return targets[turn % targets.length]!; // every request but a retry: no list made
  const open = targets.filter((t) => !refused.includes(t));
  const pool = open.length ? open : targets;
  return pool[turn % pool.length]!;
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
