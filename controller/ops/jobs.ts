/**
 * Scheduled jobs (`jobs:` in the manifest): a command run in a service's image, with that service's
 * env file and env, as a one-off container that is removed when it ends. `codeb jobs run --due`
 * (what a timer calls every minute) runs each job whose cron schedule fired since its last start;
 * `--job NAME` runs one now. The result (exit code, times) goes into the registry, the log tail into
 * a 0600 file beside it, and a failure sends a job.failed alert.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import writeFileAtomic from 'write-file-atomic';
import { serviceUrls } from '../deploy/bluegreen.js';
import { CodebError, EXIT } from '../errors.js';
import { checkManifest } from '../manifest/index.js';
import { containerName, envFileName } from '../manifest/names.js';
import { resolveDeployment } from '../manifest/normalize.js';
import type { Deployment, ResolvedJob } from '../manifest/types.js';
import { storedManifestPath } from '../reconcile/manifest-store.js';
import { versionOf } from '../reconcile/release.js';
import { redactText } from '../redact.js';
import { readRegistryFile, updateRegistry } from '../registry/store.js';
import type { EnvironmentRecord, JobRunRecord } from '../registry/types.js';
import { containerSpec } from '../runtime/spec.js';
import type { ContainerSpec, Runtime } from '../runtime/types.js';
import { secretsDir } from '../settings.js';
import { isDue } from './backup-schedule.js';
import { parseCron, previousRun } from './cron.js';
import { describeDelivery, notify, type AlertDelivery, type NotifyOptions } from './alerts.js';

/** Lines of output kept from the last run of each job. */
export const LOG_TAIL_LINES = 50;

export interface JobPick {
  project: string;
  env: string;
  job: ResolvedJob;
  /** For --due: the schedule time this run answers; null when run by name. */
  scheduledFor: string | null;
}

/**
 * Which jobs to run: by name, or every one whose schedule fired (after the deployment existed)
 * and that has not started since. Pure: registry records, resolved deployments and the clock in.
 */
export function pickJobs(
  deployments: Array<{ project: string; env: string; rec: EnvironmentRecord; d: Deployment }>,
  sel: { job?: string; due: boolean; now: Date },
): JobPick[] {
  const out: JobPick[] = [];
  for (const { project, env, rec, d } of deployments) {
    for (const job of d.jobs) {
      if (sel.job !== undefined) {
        if (job.name === sel.job) out.push({ project, env, job, scheduledFor: null });
        continue;
      }
      const last = rec.jobs?.[job.name]?.lastStartedAt;
      const input = { schedule: job.schedule, newestGoodAt: last ? new Date(last) : null, since: new Date(rec.createdAt), now: sel.now };
      if (sel.due && isDue(input)) out.push({ project, env, job, scheduledFor: scheduledSlot(job.schedule, sel.now) });
    }
  }
  return out;
}

/** The schedule time a due run answers. */
function scheduledSlot(schedule: string, now: Date): string | null {
  return previousRun(parseCron(schedule), now)?.toISOString() ?? null;
}

/** The one-off container of a job: the service's spec with the job's command, no port, its own name. Pure. */
export function jobSpec(d: Deployment, rec: EnvironmentRecord, job: ResolvedJob, envFile: string | null, servicesAddress: string): ContainerSpec {
  const service = d.services.find((s) => s.name === job.service);
  if (!service) throw new CodebError(`Job ${job.name} of ${d.projectId} (${d.env}) names the service "${job.service}", which the manifest does not have.`, { exitCode: EXIT.invalid });
  const slot = rec.liveSlot ?? 'blue';
  // What really runs live (a `deploy --image` is not in the stored manifest); else the manifest's image.
  const live = rec.containers.find((c) => c.service === service.name && c.slot === rec.liveSlot)?.image;
  const port = service.type !== 'worker' && service.port !== null ? (rec.ports[service.name]?.[slot] ?? null) : null;
  const spec = containerSpec(d, live ? { ...service, image: live } : service, slot, { port, envFile, serviceUrls: serviceUrls(d, rec, servicesAddress), version: versionOf(d) });
  // The dot cannot appear in a service container's name, so a job never takes one's name.
  return { ...spec, name: `${containerName(d.projectId, d.env, service.name, slot)}.job-${job.name}`, command: job.command, port: null, restart: 'no', labels: { ...spec.labels, 'codeb.job': job.name } };
}

