/**
 * `codeb rollback` (back to the retained slot in one switch) and `codeb gc` (retire slots past
 * their retention window). Both work from the registry record: no manifest needed.
 */
import { CodebError } from '../errors.js';
import { containerName, type Slot } from '../manifest/names.js';
import { actor, withRegistryLock } from '../registry/store.js';
import { requireDeployment } from '../registry/records.js';
import type { DeployProgress, EnvironmentRecord } from '../registry/types.js';
import { openHostRuntime } from '../runtime/open.js';
import { LABEL, type Runtime } from '../runtime/types.js';
import { loadSettings, registryPath, type Settings } from '../settings.js';
import { pushHistory } from '../reconcile/apply.js';
import { entryId, notRunningIn, otherSlot, releaseContainerName } from './bluegreen.js';
import { slotTargets } from '../registry/slot-ports.js';
import { ForwarderClient, switchTimes } from './forwarder-client.js';
import { observeInterruption } from './interrupted.js';
import { decideResume, describeInterruption, interruptedDeploy } from './resume.js';
import { statefulServices } from './stateful.js';

export interface RollbackResult {
  project: string;
  env: string;
  from: Slot;
  to: Slot;
  /** From the command's switch request until the forwarder had switched every entry. */
  switchMs: number;
  /** ... until the forwarder confirmed every entry (after saving its table). */
  switchAckMs: number;
  images: Record<string, string>;
  /** Set when the rollback ended a deploy that an earlier run left cut short. */
  interrupted?: { phase: string; version: string; slot: Slot; text: string; removed: number; trafficMoved: boolean };
}


/** Services whose slot containers serve traffic through an entry (a stateful one has no slots). */
function routedServices(rec: EnvironmentRecord): string[] {
  const stateful = statefulServices(rec);
  return Object.keys(rec.ports).filter((s) => !stateful.has(s));
}

/** Routed services with a container of the slot (any replica, as recorded) not running. */
function notRunning(rec: EnvironmentRecord, project: string, slot: Slot, runtime: Runtime): Promise<string[]> {
  return notRunningIn(runtime, rec, routedServices(rec), slot, { projectId: project, env: rec.env });
}

/** Every routed entry at a slot's containers (all replicas of it, as recorded), at once. */
function switchTo(rec: EnvironmentRecord, project: string, slot: Slot, forwarder: ForwarderClient) {
  return Promise.all(routedServices(rec).map((s) => forwarder.set(entryId(project, rec.env, s), rec.ports[s]!.entry, slotTargets(rec.ports[s]!, rec.containers, s, slot), rec.subnet ?? null)));
}

export async function rollback(opts: { project: string; env: string; registry?: string; settings?: Settings }): Promise<RollbackResult> {
  const settings = opts.settings ?? loadSettings();
  const file = registryPath(opts.registry);
  const runtime = await openHostRuntime(settings);
  const forwarder = new ForwarderClient(settings.forwarder.socketPath);
  try {
    return await withRegistryLock(file, { command: `codeb rollback ${opts.project} --env ${opts.env}` }, async (tx) => {
      const doc = tx.read();
      const rec = requireDeployment(doc, file, opts.project, opts.env);
      const cut = interruptedDeploy(rec);
      if (cut) {
        const r = await endInterrupted(opts.project, rec, cut, runtime, forwarder);
        await tx.write(doc);
        return r;
      }
      if (!rec.liveSlot) {
        // Deployed before, nothing live now (a recreate stopped the previous version and the new
        // one failed): no slot to switch to, so the CLI redeploys the last good version instead.
        if (rec.history.some((h) => h.action === 'deploy' && h.result === 'ok')) {
          throw new NoRetainedSlotError(`Nothing of ${opts.project} (${opts.env}) runs to switch back to.`, { hint: '`codeb rollback` then redeploys the earlier image from history.' });
        }
        throw new CodebError(`${opts.project} (${opts.env}) has never been deployed.`);
      }
      const back = otherSlot(rec.liveSlot);
      const missing = await notRunning(rec, opts.project, back, runtime);
      if (!rec.retained || rec.retained.slot !== back || missing.length) {
        throw new NoRetainedSlotError(`No previous version of ${opts.project} (${opts.env}) is running to switch back to${missing.length ? ` (${missing.join(', ')} not running in the ${back} slot)` : ''}.`, {
          hint: '`codeb rollback` then redeploys the earlier image from history; `codeb rollback --to <version>` picks one (`codeb history` lists them).',
        });
      }
      const t0 = process.hrtime.bigint();
      const acks = await switchTo(rec, opts.project, back, forwarder);
      const { switchMs, ackMs } = switchTimes(t0, acks);
      const from = rec.liveSlot;
      const currentImages = Object.fromEntries(rec.containers.filter((c) => c.slot === from).map((c) => [c.service, c.image]));
      const images = rec.retained.images;
      rec.liveSlot = back;
      // The version rolled back from is now the retained one, for a roll forward.
      rec.retained = { slot: from, until: rec.retained.until, images: currentImages };
      rec.health = { status: 'healthy', lastCheck: new Date().toISOString() };
      pushHistory(rec, { at: new Date().toISOString(), by: actor(), action: 'rollback', result: 'ok', detail: { from, to: back, switchMs: Math.round(switchMs * 10) / 10, switchAckMs: Math.round(ackMs * 10) / 10, images } });
      await tx.write(doc);
      return { project: opts.project, env: opts.env, from, to: back, switchMs, switchAckMs: ackMs, images };
    });
  } finally {
    await runtime.close();
  }
}

