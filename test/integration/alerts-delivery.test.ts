/**
 * notify() against a real HTTP receiver and a real SMTP server on loopback: the signed payload,
 * retries with backoff that deliver the event once, a refusal that is not retried, the mail, and
 * the settings read from the deployment's last applied manifest and the project's signing secret.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ensureAlertSecret } from '../../controller/ops/alert-secret.js';
import { notify } from '../../controller/ops/alerts.js';
import { storedManifestPath } from '../../controller/reconcile/manifest-store.js';
import { manifest } from './helpers/deploy.js';
import { SmtpReceiver } from './helpers/smtp-receiver.js';
import { WebhookReceiver } from './helpers/webhook-receiver.js';

const dir = mkdtempSync(join(tmpdir(), 'codeb-alerts-'));
const registry = join(dir, 'registry', 'projects.json');
const receiver = new WebhookReceiver();
const smtp = new SmtpReceiver();
const fast = { registry, backoffMs: 20, fetchTimeoutMs: 2000 };

function storeManifest(project: string, webhook: string | null, email: string[] = []): void {
  const file = storedManifestPath(registry, project, 'production');
  mkdirSync(join(file, '..'), { recursive: true });
  const alerts = [webhook ? `    webhook: ${webhook}\n` : '', email.length ? `    email: [${email.join(', ')}]\n` : ''].join('');
  writeFileSync(file, manifest({ id: project, extra: alerts ? `monitoring:\n  alerts:\n${alerts}` : '' }));
}

beforeAll(async () => {
  await receiver.start();
  await smtp.start();
  receiver.secret = (await ensureAlertSecret(registry, 'shop')).secret;
  storeManifest('shop', receiver.url);
});
afterAll(async () => {
  await receiver.close();
  await smtp.close();
  rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => {
  receiver.requests.length = 0;
  receiver.events.length = 0;
  receiver.failNext = 0;
  smtp.mails.length = 0;
  smtp.failNext = 0;
  smtp.refused = 0;
});

describe('webhook alerts', () => {
  it('posts the signed payload named in the manifest', async () => {
    const d = await notify({ project: 'shop', env: 'production', event: 'service.unhealthy', reason: 'web: HTTP 500', version: 'v7', url: 'http://shop.localhost/' }, fast);
    expect(d.webhook).toMatchObject({ result: 'sent', attempts: [{ status: 200 }] });
    expect(receiver.events).toHaveLength(1);
    const e = receiver.events[0]!;
    expect(e.signatureOk).toBe(true);
    expect(e.id).toBe(d.id);
    expect(e.payload).toMatchObject({ event: 'service.unhealthy', project: 'shop', env: 'production', version: 'v7', reason: 'web: HTTP 500', url: 'http://shop.localhost/' });
    expect(Date.parse(String(e.payload.time))).not.toBeNaN();
    expect(receiver.requests[0]!.headers['content-type']).toBe('application/json');
  });

  it('a receiver that fails twice then answers gets the event once', async () => {
    receiver.failNext = 2;
    const d = await notify({ project: 'shop', env: 'production', event: 'backup.failed', reason: 'upload failed' }, fast);
    expect(d.webhook.result).toBe('sent');
    expect(d.webhook.attempts.map((a) => a.status)).toEqual([503, 503, 200]);
    expect(receiver.requests).toHaveLength(3);
    // Every retry is the same event: same id, same body, so the receiver can drop repeats.
    expect(new Set(receiver.requests.map((r) => r.headers['x-codeb-event-id'])).size).toBe(1);
    expect(new Set(receiver.requests.map((r) => r.body)).size).toBe(1);
    expect(receiver.of('backup.failed')).toHaveLength(1);
  });

  it('gives up after the last attempt and says so', async () => {
    receiver.failNext = 10;
    const d = await notify({ project: 'shop', env: 'production', event: 'job.failed', reason: 'exit 1' }, { ...fast, attempts: 3 });
    expect(d.webhook.result).toBe('failed');
    expect(d.webhook.attempts).toHaveLength(3);
    expect(receiver.events).toHaveLength(0);
  });

  it('does not retry a refusal (a 4xx such as a bad signature)', async () => {
    const saved = receiver.secret;
    receiver.secret = 'another-secret-the-receiver-expects';
    try {
      const d = await notify({ project: 'shop', env: 'production', event: 'job.failed', reason: 'exit 1' }, fast);
      expect(d.webhook.result).toBe('failed');
      expect(d.webhook.attempts).toEqual([{ status: 401 }]);
    } finally {
      receiver.secret = saved;
    }
  });

  it('an unreachable receiver fails after every attempt without throwing', async () => {
    const closed = new WebhookReceiver();
    const url = await closed.start();
    await closed.close();
    const d = await notify({ project: 'shop', env: 'production', event: 'job.failed', reason: 'x' }, { ...fast, alerts: { webhook: url }, attempts: 2 });
    expect(d.webhook.result).toBe('failed');
    expect(d.webhook.attempts).toHaveLength(2);
    expect(d.webhook.attempts[0]!.error).toBeTruthy();
  });

  it('skips, with the reason, when there is nowhere to send or nothing to sign with', async () => {
    storeManifest('quiet', null);
    expect((await notify({ project: 'quiet', env: 'production', event: 'job.failed', reason: 'x' }, fast)).webhook).toMatchObject({ result: 'skipped', reason: 'monitoring.alerts.webhook is not set' });
    expect((await notify({ project: 'ghost', env: 'production', event: 'job.failed', reason: 'x' }, fast)).webhook).toMatchObject({ result: 'skipped', reason: 'no applied manifest for ghost (production)' });
    storeManifest('nokey', receiver.url);
    expect((await notify({ project: 'nokey', env: 'production', event: 'job.failed', reason: 'x' }, fast)).webhook.reason).toMatch(/no alert signing secret for nokey/);
    expect(receiver.requests).toHaveLength(0);
  });
});

describe('email alerts', () => {
  const env = () => ({ ...process.env, CODEB_SMTP_URL: smtp.url, CODEB_SMTP_FROM: 'codeb@ops.example' });

  it('mails the alert to every address in monitoring.alerts.email, beside the webhook', async () => {
    storeManifest('mailer', receiver.url, ['ops@example.com', 'oncall@example.com']);
    receiver.secret = (await ensureAlertSecret(registry, 'mailer')).secret;
    const d = await notify({ project: 'mailer', env: 'production', event: 'backup.missed', reason: 'no good backup since 2026-01-01', version: 'v3' }, { ...fast, env: env() });
    expect(d.email).toMatchObject({ result: 'sent', attempts: [{ status: 250 }] });
    expect(d.webhook.result).toBe('sent');
    expect(smtp.mails).toHaveLength(1);
    const m = smtp.mails[0]!;
    expect(m.from).toBe('codeb@ops.example');
    expect(m.to.sort()).toEqual(['oncall@example.com', 'ops@example.com']);
    expect(m.header('subject')).toBe('[codeb] backup.missed: mailer (production)');
    expect(m.header('x-codeb-event-id')).toBe(d.id);
    expect(m.raw).toContain('reason:  no good backup since 2026-01-01');
  });

  it('retries a mail server that is busy twice and delivers once', async () => {
    storeManifest('mailer', null, ['ops@example.com']);
    smtp.failNext = 2;
    const d = await notify({ project: 'mailer', env: 'production', event: 'job.failed', reason: 'exit 3' }, { ...fast, env: env() });
    expect(d.email.result).toBe('sent');
    expect(d.email.attempts.map((a) => a.status)).toEqual([451, 451, 250]);
    expect(smtp.refused).toBe(2);
    expect(smtp.mails).toHaveLength(1);
  });

  it('says so when no SMTP server is configured', async () => {
    storeManifest('mailer', null, ['ops@example.com']);
    const { CODEB_SMTP_URL: _u, ...without } = process.env;
    const d = await notify({ project: 'mailer', env: 'production', event: 'job.failed', reason: 'exit 3' }, { ...fast, env: without });
    expect(d.email).toMatchObject({ result: 'failed', reason: 'no SMTP server configured (set CODEB_SMTP_URL, see docs/monitoring.md)' });
    expect(smtp.mails).toHaveLength(0);
  });
});
