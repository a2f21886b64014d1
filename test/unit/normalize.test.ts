/**
 * resolveDeployment: one environment of a manifest with every default filled in and the
 * environment's overrides merged. Also keeps the schema's `default` annotations and the defaults
 * normalize.ts applies in step, so the documentation and the code cannot drift apart.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { CodebError } from '../../controller/errors.js';
import { parseManifest } from '../../controller/manifest/load.js';
import { DEFAULTS, defaultTls, durationMs, environmentNames, primaryEnvironment, resolveDeployment } from '../../controller/manifest/normalize.js';
import type { Deployment, Manifest, ResolvedService } from '../../controller/manifest/types.js';
import { validateLoaded } from '../../controller/manifest/validate.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SCHEMA = JSON.parse(readFileSync(join(ROOT, 'schemas/project-manifest.schema.json'), 'utf8')) as Record<string, unknown>;

/** Every manifest used here must itself be valid: checked with the real validator. */
function manifest(m: Record<string, unknown>): Manifest {
  const full = { apiVersion: 'codeb/v1', ...m };
  const { manifest: ok, issues } = validateLoaded(parseManifest(stringify(full), 'test.yaml'));
  expect(issues).toEqual([]);
  return ok!;
}

const WEB = { image: 'localhost/demo:v1', port: 8080 };
const minimal = () => manifest({ project: { id: 'demo' }, services: { web: WEB } });
const svc = (d: Deployment, name: string): ResolvedService => {
  const s = d.services.find((x) => x.name === name);
  if (!s) throw new Error(`no service ${name}`);
  return s;
};

describe('durationMs', () => {
  it.each([
    ['0s', 0],
    ['500ms', 500],
    ['1s', 1000],
    ['30s', 30_000],
    ['2m', 120_000],
    ['1h', 3_600_000],
    ['1d', 86_400_000],
  ])('%s = %d ms', (d, ms) => {
    expect(durationMs(d)).toBe(ms);
  });

  it.each(['', '5', '1.5s', '5 s', '-1s', '1w', 'ms', '1sec'])('%j is an error (exit 2)', (d) => {
    expect(() => durationMs(d)).toThrow(CodebError);
    try {
      durationMs(d);
    } catch (e) {
      expect((e as CodebError).exitCode).toBe(2);
    }
  });
});

