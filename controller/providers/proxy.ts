/**
 * Proxy provider: one Caddy route per deployment, managed through Caddy's admin API (JSON config,
 * no Caddyfile). Targets Caddy 2.6 (Debian 12) and later; 2.6 rejects JSON fields it does not know,
 * so only fields 2.6 has are used (no `stream_close_delay`, no `stream_timeout`).
 *
 * Kind `proxy.route`: name = the route's `@id` (`codeb-<project>-<env>`), spec = RouteSpec.
 * The route (see buildRoute) matches the deployment's hosts and holds a subroute:
 *   <id>-meta          `vars` handler recording codeb's flags (websockets, sse) so observe reads them back
 *   <id>-headers       security headers, `Server` removed
 *   <id>-encode        gzip for listed compressible types only: never text/event-stream (see ENCODE_TYPES)
 *   <id>-upstream-<s>  one reverse_proxy per service, path prefixes first, the catch-all last
 * Every sub-part has its own `@id`, so it can be read or changed alone (GET/PATCH /id/<id>).
 *
 * Where the route lives: tls 'off' -> the plain-HTTP server (the one listening on
 * settings.caddy.httpPort; `codeb` in the local stack); tls 'internal' | 'auto' -> the HTTPS server
 * listening on settings.caddy.httpsPort (created as `codeb-https` when missing), with, for 'internal',
 * a TLS automation policy `<id>-tls` using Caddy's internal issuer for the route's hosts.
 *
 * The upstream port in the route is the deployment's STABLE ENTRY PORT: changing a route is a Caddy
 * config reload, and Caddy 2.6 closes every proxied websocket and ends every SSE stream (all sites)
 * on a reload. Route changes are for domains/headers/services, never per deploy; the blue-green
 * switch must not go through here. An unchanged route makes no admin call at all.
 *
 * Admin calls go over plain HTTP, one fresh connection each (see caddyAdminRequest).
 */
import { request as httpRequest } from 'node:http';
import { isDeepStrictEqual } from 'node:util';
import { CodebError, ServiceUnavailableError } from '../errors.js';
import type { RouteSpec, RouteUpstream } from '../reconcile/desired.js';
import type { Action, ExecContext, Observed, Provider, Resource } from '../reconcile/model.js';
import type { Settings } from '../settings.js';

export type CaddySettings = Settings['caddy'];
type Json = Record<string, unknown>;

/** Where upstreams listen: published container ports on this host's loopback. */
export const UPSTREAM_HOST = '127.0.0.1';
/** How long a request waits for an upstream that refuses connections (restart, switch), and how often it retries. */
export const TRY_DURATION = '5s';
export const TRY_INTERVAL = '250ms';
export const SECURITY_HEADERS: Record<string, string[]> = {
  'Strict-Transport-Security': ['max-age=31536000'],
  'X-Frame-Options': ['DENY'],
  'X-Content-Type-Options': ['nosniff'],
};
/**
 * Response types that are gzip-compressed. An explicit list on purpose: Caddy's default list holds
 * `text/*`, which includes text/event-stream, and before 2.9 the encode handler does not flush, so a
 * compressed event stream stalls until the upstream ends it. Server-sent events therefore pass uncompressed.
 */
export const ENCODE_TYPES = [
  'text/html*',
  'text/plain*',
  'text/css*',
  'text/javascript*',
  'text/xml*',
  'text/csv*',
  'text/markdown*',
  'application/json*',
  'application/javascript*',
  'application/xml*',
  'application/xhtml+xml*',
  'application/rss+xml*',
  'application/atom+xml*',
  'application/ld+json*',
  'application/manifest+json*',
  'application/geo+json*',
  'application/vnd.api+json*',
  'application/wasm*',
  'image/svg+xml*',
  'font/ttf*',
  'font/otf*',
];
/** Server names codeb uses when it has to create a server (the local stack already has `codeb`). */
export const HTTP_SERVER = 'codeb';
export const HTTPS_SERVER = 'codeb-https';

const META_KEYS = { route: 'codeb.route', websockets: 'codeb.websockets', sse: 'codeb.sse' } as const;

export const subIds = (route: string) => ({
  meta: `${route}-meta`,
  headers: `${route}-headers`,
  encode: `${route}-encode`,
  tls: `${route}-tls`,
  upstream: (service: string) => `${route}-upstream-${service}`,
  upstreamPrefix: `${route}-upstream-`,
});

