/**
 * Checks that must pass before apply's first effect, so a refusal leaves nothing half-made (a
 * route written, then the deploy refusing a port). Pure: what listens is passed in.
 */
import type { Slot } from '../manifest/names.js';
import type { Deployment } from '../manifest/types.js';
import type { EnvironmentRecord } from '../registry/types.js';
import { serviceSlot } from '../deploy/stateful.js';
import { slotPorts } from '../registry/slot-ports.js';

/**
 * Host ports a deploy is about to bind that some other process holds: the slot the deploy starts
 * (unless this deployment's own containers are in it: the deploy replaces them) and entry ports the
 * forwarder does not already serve for this deployment. `ownSlotsRunning` are the slots in which
 * Podman has containers labelled with this deployment: an apply killed after starting a container
 * and before recording it leaves one the record does not know, and the next deploy replaces it.
 */
export function portsTakenBeforeDeploy(
  d: Pick<Deployment, 'services'>,
  rec: Pick<EnvironmentRecord, 'ports' | 'liveSlot' | 'containers'>,
  listening: ReadonlySet<number>,
  ownEntryPorts: ReadonlySet<number>,
  ownSlotsRunning: ReadonlySet<string> = new Set(),
): string[] {
  const toSlot: Slot = rec.liveSlot ? (rec.liveSlot === 'blue' ? 'green' : 'blue') : 'blue';
  const own = (slot: Slot) => rec.containers.some((c) => c.slot === slot) || ownSlotsRunning.has(slot);
  const out: string[] = [];
  for (const s of d.services) {
    const p = s.port !== null ? rec.ports[s.name] : undefined;
    if (!p || s.replicas === 0) continue;
    // A stateful service keeps its own slot (deploy/stateful.ts).
    const at = serviceSlot(s, toSlot);
    if (!own(at)) slotPorts(p, at).slice(0, s.replicas).forEach((port, i) => listening.has(port) && out.push(`${port} (${s.name}, ${at} slot${i ? `, replica ${i + 1}` : ''})`));
    if (!ownEntryPorts.has(p.entry) && listening.has(p.entry)) out.push(`${p.entry} (${s.name}, entry port)`);
  }
  return out;
}
