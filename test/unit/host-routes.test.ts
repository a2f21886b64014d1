/** The forwarder's host table and Caddy's static front (pure): table tests. */
import { describe, expect, it } from 'vitest';
import { HostTable, normaliseHost, routeProblems, RouteRefused, underPrefix, type HostRoute } from '../../controller/deploy/host-routes.js';
import { askUrl, FRONT_IDS, frontRoute, frontServers, frontTlsApp, ENCODE_TYPES } from '../../controller/providers/caddy-front.js';
import { frontGaps, hostRoute } from '../../controller/providers/proxy.js';
import { caddyConfig } from '../../controller/stack/caddy.js';

const route = (id: string, domains: string[], over: Partial<HostRoute> = {}): HostRoute => ({
  id,
  domains,
  tls: 'off',
  upstreams: [{ path: null, port: 4000, service: 'web' }],
  websockets: false,
  ...over,
});

describe('normaliseHost', () => {
  it.each([
    ['shop.localhost', 'shop.localhost'],
    ['Shop.LOCALHOST', 'shop.localhost'],
    ['shop.localhost:8080', 'shop.localhost'],
    ['shop.localhost.', 'shop.localhost'],
    ['127.0.0.1:80', '127.0.0.1'],
    ['[::1]:80', null],
    ['shop.localhost:x', null],
    ['bad host', null],
    ['-bad.example', null],
    ['', null],
    [undefined, null],
  ])('%s -> %s', (header, want) => expect(normaliseHost(header)).toBe(want));
});

describe('underPrefix', () => {
  it.each([
    ['/api', '/api', true],
    ['/api', '/api/users', true],
    ['/api', '/apiary', false],
    ['/api/', '/api/x', true],
    ['/', '/anything', true],
    ['/api', '/', false],
  ])('%s covers %s: %s', (prefix, path, want) => expect(underPrefix(prefix, path)).toBe(want));
});

describe('HostTable', () => {
  it('routes by host, then by the longest path prefix, the catch-all last', () => {
    const t = new HostTable();
    t.set(
      route('codeb-shop-production', ['shop.localhost', 'www.shop.localhost'], {
        upstreams: [
          { path: null, port: 4000, service: 'web' },
          { path: '/api', port: 4001, service: 'api' },
          { path: '/api/admin', port: 4002, service: 'admin' },
        ],
      }),
    );
    const r = t.route('WWW.shop.localhost:443')!;
    expect(r.id).toBe('codeb-shop-production');
    expect(r.upstreams.map((u) => u.service)).toEqual(['admin', 'api', 'web']);
    expect(HostTable.upstream(r, '/api/admin/x?y=1')?.service).toBe('admin');
    expect(HostTable.upstream(r, '/api?x=/api/admin')?.service).toBe('api');
    expect(HostTable.upstream(r, '/apiary')?.service).toBe('web');
    expect(t.route('other.localhost')).toBeNull();
  });

  it('a path no prefix covers, without a catch-all, has no upstream', () => {
    const r = route('codeb-a-production', ['a.localhost'], { upstreams: [{ path: '/api', port: 4001, service: 'api' }] });
    expect(HostTable.upstream(r, '/')).toBeNull();
  });

  it("refuses a domain another route holds and changes nothing; the holder may change its own", () => {
    const t = new HostTable();
    t.set(route('codeb-a-production', ['a.localhost']));
    expect(() => t.set(route('codeb-b-production', ['b.localhost', 'a.localhost']))).toThrow(/domain a.localhost is served by route codeb-a-production/);
    expect(t.route('b.localhost')).toBeNull();
    t.set(route('codeb-a-production', ['a2.localhost']));
    expect(t.route('a.localhost')).toBeNull();
    expect(t.route('a2.localhost')?.id).toBe('codeb-a-production');
    t.set(route('codeb-b-production', ['a.localhost']));
    expect(t.route('a.localhost')?.id).toBe('codeb-b-production');
    expect(t.remove('codeb-b-production')).toBe(true);
    expect(t.remove('codeb-b-production')).toBe(false);
    expect(t.route('a.localhost')).toBeNull();
  });

  it.each<[string, Partial<HostRoute>, RegExp]>([
    ['no domains', { domains: [] }, /no domains/],
    ['upper-case domain', { domains: ['A.localhost'] }, /not a lower-case DNS name/],
    ['bad tls', { tls: 'on' as HostRoute['tls'] }, /tls must be/],
    ['no upstreams', { upstreams: [] }, /no upstreams/],
    ['bad port', { upstreams: [{ path: null, port: 0, service: 'web' }] }, /no valid port/],
    ['relative path', { upstreams: [{ path: 'api', port: 1, service: 'api' }] }, /must start with "\/"/],
    ['shared path', { upstreams: [{ path: null, port: 1, service: 'a' }, { path: null, port: 2, service: 'b' }] }, /share the path/],
    ['bad id', { id: 'Bad Id' }, /not a codeb route name/],
  ])('refuses %s', (_what, over, why) => {
    const r = route('codeb-x-production', ['x.localhost'], over);
    expect(routeProblems(r).join('; ')).toMatch(why);
    expect(() => new HostTable().set(r)).toThrow(RouteRefused);
  });
});

