/**
 * One blue-green release of a deployment: start every service in the idle slot, gate on health,
 * switch the entry ports (no Caddy reload), verify through Caddy, watch for a while, and roll back
 * by itself when the new version fails after the switch. The previous slot keeps running for the
 * retention window so `codeb rollback` is one switch.
 */
import { CodebError, EXIT } from '../errors.js';
import { startWaves } from '../manifest/depends.js';
import { containerName, entryName, replicaNames, type Slot } from '../manifest/names.js';
import type { Deployment, ResolvedService } from '../manifest/types.js';
import type { ContainerRecord, DeployPhase, DeployProgress, EnvironmentRecord } from '../registry/types.js';
import { reportStep, type Reporter } from '../reconcile/reporter.js';
import { listeningPorts } from '../registry/ports-in-use.js';
import { slotPorts, slotTargets } from '../registry/slot-ports.js';
import { actor } from '../registry/store.js';
import { containerSpec } from '../runtime/spec.js';
import { LABEL, type ContainerSpec, type Runtime } from '../runtime/types.js';
import { switchTimes, type ForwarderClient } from './forwarder-client.js';
import { ANSWER_HEADER, answerToken, newNonce, VERIFY_HEADER } from './verify-answer.js';
import { probeHttp, proxyProbeService, realClock, runHealthGate, type Clock, type GateResult, type ProbeResult } from './health.js';
import { pauseAt } from './pause.js';
import { remainingWatch, type ResumeAction } from './resume.js';
import { isStateful, serviceSlot, STATEFUL_SLOT } from './stateful.js';

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
  /** strategy recreate: the previous version was stopped before the new one started. */
  previousStopped?: boolean;
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
    // A stateful service's one container keeps its own slot (deploy/stateful.ts).
    const at = serviceSlot(s, slot);
    const pair = s.port !== null ? rec.ports[s.name] : undefined;
    const ports = pair ? slotPorts(pair, at) : [];
    if (pair && ports.length < s.replicas) {
      throw new CodebError(`${d.projectId}/${d.env} service ${s.name} runs ${s.replicas} replicas, but the registry holds ${ports.length} ${slot} port${ports.length === 1 ? '' : 's'} for it.`, {
        hint: 'Apply the manifest (`codeb apply`): it allocates a port per replica and slot.',
      });
    }
    return Array.from({ length: s.replicas }, (_, i) => containerSpec(d, s, at, { port: s.port !== null ? (ports[i] ?? null) : null, envFile, serviceUrls: urls, version, replica: i }));
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
  return { service: spec.service, slot: spec.slot, name: spec.name, id, image: spec.image, hostPort: spec.port, state, startedAt: new Date().toISOString(), ...(spec.volumes.length ? { stateful: true } : {}) };
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
      .map((s) => ctx.forwarder.set(entryId(ctx.d.projectId, ctx.d.env, s.name), rec.ports[s.name]!.entry, targets[s.name] ?? slotTargets(rec.ports[s.name]!, rec.containers, s.name, serviceSlot(s, slot)), rec.subnet ?? null)),
  );
  return switchTimes(since, acks);
}

const switched = (v: { switchMs: number; ackMs: number }) => `switched in ${v.switchMs.toFixed(1)} ms${v.ackMs - v.switchMs >= 1 ? ` (confirmed after ${v.ackMs.toFixed(1)} ms)` : ''}`;

/** The containers removeSlot removes: every replica the manifest names, and every one the record holds (more, before a scale-down). */
function slotNames(ctx: Pick<DeployContext, 'd' | 'rec'>, slot: Slot, services?: ResolvedService[]): Set<string> {
  const { d, rec } = ctx;
  const names = new Set((services ?? d.services).filter((s) => !isStateful(s)).flatMap((s) => replicaNames(d.projectId, d.env, s.name, slot, Math.max(1, s.replicas))));
  const only = services ? new Set(services.map((s) => s.name)) : null;
  for (const c of rec.containers) if (c.slot === slot && !c.stateful && (!only || only.has(c.service))) names.add(c.name);
  return names;
}

/**
 * Remove a slot's containers: those of `services` (default: every service, plus any the record
 * holds in that slot for a service no longer in the manifest), each stopped with deploy.drain.
 * A stateful service's container is never part of a slot (deployStateful replaces it).
 */