const obj = (v: unknown): Json => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const strings = (v: unknown): string[] => arr(v).filter((x): x is string => typeof x === 'string');

/** Path prefix routes first (longest first), the catch-all (null) last; stable otherwise (same order as desired()). */
export function orderUpstreams(upstreams: RouteUpstream[]): RouteUpstream[] {
  return [...upstreams].sort((a, b) => (b.path?.length ?? -1) - (a.path?.length ?? -1));
}

function checkSpec(name: string, spec: RouteSpec): void {
  const where = `proxy.route/${name}`;
  if (!Array.isArray(spec.domains) || spec.domains.length === 0) throw new CodebError(`Route ${name} has no domains.`, { where });
  if (!Array.isArray(spec.upstreams) || spec.upstreams.length === 0) throw new CodebError(`Route ${name} has no upstreams.`, { where });
  const paths = new Set<string | null>();
  for (const u of spec.upstreams) {
    if (!Number.isInteger(u.port) || u.port < 1 || u.port > 65535) throw new CodebError(`Route ${name}: service ${u.service} has no valid port (${String(u.port)}).`, { where });
    if (u.path !== null && !u.path.startsWith('/')) throw new CodebError(`Route ${name}: path ${JSON.stringify(u.path)} of service ${u.service} must start with "/".`, { where });
    if (paths.has(u.path)) {
      throw new CodebError(`Route ${name}: two services share the path ${u.path ?? '(catch-all)'}; only one of them would get traffic.`, {
        where,
        hint: 'Give each web service its own route path (features/services routePath in the manifest).',
      });
    }
    paths.add(u.path);
  }
  if (!['auto', 'internal', 'off'].includes(spec.tls)) throw new CodebError(`Route ${name}: unknown tls mode ${String(spec.tls)}.`, { where });
}

/** The `path` matcher for a prefix: the prefix itself and everything below it (first element = the prefix as given). */
function pathMatch(path: string): string[] {
  const base = path.replace(/\/+$/, '');
  return base === '' ? ['/*'] : [path, `${base}/*`];
}

function upstreamRoute(route: string, u: RouteUpstream): Json {
  return {
    '@id': subIds(route).upstream(u.service),
    ...(u.path !== null ? { match: [{ path: pathMatch(u.path) }] } : {}),
    handle: [
      {
        handler: 'reverse_proxy',
        upstreams: [{ dial: `${UPSTREAM_HOST}:${u.port}` }],
        // Unbuffered: websockets, server-sent events and streamed responses pass through at once.
        flush_interval: -1,
        // A refused connection (upstream restarting or briefly down) is retried for up to 5 s.
        load_balancing: { try_duration: TRY_DURATION, try_interval: TRY_INTERVAL },
      },
    ],
    terminal: true,
  };
}

/** The whole Caddy route for one deployment (pure; the JSON shown in docs/providers.md). */
export function buildRoute(name: string, spec: RouteSpec): Json {
  checkSpec(name, spec);
  const ids = subIds(name);
  return {
    '@id': name,
    match: [{ host: [...spec.domains] }],
    handle: [
      {
        handler: 'subroute',
        routes: [
          { '@id': ids.meta, handle: [{ handler: 'vars', [META_KEYS.route]: name, [META_KEYS.websockets]: spec.websockets, [META_KEYS.sse]: spec.sse }] },
          {
            '@id': ids.headers,
            handle: [{ handler: 'headers', response: { set: structuredClone(SECURITY_HEADERS), delete: ['Server'], deferred: true } }],
          },
          {
            '@id': ids.encode,
            handle: [{ handler: 'encode', encodings: { gzip: {} }, prefer: ['gzip'], match: { headers: { 'Content-Type': [...ENCODE_TYPES] } } }],
          },
          ...orderUpstreams(spec.upstreams).map((u) => upstreamRoute(name, u)),
        ],
      },
    ],
    terminal: true,
  };
}

/** The TLS automation policy for tls 'internal' (certificates from Caddy's own CA). */
export function internalTlsPolicy(name: string, domains: string[]): Json {
  return { '@id': subIds(name).tls, subjects: [...domains], issuers: [{ module: 'internal' }] };
}

/** Is this route codeb's? (It carries the meta vars handler naming it.) */
export function isCodebRoute(name: string, route: unknown): boolean {
  return parseRoute(name, route) !== null;
}

/**
 * RouteSpec fields read back from a route's JSON (tls comes from where the route lives, see observe).
 * Null when the route was not built by codeb.
 */
