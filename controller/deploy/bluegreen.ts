/**
 * One blue-green release of a deployment: start every service in the idle slot, gate on health,
 * switch the entry ports (no Caddy reload), verify through Caddy, watch for a while, and roll back
 * by itself when the new version fails after the switch. The previous slot keeps running for the
 * retention window so `codeb rollback` is one switch.
 */
import { CodebError, EXIT } from '../errors.js';
import { containerName, entryName, replicaNames, type Slot } from '../manifest/names.js';
import type { Deployment, ResolvedService } from '../manifest/types.js';
import type { ContainerRecord, DeployPhase, DeployProgress, EnvironmentRecord } from '../registry/types.js';
import { reportStep, type Reporter } from '../reconcile/reporter.js';
import { listeningPorts } from '../registry/ports-in-use.js';
import { slotPorts, slotTargets } from '../registry/slot-ports.js';
import { actor } from '../registry/store.js';
import { containerSpec } from '../runtime/spec.js';
import type { ContainerSpec, Runtime } from '../runtime/types.js';
import { switchTimes, type ForwarderClient } from './forwarder-client.js';
import { ANSWER_HEADER, answerToken, newNonce, VERIFY_HEADER } from './verify-answer.js';
import { probeHttp, realClock, runHealthGate, type Clock, type GateResult, type ProbeResult } from './health.js';
import { pauseAt } from './pause.js';
import { remainingWatch, type ResumeAction } from './resume.js';

export const otherSlot = (s: Slot): Slot => (s === 'blue' ? 'green' : 'blue');

export interface DeployContext {
  d: Deployment;
  rec: EnvironmentRecord;
  runtime: Runtime;
  forwarder: ForwarderClient;
  envFile: string | null;
  /** Where the project's containers reach the shared services and its service entries (settings.network). */
  servicesAddress: string;
  /** Caddy's plain-HTTP port on 127.0.0.1, for verifying through the proxy after the switch. */
  caddyHttpPort: number;
  reporter: Reporter;
  /** Write the registry draft (called after each milestone so a crash leaves a true record). */
  persist: () => Promise<void>;
  clock?: Clock;
}

export interface ServiceHealth {
  service: string;
  /** The container checked (one per replica). */
  container?: string;
  healthy: boolean;
  elapsedMs: number;
  firstOkMs: number | null;
  reason: string;
  checks: ProbeResult[];
}

export interface DeployOutcome {
  result: 'deployed' | 'health-failed' | 'release-failed' | 'rolled-back';
  version: string;
  fromSlot: Slot | null;
  toSlot: Slot;
  images: Record<string, string>;
  health: ServiceHealth[];
  /** From "every new container healthy" to "every entry switched" (in the forwarder). */
  switchMs: number | null;
  /** From "every new container healthy" until the forwarder confirmed every entry (table saved). */
  switchAckMs?: number;
  verify: ProbeResult[];
  reason: string;
  logTail?: string;
  /** Set when this run finished a deploy an earlier run had left cut short in that phase. */
  resumed?: { phase: DeployPhase; startedAt: string; by: string };
}

/** Forwarder entry id of a service: one per project, environment and service. */
export function entryId(projectId: string, env: string, service: string): string {
  return entryName(projectId, env, service);
}

/**
 * URLs of the project's web and internal services, injected so services find each other: each
 * service's forwarder entry on the services address, which answers this project's containers only.
 */
export function serviceUrls(d: Deployment, rec: Pick<EnvironmentRecord, 'ports'>, servicesAddress: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const s of d.services) {
    const p = rec.ports[s.name];
    if (p && s.port !== null) out[`${s.name.toUpperCase().replaceAll('-', '_')}_URL`] = `http://${servicesAddress}:${p.entry}`;
  }
  return out;
}