export function jobLogFile(registryFile: string, project: string, env: string, job: string): string {
  return join(dirname(registryFile), 'jobs', envFileName(project, env).replace(/\.env$/, `.${job}.log`));
}

export function readJobLog(registryFile: string, project: string, env: string, job: string): string | null {
  const f = jobLogFile(registryFile, project, env, job);
  return existsSync(f) ? readFileSync(f, 'utf8') : null;
}

export interface JobResult {
  project: string;
  env: string;
  job: string;
  service: string;
  image: string;
  scheduledFor: string | null;
  startedAt: string;
  durationMs: number;
  exitCode: number;
  result: 'ok' | 'failed';
  logTail: string;
  alert: AlertDelivery | null;
}

export interface RunJobsOptions {
  registry: string;
  runtime: Runtime;
  /** Where containers reach the shared services and their project's entries (settings.network). */
  servicesAddress: string;
  project?: string;
  env?: string;
  job?: string;
  due: boolean;
  now?: Date;
  notify?: NotifyOptions;
  onStart?: (p: JobPick) => void;
  onDone?: (r: JobResult) => void;
}

function storedDeployment(registryFile: string, project: string, env: string): Deployment | null {
  const checked = checkManifest(storedManifestPath(registryFile, project, env));
  return checked.manifest ? resolveDeployment(checked.manifest, env) : null;
}

/** Run the selected jobs one after another; each result is recorded as soon as it is known. */
export async function runJobs(o: RunJobsOptions): Promise<JobResult[]> {
  if (!o.job && !o.due) throw new CodebError('Say which jobs to run.', { exitCode: EXIT.invalid, hint: 'Use --job <name> to run one now, or --due for every job whose schedule has fired.' });
  const doc = readRegistryFile(o.registry);
  if (o.project && !doc.projects[o.project]) {
    throw new CodebError(`No project "${o.project}" in ${o.registry}.`, { exitCode: EXIT.invalid, hint: '`codeb registry list` shows the projects.' });
  }
  const deployments: Array<{ project: string; env: string; rec: EnvironmentRecord; d: Deployment }> = [];
  for (const p of Object.values(doc.projects).sort((a, b) => a.id.localeCompare(b.id))) {
    if (o.project && p.id !== o.project) continue;
    for (const rec of Object.values(p.environments).sort((a, b) => a.env.localeCompare(b.env))) {
      if (o.env && rec.env !== o.env) continue;
      const d = storedDeployment(o.registry, p.id, rec.env);
      if (d) deployments.push({ project: p.id, env: rec.env, rec, d });
    }
  }
  const picks = pickJobs(deployments, { job: o.job, due: o.due, now: o.now ?? new Date() });
  if (o.job && !picks.length) {
    const known = [...new Set(deployments.flatMap((x) => x.d.jobs.map((j) => j.name)))];
    throw new CodebError(`No job named "${o.job}"${o.project ? ` in ${o.project}` : ''}.`, { exitCode: EXIT.invalid, hint: known.length ? `Jobs: ${known.join(', ')}.` : 'The applied manifests have no `jobs:` section.' });
  }
  const results: JobResult[] = [];
  for (const pick of picks) {
    const { d, rec } = deployments.find((x) => x.project === pick.project && x.env === pick.env)!;
    const envFile = join(secretsDir(o.registry), envFileName(pick.project, pick.env));
    const spec = jobSpec(d, rec, pick.job, existsSync(envFile) ? envFile : null, o.servicesAddress);
    o.onStart?.(pick);
    const startedAt = new Date().toISOString();
    // Recorded before it runs, so a second --due in the same minute does not start it again.
    await record(o.registry, pick, { lastStartedAt: startedAt, scheduledFor: pick.scheduledFor, lastFinishedAt: null, exitCode: null, result: null, durationMs: null, image: spec.image });
    const t0 = performance.now();
    let exitCode: number;
    let output: string;
    try {
      await o.runtime.ensureImage(spec.image);
      ({ exitCode, output } = await o.runtime.runOnce(spec, pick.job.timeoutMs));
    } catch (err) {
      exitCode = -1;
      output = `codeb: ${(err as Error).message}`;
    }
    const durationMs = Math.round(performance.now() - t0);
    const logTail = redactText(output).trimEnd().split('\n').slice(-LOG_TAIL_LINES).join('\n');
    const result: JobResult['result'] = exitCode === 0 ? 'ok' : 'failed';
    await writeLog(o.registry, pick, logTail);
    await record(o.registry, pick, { lastStartedAt: startedAt, scheduledFor: pick.scheduledFor, lastFinishedAt: new Date().toISOString(), exitCode, result, durationMs, image: spec.image });
    let alert: AlertDelivery | null = null;
    if (result === 'failed') {
      const lastLine = logTail.split('\n').filter((l) => l.trim()).at(-1) ?? '';
      const why = exitCode === -1 ? 'could not run' : exitCode === 124 ? `timed out after ${Math.round(pick.job.timeoutMs / 1000)} s` : `exited with code ${exitCode}`;
      alert = await notify({ project: pick.project, env: pick.env, event: 'job.failed', reason: `job ${pick.job.name} ${why}${lastLine ? `: ${lastLine.slice(0, 300)}` : ''}`, version: versionOf(d) }, { registry: o.registry, ...o.notify });
    }
    const r: JobResult = { project: pick.project, env: pick.env, job: pick.job.name, service: pick.job.service, image: spec.image, scheduledFor: pick.scheduledFor, startedAt, durationMs, exitCode, result, logTail, alert };
    o.onDone?.(r);
    results.push(r);
  }
  return results;
}