/**
 * `codeb rollback` while a deploy is cut short: traffic goes (or stays) on the slot that served
 * before it, the new version's containers are removed (it was never verified, so it is not kept
 * for a roll forward), and the deploy is recorded as ended. Changes `rec`; the caller writes it.
 */
async function endInterrupted(project: string, rec: EnvironmentRecord, p: DeployProgress, runtime: Runtime, forwarder: ForwarderClient): Promise<RollbackResult> {
  const env = rec.env;
  const action = decideResume(p, await observeInterruption(rec, project, p, runtime, forwarder));
  const trafficMoved = action.kind !== 'discard';
  const back = trafficMoved ? p.from : action.live;
  const text = describeInterruption(p);
  if (!back) {
    throw new CodebError(`${text[0]!.toUpperCase()}${text.slice(1)}, and nothing served before it: there is no previous version to roll back to.`, {
      hint: '`codeb apply` (or deploy) finishes the interrupted deploy; `codeb rollback --to <version>` deploys an earlier version.',
    });
  }
  const missing = await notRunning(rec, project, back, runtime);
  if (missing.length) {
    throw new NoRetainedSlotError(`${text[0]!.toUpperCase()}${text.slice(1)}, and the previous version is not running in the ${back} slot (${missing.join(', ')}).`, {
      hint: '`codeb rollback` then redeploys the earlier image from history, after finishing the interrupted deploy; `codeb rollback --to <version>` picks one.',
    });
  }
  // Every entry on the slot that served before (a no-op where it already points there).
  const t0 = process.hrtime.bigint();
  const acks = await switchTo(rec, project, back, forwarder);
  const { switchMs, ackMs } = switchTimes(t0, acks);
  // What the deploy started in its slot: by name, by record and by label (replicas it started but
  // had not recorded yet when it was cut short carry the slot's labels, not a name this record knows;
  // a scheduled job's one-off container under the slot's labels is not the deploy's).
  const labelled = await runtime.list({ [LABEL.project]: project, [LABEL.env]: env, [LABEL.slot]: p.slot });
  const names = new Set([
    ...Object.keys(p.images).map((s) => containerName(project, env, s, p.slot)),
    ...rec.containers.filter((c) => c.slot === p.slot && !c.stateful).map((c) => c.name),
    ...labelled.filter((c) => !c.labels['codeb.job']).map((c) => c.name),
  ]);
  const removed = (await Promise.all([...names].map((n) => runtime.inspect(n)))).filter((st) => st !== null).length;
  for (const n of names) await runtime.remove(n);
  for (const s of Object.keys(p.images)) await runtime.remove(releaseContainerName(containerName(project, env, s, p.slot)), 0);
  rec.containers = rec.containers.filter((c) => !names.has(c.name));
  if (rec.retained?.slot === p.slot || rec.retained?.slot === back) rec.retained = null;
  rec.liveSlot = back;
  const at = new Date().toISOString();
  rec.deploy = { ...p, phase: trafficMoved ? 'rolled-back' : 'failed', at };
  rec.health = { status: 'healthy', lastCheck: at };
  const images = Object.fromEntries(rec.containers.filter((c) => c.slot === back).map((c) => [c.service, c.image]));
  const interrupted = { phase: p.phase, version: p.version, slot: p.slot, text, removed, trafficMoved };
  pushHistory(rec, { at, by: actor(), action: 'rollback', result: 'ok', detail: { from: p.slot, to: back, switchMs: Math.round(switchMs * 10) / 10, switchAckMs: Math.round(ackMs * 10) / 10, images, interrupted: { phase: p.phase, version: p.version, removed } } });
  return { project, env, from: p.slot, to: back, switchMs, switchAckMs: ackMs, images, interrupted };
}

