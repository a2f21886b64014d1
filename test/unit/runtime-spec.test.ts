/**
 * containerSpec (controller/runtime/spec.ts): names, labels, the environment codeb injects, sizes,
 * the spec hash (stable, slot-independent, sensitive to what matters), and refusals.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseManifest } from '../../controller/manifest/load.js';
import { validateLoaded } from '../../controller/manifest/validate.js';
import { resolveDeployment } from '../../controller/manifest/normalize.js';
import type { Deployment, ResolvedService } from '../../controller/manifest/types.js';
import { containerSpec, parseSize, releaseSpec, specHash, stableJson, type SpecOptions } from '../../controller/runtime/spec.js';
import { LABEL } from '../../controller/runtime/types.js';
import { CodebError } from '../../controller/errors.js';

function deploymentOf(file: string): Deployment {
  const loaded = parseManifest(readFileSync(file, 'utf8'), file);
  const { manifest, issues } = validateLoaded(loaded);
  expect(issues).toEqual([]);
  return resolveDeployment(manifest!);
}

const food = deploymentOf('manifests/food-delivery-app.yaml');
const stock = deploymentOf('manifests/stock-analysis.yaml');
const svc = (d: Deployment, name: string): ResolvedService => d.services.find((s) => s.name === name)!;
const opts = (o: Partial<SpecOptions> = {}): SpecOptions => ({ port: 3000, envFile: '/secrets/food.env', serviceUrls: {}, version: 'v1', ...o });

describe('parseSize', () => {
  it.each([
    ['256Mi', 268_435_456],
    ['1Gi', 1_073_741_824],
    ['1.5Gi', 1_610_612_736],
    ['512Ki', 524_288],
    ['512M', 512_000_000],
    ['10M', 10_000_000],
    ['1G', 1_000_000_000],
    ['1.5G', 1_500_000_000],
    ['100K', 100_000],
    ['4096', 4096],
    ['0.5Ki', 512],
  ])('%s = %d bytes', (text, bytes) => expect(parseSize(text)).toBe(bytes));

  it.each(['', 'Mi', '256 MB', '256MB', '-1Mi', '0', '0Mi', '1e3', '12XB', 'lots'])('refuses %j', (text) => {
    expect(() => parseSize(text, 'memory limit')).toThrow(CodebError);
    expect(() => parseSize(text, 'memory limit')).toThrow(/Invalid memory limit/);
  });
});

describe('containerSpec', () => {
  it('food-delivery web, blue: name, own network, no capabilities, env, limits, labels, health, env file', () => {
    const spec = containerSpec(food, svc(food, 'web'), 'blue', opts({ serviceUrls: { API_URL: 'http://127.0.0.1:4100' } }));
    expect(spec).toMatchObject({
      name: 'food-delivery-app--production--web--blue',
      projectId: 'food-delivery-app',
      env: 'production',
      service: 'web',
      serviceType: 'web',
      slot: 'blue',
      image: 'localhost/codeb-testapp:v1',
      command: null,
      envFile: '/secrets/food.env',
      network: 'codeb-food-delivery-app--production',
      security: { capDrop: ['ALL'], capAdd: [], noNewPrivileges: true, readOnlyRootfs: false },
      port: 3000,
      cpu: 0.5,
      memoryBytes: 268_435_456,
      restart: 'always',
      logs: { maxSizeBytes: 10_000_000 },
      stopTimeoutSeconds: 10,
    });
    expect(spec.environment).toEqual({ API_URL: 'http://127.0.0.1:4100', HOST: '0.0.0.0', NODE_ENV: 'production', PORT: '3000', TZ: 'Asia/Seoul' });
    expect(Object.keys(spec.environment)).toEqual(Object.keys(spec.environment).sort());
    expect(spec.labels).toEqual({
      [LABEL.env]: 'production',
      [LABEL.managed]: 'true',
      [LABEL.project]: 'food-delivery-app',
      [LABEL.service]: 'web',
      [LABEL.slot]: 'blue',
      [LABEL.specHash]: expect.stringMatching(/^[0-9a-f]{64}$/),
      [LABEL.version]: 'v1',
    });
    expect(spec.healthCheck).toEqual({ kind: 'http', path: '/api/health', command: [], intervalMs: 1000, timeoutMs: 500, startPeriodMs: 2000, retries: 3 });
  });

  it('PORT and HOST are the slot\'s even if the manifest or a service URL sets them', () => {
    const web = { ...svc(food, 'web'), env: { ...svc(food, 'web').env, PORT: '8080', HOST: '127.0.0.1' } };
    const spec = containerSpec(food, web, 'green', opts({ port: 3001, serviceUrls: { PORT: '1' } }));
    expect(spec.environment.PORT).toBe('3001');
    expect(spec.environment.HOST).toBe('0.0.0.0');
  });

  it('service URLs override manifest values of the same name', () => {
    const web = { ...svc(food, 'web'), env: { GATEWAY_URL: 'http://old' } };
    expect(containerSpec(food, web, 'blue', opts({ serviceUrls: { GATEWAY_URL: 'http://127.0.0.1:4000' } })).environment.GATEWAY_URL).toBe('http://127.0.0.1:4000');
  });

  it('workers: no port, no PORT/HOST, command and uptime or command health carried over', () => {
    const beat = containerSpec(stock, svc(stock, 'celery-beat'), 'blue', opts({ port: null }));
    expect(beat.port).toBeNull();
    expect(beat.environment).toEqual({ LOG_LEVEL: 'info', TZ: 'Asia/Seoul' });
    expect(beat.command).toEqual(['celery', '-A', 'tasks', 'beat']);
    expect(beat.memoryBytes).toBe(128 * 1024 * 1024);
    expect(beat.cpu).toBe(0.25);
    expect(beat.healthCheck.kind).toBe('uptime');
    expect(beat.healthCheck.startPeriodMs).toBe(15_000);
    const worker = containerSpec(stock, svc(stock, 'celery-worker'), 'green', opts({ port: null }));
    expect(worker.healthCheck).toMatchObject({ kind: 'command', command: ['celery', '-A', 'tasks', 'inspect', 'ping'], timeoutMs: 5000, startPeriodMs: 20_000 });
  });

  it('readOnlyRootfs from the manifest: off by default, on when the service sets it', () => {
    expect(containerSpec(food, svc(food, 'web'), 'blue', opts()).security.readOnlyRootfs).toBe(false);
    const text = readFileSync('manifests/food-delivery-app.yaml', 'utf8').replace(/(\n  web:\n    type: web\n)/, '$1    readOnlyRootfs: true\n');
    const { manifest, issues } = validateLoaded(parseManifest(text, 'read-only.yaml'));
    expect(issues).toEqual([]);
    const d = resolveDeployment(manifest!);
    const spec = containerSpec(d, svc(d, 'web'), 'blue', opts());
    expect(spec.security).toEqual({ capDrop: ['ALL'], capAdd: [], noNewPrivileges: true, readOnlyRootfs: true });
  });

  it('refuses a readOnlyRootfs that is not a boolean', () => {
    const text = readFileSync('manifests/food-delivery-app.yaml', 'utf8').replace(/(\n  web:\n    type: web\n)/, '$1    readOnlyRootfs: "yes"\n');
    const { issues } = validateLoaded(parseManifest(text, 'read-only.yaml'));
    expect(issues.map((i) => i.path)).toContain('/services/web/readOnlyRootfs');
  });

  it('log rotation and limits from the stock-analysis manifest', () => {
    const gw = containerSpec(stock, svc(stock, 'gateway'), 'blue', opts({ port: 3310 }));
    expect(gw.logs).toEqual({ maxSizeBytes: 20_000_000 });
    expect(gw.memoryBytes).toBe(512 * 1024 * 1024);
    const engine = containerSpec(stock, svc(stock, 'signal-engine'), 'blue', opts({ port: 3004 }));
    expect(engine).toMatchObject({ cpu: 2, memoryBytes: 1024 ** 3, serviceType: 'internal' });
  });

  it('refuses a missing port for a web service, a port for a worker, and bad ports', () => {
    expect(() => containerSpec(food, svc(food, 'web'), 'blue', opts({ port: null }))).toThrow(/No host port for food-delivery-app\/production service web/);
    expect(() => containerSpec(stock, svc(stock, 'celery-beat'), 'blue', opts({ port: 3000 }))).toThrow(/listens on no port/);
    expect(() => containerSpec(food, svc(food, 'web'), 'blue', opts({ port: 70000 }))).toThrow(/Invalid host port/);
    expect(() => containerSpec(food, { ...svc(food, 'web'), env: { 'BAD-NAME': 'x' } }, 'blue', opts())).toThrow(/Invalid environment variable name/);
    expect(() => containerSpec(food, { ...svc(food, 'web'), memory: 'lots' }, 'blue', opts())).toThrow(/Invalid memory limit of food-delivery-app\/production service web/);
  });

  it('is pure: the same inputs give equal specs', () => {
    expect(containerSpec(food, svc(food, 'web'), 'blue', opts())).toEqual(containerSpec(food, svc(food, 'web'), 'blue', opts()));
  });
});

describe('spec hash', () => {
  const base = () => containerSpec(food, svc(food, 'web'), 'blue', opts());
  const hashOf = (s: ReturnType<typeof base>) => s.labels[LABEL.specHash];

  it('is the same on blue and green (ports differ) and ignores the version label and env file path', () => {
    const blue = base();
    const green = containerSpec(food, svc(food, 'web'), 'green', opts({ port: 3001, version: 'v2', envFile: '/elsewhere.env' }));
    expect(hashOf(green)).toBe(hashOf(blue));
  });

  it('leaves readOnlyRootfs out while it is off, so containers made before the field keep their hash', () => {
    const spec = base();
    const { readOnlyRootfs: _off, ...before } = spec.security;
    expect(hashOf(spec)).toBe(specHash({ ...spec, security: before as typeof spec.security }));
  });

  it('is stable across runs (a fixed value for a fixed input)', () => {
    const security = { capDrop: ['ALL'], capAdd: [], noNewPrivileges: true, readOnlyRootfs: false };
    expect(specHash({ image: 'a:1', command: null, environment: { B: '2', A: '1' }, cpu: 1, memoryBytes: 1024, restart: 'always', logs: { maxSizeBytes: 10 }, network: 'n', security })).toBe(
      specHash({ security, network: 'n', logs: { maxSizeBytes: 10 }, restart: 'always', memoryBytes: 1024, cpu: 1, environment: { A: '1', B: '2' }, command: null, image: 'a:1' }),
    );
    expect(stableJson({ b: [1, { d: 1, c: 2 }], a: 'x' })).toBe('{"a":"x","b":[1,{"c":2,"d":1}]}');
  });

  it.each([
    ['image', { image: 'localhost/codeb-testapp:v2' }],
    ['command', { command: ['node', 'other.js'] }],
    ['environment', { env: { NODE_ENV: 'staging', TZ: 'Asia/Seoul' } }],
    ['cpu', { cpu: 1 }],
    ['memory', { memory: '512Mi' }],
    ['restart', { restart: 'on-failure' as const }],
    ['log size', { logs: { maxSize: '20M' } }],
    ['a read-only root filesystem', { readOnlyRootfs: true }],
  ])('changes with %s', (_, change) => {
    const changed = containerSpec(food, { ...svc(food, 'web'), ...change }, 'blue', opts());
    expect(hashOf(changed)).not.toBe(hashOf(base()));
  });

  it('changes when an injected service URL changes', () => {
    const a = containerSpec(food, svc(food, 'web'), 'blue', opts({ serviceUrls: { API_URL: 'http://127.0.0.1:4000' } }));
    const b = containerSpec(food, svc(food, 'web'), 'blue', opts({ serviceUrls: { API_URL: 'http://127.0.0.1:4001' } }));
    expect(hashOf(a)).not.toBe(hashOf(b));
  });
});

describe('releaseSpec', () => {
  it('runs the release command once, never restarted, with its own name and role label', () => {
    const web = containerSpec(food, svc(food, 'web'), 'green', opts());
    const rel = releaseSpec(web, ['node', 'app.js', '--migrate']);
    expect(rel).toMatchObject({ name: 'food-delivery-app--production--web--green-release', command: ['node', 'app.js', '--migrate'], restart: 'no', port: null, envFile: web.envFile });
    expect(rel.labels['codeb.role']).toBe('release');
    expect(rel.labels[LABEL.project]).toBe('food-delivery-app');
  });
});
