/**
 * Stateful services (volumes), the pure parts: names, the resources desired and owned, the plan's
 * words, the slot a stateful container keeps, the registry's record and tombstone, the container
 * spec and the units. The real-stack behaviour is test/integration/deploy-stateful.test.ts.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isStateful, serviceSlot, statefulNotes, statefulServices, STATEFUL_SLOT } from '../../controller/deploy/stateful.js';
import { specsFor } from '../../controller/deploy/bluegreen.js';
import { parseManifest } from '../../controller/manifest/load.js';
import { volumeName } from '../../controller/manifest/names.js';
import { resolveDeployment } from '../../controller/manifest/normalize.js';
import { validateLoaded } from '../../controller/manifest/validate.js';
import { desired, ownedResources } from '../../controller/reconcile/desired.js';
import { planApply, planDestroy } from '../../controller/reconcile/plan.js';
import { allocate, DEFAULT_POLICY } from '../../controller/registry/allocate.js';
import { allocationRequest, deploymentVolumes, recordAllocation, releaseKeepingData } from '../../controller/registry/records.js';
import { emptyRegistry } from '../../controller/registry/types.js';
import { containerSpec, specHash } from '../../controller/runtime/spec.js';
import { podmanRunArgv, renderQuadlet, renderSystemdUnit } from '../../controller/runtime/units.js';
import { testSettings } from '../helpers/settings.js';

const settings = testSettings;
const FILE = 'manifests/metrics-volumes.yaml';
const AT = '2026-01-01T00:00:00.000Z';

function example() {
  const { manifest, issues } = validateLoaded(parseManifest(readFileSync(FILE, 'utf8'), FILE));
  expect(issues).toEqual([]);
  const d = resolveDeployment(manifest!);
  const doc = emptyRegistry(AT);
  const rec = recordAllocation(doc, d, allocate(doc, allocationRequest(d), DEFAULT_POLICY), AT);
  rec.subnet = '10.99.0.64/26';
  return { d, rec, doc };
}
const vol = (service: string, volume: string) => volumeName('metrics-monitoring', 'production', service, volume);

describe('volume names', () => {
  it('codeb-<project>--<env>--<service>--<volume>, per environment', () => {
    expect(volumeName('metrics-monitoring', 'production', 'influxdb', 'data')).toBe('codeb-metrics-monitoring--production--influxdb--data');
    expect(volumeName('metrics-monitoring', 'staging', 'influxdb', 'data')).not.toBe(volumeName('metrics-monitoring', 'production', 'influxdb', 'data'));
  });
  it('the separator keeps (project, env, service, volume) apart', () => {
    expect(volumeName('a-b', 'x', 'y', 'z')).not.toBe(volumeName('a', 'b-x', 'y', 'z'));
  });
  it.each([['Data'], ['a--b'], ['-a'], ['a'.repeat(21)]])('refuses volume name %j (exit 2)', (bad) => {
    expect(() => volumeName('p', 'production', 's', bad)).toThrow(expect.objectContaining({ exitCode: 2 }));
  });
});

describe('desired and owned volumes', () => {
  it('one volume.data per service volume, holding data, before the release that depends on them', () => {
    const { d, rec } = example();
    const rs = desired(d, rec, settings);
    const volumes = rs.filter((r) => r.kind === 'volume.data');
    expect(volumes.map((r) => r.name)).toEqual([
      vol('influxdb', 'config'),
      vol('influxdb', 'data'),
      vol('prometheus', 'data'),
      vol('loki', 'data'),
      vol('alertmanager', 'data'),
      vol('grafana', 'data'),
    ]);
    expect(volumes.every((r) => r.holdsData)).toBe(true);
    expect(volumes[0]!.spec).toEqual({ owner: 'metrics-monitoring/production', service: 'influxdb', volume: 'config' });
    const release = rs.at(-1)!;
    expect(release.kind).toBe('runtime.release');
    expect(release.dependsOn).toEqual(expect.arrayContaining(volumes.map((v) => v.key)));
    expect(rs.findIndex((r) => r.kind === 'volume.data')).toBeLessThan(rs.indexOf(release));
  });

  it('the registry records every volume; destroy keeps them unless --delete-data, after the containers', () => {
    const { rec } = example();
    expect(rec.volumes).toHaveLength(6);
    const owned = ownedResources('metrics-monitoring', rec);
    const observed = owned.map((r) => ({ key: r.key, exists: true, spec: r.spec }));
    const kept = planDestroy(owned, observed, false).filter((a) => a.kind === 'volume.data');
    expect(kept.map((a) => a.op)).toEqual(Array(6).fill('keep'));
    const deleted = planDestroy(owned, observed, true);
    const ops = deleted.map((a) => `${a.op} ${a.kind}`);
    expect(ops.filter((o) => o === 'delete volume.data')).toHaveLength(6);
    // Reverse order: the containers go before their volumes.
    expect(ops.indexOf('delete runtime.release')).toBeLessThan(ops.indexOf('delete volume.data'));
  });

  it('a volume owned by another deployment is blocked, never taken over', () => {
    const { d, rec } = example();
    const rs = desired(d, rec, settings).filter((r) => r.kind === 'volume.data');
    const actions = planApply(rs, rs.map((r, i) => ({ key: r.key, exists: true, spec: r.spec, ...(i === 0 ? { conflict: 'belongs to other/production' } : {}) })));
    expect(actions.map((a) => a.op)).toEqual(['blocked', 'unchanged', 'unchanged', 'unchanged', 'unchanged', 'unchanged']);
  });
});

describe('registry: volumes kept until --delete-data', () => {
  it('a volume dropped from the manifest stays recorded (its data is not lost silently)', () => {
    const { d } = example();
    const without = { ...d, services: d.services.map((s) => (s.name === 'loki' ? { ...s, volumes: [] } : s)) };
    expect(deploymentVolumes(without, { volumes: [vol('loki', 'data')] })).toContain(vol('loki', 'data'));
    expect(deploymentVolumes(without, undefined)).not.toContain(vol('loki', 'data'));
  });
  it('release keeps a tombstone naming the volumes; a re-apply takes them back', () => {
    const { d, doc } = example();
    expect(releaseKeepingData(doc, 'metrics-monitoring', 'production', { by: 'me@host', at: AT })).toBe(true);
    expect(doc.tombstones?.[0]?.volumes).toHaveLength(6);
    const rec = recordAllocation(doc, d, allocate(doc, allocationRequest(d), DEFAULT_POLICY), AT);
    expect(rec.volumes).toHaveLength(6);
    expect(doc.tombstones).toBeUndefined();
  });
});

describe('the stateful deploy strategy', () => {
  const { d, rec } = example();
  const svc = (n: string) => d.services.find((s) => s.name === n)!;

  it('services with volumes are stateful and keep the blue slot; the others follow the deploy', () => {
    expect(d.services.filter(isStateful).map((s) => s.name)).toEqual(['influxdb', 'prometheus', 'loki', 'alertmanager', 'grafana']);
    expect(STATEFUL_SLOT).toBe('blue');
    expect(serviceSlot(svc('influxdb'), 'green')).toBe('blue');
    expect(serviceSlot(svc('api'), 'green')).toBe('green');
    const green = specsFor(d, rec, 'green', null, 'v2', '10.99.0.1');
    const by = (n: string) => green.find((s) => s.service === n)!;
    expect(by('api').name).toBe('metrics-monitoring--production--api--green');
    expect(by('influxdb').name).toBe('metrics-monitoring--production--influxdb--blue');
    expect(by('influxdb').port).toBe(rec.ports.influxdb!.blue);
  });

  it('the registry says which containers are stateful (rollback and gc need no manifest)', () => {
    expect([...statefulServices({ containers: [{ service: 'db', stateful: true }, { service: 'web' }] })]).toEqual(['db']);
  });

  const services = (from: Record<string, string>, to: Record<string, string>) => ({ op: 'update' as const, changes: [{ field: 'services', from, to }] });
  it.each([
    ['first deploy', { op: 'create' as const, changes: [] }, ['db is stateful: stops the running container before starting the new one (brief downtime; never two at once)']],
    ['only web changed', services({ web: 'a', db: 'x' }, { web: 'b', db: 'x' }), ['db is stateful and unchanged: it keeps running through this deploy']],
    ['db changed', services({ web: 'a', db: 'x' }, { web: 'a', db: 'y' }), ['db is stateful: stops the running container before starting the new one (brief downtime; never two at once)']],
    ['only entries differ', { op: 'update' as const, changes: [{ field: 'entries', from: {}, to: {} }] }, ['db is stateful and unchanged: it keeps running through this deploy']],
    ['nothing to deploy', { op: 'unchanged' as const, changes: [] }, []],
  ])('plan note: %s', (_, release, notes) => {
    expect(statefulNotes([{ name: 'web', volumes: [] }, { name: 'db', volumes: [{ name: 'data', path: '/data' }] }], release)).toEqual(notes);
  });
});

describe('container spec and units', () => {
  const { d, rec } = example();
  const influx = specsFor(d, rec, 'blue', '/opt/codeb/registry/secrets/x.env', 'v1', '10.99.0.1').find((s) => s.service === 'influxdb')!;

  it('mounts the volumes, sorted by name; the spec hash covers them', () => {
    expect(influx.volumes).toEqual([
      { volume: vol('influxdb', 'config'), path: '/etc/influxdb2' },
      { volume: vol('influxdb', 'data'), path: '/var/lib/influxdb2' },
    ]);
    const moved = { ...influx, volumes: [{ ...influx.volumes[0]!, path: '/elsewhere' }, influx.volumes[1]!] };
    expect(specHash(moved)).not.toBe(specHash(influx));
  });

  it('a service without volumes hashes as before volumes existed (no redeploy on upgrade)', () => {
    const api = containerSpec(d, d.services.find((s) => s.name === 'api')!, 'blue', { port: rec.ports.api!.blue, envFile: null, serviceUrls: {}, version: 'v1' });
    expect(api.volumes).toEqual([]);
    const { volumes: _, ...older } = api;
    expect(specHash(older)).toBe(specHash(api));
  });

  it('Quadlet gets Volume= lines, the plain unit --volume= (no :U, no recursive chown)', () => {
    const quadlet = renderQuadlet(influx).content;
    expect(quadlet).toContain(`Volume=${vol('influxdb', 'config')}:/etc/influxdb2\nVolume=${vol('influxdb', 'data')}:/var/lib/influxdb2\n`);
    expect(podmanRunArgv(influx)).toEqual(expect.arrayContaining([`--volume=${vol('influxdb', 'data')}:/var/lib/influxdb2`]));
    expect(renderSystemdUnit(influx).content).toContain(`--volume=${vol('influxdb', 'config')}:/etc/influxdb2`);
    expect(quadlet).not.toMatch(/:U\b/);
  });

  it('a path that could break a unit line is refused (exit 2)', () => {
    const bad = { ...influx, volumes: [{ volume: vol('influxdb', 'data'), path: '/data dir' }] };
    expect(() => renderQuadlet(bad)).toThrow(expect.objectContaining({ exitCode: 2 }));
  });
});
