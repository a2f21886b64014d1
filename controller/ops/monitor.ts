/**
 * `codeb monitor`: one pass over every running deployment. Each is checked the way a visitor reaches
 * it: its web service's health path through Caddy (the stack's HTTP port, the domain as Host), as
 * deploy verifies after a switch. The result goes into the registry (`health`), and a change is
 * alerted once: to unhealthy (service.unhealthy) and back (service.recovered). A timer or cron line
 * runs it periodically (docs/monitoring.md).
 */
import { CodebError, EXIT } from '../errors.js';
import { checkManifest } from '../manifest/index.js';
import { resolveDeployment } from '../manifest/normalize.js';
import type { Deployment } from '../manifest/types.js';
import { deploymentUrl } from '../reconcile/apply.js';
import { storedManifestPath } from '../reconcile/manifest-store.js';
import { readRegistryFile, updateRegistry } from '../registry/store.js';
import type { EnvironmentRecord } from '../registry/types.js';
import type { Settings } from '../settings.js';
import { probeHttp, proxyProbeService, type ProbeResult } from '../deploy/health.js';
import { describeDelivery, notify, type AlertDelivery, type AlertEventName, type NotifyOptions } from './alerts.js';

export type HealthStatus = EnvironmentRecord['health']['status'];

export interface HealthTransition {
  status: HealthStatus;
  alert: Extract<AlertEventName, 'service.unhealthy' | 'service.recovered'> | null;
}

/**
 * The recorded status after a check, and the alert it calls for: only a change is alerted, so an
 * outage sends one service.unhealthy however many passes see it, then one service.recovered. Pure.
 */
export function healthTransition(previous: HealthStatus, ok: boolean): HealthTransition {
  if (!ok) return { status: 'unhealthy', alert: previous === 'unhealthy' ? null : 'service.unhealthy' };
  return { status: 'healthy', alert: previous === 'unhealthy' ? 'service.recovered' : null };
}

/** The version the last successful deploy put live (recorded in its history entry). Pure. */
export function liveVersion(rec: EnvironmentRecord): string | null {
  const last = rec.history.filter((h) => h.action === 'deploy' && h.result === 'ok').at(-1);
  const v = last?.detail?.version;
  return typeof v === 'string' ? v : null;
}

/** What a pass does with one deployment. */
export interface CheckTarget {
  project: string;
  env: string;
  /** Null: not checked, with `skip` saying why. */
  probe: { domain: string; path: string; expectStatus: number; timeoutMs: number } | null;
  skip?: string;
  url: string | null;
  version: string | null;
}

/** The deployments a pass checks and how, from the registry and each one's last applied manifest. */
export function checkTargets(registryFile: string, settings: Settings, only?: string): CheckTarget[] {
  const doc = readRegistryFile(registryFile);
  const out: CheckTarget[] = [];
  for (const p of Object.values(doc.projects).sort((a, b) => a.id.localeCompare(b.id))) {
    if (only && p.id !== only) continue;
    for (const rec of Object.values(p.environments).sort((a, b) => a.env.localeCompare(b.env))) {
      const base = { project: p.id, env: rec.env, url: null, version: liveVersion(rec) };
      if (!rec.liveSlot) {
        out.push({ ...base, probe: null, skip: `nothing is live (status ${rec.status})` });
        continue;
      }
      const d = storedDeployment(registryFile, p.id, rec.env);
      if (!d) {
        out.push({ ...base, probe: null, skip: 'no applied manifest stored for it (apply it once with this version of codeb)' });
        continue;
      }
      const web = proxyProbeService(d.services);
      if (!web) {
        out.push({ ...base, probe: null, skip: 'no open web service at the main domain with an HTTP health check to reach through Caddy' });
        continue;
      }
      const hc = web.healthCheck;
      out.push({ ...base, url: deploymentUrl(d, settings), probe: { domain: d.domain, path: hc.path, expectStatus: hc.expectStatus, timeoutMs: Math.max(hc.timeoutMs, 1000) } });
    }
  }
  return out;
}

function storedDeployment(registryFile: string, project: string, env: string): Deployment | null {
  const checked = checkManifest(storedManifestPath(registryFile, project, env));
  return checked.manifest ? resolveDeployment(checked.manifest, env) : null;
}

/**
 * Healthy at the first good answer; unhealthy only when `tries` answers in a row are bad, so one
 * dropped connection (Caddy reloading for another project) is not an outage.
 */