describe('resolveDeployment: defaults', () => {
  it('fills every default for a minimal manifest', () => {
    expect(resolveDeployment(minimal())).toEqual({
      projectId: 'demo',
      projectName: 'demo',
      env: 'production',
      multiEnv: false,
      domain: 'demo.localhost',
      aliases: [],
      tls: 'off',
      server: { name: 'local', host: 'local' },
      services: [
        {
          name: 'web',
          type: 'web',
          image: 'localhost/demo:v1',
          command: null,
          port: 8080,
          routePath: null,
          domains: [],
          tls: 'off',
          auth: null,
          hostPorts: null,
          env: {},
          cpu: 1,
          memory: '512Mi',
          replicas: 1,
          restart: 'always',
          readOnlyRootfs: false,
          volumes: [],
          healthCheck: { kind: 'http', path: '/api/health', expectStatus: 200, command: [], timeoutMs: 500, intervalMs: 1000, successes: 3, startPeriodMs: 0 },
          dependsOn: [],
          release: null,
          logs: { maxSize: '10M' },
        },
      ],
      features: { database: null, cache: null, storage: null, websockets: false },
      monitoring: { checksAfterDeploy: 3, alerts: { webhook: undefined, email: [] } },
      backup: { enabled: true, schedule: '0 3 * * *', retentionDays: 30, include: ['database'] },
      jobs: [],
      deploy: { strategy: 'blue-green', deadlineMs: 120_000, verifyAfterSwitch: 3, watchAfterSwitchMs: 10_000, keepPreviousMs: 3_600_000, drainMs: 10_000 },
    });
  });

  it.each([
    // features as written -> resolved
    [{ database: true }, { database: { extensions: [] } }],
    [{ database: { extensions: ['pg_trgm'] } }, { database: { extensions: ['pg_trgm'] } }],
    [{ database: false }, { database: null }],
    [{ cache: true }, { cache: { isolation: 'prefix' } }],
    [{ cache: { isolation: 'prefix' } }, { cache: { isolation: 'prefix' } }],
    [{ cache: {} }, { cache: { isolation: 'prefix' } }],
    [{ storage: true }, { storage: { buckets: ['uploads'], public: false } }],
    [{ storage: { buckets: ['media', 'avatars'], public: true } }, { storage: { buckets: ['media', 'avatars'], public: true } }],
    [{ websockets: true }, { websockets: true }],
  ])('features %j', (features, expected) => {
    const d = resolveDeployment(manifest({ project: { id: 'demo' }, services: { web: WEB }, features }));
    expect(d.features).toMatchObject(expected);
  });

  it.each([
    ['demo.localhost', 'off'],
    ['demo.test', 'off'],
    ['demo.local', 'off'],
    ['demo.internal', 'off'],
    ['demo.example', 'off'],
    ['localhost', 'off'],
    ['example.com', 'auto'],
    ['demo.localhost.example.com', 'auto'],
    ['shop.co.kr', 'auto'],
  ])('default TLS for %s is %s', (domain, tls) => {
    expect(defaultTls(domain)).toBe(tls);
  });

  it('the schema describes every domain that gets plain HTTP by default', () => {
    const tlsDoc = ((SCHEMA.$defs as Record<string, { description: string }>).tls!).description;
    for (const tld of ['localhost', 'test', 'local', 'internal', 'example']) {
      expect(defaultTls(`x.${tld}`)).toBe('off');
      expect(tlsDoc).toContain(`.${tld}`);
    }
  });

  it('health checks: web default http, project default from monitoring, command, and uptime for workers', () => {
    const d = resolveDeployment(
      manifest({
        project: { id: 'demo' },
        monitoring: { healthCheck: { path: '/healthz', timeout: '2s' } },
        services: {
          web: WEB,
          api: { ...WEB, image: 'localhost/api:v1', routePath: '/api', healthCheck: { http: { path: '/api/ping', successes: 5 } } },
          search: { type: 'internal', image: 'localhost/search:v1', port: 9200 },
          mailer: { type: 'worker', image: 'localhost/mailer:v1', healthCheck: { command: ['node', 'check.js'], timeout: '5s', startPeriod: '20s' } },
          beat: { type: 'worker', image: 'localhost/beat:v1' },
        },
      }),
    );
    expect(svc(d, 'web').healthCheck).toEqual({ kind: 'http', path: '/healthz', expectStatus: 200, command: [], timeoutMs: 2000, intervalMs: 1000, successes: 3, startPeriodMs: 0 });
    // A service's own http check replaces the project default entirely (no field-by-field merge).
    expect(svc(d, 'api').healthCheck).toMatchObject({ kind: 'http', path: '/api/ping', successes: 5, timeoutMs: 500 });
    expect(svc(d, 'search').healthCheck).toMatchObject({ kind: 'http', path: '/healthz' });
    expect(svc(d, 'mailer').healthCheck).toEqual({ kind: 'command', path: '/api/health', expectStatus: 200, command: ['node', 'check.js'], timeoutMs: 5000, intervalMs: 1000, successes: 3, startPeriodMs: 20_000 });
    expect(svc(d, 'beat').healthCheck).toMatchObject({ kind: 'uptime', startPeriodMs: 10_000 });
    expect(svc(d, 'beat').port).toBeNull();
    expect(svc(d, 'search').routePath).toBeNull();
    expect(svc(d, 'api').routePath).toBe('/api');
  });

  it('release and logs', () => {
    const d = resolveDeployment(
      manifest({
        project: { id: 'demo' },
        services: {
          web: { ...WEB, release: { command: ['node', 'migrate.js'] }, logs: {} },
          api: { ...WEB, routePath: '/api', release: { command: ['x'], timeout: '30s' }, logs: { maxSize: '50M' } },
        },
      }),
    );
    expect(svc(d, 'web').release).toEqual({ command: ['node', 'migrate.js'], timeoutMs: 300_000 });
    expect(svc(d, 'web').logs).toEqual({ maxSize: '10M' });
    expect(svc(d, 'api').release).toEqual({ command: ['x'], timeoutMs: 30_000 });
    expect(svc(d, 'api').logs).toEqual({ maxSize: '50M' });
  });

  it('volumes: sorted by name, a trailing slash dropped, none for other services', () => {
    const d = resolveDeployment(manifest({ project: { id: 'demo' }, services: { web: WEB, db: { ...WEB, type: 'internal', volumes: { wal: '/var/lib/db/wal/', data: '/var/lib/db' } } } }));
    expect(svc(d, 'db').volumes).toEqual([
      { name: 'data', path: '/var/lib/db' },
      { name: 'wal', path: '/var/lib/db/wal' },
    ]);
    expect(svc(d, 'web').volumes).toEqual([]);
  });
});