describe("Caddy's static front", () => {
  const o = { adminSocket: '/s/caddy/run/admin.sock', routerSocket: '/s/forwarder/router.sock', httpPort: 28080, httpsPort: 28443 };

  it('one route per server: headers, gzip of listed types (never event streams), unbuffered proxy to the router socket', () => {
    const r = frontRoute('https', o.routerSocket) as { handle: Array<Record<string, unknown>> };
    expect(r.handle.map((h) => h.handler)).toEqual(['headers', 'encode', 'reverse_proxy']);
    expect(r.handle[0]).toMatchObject({ response: { set: { 'Strict-Transport-Security': ['max-age=31536000'], 'X-Frame-Options': ['DENY'], 'X-Content-Type-Options': ['nosniff'] }, delete: ['Server'] } });
    expect(JSON.stringify(r.handle[1])).not.toContain('text/event-stream');
    expect(ENCODE_TYPES).not.toContain('text/*');
    expect(r.handle[2]).toMatchObject({ upstreams: [{ dial: 'unix//s/forwarder/router.sock' }], flush_interval: -1, headers: { request: { set: { 'x-codeb-scheme': ['https'] } } } });
  });

  it("the stack's config: admin on the socket only, both servers with the front, on-demand TLS asking the router", () => {
    const cfg = caddyConfig(o) as { admin: Record<string, unknown>; apps: Record<string, unknown> };
    expect(cfg.admin).toEqual({ listen: 'unix//s/caddy/run/admin.sock', origins: ['localhost'], config: { persist: false } });
    expect((cfg.apps.http as { servers: unknown }).servers).toEqual(frontServers('127.0.0.1', 28080, 28443, o.routerSocket));
    expect(cfg.apps.tls).toEqual({ automation: { policies: [{ '@id': FRONT_IDS.tls, on_demand: true, issuers: [{ module: 'internal' }] }], on_demand: { ask: 'http://127.0.0.1:28080/.well-known/codeb/tls-ask' } } });
    expect(JSON.stringify(cfg)).not.toMatch(/"listen":"(127\.0\.0\.1|localhost)?:\d+"/);
    expect(frontGaps(cfg, { routerSocket: o.routerSocket, httpPort: 28080, issuer: 'internal' })).toEqual([]);
  });

  it('frontGaps names what is missing or different', () => {
    const cfg = caddyConfig(o) as { apps: { http: { servers: Record<string, { routes: unknown[] }> }; tls: unknown } };
    cfg.apps.http.servers.codeb!.routes = [];
    expect(frontGaps(cfg, { routerSocket: o.routerSocket, httpPort: 28080, issuer: 'internal' })).toEqual([`route ${FRONT_IDS.http}`]);
    expect(frontGaps(cfg, { routerSocket: '/other.sock', httpPort: 28080, issuer: 'acme' })).toEqual([`route ${FRONT_IDS.http}`, `route ${FRONT_IDS.https}`, `TLS policy ${FRONT_IDS.tls}`]);
    cfg.apps.tls = frontTlsApp({ routerSocket: o.routerSocket, httpPort: 1, issuer: 'internal' });
    expect(frontGaps(cfg, { routerSocket: o.routerSocket, httpPort: 28080, issuer: 'internal' })).toContain('on-demand TLS ask URL');
    expect(askUrl(1)).toBe('http://127.0.0.1:1/.well-known/codeb/tls-ask');
  });

  it('hostRoute refuses a bad spec with every problem in one error', () => {
    expect(() =>
      hostRoute('codeb-x-production', { domains: [], tls: 'off', upstreams: [{ path: null, port: 1, service: 'a' }, { path: null, port: 2, service: 'b' }], websockets: false, caddyFront: true }),
    ).toThrow(/no domains; two services share the path/);
  });
});
