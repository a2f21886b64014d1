/**
 * Alerts: a signed JSON POST to the deployment's `monitoring.alerts.webhook` when something an
 * operator must hear about happens (a deploy stopped or rolled back, a service turned unhealthy or
 * recovered, a backup failed or was missed, a scheduled job failed).
 *
 * The receiver checks `X-Codeb-Signature: sha256=<hex>` (HMAC-SHA256 of the raw body with the
 * project's alert signing secret, see alert-secret.ts) and drops repeats by `X-Codeb-Event-Id`:
 * every retry of one event carries the same id and the same body, so retrying is always safe.
 *
 * notify() never throws: an alert that cannot be delivered must not turn a backup or a deploy into
 * a crash. It returns what happened so the caller can print it.
 */
import { createHmac, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { checkManifest } from '../manifest/index.js';
import { resolveDeployment } from '../manifest/normalize.js';
import { storedManifestPath } from '../reconcile/manifest-store.js';
import { redactText } from '../redact.js';
import { registryPath } from '../settings.js';
import { loadAlertSecret } from './alert-secret.js';

export type AlertEventName = 'deploy.gate_failed' | 'deploy.rolled_back' | 'service.unhealthy' | 'service.recovered' | 'backup.failed' | 'backup.missed' | 'job.failed';

export const ALERT_EVENTS: readonly AlertEventName[] = ['deploy.gate_failed', 'deploy.rolled_back', 'service.unhealthy', 'service.recovered', 'backup.failed', 'backup.missed', 'job.failed'];

export interface AlertInput {
  project: string;
  env: string;
  event: AlertEventName;
  reason: string;
  version?: string | null;
  url?: string | null;
}

/** The body of the POST. `time` is when the event happened (the same on every retry). */
export interface AlertPayload {
  event: AlertEventName;
  project: string;
  env: string;
  version: string | null;
  reason: string;
  url: string | null;
  time: string;
}

/** The alert settings of one deployment (from its manifest's monitoring.alerts). */
export interface AlertSettings {
  webhook?: string;
}

export interface AttemptResult {
  /** HTTP status of the receiver's answer; absent when none came (refused, timed out). */
  status?: number;
  error?: string;
}

export interface AlertDelivery {
  id: string;
  event: AlertEventName;
  project: string;
  env: string;
  /** sent: a 2xx answer; failed: every attempt failed; skipped: nowhere to send it (see reason). */
  webhook: { result: 'sent' | 'failed' | 'skipped'; attempts: AttemptResult[]; reason?: string };
}

export interface NotifyOptions {
  /** Registry file (the stored manifests and secrets sit beside it). Default: registryPath(). */
  registry?: string;
  env?: NodeJS.ProcessEnv;
  /** Per attempt. Default 5 s. */
  fetchTimeoutMs?: number;
  /** Attempts in all, the first included. Default 4. */
  attempts?: number;
  /** First pause between attempts, doubled each time. Default 500 ms. */
  backoffMs?: number;
  /** The alert settings when the caller already has them (a first deploy has no stored manifest yet). */
  alerts?: AlertSettings;
  now?: () => Date;
}

export const SIGNATURE_HEADER = 'x-codeb-signature';
export const EVENT_ID_HEADER = 'x-codeb-event-id';
export const EVENT_HEADER = 'x-codeb-event';

/** Reasons can quote command output: keep them short and free of known secrets. Pure. */
export function buildPayload(input: AlertInput, time: Date): AlertPayload {
  return {
    event: input.event,
    project: input.project,
    env: input.env,
    version: input.version ?? null,
    reason: redactText(input.reason).slice(0, 2000),
    url: input.url ?? null,
    time: time.toISOString(),
  };
}

/** `sha256=<hex>` of HMAC-SHA256(secret, raw body). Pure. */
export function signBody(body: string, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** Pauses before attempt 2, 3, ...: base, 2*base, 4*base. Pure. */
export function backoffDelays(attempts: number, baseMs: number): number[] {
  return Array.from({ length: Math.max(0, attempts - 1) }, (_, i) => baseMs * 2 ** i);
}

/** Worth another attempt: no answer, a timeout, throttling or a server error. A 4xx is the receiver
 * refusing this request (bad signature, unknown route): sending it again would not help. Pure. */
export function retryable(a: AttemptResult): boolean {
  if (a.status === undefined) return true;
  return a.status === 408 || a.status === 429 || a.status >= 500;
}

/** Only http(s) URLs; anything else is a manifest mistake reported as a skipped delivery. Pure. */
export function webhookProblem(url: string): string | null {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return `the webhook ${JSON.stringify(url)} is not a URL`;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return `the webhook must be an http(s) URL, not ${u.protocol}`;
  return null;
}

/** The alert settings from the deployment's last applied manifest; null when there is none. */
export function storedAlertSettings(registryFile: string, project: string, env: string): AlertSettings | null {
  const file = storedManifestPath(registryFile, project, env);
  if (!existsSync(file)) return null;
  const checked = checkManifest(file);
  if (!checked.manifest) return null;
  const d = resolveDeployment(checked.manifest, env);
  return { webhook: d.monitoring.alerts.webhook };
}

async function attempt(url: string, body: string, headers: Record<string, string>, timeoutMs: number): Promise<AttemptResult> {
  try {
    const res = await fetch(url, { method: 'POST', body, headers, signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
    // The answer's body is not needed; reading it frees the connection.
    await res.arrayBuffer().catch(() => undefined);
    return { status: res.status };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const why = e.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (e.cause?.code ?? e.cause?.message ?? e.message);
    return { error: redactText(String(why)) };
  }
}

/** POST one signed payload, retrying with backoff until a 2xx, a 4xx or the last attempt. */
export async function deliverWebhook(
  url: string,
  payload: AlertPayload,
  secret: string,
  id: string,
  o: { attempts: number; backoffMs: number; timeoutMs: number },
): Promise<AlertDelivery['webhook']> {
  const body = JSON.stringify(payload);
  const headers = {
    'content-type': 'application/json',
    'user-agent': 'codeb-alerts',
    [SIGNATURE_HEADER]: signBody(body, secret),
    [EVENT_ID_HEADER]: id,
    [EVENT_HEADER]: payload.event,
  };
  const delays = backoffDelays(o.attempts, o.backoffMs);
  const attempts: AttemptResult[] = [];
  for (let i = 0; i < o.attempts; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, delays[i - 1]));
    const a = await attempt(url, body, headers, o.timeoutMs);
    attempts.push(a);
    if (a.status !== undefined && a.status >= 200 && a.status < 300) return { result: 'sent', attempts };
    if (!retryable(a)) break;
  }
  return { result: 'failed', attempts };
}

/** Send one alert to wherever the deployment's manifest says. Never throws. */
export async function notify(input: AlertInput, opts: NotifyOptions = {}): Promise<AlertDelivery> {
  const id = randomUUID();
  const base = { id, event: input.event, project: input.project, env: input.env };
  const skipped = (reason: string): AlertDelivery => ({ ...base, webhook: { result: 'skipped', attempts: [], reason } });
  try {
    const env = opts.env ?? process.env;
    const file = registryPath(opts.registry, env);
    const settings = opts.alerts ?? storedAlertSettings(file, input.project, input.env);
    if (!settings) return skipped(`no applied manifest for ${input.project} (${input.env})`);
    if (!settings.webhook) return skipped('monitoring.alerts.webhook is not set');
    const problem = webhookProblem(settings.webhook);
    if (problem) return skipped(problem);
    const secret = loadAlertSecret(file, input.project);
    if (!secret) return skipped(`no alert signing secret for ${input.project} yet (it is made by the first apply with a webhook)`);
    const payload = buildPayload(input, (opts.now ?? (() => new Date()))());
    const webhook = await deliverWebhook(settings.webhook, payload, secret, id, {
      attempts: Math.max(1, opts.attempts ?? 4),
      backoffMs: opts.backoffMs ?? 500,
      timeoutMs: opts.fetchTimeoutMs ?? 5000,
    });
    return { ...base, webhook };
  } catch (err) {
    return { ...base, webhook: { result: 'failed', attempts: [], reason: redactText((err as Error).message) } };
  }
}

/** The alert a failed deploy sends: stopped before the switch (health gate or release command) or rolled back after it. Pure. */
export function deployAlertEvent(result: 'deployed' | 'health-failed' | 'release-failed' | 'rolled-back'): AlertEventName | null {
  if (result === 'health-failed' || result === 'release-failed') return 'deploy.gate_failed';
  if (result === 'rolled-back') return 'deploy.rolled_back';
  return null;
}

/** One line for people: "alert deploy.gate_failed: sent to the webhook (attempt 3 of 3)". Pure. */
export function describeDelivery(d: AlertDelivery): string {
  const w = d.webhook;
  const last = w.attempts.at(-1);
  const lastText = last ? (last.status !== undefined ? `HTTP ${last.status}` : (last.error ?? 'no answer')) : '';
  if (w.result === 'sent') return `alert ${d.event}: sent to the webhook${w.attempts.length > 1 ? ` after ${w.attempts.length} attempts` : ''}`;
  if (w.result === 'skipped') return `alert ${d.event}: not sent (${w.reason})`;
  return `alert ${d.event}: NOT delivered after ${w.attempts.length} attempt${w.attempts.length === 1 ? '' : 's'}${lastText ? ` (last: ${lastText})` : ''}${w.reason ? ` (${w.reason})` : ''}`;
}
