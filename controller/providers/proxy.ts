/**
 * Proxy provider: a deployment's route is an entry in the codeb forwarder's host table (Host and
 * path prefix -> the service's entry, whose live slot answers), reached through Caddy's static
 * front (caddy-front.ts). Adding, changing or removing a route never changes Caddy's configuration,
 * so no other site loses a request or a stream (Caddy 2.6 reloads everything on any admin change).
 *
 * Kind `proxy.route`: name = `codeb-<project>-<env>`, spec = RouteSpec:
 *   domains, tls, upstreams (path, entry port, service, auth), websockets, sites  the forwarder's
 *               HostRoute; basic auth names the secret-store key of its bcrypt hash, which only
 *               execute reads (ctx.secret) and hands to the forwarder
 *   caddyFront  true when Caddy's front is in place: both front routes, the on-demand TLS policy and
 *               its `ask` URL as codeb writes them, and no per-project Caddy route of an older
 *               codeb for this name. False is drift; execute repairs it (the only Caddy writes
 *               left, and on the local stack there are none: `stack up` writes the front).
 *
 * Caddy's admin API is read (and, for a repair, written) at settings.caddy.adminUrl: the stack's
 * is a Unix socket (`unix:///…/admin.sock`, in a 0700 folder), never TCP.
 */
import { request as httpRequest, type RequestOptions } from 'node:http';
import { isDeepStrictEqual } from 'node:util';
import { CodebError, ServiceUnavailableError } from '../errors.js';
import { ForwarderClient, ForwarderRefused } from '../deploy/forwarder-client.js';
import { orderUpstreams, publicRoute, routeHosts, routeProblems, routeSites, type HostRoute, type HostUpstream } from '../deploy/host-routes.js';
import { basicAuthSecret, type RouteSpec, type RouteUpstream } from '../reconcile/desired.js';
import type { Action, ExecContext, Observed, Provider, Resource } from '../reconcile/model.js';
import type { Settings } from '../settings.js';
import { askUrl, FRONT_IDS, frontRoute, frontTlsPolicy, HTTP_SERVER, HTTPS_SERVER, PKI_APP, type FrontIssuer } from './caddy-front.js';

export type CaddySettings = Settings['caddy'];
export type ForwarderSettings = Settings['forwarder'];
type Json = Record<string, unknown>;

const obj = (v: unknown): Json => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const strings = (v: unknown): string[] => arr(v).filter((x): x is string => typeof x === 'string');

/**
 * The forwarder's HostRoute for a route resource (pure). `hashOf` gives the bcrypt hash kept under
 * a secret-store key (basic auth). Throws a CodebError naming every problem.
 */
export function hostRoute(name: string, spec: RouteSpec, hashOf: (secret: string) => string = missingHash): HostRoute {
  const ups = (list: RouteUpstream[]): HostUpstream[] =>
    list.map((u) => ({
      path: u.path,
      port: u.port,
      service: u.service,
      ...(u.auth ? { auth: { basic: u.auth.basic && { user: u.auth.basic.user, hash: hashOf(u.auth.basic.secret) }, allow: [...u.auth.allow] } } : {}),
    }));
  const route: HostRoute = { id: name, domains: [...spec.domains], tls: spec.tls, upstreams: ups(spec.upstreams), websockets: spec.websockets };
  if (spec.sites?.length) route.sites = spec.sites.map((s) => ({ domains: [...s.domains], tls: s.tls, upstreams: ups(s.upstreams) }));
  const problems = routeProblems(route);
  if (problems.length) {
    throw new CodebError(`Route ${name}: ${problems.join('; ')}.`, {
      where: `proxy.route/${name}`,
      hint: problems.some((p) => p.includes('share the path')) ? 'Give each web service its own route path (features/services routePath in the manifest).' : undefined,
    });
  }
  return route;
}

function missingHash(secret: string): string {
  throw new CodebError(`No basic-auth hash for ${secret} in the secret store.`, { hint: 'Apply the manifest: apply keeps the hash (given or generated) in the secret store.' });
}

/** A route as the forwarder lists it (hashes as fingerprints), as a RouteSpec to compare with the desired one (pure). */
export function routeSpecOf(have: HostRoute, caddyFront: boolean): RouteSpec {
  const ups = (list: HostUpstream[]): RouteUpstream[] =>
    list.map((u) => ({
      path: u.path,
      port: u.port,
      service: u.service,
      ...(u.auth ? { auth: { basic: u.auth.basic && { user: u.auth.basic.user, secret: basicAuthSecret(u.service), fingerprint: u.auth.basic.hash }, allow: [...u.auth.allow] } } : {}),
    }));
  const spec: RouteSpec = { domains: have.domains, tls: have.tls, upstreams: ups(have.upstreams), websockets: have.websockets, caddyFront };
  if (have.sites?.length) spec.sites = have.sites.map((s) => ({ domains: s.domains, tls: s.tls, upstreams: ups(s.upstreams) }));
  return spec;
}

