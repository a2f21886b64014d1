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
import { createHash } from 'node:crypto';
import { parseCidr } from '../runtime/network.js';

/** Set by Caddy's static route (never by a client: Caddy overwrites it): how the request came in. */
export const SCHEME_HEADER = 'x-codeb-scheme';
/** Caddy's on-demand TLS asks here (Host 127.0.0.1) whether to get a certificate for `?domain=`. */
export const TLS_ASK_PATH = '/.well-known/codeb/tls-ask';

/** Set by Caddy's static route (never by a client: Caddy overwrites it): the client's address as Caddy saw it. */
export const CLIENT_HEADER = 'x-codeb-client';

export type TlsMode = 'auto' | 'internal' | 'off';

/**
 * Basic auth on an upstream. In the forwarder's table `hash` is the bcrypt hash; every listing the
 * forwarder gives out carries its fingerprint instead (`fp:` + 16 hex digits, publicRoute()).
 */
export interface BasicAuth {
  user: string;
  hash: string;
}

/** Who may reach an upstream through the router (direct entry ports are the project's own). */
export interface UpstreamAuth {
  basic: BasicAuth | null;
  /** IPv4 CIDRs the client address must fall in; empty: any address. */
  allow: string[];
}

export interface HostUpstream {
  /** A path prefix, or null for the catch-all. */
  path: string | null;
  /** The service's stable entry port: the forwarder entry whose live slot answers. */
  port: number;
  service: string;
  auth?: UpstreamAuth;
}

/** Host names of a route beyond its main ones, with their own TLS mode and services (services.<s>.domains). */
export interface HostSite {
  domains: string[];
  tls: TlsMode;
  upstreams: HostUpstream[];
}

export interface HostRoute {
  /** The route's name (`codeb-<project>-<env>`), owner of its domains. */
  id: string;
  /** The main site: the environment's domain and aliases, with the services that have no domains of their own. */
  domains: string[];
  tls: TlsMode;
  upstreams: HostUpstream[];
  /** Websocket upgrades pass (the manifest's features.websockets); else the router refuses them. */
  websockets: boolean;
  /** More sites of the same deployment (absent: none). */
  sites?: HostSite[];
}

/** The main site of a route followed by its other sites. */
export function routeSites(r: HostRoute): HostSite[] {
  return [{ domains: r.domains, tls: r.tls, upstreams: r.upstreams }, ...(r.sites ?? [])];
}

/** Every host name a route holds. */
export function routeHosts(r: HostRoute): string[] {
  return routeSites(r).flatMap((s) => s.domains);
}

const BCRYPT = /^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$/;
const FINGERPRINT = /^fp:[0-9a-f]{16}$/;
/** A basic-auth user name: printable, no colon (RFC 7617), at most 64 characters. */
export const BASIC_USER = /^[A-Za-z0-9._@+-]{1,64}$/;

export function isBcryptHash(v: unknown): v is string {
  return typeof v === 'string' && BCRYPT.test(v);
}

/** What listings show for a hash: a fingerprint that tells a change, never the hash. */
export function hashFingerprint(hash: string): string {
  return `fp:${createHash('sha256').update(hash).digest('hex').slice(0, 16)}`;
}

