/**
 * Replicas, the pure parts: one slot port per replica and slot from the allocation (kept for a
 * known deployment, grown and shrunk with N, records from before replicas still load), the
 * containers' names, the entry's targets from the record, round robin in the forwarder, and the
 * release spec that makes a change of N a deploy.
 */
import { describe, expect, it } from 'vitest';
import { allocate, DEFAULT_POLICY, type AllocationRequest } from '../../controller/registry/allocate.js';
import { containerName, replicaNames } from '../../controller/manifest/names.js';
import { allocatedReplicas, allPorts, replicaIndex, slotPorts, slotTargets } from '../../controller/registry/slot-ports.js';
import { pickTarget } from '../../controller/deploy/forwarder.js';
import { withReplicas } from '../../controller/reconcile/release.js';
import { placeholderRecord } from '../helpers/records.js';
import { emptyRegistry, type ContainerRecord, type PortPair, type RegistryDocument } from '../../controller/registry/types.js';

const NOW = '2025-01-01T00:00:00.000Z';
const policy = { ...DEFAULT_POLICY, busyPorts: new Set<number>() };

function req(projectId: string, services: Array<{ name: string; replicas?: number; needsPorts?: boolean }>): AllocationRequest {
  return { projectId, env: 'production', services: services.map((s) => ({ name: s.name, needsPorts: s.needsPorts ?? true, explicit: null, replicas: s.replicas })), needsRedis: false };
}

function put(doc: RegistryDocument, projectId: string, ports: Record<string, PortPair>): void {
  const project = (doc.projects[projectId] ??= { id: projectId, name: projectId, createdAt: NOW, updatedAt: NOW, environments: {} });
  project.environments.production = placeholderRecord({ now: NOW, env: 'production', domain: `${projectId}.localhost`, ports, redisDb: null });
}

/** Allocate and record, as apply does under the registry lock. */
function applyOnce(doc: RegistryDocument, r: AllocationRequest): Record<string, PortPair> {
  const a = allocate(doc, r, policy);
  put(doc, r.projectId, a.ports);
  return a.ports;
}

describe('allocation of replica ports', () => {
  it('gives each replica its own port per slot, none shared, one entry per service', () => {
    const doc = emptyRegistry(NOW);
    const p = applyOnce(doc, req('shop', [{ name: 'web', replicas: 3 }, { name: 'api' }]));
    expect(slotPorts(p.web!, 'blue')).toHaveLength(3);
    expect(slotPorts(p.web!, 'green')).toHaveLength(3);
    expect(allocatedReplicas(p.web!)).toBe(3);
    expect(p.api!.replicas).toBeUndefined();
    const all = [...allPorts(p.web!), ...allPorts(p.api!)];
    expect(new Set(all).size).toBe(all.length);
    // Replica ports come after every first-replica port: api keeps what it would get without web's replicas.
    expect(p.api).toEqual(allocate(emptyRegistry(NOW), req('shop', [{ name: 'web' }, { name: 'api' }]), policy).ports.api);
  });

  it('keeps every port of a known deployment on the next apply', () => {
    const doc = emptyRegistry(NOW);
    const first = applyOnce(doc, req('shop', [{ name: 'web', replicas: 3 }]));
    expect(applyOnce(doc, req('shop', [{ name: 'web', replicas: 3 }]))).toEqual(first);
  });

  it('grows by appending ports and shrinks by dropping the last ones; the first replica never moves', () => {
    const doc = emptyRegistry(NOW);
    const one = applyOnce(doc, req('shop', [{ name: 'web' }]));
    const three = applyOnce(doc, req('shop', [{ name: 'web', replicas: 3 }]));
    expect([three.web!.blue, three.web!.green, three.web!.entry]).toEqual([one.web!.blue, one.web!.green, one.web!.entry]);
    const five = applyOnce(doc, req('shop', [{ name: 'web', replicas: 5 }]));
    expect(five.web!.replicas!.blue.slice(0, 2)).toEqual(three.web!.replicas!.blue);
    expect(five.web!.replicas!.green.slice(0, 2)).toEqual(three.web!.replicas!.green);
    const two = applyOnce(doc, req('shop', [{ name: 'web', replicas: 2 }]));
    expect(two.web!.replicas).toEqual({ blue: three.web!.replicas!.blue.slice(0, 1), green: three.web!.replicas!.green.slice(0, 1) });
    expect(applyOnce(doc, req('shop', [{ name: 'web', replicas: 1 }])).web).toEqual(one.web);
  });

  it('loads a record allocated before replicas existed (no replicas field) and extends it', () => {
    const doc = emptyRegistry(NOW);
    put(doc, 'old', { web: { blue: 3000, green: 3001, entry: 3002 } });
    const p = applyOnce(doc, req('old', [{ name: 'web', replicas: 2 }]));
    expect(p.web).toEqual({ blue: 3000, green: 3001, entry: 3002, replicas: { blue: [3003], green: [3004] } });
    expect(slotPorts({ blue: 3000, green: 3001, entry: 3002 }, 'green')).toEqual([3001]);
  });

  it('never hands out another deployment’s replica ports', () => {
    const doc = emptyRegistry(NOW);
    const a = applyOnce(doc, req('a', [{ name: 'web', replicas: 4 }]));
    const b = applyOnce(doc, req('b', [{ name: 'web', replicas: 2 }]));
    const mine = new Set(allPorts(a.web!));
    expect(allPorts(b.web!).filter((p) => mine.has(p))).toEqual([]);
  });

  it('workers and replicas 0 hold no replica ports', () => {
    const p = allocate(emptyRegistry(NOW), req('w', [{ name: 'jobs', replicas: 3, needsPorts: false }, { name: 'off', replicas: 0 }]), policy).ports;
    expect(p.jobs).toBeUndefined();
    expect(p.off!.replicas).toBeUndefined();
  });
});

