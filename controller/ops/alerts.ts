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
import { hostname } from 'node:os';
import { redactText, registerSecret } from '../redact.js';
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
  email?: string[];
}

export type ChannelResult = { result: 'sent' | 'failed' | 'skipped'; attempts: AttemptResult[]; reason?: string };

export interface AttemptResult {
  /** HTTP status of the receiver's answer (SMTP reply code for email); absent when none came. */
  status?: number;
  error?: string;
}

export interface AlertDelivery {
  id: string;
  event: AlertEventName;
  project: string;
  env: string;
  /** sent: a 2xx answer; failed: every attempt failed; skipped: nowhere to send it (see reason). */
  webhook: ChannelResult;
  /** sent: the SMTP server accepted it for every recipient. */
  email: ChannelResult;
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

/** Where email alerts go out: CODEB_SMTP_URL (smtp://[user:password@]host:port, smtps:// for TLS) and CODEB_SMTP_FROM. */
export function smtpFromEnv(env: NodeJS.ProcessEnv): { url: string; from: string } | { problem: string } {
  const url = env.CODEB_SMTP_URL;
  if (!url) return { problem: 'no SMTP server configured (set CODEB_SMTP_URL, see docs/monitoring.md)' };
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return { problem: 'CODEB_SMTP_URL is not a URL (use smtp://[user:password@]host:port or smtps://...)' };
  }
  if (u.protocol !== 'smtp:' && u.protocol !== 'smtps:') return { problem: `CODEB_SMTP_URL must start with smtp:// or smtps://, not ${u.protocol}//` };
  if (u.password) registerSecret(decodeURIComponent(u.password));
  return { url, from: env.CODEB_SMTP_FROM || `codeb@${hostname()}` };
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
  // Documentation names (RFC 2606) can never be a receiver: the examples use them, and nothing is sent.
  if (/(^|\.)(example\.(com|net|org)|example|invalid|test)$/.test(u.hostname)) return `${u.hostname} is a reserved example domain; put your receiver's URL in monitoring.alerts.webhook`;
  return null;
}

/** SMTP: a 4xx reply or no reply at all is worth another attempt; a 5xx is a refusal. Pure. */
export function smtpRetryable(a: AttemptResult): boolean {
  return a.status === undefined || (a.status >= 400 && a.status < 500);
}

/** The mail for one alert: a subject that sorts and filters, the payload as plain text. Pure. */
export function emailMessage(p: AlertPayload, id: string): { subject: string; text: string } {
  const lines = [`${p.event} for ${p.project} (${p.env})`, '', `reason:  ${p.reason}`, `version: ${p.version ?? '-'}`, `url:     ${p.url ?? '-'}`, `time:    ${p.time}`, `event id: ${id}`];
  return { subject: `[codeb] ${p.event}: ${p.project} (${p.env})`, text: lines.join('\n') + '\n' };
}

/** The alert settings from the deployment's last applied manifest; null when there is none. */
export function storedAlertSettings(registryFile: string, project: string, env: string): AlertSettings | null {
  const file = storedManifestPath(registryFile, project, env);
  if (!existsSync(file)) return null;
  const checked = checkManifest(file);
  if (!checked.manifest) return null;
  const d = resolveDeployment(checked.manifest, env);
  return { webhook: d.monitoring.alerts.webhook, email: d.monitoring.alerts.email };
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
): Promise<ChannelResult> {
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

/** Mail one alert through the SMTP server, retrying transient failures with backoff. */
export async function deliverEmail(
  to: string[],
  payload: AlertPayload,
  smtp: { url: string; from: string },
  id: string,
  o: { attempts: number; backoffMs: number; timeoutMs: number },
): Promise<ChannelResult> {
  // Loaded only when a mail goes out: most commands never need it.
  // `default` (the CommonJS exports object): the bundle's chunk of a CommonJS package has no named exports.
  const { createTransport } = (await import('nodemailer')).default;
  const u = new URL(smtp.url);
  const secure = u.protocol === 'smtps:';
  const transport = createTransport({
    host: u.hostname,
    port: Number(u.port || (secure ? 465 : 587)),
    secure,
    ...(u.username ? { auth: { user: decodeURIComponent(u.username), pass: decodeURIComponent(u.password) } } : {}),
    connectionTimeout: o.timeoutMs,
    greetingTimeout: o.timeoutMs,
    socketTimeout: o.timeoutMs,
  });
  const { subject, text } = emailMessage(payload, id);
  const delays = backoffDelays(o.attempts, o.backoffMs);
  const attempts: AttemptResult[] = [];
  try {
    for (let i = 0; i < o.attempts; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, delays[i - 1]));
      try {
        const info = await transport.sendMail({ from: smtp.from, to, subject, text, headers: { 'X-Codeb-Event-Id': id, 'X-Codeb-Event': payload.event } });
        if (info.rejected.length === 0) {
          attempts.push({ status: 250 });
          return { result: 'sent', attempts };
        }
        attempts.push({ error: `rejected: ${info.rejected.map(String).join(', ')}` });
        return { result: 'failed', attempts };
      } catch (err) {
        const e = err as Error & { responseCode?: number; code?: string };
        const a: AttemptResult = e.responseCode ? { status: e.responseCode, error: redactText(e.message).slice(0, 300) } : { error: redactText(e.code ?? e.message).slice(0, 300) };
        attempts.push(a);
        if (!smtpRetryable(a)) break;
      }
    }
    return { result: 'failed', attempts };
  } finally {
    transport.close();
  }
}

