/**
 * Per-service host names and route auth, the pure parts: manifest rules and resolution per
 * environment, the deployment's sites, the route resource, the forwarder's host table with sites
 * and auth, the router's auth decision and its cache of successful checks.
 */
import bcrypt from 'bcryptjs';
import { describe, expect, it } from 'vitest';
import { hashFingerprint, HostTable, publicRoute, routeProblems, type HostRoute } from '../../controller/deploy/host-routes.js';
import { addressAllowed, authDecision, BUSY, challenge, parseBasic, VerifiedCache } from '../../controller/deploy/route-auth.js';
import { parseManifest } from '../../controller/manifest/load.js';
import { resolveDeployment } from '../../controller/manifest/normalize.js';
import { deploymentHosts, deploymentSites } from '../../controller/manifest/sites.js';
import type { Manifest } from '../../controller/manifest/types.js';
import { validateLoaded } from '../../controller/manifest/validate.js';
import { hostRoute, routeSpecOf } from '../../controller/providers/proxy.js';
import { desired, type RouteSpec } from '../../controller/reconcile/desired.js';
import { authFingerprints } from '../../controller/reconcile/route-auth-secrets.js';
import { serviceRouteLine } from '../../controller/registry/view.js';
import type { Settings } from '../../controller/settings.js';

const HASH = bcrypt.hashSync('s3cret-pass', 4);

function load(services: string, extra = ''): { manifest?: Manifest; issues: Array<{ path: string; message: string }> } {
  return validateLoaded(parseManifest(`apiVersion: codeb/v1\nproject: { id: shop }\nenvironment: { domain: shop.example.com }\nservices:\n${services}${extra}`, 'shop.yaml'));
}
const valid = (services: string, extra = '') => {
  const r = load(services, extra);
  expect(r.issues).toEqual([]);
  return r.manifest!;
};

const TWO = `  web: { image: localhost/app:v1, port: 8080 }
  gateway: { image: localhost/app:v1, port: 8080, domains: [api.example.com] }
`;

