/**
 * Caddy's static front (pure): the same one route on the plain-HTTP and the HTTPS server, which
 * sets the security headers, gzips compressible types and hands every request, of every site, to
 * the codeb forwarder's host router (a Unix socket). Certificates come on demand, only for domains
 * the router's `ask` endpoint confirms (routes with tls 'auto' or 'internal').
 *
 * Why static: Caddy 2.6 reloads its whole configuration on every admin API change, which fails the
 * requests in flight and closes every websocket and event stream of every site (docs/deploy.md).
 * With this front, adding, changing or removing a project's route is a change in the forwarder's
 * host table, and Caddy's configuration does not change after `codeb stack up`.
 *
 * Targets Caddy 2.6 (Debian 12), which rejects JSON fields it does not know: only 2.6 fields.
 */
import { CLIENT_HEADER, SCHEME_HEADER, TLS_ASK_PATH } from '../deploy/host-routes.js';

type Json = Record<string, unknown>;

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
/** How long a request waits for the router when it refuses connections (forwarder restarting), and how often it retries. */
export const TRY_DURATION = '5s';
export const TRY_INTERVAL = '250ms';

/** Server names in Caddy's config (the local stack's, or created by the provider on a server). */
export const HTTP_SERVER = 'codeb';
export const HTTPS_SERVER = 'codeb-https';
/** The @ids of the front's parts, so the provider can read and compare them. */
export const FRONT_IDS = { http: 'codeb-front-http', https: 'codeb-front-https', tls: 'codeb-front-tls' } as const;

export type FrontIssuer = 'internal' | 'acme';

export interface FrontOptions {
  /** The forwarder's host router socket. */
  routerSocket: string;
  /** Caddy's plain-HTTP port on 127.0.0.1: the `ask` URL goes through it to the router. */
  httpPort: number;
  /** Who signs on-demand certificates: Caddy's own CA (local stack, tls 'internal') or ACME (servers). */
  issuer: FrontIssuer;
}

/** The route every site goes through on one server; `scheme` tells the router how the request came in. */
export function frontRoute(scheme: 'http' | 'https', routerSocket: string): Json {
  return {
    '@id': scheme === 'http' ? FRONT_IDS.http : FRONT_IDS.https,
    handle: [
      { handler: 'headers', response: { set: structuredClone(SECURITY_HEADERS), delete: ['Server'], deferred: true } },
      { handler: 'encode', encodings: { gzip: {} }, prefer: ['gzip'], match: { headers: { 'Content-Type': [...ENCODE_TYPES] } } },
      {
        handler: 'reverse_proxy',
        upstreams: [{ dial: `unix/${routerSocket}` }],
        // Set (never passed on from the client): the router redirects TLS hosts asked for over HTTP,
        // and checks route allow-lists against the address Caddy saw (not X-Forwarded-For).
        headers: { request: { set: { [SCHEME_HEADER]: [scheme], [CLIENT_HEADER]: ['{http.request.remote.host}'] } } },
        // Unbuffered: websockets, server-sent events and streamed responses pass through at once.
        flush_interval: -1,
        // A refused connection (forwarder restarting) is retried for up to 5 s instead of failing.
        load_balancing: { try_duration: TRY_DURATION, try_interval: TRY_INTERVAL },
      },
    ],
    terminal: true,
  };
}

/** The on-demand TLS policy: any name the `ask` endpoint confirms, from the chosen issuer. */
export function frontTlsPolicy(issuer: FrontIssuer): Json {
  return { '@id': FRONT_IDS.tls, on_demand: true, issuers: [{ module: issuer }] };
}

/** Where Caddy asks before getting a certificate (through its own plain server, Host 127.0.0.1). */
export function askUrl(httpPort: number): string {
  return `http://127.0.0.1:${httpPort}${TLS_ASK_PATH}`;
}

/** The TLS app for the front: the on-demand policy and its `ask` endpoint. */
export function frontTlsApp(o: FrontOptions): Json {
  return { automation: { policies: [frontTlsPolicy(o.issuer)], on_demand: { ask: askUrl(o.httpPort) } } };
}

/**
 * The two servers of the local stack (listening on `host`). The HTTPS one serves TLS on every
 * connection (certificates on demand); its automatic redirects are off because the router
 * redirects, knowing which hosts have TLS.
 */
export function frontServers(host: string, httpPort: number, httpsPort: number, routerSocket: string): Record<string, Json> {
  return {
    [HTTP_SERVER]: { listen: [`${host}:${httpPort}`], routes: [frontRoute('http', routerSocket)], automatic_https: { disable: true } },
    [HTTPS_SERVER]: {
      listen: [`${host}:${httpsPort}`],
      routes: [frontRoute('https', routerSocket)],
      tls_connection_policies: [{}],
      automatic_https: { disable_redirects: true },
    },
  };
}

/** Caddy's internal CA must not try to install its root into the system trust store. */
export const PKI_APP: Json = { certificate_authorities: { local: { install_trust: false } } };

/**
 * The admin section for a Unix socket (Caddy's notation `unix//abs/path`). Caddy 2.6 checks the Host
 * header of admin requests even on a socket; `localhost` is what codeb's requests carry.
 */
export function adminOnSocket(socketPath: string): Json {
  return { listen: `unix/${socketPath}`, origins: ['localhost'] };
}
