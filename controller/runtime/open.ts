/**
 * Opening the runtime driver a command uses on this machine:
 *   - commands with a manifest (plan, apply, deploy): the manifest's `servers[].runtime`, decided
 *     against this machine's facts (select.ts); refused with exit 2 before anything changes;
 *   - commands without one (rollback, gc, destroy, jobs): the driver this machine would choose by
 *     default. They only inspect and remove, and removing takes a unit of either kind away.
 */
import type { ServerSpec } from '../manifest/types.js';
import type { Settings } from '../settings.js';
import { gatherRuntimeFacts } from './facts.js';
import { PodmanApiRuntime } from './podman-api.js';
import { selectRuntime, type RuntimeFacts, type RuntimeKind } from './select.js';
import type { Runtime } from './types.js';
import { UnitRuntime } from './unit-runtime.js';
import { chooseUnitKind } from './units.js';

export type DriverKind = Exclude<RuntimeKind, 'kubernetes'>;

export function openRuntime(kind: DriverKind, settings: Pick<Settings, 'podman'>): Runtime {
  const api = new PodmanApiRuntime(settings.podman.socketPath);
  return kind === 'podman' ? api : new UnitRuntime(kind, api);
}

/** The driver for a deployment on `server` (exit 2 when this machine cannot honour it). */
export async function selectDeploymentRuntime(server: ServerSpec, where: string, facts?: RuntimeFacts): Promise<DriverKind> {
  return selectRuntime(server, facts ?? (await gatherRuntimeFacts()), where);
}

/** The driver for commands without a manifest: unit-aware wherever systemd is PID 1. */
export async function openHostRuntime(settings: Pick<Settings, 'podman'>): Promise<Runtime> {
  const facts = await gatherRuntimeFacts();
  if (!facts.systemdPid1 || !facts.podmanVersion) return openRuntime('podman', settings);
  return openRuntime(chooseUnitKind(facts.podmanVersion), settings);
}