describe('resolveDeployment: environments', () => {
  const base = {
    project: { id: 'shop', name: 'Shop' },
    environment: { domain: 'shop.example.com', aliases: ['www.shop.example.com'], env: { NODE_ENV: 'production', LOG_LEVEL: 'info', PORT_HINT: 8080, DEBUG: false } },
    servers: [
      { name: 'app1', host: 'local' },
      { name: 'app2', host: 'deploy@app2.example.com:2222' },
    ],
    resources: { cpu: 2, memory: '1Gi' },
    services: {
      web: { ...WEB, image: 'ghcr.io/acme/shop-web:1.0.0', hostPorts: { blue: 3100, green: 3101 }, env: { SERVICE: 'web' } },
      api: { ...WEB, image: 'localhost:5000/acme/shop-api:1.0.0', routePath: '/api', replicas: 2, resources: { memory: '768Mi' } },
      worker: { type: 'worker', image: 'ghcr.io/acme/shop-worker@sha256:' + 'a'.repeat(64), resources: { cpu: 0.25 } },
    },
    environments: {
      staging: {
        domain: 'staging.shop.example.com',
        imageTag: 'rc-42',
        resources: { cpu: 0.5, memory: '256Mi' },
        replicas: 1,
        env: { LOG_LEVEL: 'debug' },
        server: 'app2',
        services: { web: { env: { SERVICE: 'web-staging' }, hostPorts: { blue: 3200, green: 3201, entry: 3202 } }, worker: { image: 'ghcr.io/acme/shop-worker:canary', replicas: 0, resources: { memory: '64Mi' } } },
      },
      development: { tls: 'internal' },
    },
  };

  it('multiEnv is false with one environment and true with more', () => {
    expect(resolveDeployment(minimal()).multiEnv).toBe(false);
    const m = manifest(base);
    expect(environmentNames(m)).toEqual(['production', 'staging', 'development']);
    for (const env of environmentNames(m)) expect(resolveDeployment(m, env).multiEnv).toBe(true);
  });

  it('the primary environment is the default and can be renamed', () => {
    expect(resolveDeployment(manifest(base)).env).toBe('production');
    const renamed = manifest({ ...minimal(), environment: { name: 'live' }, environments: { preview: {} } });
    expect(primaryEnvironment(renamed)).toBe('live');
    expect(resolveDeployment(renamed).env).toBe('live');
    expect(resolveDeployment(renamed).domain).toBe('demo.localhost');
    expect(resolveDeployment(renamed, 'preview').domain).toBe('demo-preview.localhost');
  });

  it('an unknown --env is an error (exit 2) that names the environments', () => {
    const m = manifest(base);
    let err: unknown;
    try {
      resolveDeployment(m, 'qa');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CodebError);
    expect((err as CodebError).exitCode).toBe(2);
    expect((err as CodebError).message).toContain('no environment "qa"');
    expect((err as CodebError).hint).toContain('production, staging, development');
    expect(() => resolveDeployment(minimal(), 'staging')).toThrow(CodebError);
  });

  const prod = () => resolveDeployment(manifest(base), 'production');
  const staging = () => resolveDeployment(manifest(base), 'staging');
  const dev = () => resolveDeployment(manifest(base), 'development');

  it.each([
    // what, production, staging, development
    ['domain', (d: Deployment) => d.domain, 'shop.example.com', 'staging.shop.example.com', 'shop-development.localhost'],
    ['aliases (not inherited)', (d: Deployment) => d.aliases, ['www.shop.example.com'], [], []],
    ['tls', (d: Deployment) => d.tls, 'auto', 'auto', 'internal'],
    ['server', (d: Deployment) => d.server.name, 'app1', 'app2', 'app1'],
    ['projectName', (d: Deployment) => d.projectName, 'Shop', 'Shop', 'Shop'],
  ])('%s', (_what, get, p, s, d) => {
    expect(get(prod())).toEqual(p);
    expect(get(staging())).toEqual(s);
    expect(get(dev())).toEqual(d);
  });

  it.each([
    // service, production, staging, development
    ['web', 'ghcr.io/acme/shop-web:1.0.0', 'ghcr.io/acme/shop-web:rc-42', 'ghcr.io/acme/shop-web:1.0.0'],
    // a registry port is not a tag
    ['api', 'localhost:5000/acme/shop-api:1.0.0', 'localhost:5000/acme/shop-api:rc-42', 'localhost:5000/acme/shop-api:1.0.0'],
    // a per-service image beats the environment's imageTag
    ['worker', 'ghcr.io/acme/shop-worker@sha256:' + 'a'.repeat(64), 'ghcr.io/acme/shop-worker:canary', 'ghcr.io/acme/shop-worker@sha256:' + 'a'.repeat(64)],
  ])('image of %s', (name, p, s, d) => {
    expect(svc(prod(), name).image).toBe(p);
    expect(svc(staging(), name).image).toBe(s);
    expect(svc(dev(), name).image).toBe(d);
  });

  it('imageTag replaces a tag or a digest, and keeps a registry port', () => {
    const withTag = (image: string) => svc(resolveDeployment(manifest({ project: { id: 'demo' }, services: { web: { ...WEB, image } }, environments: { staging: { imageTag: 'abc123' } } }), 'staging'), 'web').image;
    expect(withTag('localhost/demo:v1')).toBe('localhost/demo:abc123');
    expect(withTag('localhost/demo')).toBe('localhost/demo:abc123');
    expect(withTag('localhost:5000/demo')).toBe('localhost:5000/demo:abc123');
    expect(withTag('localhost:5000/team/demo:1.2')).toBe('localhost:5000/team/demo:abc123');
    expect(withTag('ghcr.io/team/demo:1.2@sha256:' + 'b'.repeat(64))).toBe('ghcr.io/team/demo:abc123');
  });

  it.each([
    // service, field, production, staging, development
    // cpu: environment override > service > environment resources > project resources > default
    ['web', 'cpu', 2, 0.5, 2],
    ['api', 'cpu', 2, 0.5, 2],
    ['worker', 'cpu', 0.25, 0.25, 0.25],
    ['web', 'memory', '1Gi', '256Mi', '1Gi'],
    ['api', 'memory', '768Mi', '768Mi', '768Mi'],
    ['worker', 'memory', '1Gi', '64Mi', '1Gi'],
    // replicas: environment's service override > environment replicas > service > default
    ['web', 'replicas', 1, 1, 1],
    ['api', 'replicas', 2, 1, 2],
    ['worker', 'replicas', 1, 0, 1],
  ] as const)('%s.%s', (name, field, p, s, d) => {
    expect(svc(prod(), name)[field]).toBe(p);
    expect(svc(staging(), name)[field]).toBe(s);
    expect(svc(dev(), name)[field]).toBe(d);
  });

  it('env vars: environment.env < environment override env < service env < service override env, all strings', () => {
    expect(svc(prod(), 'web').env).toEqual({ NODE_ENV: 'production', LOG_LEVEL: 'info', PORT_HINT: '8080', DEBUG: 'false', SERVICE: 'web' });
    expect(svc(staging(), 'web').env).toEqual({ NODE_ENV: 'production', LOG_LEVEL: 'debug', PORT_HINT: '8080', DEBUG: 'false', SERVICE: 'web-staging' });
    expect(svc(staging(), 'api').env).toEqual({ NODE_ENV: 'production', LOG_LEVEL: 'debug', PORT_HINT: '8080', DEBUG: 'false' });
    expect(svc(dev(), 'web').env).toEqual({ NODE_ENV: 'production', LOG_LEVEL: 'info', PORT_HINT: '8080', DEBUG: 'false', SERVICE: 'web' });
  });

  it('explicit hostPorts belong to the primary environment; others get them only from their own override', () => {
    expect(svc(prod(), 'web').hostPorts).toEqual({ blue: 3100, green: 3101 });
    expect(svc(staging(), 'web').hostPorts).toEqual({ blue: 3200, green: 3201, entry: 3202 });
    expect(svc(dev(), 'web').hostPorts).toBeNull();
    expect(svc(prod(), 'api').hostPorts).toBeNull();
  });

  it('shared settings (features, backup, deploy) are the same in every environment', () => {
    const m = manifest({ ...base, features: { database: true, cache: true }, backup: { retentionDays: 7 }, deploy: { keepPrevious: '10m' } });
    const [p, s] = [resolveDeployment(m), resolveDeployment(m, 'staging')];
    expect(s.features).toEqual(p.features);
    expect(s.backup).toEqual(p.backup);
    expect(s.deploy).toEqual(p.deploy);
    expect(p.backup.retentionDays).toBe(7);
    expect(p.deploy.keepPreviousMs).toBe(600_000);
  });
});