/** The previous slot is gone: a rollback has to redeploy an earlier image instead. */
export class NoRetainedSlotError extends CodebError {}

export interface RedeployChoice {
  version: string;
  images: Record<string, string>;
  at: string;
}

/**
 * Which earlier deploy to go back to: the one whose version (or an image tag) is `to`, or else the
 * newest successful deploy whose images differ from what runs now. Pure.
 */
export function chooseEarlierDeploy(rec: EnvironmentRecord, to?: string): RedeployChoice {
  const deploys = rec.history
    .filter((h) => h.action === 'deploy' && h.result === 'ok' && h.detail?.images)
    .map((h) => ({ version: String(h.detail!.version ?? ''), images: h.detail!.images as Record<string, string>, at: h.at }));
  // What runs now: the live slot's containers and the stateful ones (which have no slot to switch).
  const live = rec.containers.filter((c) => c.slot === rec.liveSlot || c.stateful).map((c) => [c.service, c.image] as const);
  const current = JSON.stringify(Object.fromEntries([...live].sort()));
  const pick = to
    ? [...deploys].reverse().find((x) => x.version === to || Object.values(x.images).some((i) => i === to || i.endsWith(`:${to}`)))
    : [...deploys].reverse().find((x) => JSON.stringify(Object.fromEntries(Object.entries(x.images).sort())) !== current);
  if (!pick) {
    const known = [...new Set(deploys.map((x) => x.version))].join(', ') || 'none';
    throw new CodebError(to ? `No successful deploy of version "${to}" in the history.` : 'No earlier successful deploy in the history to go back to.', {
      hint: `Versions deployed before: ${known}. \`codeb history\` lists them.`,
    });
  }
  return pick;
}

export interface GcResult {
  retired: Array<{ project: string; env: string; slot: Slot; containers: number; streamsClosed: number }>;
}

/** Retire every retained slot whose window has passed (or all of them with `now`). */
export async function gc(opts: { registry?: string; settings?: Settings; force?: boolean; runtime?: Runtime }): Promise<GcResult> {
  const settings = opts.settings ?? loadSettings();
  const file = registryPath(opts.registry);
  const runtime = opts.runtime ?? (await openHostRuntime(settings));
  const forwarder = new ForwarderClient(settings.forwarder.socketPath);
  try {
    return await withRegistryLock(file, { command: 'codeb gc' }, async (tx) => {
      const doc = tx.read();
      const retired: GcResult['retired'] = [];
      for (const p of Object.values(doc.projects)) {
        for (const rec of Object.values(p.environments)) {
          const r = rec.retained;
          if (!r || (!opts.force && Date.parse(r.until) > Date.now())) continue;
          // Stop the containers first: an app that handles SIGTERM ends its streams itself (a last
          // SSE chunk, a websocket close frame 1000) and that reaches the client through the
          // forwarder and Caddy. Then the forwarder closes whatever is still open to that slot.
          // A stateful service's container is no slot's (deploy/stateful.ts): it stays.
          const names = rec.containers.filter((c) => c.slot === r.slot && !c.stateful).map((c) => c.name);
          for (const n of names) await runtime.remove(n);
          let streamsClosed = 0;
          for (const s of routedServices(rec)) {
            for (const port of slotTargets(rec.ports[s]!, rec.containers, s, r.slot)) streamsClosed += await forwarder.retire(entryId(p.id, rec.env, s), port, 0).catch(() => 0);
          }
          rec.containers = rec.containers.filter((c) => c.slot !== r.slot || c.stateful);
          rec.retained = null;
          pushHistory(rec, { at: new Date().toISOString(), by: actor(), action: 'gc', result: 'ok', detail: { slot: r.slot, containers: names.length, streamsClosed } });
          retired.push({ project: p.id, env: rec.env, slot: r.slot, containers: names.length, streamsClosed });
        }
      }
      if (retired.length) await tx.write(doc);
      return { retired };
    });
  } finally {
    if (!opts.runtime) await runtime.close();
  }
}
