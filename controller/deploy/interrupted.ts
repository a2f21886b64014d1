/**
 * The effects around a deploy that was cut short: observe where traffic is and what runs, then
 * (in apply or deploy) finish it, or remove its half-started slot. The decision itself is pure
 * (resume.ts); the steps are the blue-green ones (bluegreen.ts).
 */
import type { Slot } from '../manifest/names.js';
import type { Deployment } from '../manifest/types.js';
import type { DeployProgress, EnvironmentRecord } from '../registry/types.js';
import type { Runtime } from '../runtime/types.js';
import { discardRelease, entryId, notRunningIn, resumeRelease, type DeployContext, type DeployOutcome } from './bluegreen.js';
import type { ForwarderClient } from './forwarder-client.js';
import { decideResume, describeResume, interruptedDeploy, remainingWatch, type InterruptionFacts, type ResumeAction } from './resume.js';

export interface PendingResume {
  progress: DeployProgress;
  action: ResumeAction;
  /** One sentence for plan, apply and deploy: what was cut short where, and what applying does. */
  text: string;
}

/** Where the forwarder sends the deploy's routed services, and whether its new slot still runs. */
export async function observeInterruption(rec: Pick<EnvironmentRecord, 'env' | 'ports' | 'containers'>, projectId: string, p: DeployProgress, runtime: Runtime, forwarder: ForwarderClient): Promise<InterruptionFacts> {
  const services = Object.keys(p.images);
  const table = await forwarder.list();
  const slots = new Set<Slot | 'other'>();
  for (const s of services) {
    const ports = rec.ports[s];
    const e = ports && table.find((x) => x.id === entryId(projectId, rec.env, s));
    if (!ports || !e) continue;
    // The first target is the first replica's port in either slot (replica ports are per slot).
    slots.add(e.target === ports.blue ? 'blue' : e.target === ports.green ? 'green' : 'other');
  }
  const entries = slots.size === 0 ? null : slots.size === 1 && !slots.has('other') ? ([...slots][0] as Slot) : 'mixed';
  // Every replica the deploy started (as recorded), or the first one's name when none is recorded.
  const newRunning = services.length > 0 && (await notRunningIn(runtime, rec, services, p.slot, { projectId, env: rec.env })).length === 0;
  return { entries, newRunning };
}

/** The deploy of this deployment that was cut short, what is observed and what applying does about it. */
export async function pendingResume(d: Deployment, rec: EnvironmentRecord, runtime: Runtime, forwarder: ForwarderClient): Promise<PendingResume | null> {
  const progress = interruptedDeploy(rec);
  if (!progress) return null;
  const action = decideResume(progress, await observeInterruption(rec, d.projectId, progress, runtime, forwarder));
  return { progress, action, text: describeResume(progress, action, remainingWatch(d.deploy.watchAfterSwitchMs, progress)) };
}

export interface ResumeResult {
  /** A deploy finished (verified, or rolled back) by this run: record it like any deploy. */
  outcome?: DeployOutcome;
  /** Cut short before the switch: the containers removed from its slot. */
  removed?: number;
}

/** Carry out what pendingResume decided. */
export async function runResume(ctx: DeployContext, pending: PendingResume): Promise<ResumeResult> {
  const { progress: p, action } = pending;
  if (action.kind !== 'discard') return { outcome: await resumeRelease(ctx, p, action) };
  const t0 = performance.now();
  const label = `remove the half-started ${p.slot} slot of ${p.version}`;
  ctx.reporter.start(label);
  const removed = await discardRelease(ctx, p, action.live);
  ctx.reporter.done(label, `${removed} container${removed === 1 ? '' : 's'} removed`, performance.now() - t0);
  return { removed };
}