export function parseRoute(name: string, route: unknown): Omit<RouteSpec, 'tls'> | null {
  const r = obj(route);
  const ids = subIds(name);
  const sub = arr(obj(arr(r.handle)[0]).routes).map(obj);
  const meta = obj(arr(sub.find((s) => s['@id'] === ids.meta)?.handle)[0]);
  if (meta.handler !== 'vars' || meta[META_KEYS.route] !== name) return null;
  const domains = strings(obj(arr(r.match)[0]).host);
  const upstreams: RouteUpstream[] = [];
  for (const s of sub) {
    const id = s['@id'];
    if (typeof id !== 'string' || !id.startsWith(ids.upstreamPrefix)) continue;
    const proxy = obj(arr(s.handle)[0]);
    const dial = String(obj(arr(proxy.upstreams)[0]).dial ?? '');
    const port = Number(dial.slice(dial.lastIndexOf(':') + 1));
    const paths = strings(obj(arr(s.match)[0]).path);
    const path = paths.length === 0 ? null : paths[0] === '/*' ? '/' : paths[0]!;
    upstreams.push({ path, port, service: id.slice(ids.upstreamPrefix.length) });
  }
  return { domains, upstreams, websockets: meta[META_KEYS.websockets] === true, sse: meta[META_KEYS.sse] === true };
}

/** Ports a listen address covers: "127.0.0.1:8080", ":80", "tcp/[::1]:8000-8010", "unix//x" (none). */
export function listenPorts(addr: string): [number, number] | null {
  const a = addr.includes('/') ? addr.slice(addr.indexOf('/') + 1) : addr;
  if (addr.startsWith('unix')) return null;
  const portPart = a.slice(a.lastIndexOf(':') + 1);
  const [lo, hi] = portPart.split('-').map(Number);
  if (!Number.isInteger(lo)) return null;
  return [lo!, Number.isInteger(hi) ? hi! : lo!];
}

function listensOn(server: Json, port: number): boolean {
  return strings(server.listen).some((l) => {
    const p = listenPorts(l);
    return p !== null && p[0] <= port && port <= p[1];
  });
}

function listenHost(server: Json): string | null {
  const first = strings(server.listen)[0];
  if (!first) return null;
  const a = first.includes('/') ? first.slice(first.indexOf('/') + 1) : first;
  return a.slice(0, a.lastIndexOf(':'));
}

/** A route that answers any host: a new host route must go before it or it would never be reached. */
function isCatchAll(route: unknown): boolean {
  const match = arr(obj(route).match);
  return match.length === 0 || match.some((m) => obj(m).host === undefined);
}

export type AdminMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
export interface AdminReply {
  status: number;
  text: string;
}

/**
 * One request to Caddy's admin API on a fresh connection. Not fetch(): Caddy restarts its admin
 * server on every config change and closes kept-alive connections, so a pooled connection reused
 * right after a change fails ("other side closed") about one time in ten.
 */
