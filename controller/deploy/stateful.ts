/**
 * Stateful services: those with volumes (docs/deploy.md, "Stateful services"). A volume has one
 * writer, so such a service never takes part in blue-green: its one container keeps the blue
 * slot's name and port whatever slot the rest of the deployment lives in, a deploy leaves it
 * running when its own spec did not change, and otherwise stops it before starting the new one
 * (brief downtime, never two at once). Rollbacks and gc, which move or retire slots, leave it be.
 * Pure.
 */
import type { Slot } from '../manifest/names.js';
import type { ResolvedService } from '../manifest/types.js';
import type { Action } from '../reconcile/model.js';
import type { ContainerRecord } from '../registry/types.js';

/** The slot whose name and port a stateful service's one container always has. */
export const STATEFUL_SLOT: Slot = 'blue';

export function isStateful(s: Partial<Pick<ResolvedService, 'volumes'>>): boolean {
  return (s.volumes?.length ?? 0) > 0;
}

/** The slot a service's container of a deploy to `slot` runs in. */
export function serviceSlot(s: Partial<Pick<ResolvedService, 'volumes'>>, slot: Slot): Slot {
  return isStateful(s) ? STATEFUL_SLOT : slot;
}

/** Services the registry records as stateful (rollback and gc work without a manifest). */
export function statefulServices(rec: { containers: Array<Pick<ContainerRecord, 'service' | 'stateful'>> }): Set<string> {
  return new Set(rec.containers.filter((c) => c.stateful).map((c) => c.service));
}

/** The plan's words for what a deploy does with a stateful service. */
export const STATEFUL_STRATEGY = 'stateful: stops the running container before starting the new one (brief downtime; never two at once)';

/**
 * What the plan says about each stateful service when the release is (re)deployed: replaced with
 * stop-then-start when its own spec changes (or it does not run), left running otherwise.
 */
export function statefulNotes(services: Array<Pick<ResolvedService, 'name' | 'volumes'>>, release: Pick<Action, 'op' | 'changes'> | undefined): string[] {
  if (!release || (release.op !== 'create' && release.op !== 'update')) return [];
  const change = release.changes.find((c) => c.field === 'services');
  const from = (change?.from ?? {}) as Record<string, string>;
  const to = (change?.to ?? {}) as Record<string, string>;
  return services.filter(isStateful).map((s) =>
    release.op === 'create' || (change && from[s.name] !== to[s.name])
      ? `${s.name} is ${STATEFUL_STRATEGY}`
      : `${s.name} is stateful and unchanged: it keeps running through this deploy`,
  );
}
