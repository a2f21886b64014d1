import { describe, expect, it } from 'vitest';
import { parseManifest } from '../../controller/manifest/load.js';
import { validateLoaded } from '../../controller/manifest/validate.js';
import { resolveDeployment } from '../../controller/manifest/normalize.js';
import { allocate, DEFAULT_POLICY } from '../../controller/registry/allocate.js';
import { allocationRequest, recordAllocation } from '../../controller/registry/records.js';
import { emptyRegistry } from '../../controller/registry/types.js';
import { desired, ownedResources } from '../../controller/reconcile/desired.js';
import { serviceUrls } from '../../controller/deploy/bluegreen.js';
import type { Settings } from '../../controller/settings.js';
import { testSettings } from '../helpers/settings.js';
import { readFileSync } from 'node:fs';

const settings = testSettings;

function deploymentOf(file: string, env?: string) {
  const loaded = parseManifest(readFileSync(file, 'utf8'), file);
  const { manifest, issues } = validateLoaded(loaded);
  expect(issues).toEqual([]);
  const d = resolveDeployment(manifest!, env);
  const doc = emptyRegistry();
  const rec = recordAllocation(doc, d, allocate(doc, allocationRequest(d), DEFAULT_POLICY), '2026-01-01T00:00:00.000Z');
  rec.subnet = '10.99.0.64/26';
  return { d, rec };
}

