/**
 * Interrupted deploys. A deploy records its phase in the registry before each step (`deploy` in
 * the deployment's record), so when one is cut short (killed, an SSH session lost, a reboot) the
 * next apply, deploy, plan, rollback or `registry inspect` knows where. What to do about it is a
 * pure decision from the recorded phase and what is observed now (decideResume, table-tested);
 * the effects are the blue-green steps themselves (bluegreen.ts).
 */
import type { Slot } from '../manifest/names.js';
import type { DeployPhase, DeployProgress, EnvironmentRecord } from '../registry/types.js';

/** Phases in which a deploy has ended; any other recorded phase means it was cut short. */
const ENDED: ReadonlySet<DeployPhase> = new Set<DeployPhase>(['done', 'rolled-back', 'failed']);

/** Phases in which traffic had not been touched yet. */
const BEFORE_SWITCH: ReadonlySet<DeployPhase> = new Set<DeployPhase>(['started', 'gating', 'healthy']);

/** The deploy of this deployment that was cut short, if any. */
export function interruptedDeploy(rec: Pick<EnvironmentRecord, 'deploy'>): DeployProgress | null {
  return rec.deploy && !ENDED.has(rec.deploy.phase) ? rec.deploy : null;
}

/** What is observed now, for the deployment's routed services. */
export interface InterruptionFacts {
  /** Where the forwarder's entries point: one slot, 'mixed' (some each), or null (no entry). */
  entries: Slot | 'mixed' | null;
  /** Every service of the interrupted deploy runs in its slot. */
  newRunning: boolean;
}

export type ResumeAction =
  /** Traffic never reached the new slot: remove what was started there; `live` keeps serving. */
  | { kind: 'discard'; live: Slot | null; reason: string }
  /** Traffic is (or was being) moved to the new slot: complete the switch if it is partial, verify through Caddy, watch the rest of the window, roll back on failure. */
  | { kind: 'finish'; live: Slot; switchFirst: boolean; reason: string }
  /** Traffic goes back to the previous slot without checking the new version again. */
  | { kind: 'roll-back'; live: Slot; reason: string };

/** What to do with a deploy cut short in phase p, given what is observed now. Pure. */
export function decideResume(p: DeployProgress, f: InterruptionFacts): ResumeAction {
  const kept = p.from ? `${p.from} kept serving` : 'nothing was serving before';
  if (p.phase === 'rolling-back') return { kind: 'roll-back', live: p.slot, reason: 'it was rolling back' };
  if (f.entries === p.slot || (f.entries === 'mixed' && !(p.phase === 'started' || p.phase === 'gating'))) {
    // Traffic (some or all) is on the new slot, whatever the registry last said.
    if (!f.newRunning) return { kind: 'roll-back', live: p.slot, reason: `traffic is on ${p.slot} but the new version is no longer running there` };
    if (f.entries === 'mixed') return { kind: 'finish', live: p.slot, switchFirst: true, reason: `the switch to ${p.slot} was half done` };
    return { kind: 'finish', live: p.slot, switchFirst: false, reason: `traffic is on ${p.slot}, not yet verified` };
  }
  if (BEFORE_SWITCH.has(p.phase)) return { kind: 'discard', live: p.from, reason: `before the switch: ${kept}` };
  if (f.entries === null || f.entries === 'mixed') {
    // The forwarder lost its entries (or holds a mix): the record says the switch happened.
    if (!f.newRunning) return { kind: 'roll-back', live: p.slot, reason: `the new version is no longer running in ${p.slot}` };
    return { kind: 'finish', live: p.slot, switchFirst: true, reason: `the record says traffic moved to ${p.slot} but the forwarder ${f.entries === null ? 'has no entry' : 'points some entries elsewhere'}` };
  }
  // Recorded as switched, yet every entry points at the previous slot: it serves, the new one never verified.
  return { kind: 'discard', live: f.entries, reason: `traffic is back on ${f.entries}` };
}

/** "the deploy of v4 to green (started ... by ...) was cut short at switched" */
export function describeInterruption(p: DeployProgress): string {
  return `the deploy of ${p.version} to the ${p.slot} slot (started ${p.startedAt} by ${p.by}) was cut short at "${p.phase}"`;
}

/** What the next apply (or deploy) does about it, for plan and the apply's progress. */
export function describeResume(p: DeployProgress, a: ResumeAction, remainingWatchMs: number): string {
  const head = `${describeInterruption(p)}, ${a.reason}`;
  switch (a.kind) {
    case 'discard':
      return `${head}; apply removes the half-started ${p.slot} slot`;
    case 'finish':
      return `${head}; apply ${a.switchFirst ? `completes the switch, ` : ''}verifies it through Caddy, watches the remaining ${Math.round(remainingWatchMs / 1000)} s and rolls back${p.from ? ` to ${p.from}` : ''} if it fails`;
    case 'roll-back':
      return `${head}; apply rolls back${p.from ? ` to ${p.from}` : ' (no previous version to go back to)'}`;
  }
}

/** The watch window still owed after `watchedMs` of it passed before the interruption. */
export function remainingWatch(windowMs: number, p: Pick<DeployProgress, 'watchedMs'>): number {
  return Math.max(0, windowMs - (p.watchedMs ?? 0));
}

/** The phase a finished deploy ends in. */
export function endPhase(result: 'deployed' | 'rolled-back' | 'health-failed' | 'release-failed' | 'discarded'): DeployPhase {
  return result === 'deployed' ? 'done' : result === 'rolled-back' ? 'rolled-back' : 'failed';
}