describe('replica names', () => {
  it('the first replica keeps the name from before replicas; the others append their number', () => {
    expect(replicaNames('shop', 'production', 'web', 'blue', 3)).toEqual(['shop--production--web--blue', 'shop--production--web--blue--2', 'shop--production--web--blue--3']);
    expect(replicaIndex(containerName('shop', 'production', 'web', 'green', 2))).toBe(2);
    expect(replicaIndex('shop--production--web--green')).toBe(0);
  });

  it('refuses an index outside 0-19', () => {
    expect(() => containerName('shop', 'production', 'web', 'blue', 20)).toThrow(/replica index 20/);
    expect(() => containerName('shop', 'production', 'web', 'blue', -1)).toThrow(/replica index/);
  });
});

describe('entry targets of a slot', () => {
  const pair: PortPair = { blue: 3000, green: 3001, entry: 3002, replicas: { blue: [3003, 3005], green: [3004, 3006] } };
  const c = (name: string, slot: 'blue' | 'green', hostPort: number): ContainerRecord => ({ service: 'web', slot, name, id: null, image: 'x', hostPort, state: 'running', startedAt: null });

  it('are the recorded containers of that slot in replica order (what really runs there)', () => {
    const containers = [c('p--e--web--green--3', 'green', 3006), c('p--e--web--green', 'green', 3001), c('p--e--web--green--2', 'green', 3004), c('p--e--web--blue', 'blue', 3000)];
    expect(slotTargets(pair, containers, 'web', 'green')).toEqual([3001, 3004, 3006]);
    // A retained slot that ran one replica before a scale-up: only that one gets traffic on a rollback.
    expect(slotTargets(pair, containers, 'web', 'blue')).toEqual([3000]);
  });

  it('fall back to the first replica port when nothing is recorded', () => {
    expect(slotTargets(pair, [], 'web', 'green')).toEqual([3001]);
  });
});

describe('round robin in the forwarder', () => {
  it('takes turns over every target', () => {
    const seen = Array.from({ length: 6 }, (_, turn) => pickTarget([1, 2, 3], turn, []));
    expect(seen).toEqual([1, 2, 3, 1, 2, 3]);
  });

  it('skips targets that refused this request while another is left, and tries them again when none is', () => {
    expect(Array.from({ length: 4 }, (_, turn) => pickTarget([1, 2, 3], turn, [2]))).toEqual([1, 3, 1, 3]);
    expect(pickTarget([1, 2], 1, [1, 2])).toBe(2);
  });
});

describe('the release spec of a service', () => {
  it('is the bare hash for one replica (as before replicas) and names N otherwise, so a change of N is a deploy', () => {
    expect(withReplicas('abc', 1)).toBe('abc');
    expect(withReplicas('abc', 3)).toBe('abc x3');
    expect(withReplicas('abc', 3)).not.toBe(withReplicas('abc', 2));
  });
});