/** Send one alert to wherever the deployment's manifest says. Never throws. */
export async function notify(input: AlertInput, opts: NotifyOptions = {}): Promise<AlertDelivery> {
  const id = randomUUID();
  const base = { id, event: input.event, project: input.project, env: input.env };
  const skip = (reason: string): ChannelResult => ({ result: 'skipped', attempts: [], reason });
  try {
    const env = opts.env ?? process.env;
    const file = registryPath(opts.registry, env);
    const settings = opts.alerts ?? storedAlertSettings(file, input.project, input.env);
    if (!settings) {
      const none = skip(`no applied manifest for ${input.project} (${input.env})`);
      return { ...base, webhook: none, email: none };
    }
    const payload = buildPayload(input, (opts.now ?? (() => new Date()))());
    const retry = { attempts: Math.max(1, opts.attempts ?? 4), backoffMs: opts.backoffMs ?? 500, timeoutMs: opts.fetchTimeoutMs ?? 5000 };
    const [webhook, email] = await Promise.all([
      (async (): Promise<ChannelResult> => {
        if (!settings.webhook) return skip('monitoring.alerts.webhook is not set');
        const problem = webhookProblem(settings.webhook);
        if (problem) return skip(problem);
        const secret = loadAlertSecret(file, input.project);
        if (!secret) return skip(`no alert signing secret for ${input.project} yet (it is made by the first apply with a webhook)`);
        return deliverWebhook(settings.webhook, payload, secret, id, retry);
      })().catch((err: Error) => ({ result: 'failed' as const, attempts: [], reason: redactText(err.message) })),
      (async (): Promise<ChannelResult> => {
        if (!settings.email?.length) return skip('monitoring.alerts.email is not set');
        const smtp = smtpFromEnv(env);
        if ('problem' in smtp) return { result: 'failed', attempts: [], reason: smtp.problem };
        return deliverEmail(settings.email, payload, smtp, id, retry);
      })().catch((err: Error) => ({ result: 'failed' as const, attempts: [], reason: redactText(err.message) })),
    ]);
    return { ...base, webhook, email };
  } catch (err) {
    const failed: ChannelResult = { result: 'failed', attempts: [], reason: redactText((err as Error).message) };
    return { ...base, webhook: failed, email: failed };
  }
}

/** The alert a failed deploy sends: stopped before the switch (health gate or release command) or rolled back after it. Pure. */
export function deployAlertEvent(result: 'deployed' | 'health-failed' | 'release-failed' | 'rolled-back'): AlertEventName | null {
  if (result === 'health-failed' || result === 'release-failed') return 'deploy.gate_failed';
  if (result === 'rolled-back') return 'deploy.rolled_back';
  return null;
}

/** One line for people: "alert deploy.gate_failed: webhook sent; email not configured". Pure. */
export function describeDelivery(d: AlertDelivery): string {
  const parts: string[] = [];
  for (const [name, c] of [['webhook', d.webhook], ['email', d.email]] as const) {
    // An unconfigured channel is not news; say nothing about it unless neither is configured.
    if (c.result === 'skipped' && /is not set$/.test(c.reason ?? '')) continue;
    parts.push(describeChannel(name, c));
  }
  if (!parts.length) return `alert ${d.event}: not sent (${d.webhook.reason ?? 'no alert channel configured'})`;
  return `alert ${d.event}: ${parts.join('; ')}`;
}

function describeChannel(name: string, c: ChannelResult): string {
  const last = c.attempts.at(-1);
  const lastText = last ? (last.status !== undefined ? `${name === 'email' ? 'SMTP' : 'HTTP'} ${last.status}` : (last.error ?? 'no answer')) : '';
  if (c.result === 'sent') return `sent to the ${name}${c.attempts.length > 1 ? ` after ${c.attempts.length} attempts` : ''}`;
  if (c.result === 'skipped') return `${name} not sent (${c.reason})`;
  if (!c.attempts.length) return `${name} NOT delivered (${c.reason ?? 'unknown error'})`;
  return `${name} NOT delivered after ${c.attempts.length} attempt${c.attempts.length === 1 ? '' : 's'}${lastText ? ` (last: ${lastText})` : ''}`;
}
