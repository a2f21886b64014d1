/** Ports checked before apply's first effect, so a refusal leaves no half-made route (issue 9, finding 7). */
import { describe, expect, it } from 'vitest';
import { portsTakenBeforeDeploy } from '../../controller/reconcile/preflight.js';
import type { ContainerRecord, EnvironmentRecord } from '../../controller/registry/types.js';

const services = [
  { name: 'web', port: 8080, replicas: 1 },
  { name: 'worker', port: null, replicas: 1 },
  { name: 'off', port: 9000, replicas: 0 },
] as never;
const ports = { web: { blue: 3000, green: 3001, entry: 3002 }, off: { blue: 3003, green: 3004, entry: 3005 } };
const container = (slot: 'blue' | 'green') => ({ service: 'web', slot, name: `x--production--web--${slot}` }) as ContainerRecord;
const rec = (liveSlot: 'blue' | 'green' | null, containers: ContainerRecord[] = []) => ({ ports, liveSlot, containers }) as Pick<EnvironmentRecord, 'ports' | 'liveSlot' | 'containers'>;

describe('portsTakenBeforeDeploy', () => {
  it.each([
    ['first deploy, nothing listens', rec(null), [], [], []],
    ['first deploy, blue slot port held by another process', rec(null), [3001, 3000], [], ['3000 (web, blue slot)']],
    ['first deploy, entry port held by another process', rec(null), [3002], [], ['3002 (web, entry port)']],
    ['entry port served by our forwarder entry', rec('blue', [container('blue')]), [3000, 3002], [3002], []],
    ['next deploy goes to green: its port held by someone else', rec('blue', [container('blue')]), [3000, 3001, 3002], [3002], ['3001 (web, green slot)']],
    ['green still holds our retained container: the deploy replaces it', rec('blue', [container('blue'), container('green')]), [3000, 3001, 3002], [3002], []],
    ['a service with no replicas binds nothing', rec(null), [3003, 3005], [], []],
  ])('%s', (_what, r, listening, own, want) => {
    expect(portsTakenBeforeDeploy({ services }, r, new Set(listening), new Set(own))).toEqual(want);
  });

  it.each([
    ['a killed apply left our unrecorded container in blue: the deploy replaces it', rec(null), [3000], [], ['blue'], []],
    ['the same port without our container in blue is someone else\'s', rec(null), [3000], [], [], ['3000 (web, blue slot)']],
    ['our container runs in the live slot only: green is still held by someone else', rec('blue', [container('blue')]), [3000, 3001, 3002], [3002], ['blue'], ['3001 (web, green slot)']],
  ])('%s', (_what, r, listening, own, ownSlots, want) => {
    expect(portsTakenBeforeDeploy({ services }, r, new Set(listening), new Set(own), new Set(ownSlots))).toEqual(want);
  });
});