/** Every container of a slot: `replicas` per service (none for 0), each replica on its own slot port. */
export function specsFor(d: Deployment, rec: Pick<EnvironmentRecord, 'ports'>, slot: Slot, envFile: string | null, version: string, servicesAddress: string): ContainerSpec[] {
  const urls = serviceUrls(d, rec, servicesAddress);
  return d.services.flatMap((s) => {
    const pair = s.port !== null ? rec.ports[s.name] : undefined;
    const ports = pair ? slotPorts(pair, slot) : [];
    if (pair && ports.length < s.replicas) {
      throw new CodebError(`${d.projectId}/${d.env} service ${s.name} runs ${s.replicas} replicas, but the registry holds ${ports.length} ${slot} port${ports.length === 1 ? '' : 's'} for it.`, {
        hint: 'Apply the manifest (`codeb apply`): it allocates a port per replica and slot.',
      });
    }
    return Array.from({ length: s.replicas }, (_, i) => containerSpec(d, s, slot, { port: s.port !== null ? (ports[i] ?? null) : null, envFile, serviceUrls: urls, version, replica: i }));
  });
}

/** Slot ports of each routed service's containers among `specs`: where its entry sends requests. */
function targetsOf(specs: ContainerSpec[]): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const spec of specs) if (spec.port !== null) (out[spec.service] ??= []).push(spec.port);
  return out;
}

function gateOptions(d: Deployment, s: ResolvedService) {
  return { successes: s.healthCheck.successes, intervalMs: s.healthCheck.intervalMs, startPeriodMs: s.healthCheck.startPeriodMs, deadlineMs: d.deploy.deadlineMs };
}

/** Health of one new container: HTTP from the host, a command inside it, or staying up. */
export async function gateService(ctx: DeployContext, spec: ContainerSpec, s: ResolvedService): Promise<ServiceHealth> {
  const { runtime } = ctx;
  const clock = ctx.clock ?? realClock;
  const hc = s.healthCheck;
  const initial = await runtime.inspect(spec.name);
  const restarts0 = initial?.restartCount ?? 0;
  const abort = async () => {
    const st = await runtime.inspect(spec.name);
    if (!st) return 'the container disappeared';
    if (!st.running && spec.restart === 'no') return `the container exited with code ${st.exitCode ?? '?'}`;
    if (st.restartCount > restarts0 + 2) return `the container keeps restarting (${st.restartCount} restarts)`;
    return null;
  };
  let probe: () => Promise<ProbeResult>;
  if (hc.kind === 'http' && spec.port !== null) {
    probe = () => probeHttp({ port: spec.port!, path: hc.path, expectStatus: hc.expectStatus, timeoutMs: hc.timeoutMs });
  } else if (hc.kind === 'command') {
    probe = async () => {
      const t0 = performance.now();
      const at = new Date().toISOString();
      try {
        const r = await runtime.exec(spec.name, hc.command, hc.timeoutMs);
        return { ok: r.exitCode === 0, at, ms: Math.round(performance.now() - t0), detail: `exit ${r.exitCode}${r.output ? `: ${r.output.trim().slice(-160)}` : ''}` };
      } catch (err) {
        return { ok: false, at, ms: Math.round(performance.now() - t0), detail: (err as Error).message };
      }
    };
  } else {
    // No check: healthy once it has stayed up, without restarting, for its start period.
    const started = clock.now();
    probe = async () => {
      const st = await runtime.inspect(spec.name);
      const up = Boolean(st?.running) && (st?.restartCount ?? 0) === restarts0;
      const long = clock.now() - started >= hc.startPeriodMs;
      const detail = up ? (long ? 'up' : 'up, within start period') : st?.running ? `restarted ${st.restartCount - restarts0} time(s) since it started` : `not running (${st?.status ?? 'gone'})`;
      return { ok: up && long, at: new Date().toISOString(), ms: 0, detail };
    };
  }
  const first = probe;
  let probes = 0;
  probe = async () => {
    const r = await first();
    if (probes++ === 0) await pauseAt('gate-check');
    return r;
  };
  const opts = hc.kind === 'uptime' ? { ...gateOptions(ctx.d, s), successes: 1, startPeriodMs: 0, deadlineMs: ctx.d.deploy.deadlineMs + hc.startPeriodMs } : gateOptions(ctx.d, s);
  const g: GateResult = await runHealthGate(probe, opts, clock, abort);
  return { service: s.name, container: spec.name, healthy: g.healthy, elapsedMs: Math.round(g.elapsedMs), firstOkMs: g.firstOkMs === null ? null : Math.round(g.firstOkMs), reason: g.reason, checks: g.checks };
}