describe('desired state', () => {
  it('food-delivery-app: role, database, Redis slot and user, buckets, env file, route in dependency order', () => {
    const { d, rec } = deploymentOf('manifests/food-delivery-app.yaml');
    const rs = desired(d, rec, settings);
    expect(rs.map((r) => r.key)).toEqual([
      'network.project/codeb-food-delivery-app--production',
      'postgres.role/food_delivery_db_owner',
      'postgres.database/food_delivery_db',
      'redis.slot/2',
      'redis.user/codeb-food-delivery-app--prod',
      'storage.bucket/food-delivery-uploads',
      'storage.bucket/backup',
      'files.envfile/food-delivery-app.production.env',
      'proxy.route/codeb-food-delivery-app--production',
      'runtime.release/food-delivery-app--production',
    ]);
    const db = rs.find((r) => r.kind === 'postgres.database')!;
    expect(db.spec).toEqual({
      owner: 'food_delivery_db_owner',
      claimedBy: 'food-delivery-app/production',
      adoptLegacy: false,
      publicConnect: false,
      systemDatabasesClosed: true,
      extensions: ['pg_trgm'],
    });
    // A new deployment never takes over data an earlier codeb kept without naming its owner; a known one may.
    expect(rs.find((r) => r.kind === 'postgres.role')!.spec).toMatchObject({ claimedBy: 'food-delivery-app/production', adoptLegacy: false });
    expect(desired(d, { ...rec, status: 'running' }, settings).find((r) => r.kind === 'postgres.role')!.spec).toMatchObject({ adoptLegacy: true });
    // Caddy routes to the stable entry port (the third port allocated), never to a slot's port.
    expect(rec.ports.web).toEqual({ blue: 3000, green: 3001, entry: 3002 });
    const route = rs.find((r) => r.kind === 'proxy.route')!;
    expect(route.spec).toMatchObject({ domains: ['food-delivery.localhost'], tls: 'off', upstreams: [{ path: null, port: rec.ports.web!.entry, service: 'web' }], websockets: true });
  });

  it('the route stays on the entry ports whichever slot is live; only the forwarder entries follow the slot', () => {
    const { d, rec } = deploymentOf('manifests/stock-analysis.yaml');
    const routeFor = (liveSlot: 'blue' | 'green' | null) => desired(d, { ...rec, liveSlot }, settings).find((r) => r.kind === 'proxy.route')!;
    const releaseFor = (liveSlot: 'blue' | 'green' | null) => desired(d, { ...rec, liveSlot }, settings).find((r) => r.kind === 'runtime.release')!;
    // Same route (so no Caddy reload) before the first deploy, on blue and on green.
    expect(routeFor('green')).toEqual(routeFor('blue'));
    expect(routeFor(null)).toEqual(routeFor('blue'));
    const upstreamPorts = (routeFor('green').spec.upstreams as Array<{ port: number }>).map((u) => u.port);
    const slotPorts = Object.values(rec.ports).flatMap((p) => [p.blue, p.green]);
    for (const port of upstreamPorts) expect(slotPorts).not.toContain(port);
    // The forwarder's entries point at the live slot's ports.
    for (const slot of ['blue', 'green'] as const) {
      const entries = releaseFor(slot).spec.entries as Record<string, number>;
      expect(entries.frontend).toBe(rec.ports.frontend![slot]);
      expect(entries.gateway).toBe(rec.ports.gateway![slot]);
    }
  });

  it('env file carries secret placeholders, never secret values', () => {
    const { d, rec } = deploymentOf('manifests/food-delivery-app.yaml');
    const envFile = desired(d, rec, settings).find((r) => r.kind === 'files.envfile')!;
    const vars = envFile.spec.variables as Record<string, string>;
    // Containers reach the shared services at the services address, never the host's loopback.
    expect(vars.DATABASE_URL).toBe('postgresql://food_delivery_db_owner:${secret:postgres}@10.99.0.1:25432/food_delivery_db');
    expect(vars.REDIS_URL).toBe('redis://codeb-food-delivery-app--prod:${secret:redis}@10.99.0.1:26379/2');
    expect(vars.S3_ENDPOINT).toBe('http://10.99.0.1:29000');
    expect(vars.S3_SECRET_KEY).toBe('${secret:storageSecretKey}');
    expect(JSON.stringify(envFile.spec)).not.toContain('SK');
  });

  it('stock-analysis: path-prefixed upstream comes before the catch-all; prefix isolation for Redis', () => {
    const { d, rec } = deploymentOf('manifests/stock-analysis.yaml');
    const rs = desired(d, rec, settings);
    // hostPorts name blue and green only: the entry ports come from the range, allocated after the
    // explicit ports are set aside, in manifest order (frontend, then gateway, then the internal services).
    expect(rec.ports.frontend).toEqual({ blue: 3300, green: 3301, entry: 3000 });
    expect(rec.ports.gateway).toEqual({ blue: 3310, green: 3311, entry: 3001 });
    const route = rs.find((r) => r.kind === 'proxy.route')!;
    expect(route.spec.upstreams).toEqual([
      { path: '/api', port: rec.ports.gateway!.entry, service: 'gateway' },
      { path: null, port: rec.ports.frontend!.entry, service: 'frontend' },
    ]);
    expect(rs.find((r) => r.kind === 'redis.user')!.spec).toMatchObject({ isolation: 'prefix', keyPrefix: 'stock-analysis:' });
    expect(rs.some((r) => r.kind === 'storage.bucket')).toBe(false);
  });

  it('the Redis key prefix is kept when the manifest grows a second environment: the app\'s keys do not move', () => {
    const single = `apiVersion: codeb/v1
project: { id: shop }
features: { cache: true }
services:
  web: { image: localhost/shop:v1, port: 8080 }
`;
    const load = (text: string) => validateLoaded(parseManifest(text, 'shop.yaml')).manifest!;
    const doc = emptyRegistry();
    const d1 = resolveDeployment(load(single));
    recordAllocation(doc, d1, allocate(doc, allocationRequest(d1), DEFAULT_POLICY), '2026-01-01T00:00:00.000Z');
    const d2 = resolveDeployment(load(`${single}environments:\n  staging: { domain: staging.shop.localhost }\n`), 'production');
    expect(d2.multiEnv).toBe(true);
    const rec = recordAllocation(doc, d2, allocate(doc, allocationRequest(d2), DEFAULT_POLICY), '2026-01-02T00:00:00.000Z');
    rec.subnet = '10.99.0.64/26';
    const rs = desired(d2, rec, settings);
    expect(rec.redisKeyPrefix).toBe('shop:');
    expect(rs.find((r) => r.kind === 'redis.user')!.spec).toMatchObject({ isolation: 'prefix', keyPrefix: 'shop:' });
    expect((rs.find((r) => r.kind === 'files.envfile')!.spec.variables as Record<string, string>).REDIS_KEY_PREFIX).toBe('shop:');
    // A new environment of the same manifest gets its own prefix.
    const st = resolveDeployment(load(`${single}environments:\n  staging: { domain: staging.shop.localhost }\n`), 'staging');
    expect(recordAllocation(doc, st, allocate(doc, allocationRequest(st), DEFAULT_POLICY), '2026-01-02T00:00:00.000Z').redisKeyPrefix).toBe('shop:staging:');
  });

  it('minimal: no database, cache or storage means only the env file, the route and the release', () => {
    const { d, rec } = deploymentOf('manifests/minimal.yaml');
    expect(desired(d, rec, settings).map((r) => r.kind)).toEqual(['network.project', 'files.envfile', 'proxy.route', 'runtime.release']);
  });

  it('the network: the recorded subnet, its gateway and bridge, isolated, owned; the release depends on it', () => {
    const { d, rec } = deploymentOf('manifests/minimal.yaml');
    const rs = desired(d, rec, settings);
    const net = rs.find((r) => r.kind === 'network.project')!;
    expect(net.spec).toEqual({ subnet: '10.99.0.64/26', gateway: '10.99.0.65', bridge: 'cb0a630040', isolate: true, owner: `${d.projectId}/${d.env}` });
    expect(rs.find((r) => r.kind === 'runtime.release')!.dependsOn).toContain(net.key);
    expect(() => desired(d, { ...rec, subnet: undefined }, settings)).toThrow(/no network subnet/);
    // Destroy removes it after the containers (reverse order: it comes first).
    expect(ownedResources(d.projectId, rec)[0]!.key).toBe(net.key);
  });

  it('service URLs point at the services address (entries that answer only this project)', () => {
    const { d, rec } = deploymentOf('manifests/stock-analysis.yaml');
    const release = desired(d, rec, settings).find((r) => r.kind === 'runtime.release')!;
    expect(release.spec.services).toBeDefined();
    expect(serviceUrls(d, rec, '10.99.0.1').GATEWAY_URL).toBe(`http://10.99.0.1:${rec.ports.gateway!.entry}`);
  });

  it('owned resources come from the registry record alone and exclude the shared backup bucket', () => {
    const { rec } = deploymentOf('manifests/food-delivery-app.yaml');
    const owned = ownedResources('food-delivery-app', rec);
    expect(owned.map((r) => r.key)).not.toContain('storage.bucket/backup');
    // The storage user (where the server makes one) is kept with the buckets unless data is deleted.
    expect(owned.filter((r) => r.holdsData).map((r) => r.kind)).toEqual(['postgres.role', 'postgres.database', 'storage.user', 'storage.bucket']);
    expect(owned.find((r) => r.kind === 'storage.bucket')!.dependsOn).toEqual(['storage.user/codeb.food-delivery-app.production']);
  });

  it('s3rver: no storage user; buckets granted to nobody; the env file carries the shared key by name', () => {
    const { d, rec } = deploymentOf('manifests/food-delivery-app.yaml');
    const rs = desired(d, rec, settings);
    expect(rs.some((r) => r.kind === 'storage.user')).toBe(false);
    expect(rs.filter((r) => r.kind === 'storage.bucket').map((r) => [r.name, r.spec.user, r.dependsOn])).toEqual([
      ['food-delivery-uploads', null, []],
      ['backup', null, []],
    ]);
    const env = rs.find((r) => r.kind === 'files.envfile')!.spec.variables as Record<string, string>;
    expect([env.S3_ACCESS_KEY, env.S3_SECRET_KEY]).toEqual(['${secret:storageAccessKey}', '${secret:storageSecretKey}']);
  });

  it('radosgw: a storage user per deployment first, its buckets granted to it, the backup bucket to nobody', () => {
    const { d, rec } = deploymentOf('manifests/food-delivery-app.yaml');
    const rgw: Settings = { ...settings, storage: { ...settings.storage, kind: 'radosgw', rgwAdmin: ['radosgw-admin'] } };
    const rs = desired(d, rec, rgw);
    const user = rs.find((r) => r.kind === 'storage.user')!;
    expect(user).toMatchObject({ name: 'codeb.food-delivery-app.production', spec: { key: 'current', secret: 'storage' }, holdsData: true });
    expect(rs.findIndex((r) => r.kind === 'storage.user')).toBeLessThan(rs.findIndex((r) => r.kind === 'storage.bucket'));
    expect(rs.filter((r) => r.kind === 'storage.bucket').map((r) => [r.name, r.spec.user, r.dependsOn])).toEqual([
      ['food-delivery-uploads', 'codeb.food-delivery-app.production', [user.key]],
      ['backup', null, []],
    ]);
    // The env file waits for the user (its key must exist before containers use it).
    expect(rs.find((r) => r.kind === 'files.envfile')!.dependsOn).toContain(user.key);
  });

  it('is pure: same inputs, same output', () => {
    const { d, rec } = deploymentOf('manifests/stock-analysis.yaml');
    expect(desired(d, rec, settings)).toEqual(desired(d, rec, settings));
  });
});
