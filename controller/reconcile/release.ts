/**
 * The containers of a deployment as one resource, `runtime.release/<project>-<env>`: its spec is
 * the spec hash of every service (what the manifest asks to run) and the slot port each entry
 * should forward to. Observing reads the live slot's containers and the forwarder's table;
 * executing either re-points entries (the forwarder lost them) or runs a blue-green deploy.
 */
import { containerName, deploymentName } from '../manifest/names.js';
import { slotPorts } from '../registry/slot-ports.js';
import type { Deployment } from '../manifest/types.js';
import type { EnvironmentRecord } from '../registry/types.js';
import { entryId, specsFor } from '../deploy/bluegreen.js';
import type { ForwarderClient } from '../deploy/forwarder-client.js';
import { LABEL, type ContainerState, type Runtime } from '../runtime/types.js';
import { serviceSlot } from '../deploy/stateful.js';
import { makeResource, type Observed, type Resource } from './model.js';

export interface ReleaseSpec extends Record<string, unknown> {
  /** service -> spec hash of the container the manifest asks for, with " xN" for N replicas (N != 1). */
  services: Record<string, string>;
  /** service -> slot port its entry forwards to (web and internal services); one per replica when several. */
  entries: Record<string, number | number[]>;
}

/** A hash and a replica count as the release spec states them: one replica is the bare hash (as before replicas). */
export const withReplicas = (hash: string, n: number): string => (n === 1 ? hash : `${hash} x${n}`);
/** A target list as the release spec states it: one port alone (as before replicas). */
const entryValue = (ports: number[]): number | number[] => (ports.length === 1 ? ports[0]! : ports);

export function releaseName(projectId: string, env: string): string {
  return deploymentName(projectId, env);
}

/** What version label a deploy gets: the tags of the images, e.g. "v2" or "web:v2,api:v1". */
export function versionOf(d: Deployment): string {
  const tags = [...new Set(d.services.map((s) => s.image.split('@')[0]!.split('/').pop()!.split(':')[1] ?? 'latest'))];
  return tags.length === 1 ? tags[0]! : d.services.map((s) => `${s.name}:${s.image.split(':').pop()}`).join(',');
}

export function releaseResource(d: Deployment, rec: Pick<EnvironmentRecord, 'ports' | 'liveSlot'>, envFile: string | null, dependsOn: string[], servicesAddress: string): Resource<ReleaseSpec> {
  const slot = rec.liveSlot ?? 'blue';
  const specs = specsFor(d, rec, slot, envFile, versionOf(d), servicesAddress);
  const replicas = new Map(d.services.map((s) => [s.name, s.replicas]));
  const services = Object.fromEntries(specs.map((s) => [s.service, withReplicas(s.labels[LABEL.specHash]!, replicas.get(s.service)!)]));
  const entries: Record<string, number | number[]> = {};
  for (const s of d.services) if (s.port !== null && rec.ports[s.name] && s.replicas > 0) entries[s.name] = entryValue(slotPorts(rec.ports[s.name]!, serviceSlot(s, slot)).slice(0, s.replicas));
  return makeResource('runtime.release', releaseName(d.projectId, d.env), { services, entries }, dependsOn);
}

/**
 * A container with one of this deployment's names that another owner's labels claim: the deploy
 * would replace it. Labels are set by codeb on every container it makes (runtime/spec.ts). Pure:
 * `states` are the inspected names (inspectAll).
 */
export function foreignContainer(d: Pick<Deployment, 'projectId' | 'env'>, states: ReadonlyMap<string, ContainerState | null>): string | null {
  for (const [name, st] of states) {
    if (!st) continue;
    const project = st.labels[LABEL.project];
    const env = st.labels[LABEL.env];
    if (project !== d.projectId || env !== d.env) {
      return `container ${name} exists and belongs to ${project ? `project "${project}" (${env ?? '?'})` : 'no codeb deployment (no codeb.project label)'}; codeb never replaces it`;
    }
  }
  return null;
}

/**
 * Every container name the deployment may have, in both slots: per slot, as many replicas as the
 * manifest asks or the record holds there (more, before a scale-down), and at least one. Pure.
 */
export function releaseContainerNames(d: Pick<Deployment, 'projectId' | 'env' | 'services'>, rec: Partial<Pick<EnvironmentRecord, 'containers'>>): string[] {
  const names: string[] = [];
  for (const s of d.services) {
    for (const slot of ['blue', 'green'] as const) {
      const recorded = (rec.containers ?? []).filter((c) => c.service === s.name && c.slot === slot).length;
      for (let i = 0; i < Math.max(1, s.replicas, recorded); i++) names.push(containerName(d.projectId, d.env, s.name, slot, i));
    }
  }
  return names;
}

export async function observeRelease(d: Deployment, rec: Pick<EnvironmentRecord, 'liveSlot'> & Partial<Pick<EnvironmentRecord, 'containers'>>, runtime: Runtime, forwarder: ForwarderClient, r: Resource): Promise<Observed> {
  // Each name inspected once, all at once; the forwarder's table beside them while a slot is live.
  const [inspected, table] = await Promise.all([
    Promise.all(releaseContainerNames(d, rec).map(async (name) => [name, await runtime.inspect(name)] as const)),
    rec.liveSlot ? forwarder.list() : [],
  ]);
  const states = new Map(inspected);
  const foreign = foreignContainer(d, states);
  if (foreign) return { key: r.key, exists: true, conflict: foreign };
  if (!rec.liveSlot) return { key: r.key, exists: false };
  const services: Record<string, string> = {};
  for (const s of d.services) {
    const st = states.get(containerName(d.projectId, d.env, s.name, serviceSlot(s, rec.liveSlot)));
    services[s.name] = st?.running ? st.labels[LABEL.specHash] ?? '(unlabelled)' : st ? `(${st.status})` : '(missing)';
    // Further replicas: as many as the manifest asks or the record holds (more, before a scale-down).
    const recorded = (rec.containers ?? []).filter((c) => c.service === s.name && c.slot === rec.liveSlot).length;
    const count = Math.max(s.replicas, recorded);
    if (!st?.running || count <= 1) continue;
    let running = 1;
    for (let i = 1; i < count; i++) {
      const more = states.get(containerName(d.projectId, d.env, s.name, rec.liveSlot, i));
      if (!more?.running) continue;
      running++;
      if (more.labels[LABEL.specHash] !== st.labels[LABEL.specHash]) services[s.name] = '(replicas differ)';
    }
    if (!services[s.name]!.startsWith('(')) services[s.name] = withReplicas(services[s.name]!, running);
  }
  const entries: Record<string, number | number[]> = {};
  for (const s of d.services) {
    const e = table.find((x) => x.id === entryId(d.projectId, d.env, s.name));
    if (e) entries[s.name] = entryValue(e.targets ?? [e.target]);
  }
  const anyRunning = Object.values(services).some((h) => !h.startsWith('('));
  return { key: r.key, exists: anyRunning, spec: { services, entries } };
}

/** Only the entries differ (the forwarder lost its table): re-pointing them is enough. */
export function onlyEntriesDiffer(changes: Array<{ field: string }>): boolean {
  return changes.length > 0 && changes.every((c) => c.field === 'entries');
}