function containerRecord(spec: ContainerSpec, id: string | null, state: string): ContainerRecord {
  return { service: spec.service, slot: spec.slot, name: spec.name, id, image: spec.image, hostPort: spec.port, state, startedAt: new Date().toISOString() };
}

/**
 * Point every routed or internal service's entry at a slot: at all its replicas at once (one
 * in-memory change per entry). `targets` names the slot ports per service; a service left out
 * goes to the slot's containers as recorded. switchMs: from `since` until the forwarder had
 * switched the last entry; ackMs: until the last answer (after it saved its table).
 */
async function switchEntries(ctx: DeployContext, slot: Slot, since = process.hrtime.bigint(), targets: Record<string, number[]> = {}): Promise<{ switchMs: number; ackMs: number }> {
  const { rec } = ctx;
  const acks = await Promise.all(
    ctx.d.services
      .filter((s) => s.port !== null && rec.ports[s.name])
      .map((s) => ctx.forwarder.set(entryId(ctx.d.projectId, ctx.d.env, s.name), rec.ports[s.name]!.entry, targets[s.name] ?? slotTargets(rec.ports[s.name]!, rec.containers, s.name, slot), rec.subnet ?? null)),
  );
  return switchTimes(since, acks);
}

const switched = (v: { switchMs: number; ackMs: number }) => `switched in ${v.switchMs.toFixed(1)} ms${v.ackMs - v.switchMs >= 1 ? ` (confirmed after ${v.ackMs.toFixed(1)} ms)` : ''}`;

/**
 * Remove a slot's containers: those of `services` (default: every service, plus any the record
 * holds in that slot for a service no longer in the manifest), each stopped with deploy.drain.
 */
async function removeSlot(ctx: DeployContext, slot: Slot, services?: ResolvedService[]): Promise<void> {
  const { d, rec } = ctx;
  // Every replica the manifest names, and every one the record holds (more, before a scale-down).
  const names = new Set((services ?? d.services).flatMap((s) => replicaNames(d.projectId, d.env, s.name, slot, Math.max(1, s.replicas))));
  const only = services ? new Set(services.map((s) => s.name)) : null;
  for (const c of rec.containers) if (c.slot === slot && (!only || only.has(c.service))) names.add(c.name);
  await Promise.all([...names].map((n) => ctx.runtime.remove(n, Math.ceil(d.deploy.drainMs / 1000))));
  rec.containers = rec.containers.filter((c) => !names.has(c.name));
}

/**
 * Verify through Caddy: the main domain's catch-all web service's health path, N in a row. A route
 * with auth is not probed (the deploy has no password; its slot passed the health gate directly).
 */
async function verifyThroughProxy(ctx: DeployContext, checks: number, slot: Slot): Promise<{ ok: boolean; results: ProbeResult[] }> {
  const web = ctx.d.services.find((s) => s.type === 'web' && s.routePath === null && s.domains.length === 0 && !s.auth && s.healthCheck.kind === 'http');
  if (!web || checks === 0) return { ok: true, results: [] };
  const clock = ctx.clock ?? realClock;
  const hc = web.healthCheck;
  // The answer must come through this deployment's entry from the new slot, not from whatever
  // else serves the domain (verify-answer.ts). A forwarder older than the check cannot say.
  const answers = (await ctx.forwarder.health().catch(() => null))?.answers === true;
  const nonce = newNonce();
  // Any replica of the new slot may answer (the forwarder spreads requests over them).
  const id = entryId(ctx.d.projectId, ctx.d.env, web.name);
  const tokens = slotTargets(ctx.rec.ports[web.name]!, ctx.rec.containers, web.name, slot).map((port) => answerToken(nonce, id, port));
  const expect = answers ? { headers: { [VERIFY_HEADER]: nonce }, expectHeader: { name: ANSWER_HEADER, value: tokens, what: `the new ${slot} slot of ${web.name}` } } : {};
  const probe = () => probeHttp({ port: ctx.caddyHttpPort, path: hc.path, expectStatus: hc.expectStatus, timeoutMs: Math.max(hc.timeoutMs, 1000), hostHeader: ctx.d.domain, ...expect });
  const results: ProbeResult[] = [];
  for (let i = 0; i < checks; i++) {
    let r = await probe();
    // A connection reset with no HTTP answer is Caddy reloading (another project's route change),
    // not the new version failing: try again a couple of times before judging.
    for (let retry = 0; !r.ok && r.status === undefined && retry < 2; retry++) {
      results.push(r);
      await clock.sleep(250);
      r = await probe();
    }
    results.push(r);
    if (!r.ok) return { ok: false, results };
    if (i === 0) await pauseAt('verify-check');
    await clock.sleep(Math.min(hc.intervalMs, 500));
  }
  return { ok: true, results };
}