async function record(registry: string, pick: JobPick, run: JobRunRecord): Promise<void> {
  await updateRegistry(registry, { command: `codeb jobs run (${pick.project}/${pick.env} ${pick.job.name})` }, (doc) => {
    const rec = doc.projects[pick.project]?.environments[pick.env];
    if (!rec) return;
    rec.jobs = { ...(rec.jobs ?? {}), [pick.job.name]: run };
  });
}

async function writeLog(registry: string, pick: JobPick, text: string): Promise<void> {
  const f = jobLogFile(registry, pick.project, pick.env, pick.job.name);
  mkdirSync(dirname(f), { recursive: true, mode: 0o700 });
  chmodSync(dirname(f), 0o700);
  await writeFileAtomic(f, text ? `${text}\n` : '', { mode: 0o600 });
}

/** The table `codeb jobs run` prints. Pure. */
export function renderJobResults(rs: JobResult[]): string {
  if (!rs.length) return 'No job is due.';
  return rs
    .map((r) => {
      const head = `${r.project}/${r.env} job ${r.job}: ${r.result === 'ok' ? 'ok' : 'FAILED'} (exit ${r.exitCode}, ${(r.durationMs / 1000).toFixed(1)} s)`;
      const tail = r.result === 'failed' && r.logTail ? `\n${r.logTail.split('\n').slice(-10).map((l) => `    ${l}`).join('\n')}` : '';
      return `${head}${tail}${r.alert ? `\n  ${describeDelivery(r.alert)}` : ''}`;
    })
    .join('\n');
}

export interface JobListRow {
  env: string;
  job: string;
  service: string;
  schedule: string;
  command: string[];
  last: JobRunRecord | null;
  logTail: string | null;
}

/** The jobs of a project's applied manifests with their last runs. */
export function listJobs(registryFile: string, project: string, env?: string): JobListRow[] {
  const doc = readRegistryFile(registryFile);
  const p = doc.projects[project];
  if (!p) throw new CodebError(`No project "${project}" in ${registryFile}.`, { exitCode: EXIT.invalid, hint: '`codeb registry list` shows the projects.' });
  const rows: JobListRow[] = [];
  for (const rec of Object.values(p.environments).sort((a, b) => a.env.localeCompare(b.env))) {
    if (env && rec.env !== env) continue;
    const d = storedDeployment(registryFile, project, rec.env);
    for (const j of d?.jobs ?? []) {
      rows.push({ env: rec.env, job: j.name, service: j.service, schedule: j.schedule, command: j.command, last: rec.jobs?.[j.name] ?? null, logTail: readJobLog(registryFile, project, rec.env, j.name) });
    }
  }
  return rows;
}

/** Pure. */
export function renderJobList(rows: JobListRow[]): string {
  if (!rows.length) return 'No jobs: the applied manifest has no `jobs:` section.';
  const head = ['ENV', 'JOB', 'SCHEDULE (UTC)', 'LAST START', 'RESULT'];
  const cells = rows.map((r) => [
    r.env,
    r.job,
    r.schedule,
    r.last?.lastStartedAt ?? '-',
    !r.last ? 'never ran' : r.last.result === null ? 'no result (running, or codeb was stopped)' : `${r.last.result} (exit ${r.last.exitCode}, ${((r.last.durationMs ?? 0) / 1000).toFixed(1)} s)`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => c.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(head), ...cells.map(line)].join('\n');
}