async function removeSlot(ctx: DeployContext, slot: Slot, services?: ResolvedService[]): Promise<void> {
  const { d, rec } = ctx;
  const names = slotNames(ctx, slot, services);
  await Promise.all([...names].map((n) => ctx.runtime.remove(n, Math.ceil(d.deploy.drainMs / 1000))));
  rec.containers = rec.containers.filter((c) => !names.has(c.name));
}

/**
 * Verify through Caddy: the main domain's catch-all web service's health path, N in a row. A route
 * with auth is not probed (the deploy has no password; its slot passed the health gate directly).
 */
async function verifyThroughProxy(ctx: DeployContext, checks: number, slot: Slot): Promise<{ ok: boolean; results: ProbeResult[] }> {
  const web = proxyProbeService(ctx.d.services);
  if (!web || checks === 0) return { ok: true, results: [] };
  const clock = ctx.clock ?? realClock;
  const hc = web.healthCheck;
  // The answer must come through this deployment's entry from the new slot, not from whatever
  // else serves the domain (verify-answer.ts). A forwarder older than the check cannot say.
  const answers = (await ctx.forwarder.health().catch(() => null))?.answers === true;
  const nonce = newNonce();
  // Any replica of the new slot may answer (the forwarder spreads requests over them).
  const id = entryId(ctx.d.projectId, ctx.d.env, web.name);
  const tokens = slotTargets(ctx.rec.ports[web.name]!, ctx.rec.containers, web.name, serviceSlot(web, slot)).map((port) => answerToken(nonce, id, port));
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

type AfterSwitchBase = Pick<DeployOutcome, 'version' | 'fromSlot' | 'toSlot' | 'images' | 'health' | 'switchMs' | 'switchAckMs' | 'resumed' | 'previousStopped'>;

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
  const routed = d.services.filter((s) => s.port !== null && !isStateful(s)).map((s) => s.name);
  const canGoBack = fromSlot !== null && (await notRunningIn(runtime, rec, routed, fromSlot, d)).length === 0;
  if (canGoBack) await stepper(ctx.reporter)(`roll back traffic ${toSlot} -> ${fromSlot}`, () => switchEntries(ctx, fromSlot!), switched);
  // After a recreate the previous version no longer runs: nothing is live.
  rec.liveSlot = base.previousStopped ? null : fromSlot;
  await removeSlot(ctx, toSlot);
  await ctx.persist();
  return { ...base, result: 'rolled-back', verify: [], reason: failure + (canGoBack ? '' : ' (no previous version was running to go back to)'), logTail };
}

/**
 * A stateful service (deploy/stateful.ts): left running when its container already has this spec;
 * otherwise its running container is stopped and removed first, then the new one starts and is
 * gated, and its entry points at it. Returns its health, or null when it was left running.
 */
async function deployStateful(ctx: DeployContext, spec: ContainerSpec, s: ResolvedService): Promise<ServiceHealth | null> {
  const { d, rec, runtime } = ctx;
  const step = stepper(ctx.reporter);
  const current = await runtime.inspect(spec.name);
  if (current?.running && current.labels[LABEL.specHash] === spec.labels[LABEL.specHash]) {
    await step(`keep ${spec.name}`, async () => {}, () => 'stateful, unchanged: keeps running');
    return null;
  }
  // Whatever else runs of it (a container of its blue-green days in the other slot) goes too.
  const others = [spec.name, containerName(d.projectId, d.env, s.name, otherSlot(STATEFUL_SLOT))];
  await step(`stop ${spec.name} (stateful: never two at once)`, async () => {
    for (const n of others) await runtime.remove(n, Math.max(spec.stopTimeoutSeconds, Math.ceil(d.deploy.drainMs / 1000)));
  }, () => (current ? 'stopped and removed' : 'nothing was running'));
  rec.containers = rec.containers.filter((c) => !others.includes(c.name));
  await ctx.persist();
  const st = await step(`start ${spec.name}`, () => runtime.start(spec), (v) => `started ${v.id.slice(0, 12)}`);
  rec.containers.push(containerRecord(spec, st.id, 'starting'));
  const health = await step(`health gate (${s.name}, stateful)`, () => gateService(ctx, spec, s), (h) => (h.healthy ? `healthy in ${h.elapsedMs} ms` : 'UNHEALTHY'));
  if (!health.healthy) return health;
  for (const c of rec.containers) if (c.name === spec.name) c.state = 'running';
  const ports = rec.ports[s.name];
  if (s.port !== null && ports) await ctx.forwarder.set(entryId(d.projectId, d.env, s.name), ports.entry, ports[STATEFUL_SLOT], rec.subnet ?? null);
  await ctx.persist();
  return health;
}