/**
 * After the switch: keep probing the new slot directly until `windowMs` has passed. Each round
 * that passes is recorded (watchedMs), so a run cut short here leaves the rest of the window owed.
 */
async function watchAfterSwitch(ctx: DeployContext, specs: ContainerSpec[], windowMs: number): Promise<string | null> {
  const clock = ctx.clock ?? realClock;
  const t0 = clock.now();
  const end = t0 + windowMs;
  const before = ctx.rec.deploy?.watchedMs ?? 0;
  for (let round = 0; clock.now() < end; round++) {
    for (const spec of specs) {
      const s = ctx.d.services.find((x) => x.name === spec.service)!;
      if (s.healthCheck.kind === 'http' && spec.port !== null) {
        const r = await probeHttp({ port: spec.port, path: s.healthCheck.path, expectStatus: s.healthCheck.expectStatus, timeoutMs: s.healthCheck.timeoutMs });
        if (!r.ok) return `${s.name} failed its health check after the switch: ${r.detail}`;
      } else {
        const st = await ctx.runtime.inspect(spec.name);
        if (!st?.running) return `${s.name} stopped after the switch (${st?.status ?? 'gone'})`;
      }
    }
    if (ctx.rec.deploy) {
      ctx.rec.deploy.watchedMs = Math.round(before + Math.min(clock.now() - t0, windowMs));
      await ctx.persist();
    }
    if (round === 0) await pauseAt('watch-check');
    await clock.sleep(Math.min(1000, Math.max(100, end - clock.now())));
  }
  return null;
}

/** Record the deploy's phase before the step it names (a crash from here on leaves that phase). */
async function mark(ctx: DeployContext, phase: DeployPhase): Promise<void> {
  if (ctx.rec.deploy) {
    ctx.rec.deploy.phase = phase;
    ctx.rec.deploy.at = new Date().toISOString();
  }
  await ctx.persist();
  await pauseAt(phase);
}

type Step = <T>(label: string, fn: () => Promise<T>, describe?: (v: T) => string) => Promise<T>;
const stepper = (reporter: Reporter): Step => (label, fn, describe) => reportStep(reporter, label, fn, describe);

/** The new slot's containers to check after the switch: the services the deploy started. */
function slotSpecs(ctx: DeployContext, slot: Slot, version: string, services?: string[]): ContainerSpec[] {
  const specs = specsFor(ctx.d, ctx.rec, slot, ctx.envFile, version, ctx.servicesAddress);
  return services ? specs.filter((s) => services.includes(s.service)) : specs;
}

type AfterSwitchBase = Pick<DeployOutcome, 'version' | 'fromSlot' | 'toSlot' | 'images' | 'health' | 'switchMs' | 'switchAckMs' | 'resumed'>;

/**
 * Verify through Caddy, watch for `watchMs`, then either confirm (old workers stop) or roll back.
 * Shared by a deploy and by the run that finishes one cut short after its switch.
 */
