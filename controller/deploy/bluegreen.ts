/**
 * One blue-green release of a deployment: start every service in the idle slot, gate on health,
 * switch the entry ports (no Caddy reload), verify through Caddy, watch for a while, and roll back
 * by itself when the new version fails after the switch. The previous slot keeps running for the
 * retention window so `codeb rollback` is one switch.
 */
import { CodebError, EXIT } from '../errors.js';
import { containerName, type Slot } from '../manifest/names.js';
import type { Deployment, ResolvedService } from '../manifest/types.js';
import type { ContainerRecord, EnvironmentRecord } from '../registry/types.js';
import { reportStep, type Reporter } from '../reconcile/reporter.js';
import { listeningPorts } from '../registry/ports-in-use.js';
import { containerSpec } from '../runtime/spec.js';
import type { ContainerSpec, Runtime } from '../runtime/types.js';
import { switchTimes, type ForwarderClient } from './forwarder-client.js';
import { probeHttp, realClock, runHealthGate, type Clock, type GateResult, type ProbeResult } from './health.js';

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
  healthy: boolean;
  elapsedMs: number;
  firstOkMs: number | null;
  reason: string;
  checks: ProbeResult[];
}

export interface DeployOutcome {
  result: 'deployed' | 'health-failed' | 'release-failed' | 'rolled-back';
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
}