// ---------------------------------------------------------------------------------------------
// The schema's `default` annotations and the defaults normalize.ts applies must agree.

type Resolve = (d: Deployment) => unknown;
interface DefaultCheck {
  /** Which DEFAULTS leaf this is ('' when normalize keeps no constant for it). */
  key: string;
  /** A manifest that leaves the field out (default: the minimal one). */
  manifest?: Record<string, unknown>;
  /** The resolved value for that manifest, in the schema's units. */
  resolved?: Resolve;
}

const ms = (v: unknown) => durationMs(String(v));
const web = (d: Deployment) => d.services[0]!;
const oneWeb = { project: { id: 'demo' }, services: { web: WEB } };

/** Schema pointer of each `default` -> where normalize applies it. A new schema default fails until listed here. */
const DEFAULT_CHECKS: Record<string, DefaultCheck & { unit?: 'duration' }> = {
  '/$defs/environment/properties/name': { key: 'environment', resolved: (d) => d.env },
  '/$defs/resources/properties/cpu': { key: 'cpu', resolved: (d) => web(d).cpu },
  '/$defs/resources/properties/memory': { key: 'memory', resolved: (d) => web(d).memory },
  '/$defs/httpHealthCheck/properties/path': { key: 'health.path', resolved: (d) => web(d).healthCheck.path },
  '/$defs/httpHealthCheck/properties/expectStatus': { key: 'health.expectStatus', resolved: (d) => web(d).healthCheck.expectStatus },
  '/$defs/httpHealthCheck/properties/timeout': { key: 'health.timeout', unit: 'duration', resolved: (d) => web(d).healthCheck.timeoutMs },
  '/$defs/httpHealthCheck/properties/interval': { key: 'health.interval', unit: 'duration', resolved: (d) => web(d).healthCheck.intervalMs },
  '/$defs/httpHealthCheck/properties/successes': { key: 'health.successes', resolved: (d) => web(d).healthCheck.successes },
  '/$defs/httpHealthCheck/properties/startPeriod': { key: 'health.startPeriod', unit: 'duration', resolved: (d) => web(d).healthCheck.startPeriodMs },
  '/$defs/service/properties/type': { key: '', resolved: (d) => web(d).type },
  '/$defs/service/properties/replicas': { key: 'replicas', resolved: (d) => web(d).replicas },
  '/$defs/service/properties/restart': { key: 'restart', resolved: (d) => web(d).restart },
  '/$defs/service/properties/readOnlyRootfs': { key: 'readOnlyRootfs', resolved: (d) => web(d).readOnlyRootfs },
  '/$defs/service/properties/release/properties/timeout': {
    key: 'releaseTimeout',
    unit: 'duration',
    manifest: { project: { id: 'demo' }, services: { web: { ...WEB, release: { command: ['migrate'] } } } },
    resolved: (d) => web(d).release?.timeoutMs,
  },
  '/$defs/service/properties/logs/properties/maxSize': { key: 'logs.maxSize', resolved: (d) => web(d).logs.maxSize },
  '/$defs/features/properties/cache/properties/isolation': {
    key: 'cacheIsolation',
    manifest: { ...oneWeb, features: { cache: true } },
    resolved: (d) => d.features.cache?.isolation,
  },
  '/$defs/features/properties/storage/properties/public': {
    key: '',
    manifest: { ...oneWeb, features: { storage: true } },
    resolved: (d) => d.features.storage?.public,
  },
  '/$defs/features/properties/websockets': { key: '', resolved: (d) => d.features.websockets },
  '/$defs/job/properties/timeout': {
    key: 'jobTimeout',
    unit: 'duration',
    manifest: { ...oneWeb, jobs: { prune: { command: ['true'], schedule: '0 4 * * *' } } },
    resolved: (d) => d.jobs[0]?.timeoutMs,
  },
  '/$defs/monitoring/properties/checksAfterDeploy': { key: 'checksAfterDeploy', resolved: (d) => d.monitoring.checksAfterDeploy },
  '/$defs/backup/properties/enabled': { key: 'backup.enabled', resolved: (d) => d.backup.enabled },
  '/$defs/backup/properties/schedule': { key: 'backup.schedule', resolved: (d) => d.backup.schedule },
  '/$defs/backup/properties/retentionDays': { key: 'backup.retentionDays', resolved: (d) => d.backup.retentionDays },
  '/$defs/backup/properties/include': { key: 'backup.include', resolved: (d) => d.backup.include },
  '/$defs/deploy/properties/strategy': { key: 'deploy.strategy', resolved: (d) => d.deploy.strategy },
  '/$defs/deploy/properties/healthGate/properties/deadline': { key: 'deploy.deadline', unit: 'duration', resolved: (d) => d.deploy.deadlineMs },
  '/$defs/deploy/properties/healthGate/properties/verifyAfterSwitch': { key: 'deploy.verifyAfterSwitch', resolved: (d) => d.deploy.verifyAfterSwitch },
  '/$defs/deploy/properties/healthGate/properties/watchAfterSwitch': { key: 'deploy.watchAfterSwitch', unit: 'duration', resolved: (d) => d.deploy.watchAfterSwitchMs },
  '/$defs/deploy/properties/keepPrevious': { key: 'deploy.keepPrevious', unit: 'duration', resolved: (d) => d.deploy.keepPreviousMs },
  '/$defs/deploy/properties/drain': { key: 'deploy.drain', unit: 'duration', resolved: (d) => d.deploy.drainMs },
};