async function afterSwitch(ctx: DeployContext, specs: ContainerSpec[], base: AfterSwitchBase, watchMs: number): Promise<DeployOutcome> {
  const { d } = ctx;
  const step = stepper(ctx.reporter);
  await mark(ctx, 'verifying');
  const verify = await step(`verify through Caddy (${d.deploy.verifyAfterSwitch} checks)`, () => verifyThroughProxy(ctx, d.deploy.verifyAfterSwitch, base.toSlot), (v) => (v.ok ? 'ok' : 'FAILED'));
  let failure: string | null = null;
  if (!verify.ok) {
    failure = `verification through Caddy failed: ${verify.results[verify.results.length - 1]?.detail ?? 'no answer'}`;
  } else {
    await mark(ctx, 'watching');
    failure = await step(`watch the new version for ${Math.round(watchMs / 1000)} s`, () => watchAfterSwitch(ctx, specs, watchMs), (v) => (v ? 'FAILED' : 'ok'));
  }
  if (failure) return { ...(await rollBack(ctx, specs, base, failure)), verify: verify.results };
  // Old workers ran beside the new ones during the watch so a rollback needs no restart; now they
  // stop, so no queue is consumed and no schedule fired twice for longer than the watch window.
  if (base.fromSlot) {
    await removeSlot(ctx, base.fromSlot, d.services.filter((s) => s.type === 'worker'));
    await ctx.persist();
  }
  return { ...base, result: 'deployed', verify: verify.results, reason: 'healthy, switched and verified' };
}

/** Traffic back to the previous slot (when it still runs) and the new slot removed. */
async function rollBack(ctx: DeployContext, specs: ContainerSpec[], base: AfterSwitchBase, failure: string): Promise<DeployOutcome> {
  const { d, rec, runtime } = ctx;
  const { fromSlot, toSlot } = base;
  await mark(ctx, 'rolling-back');
  const logTail = specs[0] ? await runtime.logsTail(specs[0].name, 30).catch(() => '') : '';
  // The previous slot's containers as recorded (its replica count may differ from the manifest's now).
  const previous = fromSlot === null ? [] : routedNames(rec, d.services.filter((s) => s.port !== null).map((s) => s.name), fromSlot, d);
  const canGoBack = fromSlot !== null && (await Promise.all(previous.map((n) => runtime.inspect(n)))).every((st) => st?.running);
  if (canGoBack) await stepper(ctx.reporter)(`roll back traffic ${toSlot} -> ${fromSlot}`, () => switchEntries(ctx, fromSlot!), switched);
  rec.liveSlot = fromSlot;
  await removeSlot(ctx, toSlot);
  await ctx.persist();
  return { ...base, result: 'rolled-back', verify: [], reason: failure + (canGoBack ? '' : ' (no previous version was running to go back to)'), logTail };
}