describe('manifest: services.<s>.domains, tls and auth', () => {
  it('a service with domains of its own is the catch-all of its own site, not of the main domain', () => {
    const d = resolveDeployment(valid(TWO));
    expect(d.services.map((s) => [s.name, s.domains, s.tls])).toEqual([
      ['web', [], 'auto'],
      ['gateway', ['api.example.com'], 'auto'],
    ]);
    expect(deploymentSites(d).map((s) => [s.domains, s.tls, s.services.map((x) => x.name)])).toEqual([
      [['shop.example.com'], 'auto', ['web']],
      [['api.example.com'], 'auto', ['gateway']],
    ]);
    expect(deploymentHosts(d)).toEqual(['shop.example.com', 'api.example.com']);
  });

  it('other environments name their own host names, or get <service>.<their domain>; tls follows the names', () => {
    const m = valid(TWO, `environments:\n  staging: { domain: shop-staging.localhost }\n  qa:\n    domain: qa.example.com\n    services:\n      gateway: { domains: [api-qa.example.com], tls: internal }\n`);
    const staging = resolveDeployment(m, 'staging').services[1]!;
    expect([staging.domains, staging.tls]).toEqual([['gateway.shop-staging.localhost'], 'off']);
    const qa = resolveDeployment(m, 'qa').services[1]!;
    expect([qa.domains, qa.tls]).toEqual([['api-qa.example.com'], 'internal']);
  });

  it('services sharing a host split it by routePath; sites group hosts with the same services', () => {
    const d = resolveDeployment(
      valid(`  web: { image: localhost/app:v1, port: 8080 }
  gateway: { image: localhost/app:v1, port: 8080, domains: [api.example.com, api2.example.com] }
  docs: { image: localhost/app:v1, port: 8080, domains: [api.example.com], routePath: /docs }
`),
    );
    expect(deploymentSites(d).slice(1).map((s) => [s.domains, s.services.map((x) => x.name)])).toEqual([
      [['api.example.com'], ['gateway', 'docs']],
      [['api2.example.com'], ['gateway']],
    ]);
  });

  it.each([
    ['a domain that is the environment domain', `  web: { image: localhost/app:v1, port: 8080 }\n  gw: { image: localhost/app:v1, port: 8080, domains: [shop.example.com] }\n`, '/services/gw/domains', /is the environment's domain/],
    ['two catch-alls on one host', `  web: { image: localhost/app:v1, port: 8080 }\n  a: { image: localhost/app:v1, port: 8080, domains: [x.example.com] }\n  b: { image: localhost/app:v1, port: 8080, domains: [x.example.com] }\n`, '/services/b/domains', /"a" already takes every path at x\.example\.com/],
    ['two tls modes on one host', `  web: { image: localhost/app:v1, port: 8080 }\n  a: { image: localhost/app:v1, port: 8080, domains: [x.example.com] }\n  b: { image: localhost/app:v1, port: 8080, domains: [x.example.com], routePath: /b, tls: internal }\n`, '/services/b/domains', /need the same tls/],
    ['domains on an internal service', `  web: { image: localhost/app:v1, port: 8080 }\n  db: { type: internal, image: localhost/app:v1, port: 8080, domains: [x.example.com] }\n`, '/services/db/domains', /only web services are routed/],
    ['tls without domains', `  web: { image: localhost/app:v1, port: 8080, tls: off }\n`, '/services/web/tls', /has none/],
    ['basic auth without a password', `  web: { image: localhost/app:v1, port: 8080, auth: { basic: { user: ops } } }\n`, '/services/web/auth/basic', /passwordHash \(bcrypt\) or generate: true/],
    ['basic auth with both', `  web: { image: localhost/app:v1, port: 8080, auth: { basic: { user: ops, generate: true, passwordHash: "${HASH}" } } }\n`, '/services/web/auth/basic', /not both/],
    ['an allow entry with host bits', `  web: { image: localhost/app:v1, port: 8080, auth: { allow: [10.1.2.3/8] } }\n`, '/services/web/auth/allow/0', /host bits are set/],
  ])('refuses %s at validate, where it is', (_what, services, path, message) => {
    const r = load(services);
    expect(r.manifest).toBeUndefined();
    const issue = r.issues.find((i) => i.path === path);
    expect(issue, JSON.stringify(r.issues)).toBeDefined();
    expect(issue!.message).toMatch(message);
  });

  it('refuses a host name two environments share', () => {
    const r = load(TWO, `environments:\n  staging:\n    domain: shop-staging.localhost\n    services:\n      gateway: { domains: [api.example.com] }\n`);
    expect(r.issues.map((i) => [i.path, i.message])).toEqual([['/environments/staging/services/gateway/domains', 'host name api.example.com of staging is already used by environment "production"']]);
  });

  it('refuses a bcrypt hash of the wrong shape and a bad user name at the schema', () => {
    const r = load(`  web: { image: localhost/app:v1, port: 8080, auth: { basic: { user: "a:b", passwordHash: "plain" } } }\n`);
    expect(r.issues.map((i) => i.path).sort()).toEqual(['/services/web/auth/basic/passwordHash', '/services/web/auth/basic/user']);
  });
});

describe('the route resource', () => {
  const settings = { network: { servicesAddress: '10.9.0.1' }, postgres: { port: 1 }, redis: { port: 2 }, storage: { port: 3, useSSL: false, region: 'x' } } as unknown as Settings;
  const names = { database: null, databaseRole: null, redisDb: null, redisUser: null, buckets: [], liveSlot: null, subnet: '10.9.0.64/26', ports: { web: { blue: 1, green: 2, entry: 3 }, gateway: { blue: 4, green: 5, entry: 6 } } };
  const m = valid(`  web: { image: localhost/app:v1, port: 8080, auth: { allow: [10.0.0.0/8] } }
  gateway: { image: localhost/app:v1, port: 8080, domains: [api.example.com], auth: { basic: { user: ops, passwordHash: "${HASH}" } } }
`);
  const d = resolveDeployment(m);
  const spec = desired(d, names, settings, authFingerprints(d, {})).find((r) => r.kind === 'proxy.route')!.spec as RouteSpec;

  it('has the main site and a site per host group, auth by secret-store key and fingerprint (never the hash)', () => {
    expect(spec.domains).toEqual(['shop.example.com']);
    expect(spec.upstreams).toEqual([{ path: null, port: 3, service: 'web', auth: { basic: null, allow: ['10.0.0.0/8'] } }]);
    expect(spec.sites).toEqual([{ domains: ['api.example.com'], tls: 'auto', upstreams: [{ path: null, port: 6, service: 'gateway', auth: { basic: { user: 'ops', secret: 'routeAuth:gateway', fingerprint: hashFingerprint(HASH) }, allow: [] } }] }]);
    expect(JSON.stringify(spec)).not.toContain(HASH);
  });

  it('becomes a HostRoute with the hash from the store, and the forwarder listing of it plans no change', () => {
    const route = hostRoute('codeb-shop-production', spec, (key) => (key === 'routeAuth:gateway' ? HASH : 'none'));
    expect(route.sites![0]!.upstreams[0]!.auth!.basic!.hash).toBe(HASH);
    const listed = publicRoute(route);
    expect(JSON.stringify(listed)).not.toContain(HASH);
    expect(routeSpecOf(listed, true)).toEqual(spec);
  });

  it('a generated password not made yet plans a change', () => {
    const gen = resolveDeployment(valid(`  web: { image: localhost/app:v1, port: 8080, auth: { basic: { user: ops, generate: true } } }\n`));
    expect(authFingerprints(gen, {})).toEqual({ web: 'fp:none' });
    expect(authFingerprints(gen, { 'routeAuth:web': HASH })).toEqual({ web: hashFingerprint(HASH) });
  });

  it('registry inspect says where a service is served and who may use it', () => {
    expect(serviceRouteLine('gateway', { domains: ['api.example.com'], tls: 'auto', path: '/v1', basicAuthUser: 'ops', allow: ['10.0.0.0/8'] })).toBe('gateway at api.example.com (tls auto), path /v1; basic auth (user ops); allow 10.0.0.0/8');
    expect(serviceRouteLine('web', { domains: [], tls: 'off', path: null, basicAuthUser: null, allow: ['10.0.0.0/8'] })).toBe('web at the main domain; allow 10.0.0.0/8');
  });
});

describe('the host table with sites and auth', () => {
  const route = (id: string, over: Partial<HostRoute> = {}): HostRoute => ({
    id,
    domains: [`${id}.example.com`],
    tls: 'off',
    upstreams: [{ path: null, port: 4000, service: 'web' }],
    websockets: false,
    ...over,
  });

  it('finds the site of each host; a host of another route is refused (409)', () => {
    const t = new HostTable();
    t.set(route('a', { sites: [{ domains: ['api.example.com'], tls: 'auto', upstreams: [{ path: null, port: 4001, service: 'gw' }] }] }));
    expect(t.site('api.example.com')!.site.upstreams[0]!.service).toBe('gw');
    expect(t.site('a.example.com')!.site.tls).toBe('off');
    expect(() => t.set(route('b', { sites: [{ domains: ['api.example.com'], tls: 'off', upstreams: [{ path: null, port: 4002, service: 'x' }] }] }))).toThrow(/domain api\.example\.com is served by route a/);
    expect(t.site('api.example.com')!.route.id).toBe('a');
    t.remove('a');
    expect(t.site('api.example.com')).toBeNull();
  });

  it.each<[string, Partial<HostRoute>, RegExp]>([
    ['a host twice', { sites: [{ domains: ['x.example.com'], tls: 'off', upstreams: [{ path: null, port: 1, service: 'a' }] }], domains: ['x.example.com'] }, /named twice/],
    ['a site without services', { sites: [{ domains: ['y.example.com'], tls: 'off', upstreams: [] }] }, /site 1: it has no upstreams/],
    ['a hash that is no bcrypt hash', { upstreams: [{ path: null, port: 1, service: 'a', auth: { basic: { user: 'u', hash: 'plain' }, allow: [] } }] }, /not a bcrypt hash/],
    ['a bad allow entry', { upstreams: [{ path: null, port: 1, service: 'a', auth: { basic: null, allow: ['10.0.0.1/8'] } }] }, /not an IPv4 CIDR/],
  ])('refuses %s', (_what, over, message) => {
    expect(routeProblems(route('r', over)).join('; ')).toMatch(message);
  });

  it('lets the main site go without services when the route has other sites', () => {
    expect(routeProblems(route('r', { upstreams: [], sites: [{ domains: ['y.example.com'], tls: 'off', upstreams: [{ path: null, port: 1, service: 'a' }] }] }))).toEqual([]);
  });
});

describe('the router: allow-list, then basic auth', () => {
  const auth = { basic: { user: 'ops', hash: HASH }, allow: ['127.0.0.0/8'] };
  const header = (s: string) => `Basic ${Buffer.from(s).toString('base64')}`;

  it.each([
    ['Basic b3BzOnM6Yw==', { user: 'ops', password: 's:c' }],
    ['basic   b3BzOg==', { user: 'ops', password: '' }],
    ['Bearer x', null],
    ['Basic bm9jb2xvbg==', null],
    [undefined, null],
  ])('parses %s', (h, want) => expect(parseBasic(h)).toEqual(want));

  it.each([
    ['127.0.0.1', ['127.0.0.0/8'], true],
    ['::ffff:127.0.0.1', ['127.0.0.0/8'], true],
    ['192.0.2.1', ['127.0.0.0/8', '10.0.0.0/8'], false],
    [null, ['127.0.0.0/8'], false],
    [null, [], true],
    ['::1', ['127.0.0.0/8'], false],
  ])('address %s in %j: %s', (a, allow, want) => expect(addressAllowed(a, allow)).toBe(want));

  it('decides 403 before asking for a password, and checks the user', () => {
    expect(authDecision(undefined, null, undefined)).toEqual({ kind: 'open' });
    expect(authDecision(auth, '192.0.2.1', header('ops:s3cret-pass'))).toEqual({ kind: 'refused', status: 403 });
    expect(authDecision(auth, '127.0.0.1', header('ops:x'))).toEqual({ kind: 'password', user: 'ops', password: 'x', hash: HASH });
    expect(authDecision(auth, '127.0.0.1', header('root:s3cret-pass'))).toMatchObject({ kind: 'password', password: null });
    expect(authDecision({ basic: null, allow: ['127.0.0.0/8'] }, '127.0.0.1', undefined)).toEqual({ kind: 'open' });
    // No Basic credentials at all (a browser's first request, or the app's own Bearer token): 401
    // without a bcrypt check, which would cost the shared forwarder CPU and tell nothing.
    expect(authDecision(auth, '127.0.0.1', undefined)).toEqual({ kind: 'challenge' });
    expect(authDecision(auth, '127.0.0.1', 'Bearer abc')).toEqual({ kind: 'challenge' });
    expect(authDecision(auth, '192.0.2.1', undefined)).toEqual({ kind: 'refused', status: 403 });
    expect(challenge('grafana')).toBe('Basic realm="grafana", charset="UTF-8"');
  });

  it('verifies against bcrypt and remembers only successes, per hash', async () => {
    const cache = new VerifiedCache(2);
    expect(await cache.verify('wrong', HASH)).toBe(false);
    expect(await cache.verify(null, HASH)).toBe(false);
    expect(cache.size).toBe(0);
    expect(cache.has('s3cret-pass', HASH)).toBe(false);
    expect(await cache.verify('s3cret-pass', HASH)).toBe(true);
    expect(cache.has('s3cret-pass', HASH)).toBe(true);
    const other = bcrypt.hashSync('other', 4);
    expect(cache.has('s3cret-pass', other)).toBe(false);
    expect(await cache.verify('other', other)).toBe(true);
    expect(await cache.verify('s3cret-pass', bcrypt.hashSync('s3cret-pass', 4))).toBe(true);
    // Bounded: the oldest success is forgotten first.
    expect(cache.size).toBe(2);
    expect(cache.has('s3cret-pass', HASH)).toBe(false);
  });

  it('runs one bcrypt check for the same credentials arriving at once (a browser opening several connections)', async () => {
    let checks = 0;
    const counted = (password: string, hash: string) => {
      checks++;
      return bcrypt.compare(password, hash);
    };
    const cache = new VerifiedCache(10, counted);
    expect(await Promise.all(Array.from({ length: 6 }, () => cache.verify('s3cret-pass', HASH)))).toEqual(Array(6).fill(true));
    expect(checks).toBe(1);
    expect(await cache.verify('s3cret-pass', HASH)).toBe(true);
    expect(checks).toBe(1);
    // Wrong passwords at once share a check too, and are not remembered.
    expect(await Promise.all([cache.verify('nope', HASH), cache.verify('nope', HASH)])).toEqual([false, false]);
    expect(checks).toBe(2);
    expect(await cache.verify('nope', HASH)).toBe(false);
    expect(checks).toBe(3);
    // A wrong user costs a check every time and never matches.
    expect(await Promise.all([cache.verify(null, HASH), cache.verify(null, HASH)])).toEqual([false, false]);
    expect(checks).toBe(5);
  });

  it('runs at most `running` checks at once, queues `waiting` more, answers BUSY beyond that; remembered successes still pass', async () => {
    // Checks that finish only when the test says so: how many run at once is then exact.
    const pending: Array<{ password: string; done: (ok: boolean) => void }> = [];
    let runningNow = 0;
    let mostAtOnce = 0;
    const held = (password: string) =>
      new Promise<boolean>((resolve) => {
        runningNow++;
        mostAtOnce = Math.max(mostAtOnce, runningNow);
        pending.push({ password, done: (ok) => { runningNow--; resolve(ok); } });
      });
    const cache = new VerifiedCache(10, held, { running: 2, waiting: 3 });
    const release = async () => {
      const p = pending.shift()!;
      p.done(p.password === 'right');
      // Let the next queued check start (its turn is handed over in a microtask chain).
      for (let i = 0; i < 5; i++) await Promise.resolve();
    };
    // A success first, remembered.
    const first = cache.verify('right', HASH);
    await Promise.resolve();
    await release();
    expect(await first).toBe(true);
    // Six different wrong passwords and a wrong user at once: 2 run, 3 wait, 2 are told BUSY at once.
    const flood = ['w1', 'w2', 'w3', 'w4', 'w5', 'w6'].map((w) => cache.verify(w, HASH));
    const wrongUser = cache.verify(null, HASH);
    await Promise.resolve();
    expect(await wrongUser).toBe(BUSY);
    expect(await flood[5]).toBe(BUSY);
    expect(pending.map((p) => p.password)).toEqual(['w1', 'w2']);
    // The remembered password passes without a check while the queue is full.
    expect(await cache.verify('right', HASH)).toBe(true);
    while (pending.length) await release();
    expect(await Promise.all(flood.slice(0, 5))).toEqual([false, false, false, false, false]);
    expect(mostAtOnce).toBe(2);
    // Turns are given back: with the queue empty, new checks run again.
    const again = cache.verify('w7', HASH);
    await Promise.resolve();
    await release();
    expect(await again).toBe(false);
  });
});
