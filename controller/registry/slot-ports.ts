/**
 * The host ports of a service's replicas (pure). A PortPair holds the first replica's port of each
 * slot in blue/green and the others in `replicas`; these helpers are the one place that knows it.
 */
import type { Slot } from '../manifest/names.js';
import type { ContainerRecord, PortPair } from './types.js';

/** The slot ports of every replica allocated for a service, first replica first. */
export function slotPorts(pair: PortPair, slot: Slot): number[] {
  return [pair[slot], ...(pair.replicas?.[slot] ?? [])];
}

/** How many replicas the allocation has ports for. */
export function allocatedReplicas(pair: PortPair): number {
  return 1 + (pair.replicas?.blue.length ?? 0);
}

/** Every port a service holds: both slots of every replica, and the entry. */
export function allPorts(pair: PortPair): number[] {
  return [...slotPorts(pair, 'blue'), ...slotPorts(pair, 'green'), pair.entry];
}

/**
 * Where a service's entry sends requests when `slot` serves: the host ports of that slot's
 * containers as the record has them (what actually runs there, which may be another replica count
 * than the manifest's now, e.g. a retained slot after a scale), in replica order; without a
 * recorded container, the first replica's port.
 */
export function slotTargets(pair: PortPair, containers: readonly ContainerRecord[], service: string, slot: Slot): number[] {
  const recorded = containers
    .filter((c) => c.service === service && c.slot === slot && c.hostPort !== null)
    .sort((a, b) => replicaIndex(a.name) - replicaIndex(b.name))
    .map((c) => c.hostPort!);
  return recorded.length ? [...new Set(recorded)] : [pair[slot]];
}

/** The 0-based replica index in a container name (names.containerName): no number suffix is the first. */
export function replicaIndex(containerName: string): number {
  const m = /--(\d+)$/.exec(containerName);
  return m ? Number(m[1]) - 1 : 0;
}

/** "3001" or "3001 3004 3005": a slot's ports for people. */
export function formatSlotPorts(pair: PortPair, slot: Slot): string {
  return slotPorts(pair, slot).join(' ');
}