export async function deployRelease(ctx: DeployContext, version: string): Promise<DeployOutcome> {
  const { d, rec, runtime } = ctx;
  const fromSlot = rec.liveSlot;
  const toSlot: Slot = fromSlot ? otherSlot(fromSlot) : 'blue';
  const specs = specsFor(d, rec, toSlot, ctx.envFile, version, ctx.servicesAddress);
  const images = Object.fromEntries(specs.map((s) => [s.service, s.image]));
  const base = { version, fromSlot, toSlot, images, switchMs: null, verify: [] as ProbeResult[] };
  const step = stepper(ctx.reporter);
  // A forwarder of an older codeb keeps only the first target of an entry: replicas would get no traffic.
  if (Object.values(targetsOf(specs)).some((t) => t.length > 1) && (await ctx.forwarder.health()).targets !== true) {
    throw new CodebError(`The codeb forwarder runs an older codeb that forwards each entry to one container only; ${d.projectId} (${d.env}) runs replicas. Nothing was started.`, {
      hint: 'Restart the forwarder with this codeb (`codeb stack up` for the local stack; on a server `codeb server init`), then deploy again.',
    });
  }

  const now = new Date().toISOString();
  rec.deploy = { phase: 'started', slot: toSlot, from: fromSlot, version, images, by: actor(), startedAt: now, at: now };
  await mark(ctx, 'started');

  await step(`images ${[...new Set(Object.values(images))].join(', ')}`, async () => {
    for (const img of new Set(Object.values(images))) await runtime.ensureImage(img);
  }, () => 'present');

  // Release commands (migrations) run once, from the new image, before anything new starts.
  for (const s of d.services.filter((x) => x.release)) {
    const spec = specs.find((x) => x.service === s.name)!;
    const r = await step(`release command for ${s.name}`, () => runtime.runOnce({ ...spec, name: releaseContainerName(spec.name), command: s.release!.command, port: null }, s.release!.timeoutMs), (v) => `exit ${v.exitCode}`);
    if (r.exitCode !== 0) {
      return { ...base, result: 'release-failed', health: [], reason: `the release command of ${s.name} exited with code ${r.exitCode}; nothing was started`, logTail: r.output.slice(-2000) };
    }
  }

  // A slot still retained from the deploy before last is replaced by this one.
  await removeSlot(ctx, toSlot);
  if (rec.retained?.slot === toSlot) rec.retained = null;
  // The slot port is published on the host's 127.0.0.1: one taken by some other process would
  // make the container fail to start (or the health probe reach that process): say so first.
  const listening = listeningPorts();
  const taken = specs.filter((s) => s.port !== null && listening.has(s.port));
  if (taken.length) {
    throw new CodebError(`Port${taken.length > 1 ? 's' : ''} ${taken.map((s) => `${s.port} (${s.service}, ${toSlot} slot)`).join(', ')} ${taken.length > 1 ? 'are' : 'is'} in use by another process on this machine.`, {
      hint: 'Stop that process, or give the service other hostPorts in the manifest (`codeb registry release` + apply re-allocates free ones).',
    });
  }
  for (const spec of specs) {
    const st = await step(`start ${spec.name}`, () => runtime.start(spec), (v) => `started ${v.id.slice(0, 12)}`);
    rec.containers.push(containerRecord(spec, st.id, 'starting'));
  }
  await mark(ctx, 'gating');

  const health = await step(`health gate (${specs.length} container${specs.length === 1 ? '' : 's'})`, () =>
    Promise.all(specs.map((spec) => gateService(ctx, spec, d.services.find((s) => s.name === spec.service)!))),
    (hs) => (hs.every((h) => h.healthy) ? `healthy in ${Math.max(...hs.map((h) => h.elapsedMs))} ms` : 'UNHEALTHY'),
  );
  const sick = health.filter((h) => !h.healthy);
  if (sick.length) {
    const first = sick[0]!;
    const logTail = await runtime.logsTail(first.container ?? containerName(d.projectId, d.env, first.service, toSlot), 30).catch(() => '');
    await removeSlot(ctx, toSlot);
    await ctx.persist();
    return { ...base, result: 'health-failed', health, reason: sick.map((h) => `${h.service}: ${h.reason}`).join('; '), logTail };
  }
  // switchMs runs from "every new container healthy" to "every entry switched".
  const healthyAt = process.hrtime.bigint();
  for (const c of rec.containers) if (c.slot === toSlot) c.state = 'running';
  await mark(ctx, 'healthy');

  const sw = await step(`switch traffic ${fromSlot ?? '(none)'} -> ${toSlot}`, () => switchEntries(ctx, toSlot, healthyAt, targetsOf(specs)), switched);
  rec.liveSlot = toSlot;
  await mark(ctx, 'switched');
  return afterSwitch(ctx, specs, { ...base, health, switchMs: sw.switchMs, switchAckMs: sw.ackMs }, d.deploy.watchAfterSwitchMs);
}

/**
 * The containers of `services` in a slot as the record holds them (every replica that was
 * started there); a service with none recorded: its first replica's name.
 */
export function routedNames(rec: Pick<EnvironmentRecord, 'containers'>, services: string[], slot: Slot, d: Pick<Deployment, 'projectId' | 'env'>): string[] {
  return services.flatMap((s) => {
    const recorded = rec.containers.filter((c) => c.service === s && c.slot === slot).map((c) => c.name);
    return recorded.length ? recorded : [containerName(d.projectId, d.env, s, slot)];
  });
}

