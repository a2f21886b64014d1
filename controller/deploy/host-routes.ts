/**
 * The forwarder's host table (pure): which deployment answers a Host, and which of its services a
 * path goes to. Caddy has one static route for every site that hands each request to the
 * forwarder's router; adding, changing or removing a project's route is a change to this table in
 * the forwarder's memory, so no other project's request or stream is touched (a Caddy 2.6 config
 * change reloads every site: docs/deploy.md).
 *
 * Matching follows what the per-project Caddy routes did: hosts exactly (case-insensitive, port and
 * a trailing dot ignored), path prefixes longest first (`/api` matches `/api` and `/api/…`, not
 * `/apiary`), the catch-all (`path: null`) last.
 */

/** Set by Caddy's static route (never by a client: Caddy overwrites it): how the request came in. */
export const SCHEME_HEADER = 'x-codeb-scheme';
/** Caddy's on-demand TLS asks here (Host 127.0.0.1) whether to get a certificate for `?domain=`. */
export const TLS_ASK_PATH = '/.well-known/codeb/tls-ask';

export type TlsMode = 'auto' | 'internal' | 'off';

export interface HostUpstream {
  /** A path prefix, or null for the catch-all. */
  path: string | null;
  /** The service's stable entry port: the forwarder entry whose live slot answers. */
  port: number;
  service: string;
}

export interface HostRoute {
  /** The route's name (`codeb-<project>-<env>`), owner of its domains. */
  id: string;
  domains: string[];
  tls: TlsMode;
  upstreams: HostUpstream[];
  websockets: boolean;
  sse: boolean;
}

const ROUTE_ID = /^[a-z0-9][a-z0-9._-]{0,159}$/;
/** A DNS name as a Host header carries it (no port): labels of letters, digits, '-' and '_'. */
const HOST = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

/** The host of a Host header, lower-case, without port or trailing dot; null when it is no DNS name. */
export function normaliseHost(header: string | undefined): string | null {
  if (!header) return null;
  let h = header.trim().toLowerCase();
  if (h.startsWith('[')) return null; // an IPv6 literal is never a site's domain
  const colon = h.lastIndexOf(':');
  if (colon !== -1) {
    if (!/^\d{1,5}$/.test(h.slice(colon + 1))) return null;
    h = h.slice(0, colon);
  }
  if (h.endsWith('.')) h = h.slice(0, -1);
  return HOST.test(h) ? h : null;
}

/** Does a request path (query removed) fall under a route prefix? `/api` covers `/api` and `/api/…`. */
export function underPrefix(prefix: string, path: string): boolean {
  const base = prefix.replace(/\/+$/, '');
  if (base === '') return true;
  return path === base || path.startsWith(`${base}/`);
}

/** Path prefixes longest first, the catch-all last (stable otherwise). */
export function orderUpstreams(upstreams: HostUpstream[]): HostUpstream[] {
  return [...upstreams].sort((a, b) => (b.path?.length ?? -1) - (a.path?.length ?? -1));
}

/** Every problem with a route, as one sentence each (empty: valid). */
export function routeProblems(r: HostRoute): string[] {
  const out: string[] = [];
  if (typeof r.id !== 'string' || !ROUTE_ID.test(r.id)) out.push(`route id ${JSON.stringify(r.id)} is not a codeb route name`);
  if (!Array.isArray(r.domains) || r.domains.length === 0) out.push('it has no domains');
  else for (const d of r.domains) if (typeof d !== 'string' || normaliseHost(d) !== d) out.push(`domain ${JSON.stringify(d)} is not a lower-case DNS name`);
  if (!['auto', 'internal', 'off'].includes(r.tls)) out.push(`tls must be auto, internal or off (got ${JSON.stringify(r.tls)})`);
  if (typeof r.websockets !== 'boolean' || typeof r.sse !== 'boolean') out.push('websockets and sse must be true or false');
  if (!Array.isArray(r.upstreams) || r.upstreams.length === 0) out.push('it has no upstreams');
  else {
    const paths = new Set<string | null>();
    for (const u of r.upstreams) {
      if (!Number.isInteger(u.port) || u.port < 1 || u.port > 65535) out.push(`service ${String(u.service)} has no valid port (${String(u.port)})`);
      if (u.path !== null && (typeof u.path !== 'string' || !u.path.startsWith('/'))) out.push(`path ${JSON.stringify(u.path)} of service ${String(u.service)} must start with "/"`);
      if (paths.has(u.path)) out.push(`two services share the path ${u.path ?? '(catch-all)'}; only one of them would get traffic`);
      paths.add(u.path);
    }
  }
  return out;
}

/** Hosts → routes. One writer (the forwarder); a domain belongs to one route at a time. */
export class HostTable {
  private readonly routes = new Map<string, HostRoute>();
  private readonly byHost = new Map<string, string>();

  list(): HostRoute[] {
    return [...this.routes.values()].map((r) => structuredClone(r));
  }

  get(id: string): HostRoute | undefined {
    const r = this.routes.get(id);
    return r && structuredClone(r);
  }

  /** The route holding a domain other than `id`, if any (a claim on it is refused). */
  holderOf(domain: string, id: string): string | null {
    const holder = this.byHost.get(domain);
    return holder !== undefined && holder !== id ? holder : null;
  }

  /**
   * Add or replace a route. Throws (and changes nothing) when the route is invalid or one of its
   * domains is held by another route.
   */
  set(route: HostRoute): void {
    const problems = routeProblems(route);
    if (problems.length) throw new RouteRefused(`route ${String(route.id)}: ${problems.join('; ')}`, 400);
    for (const d of route.domains) {
      const holder = this.holderOf(d, route.id);
      if (holder) throw new RouteRefused(`route ${route.id}: domain ${d} is served by route ${holder}`, 409);
    }
    this.remove(route.id);
    // Only the known fields, so what is stored and compared is exactly a HostRoute.
    const clean: HostRoute = {
      id: route.id,
      domains: [...route.domains],
      tls: route.tls,
      upstreams: orderUpstreams(route.upstreams.map((u) => ({ path: u.path, port: u.port, service: u.service }))),
      websockets: route.websockets,
      sse: route.sse,
    };
    this.routes.set(route.id, clean);
    for (const d of clean.domains) this.byHost.set(d, route.id);
  }

  remove(id: string): boolean {
    const r = this.routes.get(id);
    if (!r) return false;
    for (const d of r.domains) if (this.byHost.get(d) === id) this.byHost.delete(d);
    this.routes.delete(id);
    return true;
  }

  /** The route for a Host header, or null (unknown host: the router answers 404). */
  route(hostHeader: string | undefined): HostRoute | null {
    const host = normaliseHost(hostHeader);
    if (host === null) return null;
    const id = this.byHost.get(host);
    return id === undefined ? null : this.routes.get(id)!;
  }

  /** The upstream a path goes to within a route, or null when no prefix covers it and there is no catch-all. */
  static upstream(route: HostRoute, rawPath: string): HostUpstream | null {
    const q = rawPath.indexOf('?');
    const path = q === -1 ? rawPath : rawPath.slice(0, q);
    return route.upstreams.find((u) => u.path === null || underPrefix(u.path, path)) ?? null;
  }
}

export class RouteRefused extends Error {
  constructor(
    message: string,
    readonly status: 400 | 409,
  ) {
    super(message);
  }
}