/** DEFAULTS leaves that have no `default` keyword in the schema, and where the schema says so instead. */
const DEFAULTS_WITHOUT_SCHEMA_DEFAULT: Record<string, (schema: string) => boolean> = {
  // Depends on the service type, so it is described rather than annotated.
  workerStartPeriod: (s) => s.includes('start period'),
  storageBuckets: (s) => s.includes('default [uploads]'),
};

function schemaDefaults(node: unknown, pointer = ''): Array<{ pointer: string; value: unknown }> {
  if (node === null || typeof node !== 'object') return [];
  const out: Array<{ pointer: string; value: unknown }> = [];
  if (!Array.isArray(node) && 'default' in node) out.push({ pointer, value: (node as { default: unknown }).default });
  for (const [k, v] of Object.entries(node)) if (k !== 'default') out.push(...schemaDefaults(v, `${pointer}/${k}`));
  return out;
}

function defaultsLeaves(obj: Record<string, unknown>, prefix = ''): Array<[string, unknown]> {
  return Object.entries(obj).flatMap(([k, v]) =>
    v !== null && typeof v === 'object' && !Array.isArray(v) ? defaultsLeaves(v as Record<string, unknown>, `${prefix}${k}.`) : [[`${prefix}${k}`, v] as [string, unknown]],
  );
}