/** The one-off container a service's release command runs in. */
export const releaseContainerName = (name: string) => `${name}-release`;

/**
 * A deploy cut short before its switch: remove what it started in its slot (and a release
 * container it may have left); the previous slot kept serving. Returns the containers removed.
 */
export async function discardRelease(ctx: DeployContext, p: DeployProgress, live: Slot | null): Promise<number> {
  const { d, rec, runtime } = ctx;
  const names = new Set([...d.services.flatMap((s) => replicaNames(d.projectId, d.env, s.name, p.slot, Math.max(1, s.replicas))), ...rec.containers.filter((c) => c.slot === p.slot).map((c) => c.name)]);
  const present = (await Promise.all([...names].map((n) => runtime.inspect(n)))).filter((st) => st !== null).length;
  await removeSlot(ctx, p.slot);
  await Promise.all(d.services.filter((s) => s.release).map((s) => runtime.remove(releaseContainerName(containerName(d.projectId, d.env, s.name, p.slot)), 0)));
  if (rec.retained?.slot === p.slot) rec.retained = null;
  rec.liveSlot = live;
  await ctx.persist();
  return present;
}

/**
 * A deploy cut short after (or during) its switch, finished by a later run: complete a partial
 * switch, verify through Caddy and watch what is left of the window, or roll back (when it was
 * rolling back, or the new version no longer runs). Its outcome is recorded like any deploy's.
 */
export async function resumeRelease(ctx: DeployContext, p: DeployProgress, action: Exclude<ResumeAction, { kind: 'discard' }>): Promise<DeployOutcome> {
  const resumed = { phase: p.phase, startedAt: p.startedAt, by: p.by };
  const specs = slotSpecs(ctx, p.slot, p.version, Object.keys(p.images));
  const base: AfterSwitchBase = { version: p.version, fromSlot: p.from, toSlot: p.slot, images: p.images, health: [], switchMs: null, resumed };
  if (action.kind === 'roll-back') return rollBack(ctx, specs, base, `resumed after it was cut short at "${resumed.phase}": ${action.reason}`);
  if (action.switchFirst) {
    const sw = await stepper(ctx.reporter)(`switch traffic ${p.from ?? '(none)'} -> ${p.slot} (completing it)`, () => switchEntries(ctx, p.slot, undefined, targetsOf(specs)), switched);
    base.switchMs = sw.switchMs;
    base.switchAckMs = sw.ackMs;
  }
  ctx.rec.liveSlot = p.slot;
  await mark(ctx, 'switched');
  return afterSwitch(ctx, specs, base, remainingWatch(ctx.d.deploy.watchAfterSwitchMs, p));
}

/** Exit code and error for a failed outcome. */
export function outcomeError(o: DeployOutcome, project: string, env: string): CodebError | null {
  if (o.result === 'deployed') return null;
  const last = o.health.flatMap((h) => h.checks.slice(-3).map((c) => `    ${h.service} ${c.at} ${c.detail} (${c.ms} ms)`));
  const details = [
    ...(last.length ? ['  last health checks:', ...last] : []),
    ...(o.logTail ? ['  container log (tail):', ...o.logTail.trimEnd().split('\n').slice(-15).map((l) => `    ${l}`)] : []),
  ].join('\n');
  const what =
    o.result === 'rolled-back'
      ? `Deploy of ${project} (${env}) was rolled back after the switch: ${o.reason}`
      : `Deploy of ${project} (${env}) stopped before the switch; traffic was not moved: ${o.reason}`;
  return new CodebError(`${what}${details ? `\n${details}` : ''}`, {
    exitCode: o.result === 'rolled-back' ? EXIT.rolledBack : EXIT.healthGate,
    hint: o.result === 'rolled-back' ? 'The previous version serves again. Fix the new version and deploy again.' : 'The previous version keeps serving. Fix the new version (see the log above) and deploy again.',
  });
}