export async function probeThroughCaddy(caddyHttpPort: number, p: NonNullable<CheckTarget['probe']>, tries = 3, pauseMs = 500): Promise<ProbeResult> {
  let r: ProbeResult | null = null;
  for (let i = 0; i < tries; i++) {
    if (i > 0) await new Promise((res) => setTimeout(res, pauseMs));
    r = await probeHttp({ port: caddyHttpPort, path: p.path, expectStatus: p.expectStatus, timeoutMs: p.timeoutMs, hostHeader: p.domain });
    if (r.ok) return r;
  }
  return r!;
}

export interface MonitorRow {
  project: string;
  env: string;
  /** skipped: not checked (see detail). */
  health: HealthStatus | 'skipped';
  previous: HealthStatus | null;
  detail: string;
  checkedAt: string | null;
  since: string | null;
  alert: AlertDelivery | null;
}

export interface MonitorOptions {
  registry: string;
  settings: Settings;
  project?: string;
  notify?: NotifyOptions;
  /** Pause between the tries of one check (default 500 ms). */
  pauseMs?: number;
  onRow?: (row: MonitorRow) => void;
}

/** One pass: check, record (under the registry lock), then alert on the changes. */
export async function monitorOnce(o: MonitorOptions): Promise<MonitorRow[]> {
  const targets = checkTargets(o.registry, o.settings, o.project);
  if (o.project && !targets.length) {
    throw new CodebError(`No project "${o.project}" in ${o.registry}.`, { exitCode: EXIT.invalid, hint: '`codeb registry list` shows the projects; leave out --project to check them all.' });
  }
  const checked = await Promise.all(
    targets.map(async (t) => ({ t, r: t.probe ? await probeThroughCaddy(o.settings.caddy.httpPort, t.probe, 3, o.pauseMs ?? 500) : null })),
  );
  const now = new Date().toISOString();
  // Nothing checked (an empty registry, nothing live): no write, not even a registry file created.
  if (!checked.some((c) => c.r)) {
    const doc = readRegistryFile(o.registry);
    const rows = targets.map((t): MonitorRow => ({ project: t.project, env: t.env, health: 'skipped', previous: doc.projects[t.project]?.environments[t.env]?.health.status ?? null, detail: t.skip ?? '', checkedAt: null, since: null, alert: null }));
    for (const r of rows) o.onRow?.(r);
    return rows;
  }
  const rows = await updateRegistry(o.registry, { command: 'codeb monitor' }, (doc) =>
    checked.map(({ t, r }): MonitorRow & { transition: HealthTransition | null } => {
      const rec = doc.projects[t.project]?.environments[t.env];
      if (!r || !rec) return { project: t.project, env: t.env, health: 'skipped', previous: rec?.health.status ?? null, detail: t.skip ?? 'removed during the check', checkedAt: null, since: null, alert: null, transition: null };
      const previous = rec.health.status;
      const tr = healthTransition(previous, r.ok);
      const since = tr.status === previous ? (rec.health.since ?? rec.health.lastCheck ?? now) : now;
      rec.health = { status: tr.status, lastCheck: now, since, ...(r.ok ? {} : { detail: `${t.probe!.path} through Caddy: ${r.detail}`.slice(0, 300) }) };
      return { project: t.project, env: t.env, health: tr.status, previous, detail: r.detail, checkedAt: now, since, alert: null, transition: tr };
    }),
  );
  for (const row of rows) {
    const t = targets.find((x) => x.project === row.project && x.env === row.env)!;
    if (row.transition?.alert) {
      const reason = row.transition.alert === 'service.unhealthy' ? `${t.probe!.path} through Caddy: ${row.detail}` : `${t.probe!.path} answers again: ${row.detail}`;
      row.alert = await notify({ project: row.project, env: row.env, event: row.transition.alert, reason, version: t.version, url: t.url }, { registry: o.registry, ...o.notify });
    }
    o.onRow?.(strip(row));
  }
  return rows.map(strip);
}

function strip(row: MonitorRow & { transition?: unknown }): MonitorRow {
  const { transition: _t, ...rest } = row;
  return rest;
}

/** The table `codeb monitor` prints. Pure. */
export function renderMonitor(rows: MonitorRow[]): string {
  if (!rows.length) return 'No deployments in the registry.';
  // The ALERT column only on a pass that sent something.
  const alerts = rows.some((r) => r.alert);
  const cells = rows.map((r) => [r.project, r.env, r.health, r.health === 'unhealthy' ? `${r.detail} (since ${r.since})` : r.detail, ...(alerts ? [r.alert ? describeDelivery(r.alert) : ''] : [])]);
  const head = ['PROJECT', 'ENV', 'HEALTH', 'DETAIL', ...(alerts ? ['ALERT'] : [])];
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => c.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(head), ...cells.map(line)].join('\n');
}