export async function deployRelease(ctx: DeployContext, version: string): Promise<DeployOutcome> {
  const { d, rec, runtime } = ctx;
  const fromSlot = rec.liveSlot;
  const toSlot: Slot = fromSlot ? otherSlot(fromSlot) : 'blue';
  const all = specsFor(d, rec, toSlot, ctx.envFile, version, ctx.servicesAddress);
  const serviceOf = (spec: ContainerSpec) => d.services.find((s) => s.name === spec.service)!;
  const stateful = all.filter((spec) => isStateful(serviceOf(spec)));
  // The blue-green part: every other service, started in the idle slot.
  const specs = all.filter((spec) => !isStateful(serviceOf(spec)));
  const images = Object.fromEntries(all.map((s) => [s.service, s.image]));
  const base = { version, fromSlot, toSlot, images, switchMs: null, verify: [] as ProbeResult[] };
  const step = stepper(ctx.reporter);
  // A forwarder of an older codeb keeps only the first target of an entry: replicas would get no traffic.
  if (Object.values(targetsOf(specs)).some((t) => t.length > 1) && (await ctx.forwarder.health()).targets !== true) {
    throw new CodebError(`The codeb forwarder runs an older codeb that forwards each entry to one container only; ${d.projectId} (${d.env}) runs replicas. Nothing was started.`, {
      hint: 'Restart the forwarder with this codeb (`codeb stack up` for the local stack; on a server `codeb server init`), then deploy again.',
    });
  }

  const now = new Date().toISOString();
  // The progress names the slotted services only: a resume or rollback moves those, never a stateful one.
  const slotted = Object.fromEntries(specs.map((s) => [s.service, s.image]));
  rec.deploy = { phase: 'started', slot: toSlot, from: fromSlot, version, images: slotted, by: actor(), startedAt: now, at: now };
  await mark(ctx, 'started');

  await step(`images ${[...new Set(Object.values(images))].join(', ')}`, async () => {
    for (const img of new Set(Object.values(images))) await runtime.ensureImage(img);
  }, () => 'present');

  // Release commands (migrations) run once, from the new image, before anything new starts
  // (validation refuses them on stateful services: they would run beside the running writer).
  for (const s of d.services.filter((x) => x.release && !isStateful(x))) {
    const spec = specs.find((x) => x.service === s.name)!;
    const r = await step(`release command for ${s.name}`, () => runtime.runOnce({ ...spec, name: releaseContainerName(spec.name), command: s.release!.command, port: null }, s.release!.timeoutMs), (v) => `exit ${v.exitCode}`);
    if (r.exitCode !== 0) {
      return { ...base, result: 'release-failed', health: [], reason: `the release command of ${s.name} exited with code ${r.exitCode}; nothing was started`, logTail: r.output.slice(-2000) };
    }
  }

  // Stateful services first (the others usually depend on them): stop-then-start, or left running;
  // one switched off (replicas: 0) is stopped (its volumes stay).
  for (const s of d.services.filter((x) => isStateful(x) && x.replicas === 0)) {
    const name = containerName(d.projectId, d.env, s.name, STATEFUL_SLOT);
    if (!(await runtime.inspect(name))) continue;
    await step(`stop ${name} (replicas: 0)`, () => runtime.remove(name, Math.ceil(d.deploy.drainMs / 1000)), () => 'stopped and removed; its volumes are kept');
    rec.containers = rec.containers.filter((c) => c.name !== name);
  }
  const statefulHealth: ServiceHealth[] = [];
  for (const spec of stateful) {
    const h = await deployStateful(ctx, spec, serviceOf(spec));
    if (!h) continue;
    statefulHealth.push(h);
    if (!h.healthy) {
      const logTail = await runtime.logsTail(spec.name, 30).catch(() => '');
      await runtime.remove(spec.name, 0);
      rec.containers = rec.containers.filter((c) => c.name !== spec.name);
      await ctx.persist();
      return { ...base, result: 'health-failed', health: statefulHealth, reason: `${h.service}: ${h.reason} (stateful: its previous container had been stopped; its volumes keep the data, and a deploy of a working version starts it again)`, logTail };
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
  // recreate: the previous version stops before the new one starts (never two versions at once;
  // nothing serves until the new one is healthy and switched in).
  const previousStopped = d.deploy.strategy === 'recreate' && fromSlot !== null;
  if (previousStopped) {
    await step(`stop the previous version in the ${fromSlot} slot (strategy recreate)`, () => removeSlot(ctx, fromSlot!), () => 'stopped');
    rec.liveSlot = null;
    if (rec.retained?.slot === fromSlot) rec.retained = null;
    await ctx.persist();
  }

  // dependsOn: services start in waves; a wave starts once every container of the waves before it
  // passed its health gate. Without dependsOn this is one wave: all start, then all are gated.
  // Every replica of a service is in its service's wave.
  const waves = startWaves(d.services.filter((s) => specs.some((spec) => spec.service === s.name)));
  // Stateful services were started (and gated) above: their health leads the list.
  const health: ServiceHealth[] = [...statefulHealth];
  for (const [i, wave] of waves.entries()) {
    const waveSpecs = specs.filter((spec) => wave.includes(spec.service));
    for (const spec of waveSpecs) {
      const st = await step(`start ${spec.name}`, () => runtime.start(spec), (v) => `started ${v.id.slice(0, 12)}`);
      rec.containers.push(containerRecord(spec, st.id, 'starting'));
    }
    if (i === 0) await mark(ctx, 'gating');
    else await ctx.persist();
    const label = waves.length === 1 ? '' : ` of wave ${i + 1}/${waves.length}: ${wave.join(', ')}`;
    health.push(
      ...(await step(`health gate (${waveSpecs.length} container${waveSpecs.length === 1 ? '' : 's'}${label})`, () =>
        Promise.all(waveSpecs.map((spec) => gateService(ctx, spec, d.services.find((s) => s.name === spec.service)!))),
        (hs) => (hs.every((h) => h.healthy) ? `healthy in ${Math.max(...hs.map((h) => h.elapsedMs))} ms` : 'UNHEALTHY'),
      )),
    );
    if (health.some((h) => !h.healthy)) {
      // The services of later waves are not started: each depends, directly or not, on this one.
      for (const later of waves.slice(i + 1).flat()) health.push(notStarted(later, d, health));
      break;
    }
  }
  const sick = health.filter((h) => !h.healthy);
  if (sick.length) {
    const first = sick[0]!;
    const logTail = await runtime.logsTail(first.container ?? containerName(d.projectId, d.env, first.service, toSlot), 30).catch(() => '');
    await removeSlot(ctx, toSlot);
    await ctx.persist();
    const stopped = previousStopped ? ' (strategy recreate: the previous version was stopped first, so nothing serves now)' : '';
    return { ...base, result: 'health-failed', health, reason: sick.map((h) => `${h.service}: ${h.reason}`).join('; ') + stopped, logTail, previousStopped };
  }
  // switchMs runs from "every new container healthy" to "every entry switched".
  const healthyAt = process.hrtime.bigint();
  for (const c of rec.containers) if (c.slot === toSlot) c.state = 'running';
  await mark(ctx, 'healthy');

  const sw = await step(`switch traffic ${fromSlot ?? '(none)'} -> ${toSlot}`, () => switchEntries(ctx, toSlot, healthyAt, targetsOf(specs)), switched);
  rec.liveSlot = toSlot;
  await mark(ctx, 'switched');
  return afterSwitch(ctx, specs, { ...base, health, switchMs: sw.switchMs, switchAckMs: sw.ackMs, previousStopped }, d.deploy.watchAfterSwitchMs);
}

/**
 * What plan and apply say about how a deploy will go, when one is planned (pure): the start
 * order dependsOn gives, and what recreate does to the running version.
 */
export function deployNotes(d: Pick<Deployment, 'services' | 'deploy'>, liveSlot: Slot | null): string[] {
  const notes: string[] = [];
  const waves = startWaves(d.services.filter((s) => s.replicas > 0));
  if (waves.length > 1) notes.push(`dependsOn: services start in ${waves.length} waves, each once the one before passed its health gate: ${waves.map((w) => w.join(' + ')).join(' -> ')}`);
  if (d.deploy.strategy === 'recreate' && liveSlot) notes.push(`strategy recreate: the running version (${liveSlot} slot) stops before the new one starts; nothing serves until the new one is healthy`);
  return notes;
}

/** A service a failed dependency kept from starting: unhealthy, with the dependencies that failed. */
function notStarted(service: string, d: Deployment, health: ServiceHealth[]): ServiceHealth {
  const failed = new Set(health.filter((h) => !h.healthy).map((h) => h.service));
  const deps = new Set<string>();
  const walk = (n: string) => {
    for (const dep of d.services.find((s) => s.name === n)?.dependsOn ?? []) {
      if (deps.has(dep)) continue;
      deps.add(dep);
      walk(dep);
    }
  };
  walk(service);
  const blame = [...deps].filter((x) => failed.has(x));
  return { service, healthy: false, elapsedMs: 0, firstOkMs: null, reason: `not started: it depends on ${blame.join(', ') || 'a service'}, which failed its health gate`, checks: [] };
}

/**
 * The containers of `services` in a slot as the record holds them (every replica that was
 * started there); a service with none recorded: its first replica's name.
 */
function routedNames(rec: Pick<EnvironmentRecord, 'containers'>, services: string[], slot: Slot, d: Pick<Deployment, 'projectId' | 'env'>): string[] {
  return services.flatMap((s) => {
    const recorded = rec.containers.filter((c) => c.service === s && c.slot === slot).map((c) => c.name);
    return recorded.length ? recorded : [containerName(d.projectId, d.env, s, slot)];
  });
}

/** Those of `services` with a container in the slot (any recorded replica, routedNames) that is not running. */
export async function notRunningIn(runtime: Runtime, rec: Pick<EnvironmentRecord, 'containers'>, services: string[], slot: Slot, d: Pick<Deployment, 'projectId' | 'env'>): Promise<string[]> {
  const running = await Promise.all(services.map(async (s) => (await Promise.all(routedNames(rec, [s], slot, d).map((n) => runtime.inspect(n)))).every((st) => st?.running)));
  return services.filter((_, i) => !running[i]);
}

/** The one-off container a service's release command runs in. */
export const releaseContainerName = (name: string) => `${name}-release`;

/**
 * A deploy cut short before its switch: remove what it started in its slot (and a release
 * container it may have left); the previous slot kept serving. Returns the containers removed.
 */
export async function discardRelease(ctx: DeployContext, p: DeployProgress, live: Slot | null): Promise<number> {
  const { d, rec, runtime } = ctx;
  const present = (await Promise.all([...slotNames(ctx, p.slot)].map((n) => runtime.inspect(n)))).filter((st) => st !== null).length;
  await removeSlot(ctx, p.slot);
  await Promise.all(d.services.filter((s) => s.release && !isStateful(s)).map((s) => runtime.remove(releaseContainerName(containerName(d.projectId, d.env, s.name, p.slot)), 0)));
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
      : `Deploy of ${project} (${env}) stopped before the switch; ${o.previousStopped ? 'the previous version had been stopped' : 'traffic was not moved'}: ${o.reason}`;
  return new CodebError(`${what}${details ? `\n${details}` : ''}`, {
    exitCode: o.result === 'rolled-back' ? EXIT.rolledBack : EXIT.healthGate,
    hint:
      o.result === 'rolled-back'
        ? 'The previous version serves again. Fix the new version and deploy again.'
        : o.previousStopped
          ? 'Nothing serves (strategy recreate stopped the previous version first). Fix the new version (see the log above) and deploy again, or `codeb rollback` to redeploy the previous one.'
          : 'The previous version keeps serving. Fix the new version (see the log above) and deploy again.',
  });
}