describe('schema defaults = normalize defaults', () => {
  const found = schemaDefaults(SCHEMA);
  const leaves = new Map(defaultsLeaves(DEFAULTS as unknown as Record<string, unknown>));

  it('every `default` in the schema is checked here, and nothing checked here is gone from the schema', () => {
    expect(found.length).toBeGreaterThanOrEqual(30);
    expect(found.map((f) => f.pointer).sort()).toEqual(Object.keys(DEFAULT_CHECKS).sort());
  });

  it.each(found.map((f) => [f.pointer, f.value] as const))('%s = %j', (pointer, value) => {
    const check = DEFAULT_CHECKS[pointer]!;
    if (check.key) expect(leaves.get(check.key), `DEFAULTS.${check.key}`).toEqual(value);
    if (check.resolved) {
      const d = resolveDeployment(manifest(check.manifest ?? { project: { id: 'demo' }, services: { web: WEB } }));
      expect(check.resolved(d)).toEqual(check.unit === 'duration' ? ms(value) : value);
    } else {
      // Not resolved by normalize: the only sane default for an optional flag is "off".
      expect(value).toBe(false);
    }
  });

  it('every constant in DEFAULTS is annotated in the schema (or described where it depends on context)', () => {
    const used = new Set(Object.values(DEFAULT_CHECKS).map((c) => c.key));
    const schemaText = JSON.stringify(SCHEMA);
    for (const key of leaves.keys()) {
      if (used.has(key)) continue;
      expect(DEFAULTS_WITHOUT_SCHEMA_DEFAULT[key], `DEFAULTS.${key} has no \`default\` in the schema`).toBeDefined();
      expect(DEFAULTS_WITHOUT_SCHEMA_DEFAULT[key]!(schemaText)).toBe(true);
    }
  });

  it('the "Default: ..." sentences in descriptions match too', () => {
    const d = resolveDeployment(minimal());
    const defs = SCHEMA.$defs as Record<string, { description?: string; properties?: Record<string, { description?: string }> }>;
    expect(defs.environment!.properties!.name!.description).toContain(`Default: ${d.env}.`);
    expect(defs.environment!.properties!.domain!.description).toContain('Default: <project-id>.localhost.');
    expect(d.domain).toBe('demo.localhost');
    expect(defs.project!.properties!.name!.description).toContain('Default: the id.');
    expect(d.projectName).toBe('demo');
  });
});