export function caddyAdminRequest(adminUrl: string, method: AdminMethod, path: string, body?: unknown, timeoutMs = 10_000): Promise<AdminReply> {
  const url = new URL(`${adminUrl.replace(/\/+$/, '')}${path}`);
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      {
        method,
        agent: false,
        headers: payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {},
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

class CaddyApiError extends CodebError {
  constructor(
    readonly status: number,
    message: string,
    hint: string,
  ) {
    super(message, { hint });
  }
}

export interface ProxyProviderOptions {
  /** Admin API request timeout (default 10 s). */
  timeoutMs?: number;
  /** How admin requests are made (default caddyAdminRequest); tests wrap it to see the calls. */
  adminRequest?: typeof caddyAdminRequest;
}

interface HttpApp {
  servers: Record<string, Json>;
  httpPort: number;
  /** Every object with an @id in the whole config (looked up here, so absent ids cost no 404s in Caddy's log). */
  ids: Map<string, Json>;
  /** The other apps (tls, pki) as found. */
  apps: Json;
}

/** Every object carrying an @id, anywhere in a Caddy config. */
export function indexIds(config: unknown, into = new Map<string, Json>()): Map<string, Json> {
  if (Array.isArray(config)) for (const v of config) indexIds(v, into);
  else if (config && typeof config === 'object') {
    const o = config as Json;
    if (typeof o['@id'] === 'string') into.set(o['@id'], o);
    for (const v of Object.values(o)) if (v && typeof v === 'object') indexIds(v, into);
  }
  return into;
}

export class ProxyProvider implements Provider {
  readonly system = 'proxy' as const;
  private readonly base: string;
  private readonly timeoutMs: number;
  private readonly adminRequest: typeof caddyAdminRequest;

  constructor(
    private readonly settings: CaddySettings,
    opts: ProxyProviderOptions = {},
  ) {
    this.base = settings.adminUrl.replace(/\/+$/, '');
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.adminRequest = opts.adminRequest ?? caddyAdminRequest;
  }

  async observe(resources: Resource[]): Promise<Observed[]> {
    const routes = resources.filter((r) => r.kind === 'proxy.route');
    if (routes.length === 0) return [];
    const app = await this.httpApp();
    const out: Observed[] = [];
    for (const r of routes) {
      const json = await this.getId(r.name);
      if (json === undefined) {
        out.push({ key: r.key, exists: false });
        continue;
      }
      const parsed = parseRoute(r.name, json);
      if (!parsed) {
        out.push({ key: r.key, exists: true, conflict: `Caddy already has a config object with @id ${r.name} that codeb did not create; applying would replace it.` });
        continue;
      }
      out.push({ key: r.key, exists: true, spec: { ...parsed, tls: this.tlsOf(r.name, app) } });
    }
    return out;
  }

  async execute(action: Action, ctx: ExecContext): Promise<void> {
    if (action.kind !== 'proxy.route') throw new CodebError(`The proxy provider cannot handle ${action.kind} (${action.key}).`);
    switch (action.op) {
      case 'create':
      case 'update':
        return this.ensure(action.name, action.resource.spec as RouteSpec, ctx);
      case 'delete':
        return this.remove(action.name, ctx);
      default:
        return;
    }
  }

  async close(): Promise<void> {
    // Plain HTTP requests; nothing to close.
  }

  /** Create or converge the route (idempotent): the whole route is written in one admin call. */
  private async ensure(name: string, spec: RouteSpec, ctx: ExecContext): Promise<void> {
    const route = buildRoute(name, spec);
    const app = await this.httpApp();
    const current = app.ids.get(name);
    if (current !== undefined && !isCodebRoute(name, current)) {
      throw new CodebError(`Caddy already has a config object with @id ${name} that codeb did not create.`, {
        hint: `Remove it (curl -X DELETE ${this.base}/id/${name}) or rename it, then apply again.`,
        where: `proxy.route/${name}`,
      });
    }
    const target = spec.tls === 'off' ? await this.plainServer(app, ctx) : await this.tlsServer(app, ctx);
    const placedOn = current !== undefined ? this.serverOf(name, app) : null;

    if (spec.tls === 'internal') await this.ensureInternalPolicy(name, spec.domains, app, ctx);

    if (current !== undefined && placedOn === target.name) {
      // Identical: no admin call, so no config reload (which on 2.6 closes every proxied websocket).
      if (!isDeepStrictEqual(current, route)) {
        ctx.progress(`updating Caddy route ${name} (${spec.domains.join(', ')})`);
        await this.admin('PATCH', `/id/${encodeURIComponent(name)}`, route);
      }
    } else {
      if (current !== undefined) {
        ctx.progress(`moving Caddy route ${name} to server ${target.name}`);
        await this.admin('DELETE', `/id/${encodeURIComponent(name)}`);
      } else {
        ctx.progress(`adding Caddy route ${name} (${spec.domains.join(', ')})`);
      }
      await this.insertRoute(target.name, target.created ? null : app.servers[target.name]!, route);
    }

    if (spec.tls !== 'internal' && app.ids.has(subIds(name).tls)) await this.dropId(subIds(name).tls);
  }

  private async remove(name: string, ctx: ExecContext): Promise<void> {
    const app = await this.httpApp();
    const current = app.ids.get(name);
    if (current !== undefined) {
      if (!isCodebRoute(name, current)) {
        throw new CodebError(`Refusing to delete Caddy config object ${name}: codeb did not create it.`, { where: `proxy.route/${name}` });
      }
      ctx.progress(`removing Caddy route ${name}`);
      await this.dropId(name);
    }
    if (app.ids.has(subIds(name).tls)) await this.dropId(subIds(name).tls);
  }

  /** Insert before the first catch-all route of the server (so host routes are reached), else append. */
  private async insertRoute(server: string, current: Json | null, route: Json): Promise<void> {
    const path = `/config/apps/http/servers/${encodeURIComponent(server)}/routes`;
    const routes = current ? current.routes : undefined;
    if (!Array.isArray(routes)) {
      // No route list yet (or a server just created with an empty one): PUT creates it.
      if (current && current.routes === undefined) return void (await this.admin('PUT', path, [route]));
      return void (await this.admin('POST', path, route));
    }
    const idx = routes.findIndex(isCatchAll);
    if (idx === -1) await this.admin('POST', path, route);
    else await this.admin('PUT', `${path}/${idx}`, route);
  }

  /** The server for tls 'off': listening on httpPort, automatic HTTPS off or only on the HTTP port. */
  private async plainServer(app: HttpApp, ctx: ExecContext): Promise<{ name: string; created: boolean }> {
    const port = this.settings.httpPort;
    const found = Object.entries(app.servers).find(([, s]) => listensOn(s, port));
    if (found) {
      const [name, s] = found;
      const disabled = obj(s.automatic_https).disable === true;
      // Caddy applies no automatic HTTPS to a server that listens only on its http_port.
      const onlyHttp = app.httpPort === port && strings(s.listen).every((l) => listenPorts(l)?.[0] === port && listenPorts(l)?.[1] === port);
      if (!disabled && !onlyHttp) {
        throw new CodebError(`Caddy server ${name} listens on ${port} but would get automatic HTTPS (Caddy's http_port is ${app.httpPort}); a tls 'off' route cannot live there.`, {
          hint: `Set apps.http.http_port to ${port} or automatic_https.disable on server ${name} in Caddy's config.`,
        });
      }
      return { name, created: false };
    }
    const name = this.freeName(app, HTTP_SERVER);
    ctx.progress(`creating Caddy server ${name} on ${UPSTREAM_HOST}:${port}`);
    await this.admin('PUT', `/config/apps/http/servers/${encodeURIComponent(name)}`, {
      listen: [`${UPSTREAM_HOST}:${port}`],
      routes: [],
      automatic_https: { disable: true },
    });
    app.servers[name] = { routes: [] };
    return { name, created: true };
  }

  /** The server for tls 'internal'/'auto': listening on httpsPort with automatic HTTPS on. */
  private async tlsServer(app: HttpApp, ctx: ExecContext): Promise<{ name: string; created: boolean }> {
    const port = this.settings.httpsPort;
    const found = Object.entries(app.servers).find(([, s]) => listensOn(s, port));
    if (found) {
      const [name, s] = found;
      if (obj(s.automatic_https).disable === true) {
        throw new CodebError(`Caddy server ${name} on port ${port} has automatic HTTPS disabled; routes with tls 'auto' or 'internal' need it.`, {
          hint: `Remove automatic_https.disable from server ${name}, or use tls: off for this environment.`,
        });
      }
      return { name, created: false };
    }
    const plain = Object.values(app.servers).find((s) => listensOn(s, this.settings.httpPort));
    const host = (plain && listenHost(plain)) ?? UPSTREAM_HOST;
    const name = this.freeName(app, HTTPS_SERVER);
    ctx.progress(`creating Caddy server ${name} on ${host}:${port} (automatic HTTPS)`);
    await this.admin('PUT', `/config/apps/http/servers/${encodeURIComponent(name)}`, { listen: [`${host}:${port}`], routes: [] });
    app.servers[name] = { routes: [] };
    return { name, created: true };
  }

  /** tls 'internal': a policy for the route's hosts with Caddy's internal issuer, before any catch-all policy. */
  private async ensureInternalPolicy(name: string, domains: string[], app: HttpApp, ctx: ExecContext): Promise<void> {
    const policy = internalTlsPolicy(name, domains);
    await this.ensureNoTrustInstall(app, ctx);
    const current = app.ids.get(subIds(name).tls);
    if (current !== undefined) {
      if (!isDeepStrictEqual(current, policy)) await this.admin('PATCH', `/id/${encodeURIComponent(subIds(name).tls)}`, policy);
      return;
    }
    const tls = app.apps.tls;
    if (tls === undefined || tls === null) return void (await this.admin('PUT', '/config/apps/tls', { automation: { policies: [policy] } }));
    const automation = obj(obj(tls).automation);
    if (obj(tls).automation === undefined) return void (await this.admin('PUT', '/config/apps/tls/automation', { policies: [policy] }));
    const policies = automation.policies;
    if (!Array.isArray(policies)) return void (await this.admin('PUT', '/config/apps/tls/automation/policies', [policy]));
    const idx = policies.findIndex((p) => obj(p).subjects === undefined);
    if (idx === -1) await this.admin('POST', '/config/apps/tls/automation/policies', policy);
    else await this.admin('PUT', `/config/apps/tls/automation/policies/${idx}`, policy);
  }

  /**
   * Caddy's internal CA would otherwise try to install its root into the system trust store (as root:
   * it does; otherwise it may ask for sudo). codeb never wants that on a server: set install_trust
   * false unless the operator configured the pki app.
   */
  private async ensureNoTrustInstall(app: HttpApp, ctx: ExecContext): Promise<void> {
    if (app.apps.pki !== undefined && app.apps.pki !== null) return;
    ctx.progress('Caddy internal CA: not installing its root certificate into the system trust store');
    await this.admin('PUT', '/config/apps/pki', { certificate_authorities: { local: { install_trust: false } } });
  }

  /** The TLS mode a route has, from where it lives: plain-HTTP server -> off; else internal policy -> internal; else auto. */
  private tlsOf(name: string, app: HttpApp): RouteSpec['tls'] {
    const server = this.serverOf(name, app);
    const s = server ? app.servers[server]! : null;
    const plain = s !== null && (obj(s.automatic_https).disable === true || !listensOn(s, this.settings.httpsPort) && listensOn(s, this.settings.httpPort));
    if (plain) return 'off';
    const policy = app.ids.get(subIds(name).tls);
    return policy !== undefined && strings(arr(obj(policy).issuers).map((i) => obj(i).module)).includes('internal') ? 'internal' : 'auto';
  }

  private serverOf(name: string, app: HttpApp): string | null {
    for (const [sname, s] of Object.entries(app.servers)) if (arr(s.routes).some((r) => obj(r)['@id'] === name)) return sname;
    return null;
  }

  private freeName(app: HttpApp, wanted: string): string {
    let name = wanted;
    for (let i = 2; app.servers[name]; i++) name = `${wanted}-${i}`;
    return name;
  }

  /** One read of the whole config: the HTTP servers, Caddy's http_port and every @id. */
  private async httpApp(): Promise<HttpApp> {
    const config = await this.get('/config/');
    const http = obj(obj(obj(config).apps).http);
    const servers: Record<string, Json> = {};
    for (const [k, v] of Object.entries(obj(http.servers))) servers[k] = obj(v);
    return { servers, httpPort: typeof http.http_port === 'number' ? http.http_port : 80, ids: indexIds(config), apps: obj(obj(config).apps) };
  }

  /** A config object by @id, or undefined when Caddy has none. */
  private async getId(id: string): Promise<unknown> {
    try {
      return await this.admin('GET', `/id/${encodeURIComponent(id)}`);
    } catch (err) {
      if (err instanceof CaddyApiError && err.status === 404) return undefined;
      throw err;
    }
  }

  /** Delete by @id; already gone is fine. */
  private async dropId(id: string): Promise<void> {
    try {
      await this.admin('DELETE', `/id/${encodeURIComponent(id)}`);
    } catch (err) {
      if (err instanceof CaddyApiError && err.status === 404) return;
      throw err;
    }
  }

  /** GET a config path; null when the path does not exist. */
  private async get(path: string): Promise<unknown> {
    return this.admin('GET', path);
  }

  private async admin(method: AdminMethod, path: string, body?: unknown): Promise<unknown> {
    let res: AdminReply;
    try {
      res = await this.adminRequest(this.base, method, path, body, this.timeoutMs);
    } catch (err) {
      throw new ServiceUnavailableError('Caddy admin API', this.base, err);
    }
    if (res.status < 200 || res.status >= 300) {
      let why = res.text.trim();
      try {
        const e = JSON.parse(res.text) as { error?: unknown };
        if (typeof e.error === 'string') why = e.error;
      } catch {
        // not JSON: keep the raw text
      }
      throw new CaddyApiError(
        res.status,
        `Caddy rejected ${method} ${path} (HTTP ${res.status}): ${why || 'no reason given'}`,
        res.status === 404
          ? "The object is not in Caddy's config (changed by hand?); `codeb plan` shows what codeb expects."
          : 'Check the Caddy version (2.6+) and its log; Caddy kept its previous config.',
      );
    }
    if (!res.text.trim()) return null;
    try {
      return JSON.parse(res.text) as unknown;
    } catch {
      return res.text;
    }
  }
}