/** Forwarder entry id of a service: one per project, environment and service. */
export function entryId(projectId: string, env: string, service: string): string {
  return `${projectId}-${env}-${service}`;
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

export function specsFor(d: Deployment, rec: Pick<EnvironmentRecord, 'ports'>, slot: Slot, envFile: string | null, version: string, servicesAddress: string): ContainerSpec[] {
  const urls = serviceUrls(d, rec, servicesAddress);
  return d.services
    .filter((s) => s.replicas > 0)
    .map((s) => containerSpec(d, s, slot, { port: s.port !== null ? rec.ports[s.name]![slot] : null, envFile, serviceUrls: urls, version }));
}

function gateOptions(d: Deployment, s: ResolvedService) {
  return { successes: s.healthCheck.successes, intervalMs: s.healthCheck.intervalMs, startPeriodMs: s.healthCheck.startPeriodMs, deadlineMs: d.deploy.deadlineMs };
}

/** Health of one new container: HTTP from the host, a command inside it, or staying up. */
export async function gateService(ctx: DeployContext, spec: ContainerSpec, s: ResolvedService): Promise<ServiceHealth> {
  const { runtime } = ctx;
  const clock = ctx.clock ?? realClock;
  const hc = s.healthCheck;
  const first = await runtime.inspect(spec.name);
  const restarts0 = first?.restartCount ?? 0;
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
  const opts = hc.kind === 'uptime' ? { ...gateOptions(ctx.d, s), successes: 1, startPeriodMs: 0, deadlineMs: ctx.d.deploy.deadlineMs + hc.startPeriodMs } : gateOptions(ctx.d, s);
  const g: GateResult = await runHealthGate(probe, opts, clock, abort);
  return { service: s.name, healthy: g.healthy, elapsedMs: Math.round(g.elapsedMs), firstOkMs: g.firstOkMs === null ? null : Math.round(g.firstOkMs), reason: g.reason, checks: g.checks };
}

function containerRecord(spec: ContainerSpec, id: string | null, state: string): ContainerRecord {
  return { service: spec.service, slot: spec.slot, name: spec.name, id, image: spec.image, hostPort: spec.port, state, startedAt: new Date().toISOString() };
}

/**
 * Point every routed or internal service's entry at a slot. switchMs: from `since` until the
 * forwarder had switched the last entry; ackMs: until the last answer (after it saved its table).
 */
async function switchEntries(ctx: DeployContext, slot: Slot, since = process.hrtime.bigint()): Promise<{ switchMs: number; ackMs: number }> {
  const acks = await Promise.all(
    ctx.d.services
      .filter((s) => s.port !== null && ctx.rec.ports[s.name])
      .map((s) => ctx.forwarder.set(entryId(ctx.d.projectId, ctx.d.env, s.name), ctx.rec.ports[s.name]!.entry, ctx.rec.ports[s.name]![slot], ctx.rec.subnet ?? null)),
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
  const names = new Set((services ?? d.services).map((s) => containerName(d.projectId, d.env, s.name, slot)));
  if (!services) for (const c of rec.containers) if (c.slot === slot) names.add(c.name);
  await Promise.all([...names].map((n) => ctx.runtime.remove(n, Math.ceil(d.deploy.drainMs / 1000))));
  rec.containers = rec.containers.filter((c) => !names.has(c.name));
}

/** Verify through Caddy: the catch-all web service's health path, via the domain, N in a row. */
async function verifyThroughProxy(ctx: DeployContext, checks: number): Promise<{ ok: boolean; results: ProbeResult[] }> {
  const web = ctx.d.services.find((s) => s.type === 'web' && s.routePath === null && s.healthCheck.kind === 'http');
  if (!web || checks === 0) return { ok: true, results: [] };
  const clock = ctx.clock ?? realClock;
  const hc = web.healthCheck;
  const probe = () => probeHttp({ port: ctx.caddyHttpPort, path: hc.path, expectStatus: hc.expectStatus, timeoutMs: Math.max(hc.timeoutMs, 1000), hostHeader: ctx.d.domain });
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
    await clock.sleep(Math.min(hc.intervalMs, 500));
  }
  return { ok: true, results };
}

/** After the switch: keep probing the new slot directly until the watch window ends. */
async function watchAfterSwitch(ctx: DeployContext, specs: ContainerSpec[]): Promise<string | null> {
  const clock = ctx.clock ?? realClock;
  const end = clock.now() + ctx.d.deploy.watchAfterSwitchMs;
  while (clock.now() < end) {
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
    await clock.sleep(Math.min(1000, Math.max(100, end - clock.now())));
  }
  return null;
}

export async function deployRelease(ctx: DeployContext, version: string): Promise<DeployOutcome> {
  const { d, rec, runtime, reporter } = ctx;
  const fromSlot = rec.liveSlot;
  const toSlot: Slot = fromSlot ? otherSlot(fromSlot) : 'blue';
  const specs = specsFor(d, rec, toSlot, ctx.envFile, version, ctx.servicesAddress);
  const images = Object.fromEntries(specs.map((s) => [s.service, s.image]));
  const base = { fromSlot, toSlot, images, switchMs: null, verify: [] as ProbeResult[] };

  const step = <T>(label: string, fn: () => Promise<T>, describe?: (v: T) => string) => reportStep(reporter, label, fn, describe);

  await step(`images ${[...new Set(Object.values(images))].join(', ')}`, async () => {
    for (const img of new Set(Object.values(images))) await runtime.ensureImage(img);
  }, () => 'present');

  // Release commands (migrations) run once, from the new image, before anything new starts.
  for (const s of d.services.filter((x) => x.release)) {
    const spec = specs.find((x) => x.service === s.name)!;
    const r = await step(`release command for ${s.name}`, () => runtime.runOnce({ ...spec, name: `${spec.name}-release`, command: s.release!.command, port: null }, s.release!.timeoutMs), (v) => `exit ${v.exitCode}`);
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
  await ctx.persist();

  const health = await step(`health gate (${specs.length} container${specs.length === 1 ? '' : 's'})`, () =>
    Promise.all(specs.map((spec) => gateService(ctx, spec, d.services.find((s) => s.name === spec.service)!))),
    (hs) => (hs.every((h) => h.healthy) ? `healthy in ${Math.max(...hs.map((h) => h.elapsedMs))} ms` : 'UNHEALTHY'),
  );
  const sick = health.filter((h) => !h.healthy);
  if (sick.length) {
    const first = sick[0]!;
    const logTail = await runtime.logsTail(containerName(d.projectId, d.env, first.service, toSlot), 30).catch(() => '');
    await removeSlot(ctx, toSlot);
    await ctx.persist();
    return { ...base, result: 'health-failed', health, reason: sick.map((h) => `${h.service}: ${h.reason}`).join('; '), logTail };
  }
  // switchMs runs from "every new container healthy" to "every entry switched".
  const healthyAt = process.hrtime.bigint();
  for (const c of rec.containers) if (c.slot === toSlot) c.state = 'running';

  const sw = await step(`switch traffic ${fromSlot ?? '(none)'} -> ${toSlot}`, () => switchEntries(ctx, toSlot, healthyAt), switched);
  const switchMs = sw.switchMs;
  rec.liveSlot = toSlot;
  await ctx.persist();

  const verify = await step(`verify through Caddy (${d.deploy.verifyAfterSwitch} checks)`, () => verifyThroughProxy(ctx, d.deploy.verifyAfterSwitch), (v) => (v.ok ? 'ok' : 'FAILED'));
  const watchFailure = verify.ok
    ? await step(`watch the new version for ${Math.round(d.deploy.watchAfterSwitchMs / 1000)} s`, () => watchAfterSwitch(ctx, specs), (v) => (v ? 'FAILED' : 'ok'))
    : `verification through Caddy failed: ${verify.results[verify.results.length - 1]?.detail ?? 'no answer'}`;

  if (watchFailure) {
    const logTail = await runtime.logsTail(specs[0]!.name, 30).catch(() => '');
    const canGoBack = fromSlot !== null && (await Promise.all(d.services.filter((s) => s.port !== null).map((s) => runtime.inspect(containerName(d.projectId, d.env, s.name, fromSlot))))).every((st) => st?.running);
    if (canGoBack) {
      await step(`roll back traffic ${toSlot} -> ${fromSlot}`, () => switchEntries(ctx, fromSlot!), switched);
      rec.liveSlot = fromSlot;
    } else {
      rec.liveSlot = fromSlot;
    }
    await removeSlot(ctx, toSlot);
    await ctx.persist();
    return { ...base, result: 'rolled-back', health, switchMs, switchAckMs: sw.ackMs, verify: verify.results, reason: watchFailure + (canGoBack ? '' : ' (no previous version was running to go back to)'), logTail };
  }
  // Old workers ran beside the new ones during the watch so a rollback needs no restart; now they
  // stop, so no queue is consumed and no schedule fired twice for longer than the watch window.
  if (fromSlot) {
    await removeSlot(ctx, fromSlot, d.services.filter((s) => s.type === 'worker'));
    await ctx.persist();
  }
  return { ...base, result: 'deployed', health, switchMs, switchAckMs: sw.ackMs, verify: verify.results, reason: 'healthy, switched and verified' };
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