/** The route with its upstreams ordered as the forwarder keeps them, as listings show it. */
function asListed(route: HostRoute): HostRoute {
  const r = publicRoute(route);
  r.upstreams = orderUpstreams(r.upstreams);
  if (r.sites) r.sites = r.sites.map((s) => ({ ...s, upstreams: orderUpstreams(s.upstreams) }));
  return r;
}

/** A per-project Caddy route an older codeb made (its meta `vars` handler names it). */
export function isLegacyCaddyRoute(name: string, route: unknown): boolean {
  const sub = arr(obj(arr(obj(route).handle)[0]).routes).map(obj);
  const meta = obj(arr(sub.find((s) => s['@id'] === `${name}-meta`)?.handle)[0]);
  return meta.handler === 'vars' && meta['codeb.route'] === name;
}

/** Ports a listen address covers: "127.0.0.1:8080", ":80", "tcp/[::1]:8000-8010", "unix//x" (none). */
export function listenPorts(addr: string): [number, number] | null {
  if (addr.startsWith('unix')) return null;
  const a = addr.includes('/') ? addr.slice(addr.indexOf('/') + 1) : addr;
  const [lo, hi] = a.slice(a.lastIndexOf(':') + 1).split('-').map(Number);
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

/** A route that answers any host (another front, an operator's fallback): the front goes before it. */
function isCatchAll(route: unknown): boolean {
  const match = arr(obj(route).match);
  return match.length === 0 || match.some((m) => obj(m).host === undefined);
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

/** What is missing or different in Caddy's front (pure; empty: in place). */
export function frontGaps(config: unknown, o: { routerSocket: string; httpPort: number; issuer: FrontIssuer }): string[] {
  const ids = indexIds(config);
  const gaps: string[] = [];
  if (!isDeepStrictEqual(ids.get(FRONT_IDS.http), frontRoute('http', o.routerSocket))) gaps.push(`route ${FRONT_IDS.http}`);
  if (!isDeepStrictEqual(ids.get(FRONT_IDS.https), frontRoute('https', o.routerSocket))) gaps.push(`route ${FRONT_IDS.https}`);
  if (!isDeepStrictEqual(ids.get(FRONT_IDS.tls), frontTlsPolicy(o.issuer))) gaps.push(`TLS policy ${FRONT_IDS.tls}`);
  const ask = obj(obj(obj(obj(obj(config).apps).tls).automation).on_demand).ask;
  if (ask !== askUrl(o.httpPort)) gaps.push('on-demand TLS ask URL');
  return gaps;
}

export type AdminMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
export interface AdminReply {
  status: number;
  text: string;
}

/**
 * One request to Caddy's admin API on a fresh connection, at `unix:///path` (a socket; Host
 * `localhost`, which codeb's Caddy config allows) or `http://host:port`. Not fetch(): Caddy restarts
 * its admin server on every config change and closes kept-alive connections.
 */
export function caddyAdminRequest(adminUrl: string, method: AdminMethod, path: string, body?: unknown, timeoutMs = 10_000): Promise<AdminReply> {
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  const headers = payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {};
  let target: RequestOptions;
  if (adminUrl.startsWith('unix://')) target = { socketPath: adminUrl.slice('unix://'.length), host: 'localhost', path };
  else {
    const url = new URL(`${adminUrl.replace(/\/+$/, '')}${path}`);
    target = { host: url.hostname, port: url.port, path: url.pathname + url.search };
  }
  return new Promise((resolve, reject) => {
    const req = httpRequest({ ...target, method, agent: false, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
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

interface CaddyView {
  config: Json;
  servers: Record<string, Json>;
  ids: Map<string, Json>;
  gaps: string[];
}

export class ProxyProvider implements Provider {
  readonly system = 'proxy' as const;
  private readonly base: string;
  private readonly timeoutMs: number;
  private readonly adminRequest: typeof caddyAdminRequest;
  private readonly forwarder: ForwarderClient;

  constructor(
    private readonly caddy: CaddySettings,
    private readonly fwd: ForwarderSettings,
    opts: ProxyProviderOptions = {},
  ) {
    this.base = caddy.adminUrl.replace(/\/+$/, '');
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.adminRequest = opts.adminRequest ?? caddyAdminRequest;
    this.forwarder = new ForwarderClient(fwd.socketPath);
  }

  private get issuer(): FrontIssuer {
    return this.caddy.tlsIssuer ?? 'acme';
  }

  async observe(resources: Resource[]): Promise<Observed[]> {
    const routes = resources.filter((r) => r.kind === 'proxy.route');
    if (routes.length === 0) return [];
    const view = await this.caddyView();
    const table = await this.forwarder.routes();
    const out: Observed[] = [];
    for (const r of routes) {
      const have = table.find((t) => t.id === r.name);
      const legacy = view.ids.has(r.name) && isLegacyCaddyRoute(r.name, view.ids.get(r.name));
      // Domains another route already serves: applying would be refused by the forwarder.
      const spec = r.spec as Partial<RouteSpec>;
      const held = [...strings(spec.domains), ...arr(spec.sites).flatMap((s) => strings(obj(s).domains))]
        .map((d) => [d, table.find((t) => t.id !== r.name && routeHosts(t).includes(d))?.id] as const)
        .filter(([, holder]) => holder !== undefined);
      if (held.length) {
        out.push({ key: r.key, exists: true, conflict: held.map(([d, holder]) => `domain ${d} is served by route ${holder}`).join('; ') });
        continue;
      }
      if (!have && !legacy) {
        out.push({ key: r.key, exists: false });
        continue;
      }
      const caddyFront = view.gaps.length === 0 && !legacy;
      if (!have) {
        out.push({ key: r.key, exists: true, spec: { caddyFront } });
        continue;
      }
      out.push({ key: r.key, exists: true, spec: routeSpecOf(have, caddyFront) });
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

  /** Create or converge the route (idempotent): the front first when it is not in place, then the host table. */
  private async ensure(name: string, spec: RouteSpec, ctx: ExecContext): Promise<void> {
    const route = hostRoute(name, spec, ctx.secret);
    const view = await this.caddyView();
    if (view.gaps.length) await this.repairFront(view, ctx);
    const current = await this.forwarder.route(name);
    if (!current || !isDeepStrictEqual(current, asListed(route))) {
      ctx.progress(`${current ? 'updating' : 'adding'} route ${name} (${routeHosts(route).join(', ')}) in the forwarder's host table`);
      // An older forwarder would keep the route without its other sites or its auth: an open door.
      const needs = routeSites(route).some((s, i) => i > 0 || s.upstreams.some((u) => u.auth));
      const health = needs ? await this.forwarder.health() : null;
      if (health && (health.sites !== true || health.routeAuth !== true)) {
        throw new CodebError(`The codeb forwarder (pid ${health.pid}) runs an older codeb that does not keep host names per service or route auth; route ${name} was not changed.`, {
          where: `proxy.route/${name}`,
          hint: 'Restart it with this codeb: `codeb stack down && codeb stack up` locally, `systemctl restart codeb-forwarder` on a server. Then apply again.',
        });
      }
      try {
        await this.forwarder.setRoute(route);
      } catch (err) {
        if (err instanceof ForwarderRefused) {
          throw new CodebError(`The forwarder refused route ${name}: ${err.message.replace(/^forwarder: /, '')}.`, {
            where: `proxy.route/${name}`,
            hint: err.status === 409 ? 'A domain belongs to one project and environment at a time: remove it from the other manifest first.' : undefined,
          });
        }
        throw err;
      }
    }
    await this.dropLegacy(name, view, ctx);
  }

  private async remove(name: string, ctx: ExecContext): Promise<void> {
    if (await this.forwarder.removeRoute(name)) ctx.progress(`removed route ${name} from the forwarder's host table`);
    await this.dropLegacy(name, await this.caddyView(), ctx);
  }

  /** An older codeb's per-project Caddy route for this name goes (one reload, once per project). */
  private async dropLegacy(name: string, view: CaddyView, ctx: ExecContext): Promise<void> {
    const legacy = view.ids.get(name);
    if (legacy === undefined || !isLegacyCaddyRoute(name, legacy)) return;
    ctx.progress(`removing the old per-project Caddy route ${name} (now served through the forwarder)`);
    await this.dropId(name);
    if (view.ids.has(`${name}-tls`)) await this.dropId(`${name}-tls`);
  }

  /**
   * Put Caddy's front in place where it is missing or differs (a server whose Caddy codeb did not
   * start; the local stack writes it at `stack up`). Each part is written only when it differs.
   */
  private async repairFront(view: CaddyView, ctx: ExecContext): Promise<void> {
    const router = this.fwd.routerSocket;
    ctx.progress(`setting up Caddy's front (${view.gaps.join(', ')}): one configuration change, after which routes never touch Caddy`);
    await this.ensureFrontRoute(view, 'http', this.caddy.httpPort, frontRoute('http', router));
    await this.ensureFrontRoute(view, 'https', this.caddy.httpsPort, frontRoute('https', router));
    const apps = obj(view.config.apps);
    const policy = frontTlsPolicy(this.issuer);
    const ask = askUrl(this.caddy.httpPort);
    const automation = obj(obj(apps.tls).automation);
    const current = view.ids.get(FRONT_IDS.tls);
    if (apps.tls === undefined) await this.admin('POST', '/config/apps/tls', { automation: { policies: [policy], on_demand: { ask } } });
    else if (obj(apps.tls).automation === undefined) await this.admin('POST', '/config/apps/tls/automation', { policies: [policy], on_demand: { ask } });
    else {
      if (current !== undefined) {
        if (!isDeepStrictEqual(current, policy)) await this.admin('PATCH', `/id/${FRONT_IDS.tls}`, policy);
      } else if (!Array.isArray(automation.policies)) await this.admin('POST', '/config/apps/tls/automation/policies', [policy]);
      else {
        // Before an operator's catch-all policy (one without subjects), which would otherwise win.
        const idx = automation.policies.findIndex((p) => obj(p).subjects === undefined);
        if (idx === -1) await this.admin('POST', '/config/apps/tls/automation/policies', policy);
        else await this.admin('PUT', `/config/apps/tls/automation/policies/${idx}`, policy);
      }
      if (obj(automation.on_demand).ask !== ask) await this.admin('POST', '/config/apps/tls/automation/on_demand', { ...obj(automation.on_demand), ask });
    }
    if (this.issuer === 'internal' && apps.pki === undefined) await this.admin('PUT', '/config/apps/pki', PKI_APP);
  }

  /** The front route on the server listening on `port` (created when none does), before any catch-all route. */
  private async ensureFrontRoute(view: CaddyView, scheme: 'http' | 'https', port: number, route: Json): Promise<void> {
    const id = scheme === 'http' ? FRONT_IDS.http : FRONT_IDS.https;
    const current = view.ids.get(id);
    if (current !== undefined) {
      if (!isDeepStrictEqual(current, route)) await this.admin('PATCH', `/id/${id}`, route);
      return;
    }
    const found = Object.entries(view.servers).find(([, s]) => listensOn(s, port));
    if (!found) {
      const plain = Object.values(view.servers).find((s) => listensOn(s, this.caddy.httpPort));
      const host = (plain && listenHost(plain)) ?? '127.0.0.1';
      let name = scheme === 'http' ? HTTP_SERVER : HTTPS_SERVER;
      for (let i = 2; view.servers[name]; i++) name = `${scheme === 'http' ? HTTP_SERVER : HTTPS_SERVER}-${i}`;
      const server =
        scheme === 'http'
          ? { listen: [`${host}:${port}`], routes: [route], automatic_https: { disable: true } }
          : { listen: [`${host}:${port}`], routes: [route], tls_connection_policies: [{}], automatic_https: { disable_redirects: true } };
      await this.admin('PUT', `/config/apps/http/servers/${encodeURIComponent(name)}`, server);
      view.servers[name] = server;
      return;
    }
    const [name, server] = found;
    const path = `/config/apps/http/servers/${encodeURIComponent(name)}/routes`;
    const routes = server.routes;
    if (!Array.isArray(routes)) return void (await this.admin('PUT', path, [route]));
    const idx = routes.findIndex(isCatchAll);
    if (idx === -1) await this.admin('POST', path, route);
    else await this.admin('PUT', `${path}/${idx}`, route);
  }

  /** One read of Caddy's whole config: servers, every @id, and what the front lacks. */
  private async caddyView(): Promise<CaddyView> {
    const config = obj(await this.admin('GET', '/config/'));
    const servers: Record<string, Json> = {};
    for (const [k, v] of Object.entries(obj(obj(obj(config.apps).http).servers))) servers[k] = obj(v);
    return { config, servers, ids: indexIds(config), gaps: frontGaps(config, { routerSocket: this.fwd.routerSocket, httpPort: this.caddy.httpPort, issuer: this.issuer }) };
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
        res.status === 403 && why.includes('host not allowed')
          ? 'Caddy checks the Host of admin requests: add "origins": ["localhost"] to its admin section (docs/providers.md).'
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