/** The route as every listing gives it out: each basic-auth hash replaced by its fingerprint. */
export function publicRoute(r: HostRoute): HostRoute {
  const up = (u: HostUpstream): HostUpstream =>
    u.auth ? { ...u, auth: { basic: u.auth.basic && { user: u.auth.basic.user, hash: FINGERPRINT.test(u.auth.basic.hash) ? u.auth.basic.hash : hashFingerprint(u.auth.basic.hash) }, allow: [...u.auth.allow] } } : { ...u };
  const out: HostRoute = { ...r, domains: [...r.domains], upstreams: r.upstreams.map(up) };
  if (r.sites) out.sites = r.sites.map((s) => ({ domains: [...s.domains], tls: s.tls, upstreams: s.upstreams.map(up) }));
  return out;
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

/** Every problem with a route, as one sentence each (empty: valid). `listed`: hashes may be fingerprints. */
export function routeProblems(r: HostRoute, listed = false): string[] {
  const out: string[] = [];
  if (typeof r.id !== 'string' || !ROUTE_ID.test(r.id)) out.push(`route id ${JSON.stringify(r.id)} is not a codeb route name`);
  if (typeof r.websockets !== 'boolean') out.push('websockets must be true or false');
  if (r.sites !== undefined && !Array.isArray(r.sites)) out.push('sites must be a list');
  const sites = Array.isArray(r.sites) ? r.sites : [];
  const seen = new Set<string>();
  [{ domains: r.domains, tls: r.tls, upstreams: r.upstreams }, ...sites].forEach((site, i) => {
    const where = i === 0 ? '' : `site ${i}: `;
    if (!Array.isArray(site.domains) || site.domains.length === 0) out.push(`${where}it has no domains`);
    else
      for (const d of site.domains) {
        if (typeof d !== 'string' || normaliseHost(d) !== d) out.push(`${where}domain ${JSON.stringify(d)} is not a lower-case DNS name`);
        else if (seen.has(d)) out.push(`${where}domain ${d} is named twice in the route`);
        seen.add(d);
      }
    if (!['auto', 'internal', 'off'].includes(site.tls)) out.push(`${where}tls must be auto, internal or off (got ${JSON.stringify(site.tls)})`);
    // The main site may have no services when every web service has host names of its own.
    if (!Array.isArray(site.upstreams) || (site.upstreams.length === 0 && (i > 0 || sites.length === 0))) out.push(`${where}it has no upstreams`);
    else out.push(...upstreamProblems(site.upstreams, listed).map((p) => where + p));
  });
  return out;
}

function upstreamProblems(upstreams: HostUpstream[], listed: boolean): string[] {
  const out: string[] = [];
  const paths = new Set<string | null>();
  for (const u of upstreams) {
    if (!Number.isInteger(u.port) || u.port < 1 || u.port > 65535) out.push(`service ${String(u.service)} has no valid port (${String(u.port)})`);
    if (u.path !== null && (typeof u.path !== 'string' || !u.path.startsWith('/'))) out.push(`path ${JSON.stringify(u.path)} of service ${String(u.service)} must start with "/"`);
    if (paths.has(u.path)) out.push(`two services share the path ${u.path ?? '(catch-all)'}; only one of them would get traffic`);
    paths.add(u.path);
    if (u.auth === undefined) continue;
    const a = u.auth;
    if (!a || typeof a !== 'object' || !Array.isArray(a.allow)) {
      out.push(`service ${String(u.service)}: auth must have basic (or null) and allow (a list)`);
      continue;
    }
    for (const c of a.allow) if (!cidrOk(c)) out.push(`service ${String(u.service)}: allow entry ${JSON.stringify(c)} is not an IPv4 CIDR`);
    if (a.basic !== null) {
      if (typeof a.basic?.user !== 'string' || !BASIC_USER.test(a.basic.user)) out.push(`service ${String(u.service)}: basic-auth user must be 1-64 letters, digits or ._@+-`);
      if (!isBcryptHash(a.basic?.hash) && !(listed && FINGERPRINT.test(String(a.basic?.hash)))) out.push(`service ${String(u.service)}: basic-auth hash is not a bcrypt hash`);
    }
  }
  return out;
}

function cidrOk(c: unknown): boolean {
  if (typeof c !== 'string') return false;
  try {
    parseCidr(c);
    return true;
  } catch {
    return false;
  }
}

/** Hosts → routes. One writer (the forwarder); a domain belongs to one route at a time. */
export class HostTable {
  private readonly routes = new Map<string, HostRoute>();
  /** Each host's route id and site, so a request's lookup is one map read. */
  private readonly byHost = new Map<string, { id: string; site: HostSite }>();

  list(): HostRoute[] {
    return [...this.routes.values()].map((r) => structuredClone(r));
  }

  get(id: string): HostRoute | undefined {
    const r = this.routes.get(id);
    return r && structuredClone(r);
  }

  /** The route holding a domain other than `id`, if any (a claim on it is refused). */
  holderOf(domain: string, id: string): string | null {
    const holder = this.byHost.get(domain)?.id;
    return holder !== undefined && holder !== id ? holder : null;
  }

  /**
   * Add or replace a route. Throws (and changes nothing) when the route is invalid or one of its
   * domains is held by another route.
   */
  set(route: HostRoute): void {
    const problems = routeProblems(route);
    if (problems.length) throw new RouteRefused(`route ${String(route.id)}: ${problems.join('; ')}`, 400);
    for (const d of routeHosts(route)) {
      const holder = this.holderOf(d, route.id);
      if (holder) throw new RouteRefused(`route ${route.id}: domain ${d} is served by route ${holder}`, 409);
    }
    this.remove(route.id);
    // Only the known fields, so what is stored and compared is exactly a HostRoute.
    const ups = (list: HostUpstream[]) =>
      orderUpstreams(
        list.map((u) => ({
          path: u.path,
          port: u.port,
          service: u.service,
          ...(u.auth ? { auth: { basic: u.auth.basic && { user: u.auth.basic.user, hash: u.auth.basic.hash }, allow: [...u.auth.allow] } } : {}),
        })),
      );
    const clean: HostRoute = {
      id: route.id,
      domains: [...route.domains],
      tls: route.tls,
      upstreams: ups(route.upstreams),
      websockets: route.websockets,
      ...(route.sites?.length ? { sites: route.sites.map((s) => ({ domains: [...s.domains], tls: s.tls, upstreams: ups(s.upstreams) })) } : {}),
    };
    this.routes.set(route.id, clean);
    for (const site of routeSites(clean)) for (const d of site.domains) this.byHost.set(d, { id: route.id, site });
  }

  remove(id: string): boolean {
    const r = this.routes.get(id);
    if (!r) return false;
    for (const d of routeHosts(r)) if (this.byHost.get(d)?.id === id) this.byHost.delete(d);
    this.routes.delete(id);
    return true;
  }

  /** The route for a Host header, or null (unknown host: the router answers 404). */
  route(hostHeader: string | undefined): HostRoute | null {
    return this.site(hostHeader)?.route ?? null;
  }

  /** The route and the site of it that a Host header names, or null. */
  site(hostHeader: string | undefined): { route: HostRoute; site: HostSite } | null {
    const host = normaliseHost(hostHeader);
    if (host === null) return null;
    const hit = this.byHost.get(host);
    return hit ? { route: this.routes.get(hit.id)!, site: hit.site } : null;
  }

  /** The upstream a path goes to within a site, or null when no prefix covers it and there is no catch-all. */
  static upstream(route: Pick<HostSite, 'upstreams'>, rawPath: string): HostUpstream | null {
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