describe('resolveDeployment: per-environment database name and deploy strategy (issue 12, item 5)', () => {
  const m = () =>
    manifest({
      project: { id: 'dongne' },
      environment: { database: { name: 'dongne_prod' } },
      services: { web: WEB },
      features: { database: { extensions: ['pg_trgm'] } },
      deploy: { strategy: 'blue-green' },
      environments: {
        staging: { database: { name: 'dongne_staging' }, deploy: { strategy: 'recreate' } },
        development: { deploy: { strategy: 'recreate' } },
        qa: {},
      },
    });
  it.each([
    ['production', 'dongne_prod', 'blue-green'],
    ['staging', 'dongne_staging', 'recreate'],
    ['development', null, 'recreate'],
    ['qa', null, 'blue-green'],
  ])('%s: database name %s, strategy %s', (env, name, strategy) => {
    const d = resolveDeployment(m(), env);
    expect(d.features.database).toEqual({ extensions: ['pg_trgm'], name });
    expect(d.deploy.strategy).toBe(strategy);
  });
  it('the primary environment does not take another environment\'s strategy, and defaults to blue-green', () => {
    const d = resolveDeployment(manifest({ project: { id: 'xy' }, services: { web: WEB }, environments: { staging: { deploy: { strategy: 'recreate' } } } }));
    expect(d.deploy.strategy).toBe('blue-green');
    expect(resolveDeployment(manifest({ project: { id: 'xy' }, services: { web: WEB }, deploy: { strategy: 'recreate' }, environments: { staging: {} } }), 'staging').deploy.strategy).toBe('recreate');
  });
});
