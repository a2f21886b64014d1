import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { backoffDelays, buildPayload, describeDelivery, emailMessage, retryable, signBody, smtpFromEnv, smtpRetryable, webhookProblem, type ChannelResult } from '../../controller/ops/alerts.js';
import { verifySignature } from '../integration/helpers/webhook-receiver.js';

describe('alert payload and signature', () => {
  it('builds the documented payload with nulls for what is not known', () => {
    const p = buildPayload({ project: 'shop', env: 'production', event: 'deploy.gate_failed', reason: 'web: HTTP 500' }, new Date('2026-01-02T03:04:05Z'));
    expect(p).toEqual({ event: 'deploy.gate_failed', project: 'shop', env: 'production', version: null, reason: 'web: HTTP 500', url: null, time: '2026-01-02T03:04:05.000Z' });
  });

  it('strips credentials from URLs in the reason and keeps it short', () => {
    const p = buildPayload({ project: 'a', env: 'e', event: 'backup.failed', reason: `pg_dump postgres://app:hunter2secret@db/x ${'x'.repeat(5000)}` }, new Date(0));
    expect(p.reason).not.toContain('hunter2secret');
    expect(p.reason.length).toBe(2000);
  });

  it('signs the raw body with HMAC-SHA256 and the receiver check agrees', () => {
    const body = '{"event":"service.unhealthy"}';
    const sig = signBody(body, 'k'.repeat(32));
    expect(sig).toBe(`sha256=${createHmac('sha256', 'k'.repeat(32)).update(body).digest('hex')}`);
    expect(verifySignature(body, sig, 'k'.repeat(32))).toBe(true);
    expect(verifySignature(body + ' ', sig, 'k'.repeat(32))).toBe(false);
    expect(verifySignature(body, sig, 'j'.repeat(32))).toBe(false);
  });
});

describe('retries', () => {
  it.each([
    [1, 500, []],
    [4, 500, [500, 1000, 2000]],
    [3, 10, [10, 20]],
  ])('%i attempts with base %i ms pause %j', (n, base, want) => {
    expect(backoffDelays(n, base)).toEqual(want);
  });

  it.each([
    [{ error: 'ECONNREFUSED' }, true],
    [{ status: 500 }, true],
    [{ status: 503 }, true],
    [{ status: 429 }, true],
    [{ status: 408 }, true],
    [{ status: 400 }, false],
    [{ status: 401 }, false],
    [{ status: 404 }, false],
  ])('%j is retried: %s', (a, want) => {
    expect(retryable(a)).toBe(want);
  });
});

describe('webhook URL', () => {
  it.each([
    ['https://hooks.acme.io/codeb', null],
    ['https://hooks.example.com/codeb', 'hooks.example.com is a reserved example domain; put your receiver\'s URL in monitoring.alerts.webhook'],
    ['http://alerts.test:8080/x', 'alerts.test is a reserved example domain; put your receiver\'s URL in monitoring.alerts.webhook'],
    ['http://127.0.0.1:9/x', null],
    ['ftp://example.com/x', 'the webhook must be an http(s) URL, not ftp:'],
    ['not a url', 'the webhook "not a url" is not a URL'],
  ])('%s', (url, want) => {
    expect(webhookProblem(url)).toBe(want);
  });
});

describe('describeDelivery', () => {
  const base = { id: 'i', event: 'backup.failed' as const, project: 'p', env: 'e' };
  const unset = (ch: string): ChannelResult => ({ result: 'skipped', attempts: [], reason: `monitoring.alerts.${ch} is not set` });
  it.each<[ChannelResult, ChannelResult, string]>([
    [{ result: 'sent', attempts: [{ status: 200 }] }, unset('email'), 'alert backup.failed: sent to the webhook'],
    [{ result: 'sent', attempts: [{ status: 503 }, { status: 200 }] }, unset('email'), 'alert backup.failed: sent to the webhook after 2 attempts'],
    [unset('webhook'), unset('email'), 'alert backup.failed: not sent (monitoring.alerts.webhook is not set)'],
    [{ result: 'failed', attempts: [{ error: 'ECONNREFUSED' }, { status: 502 }] }, unset('email'), 'alert backup.failed: webhook NOT delivered after 2 attempts (last: HTTP 502)'],
    [unset('webhook'), { result: 'sent', attempts: [{ status: 250 }] }, 'alert backup.failed: sent to the email'],
    [{ result: 'sent', attempts: [{ status: 200 }] }, { result: 'failed', attempts: [], reason: 'no SMTP server configured' }, 'alert backup.failed: sent to the webhook; email NOT delivered (no SMTP server configured)'],
    [unset('webhook'), { result: 'failed', attempts: [{ status: 451 }, { status: 550 }] }, 'alert backup.failed: email NOT delivered after 2 attempts (last: SMTP 550)'],
  ])('%j %j', (webhook, email, want) => {
    expect(describeDelivery({ ...base, webhook, email })).toBe(want);
  });
});

describe('email', () => {
  it.each([
    [{}, 'no SMTP server configured (set CODEB_SMTP_URL, see docs/monitoring.md)'],
    [{ CODEB_SMTP_URL: 'mail.example.com' }, 'CODEB_SMTP_URL is not a URL (use smtp://[user:password@]host:port or smtps://...)'],
    [{ CODEB_SMTP_URL: 'http://mail.example.com' }, 'CODEB_SMTP_URL must start with smtp:// or smtps://, not http://'],
  ])('%j is refused', (env, problem) => {
    expect(smtpFromEnv(env)).toEqual({ problem });
  });

  it('takes the URL and sender from the environment', () => {
    expect(smtpFromEnv({ CODEB_SMTP_URL: 'smtp://127.0.0.1:2525', CODEB_SMTP_FROM: 'ops@example.com' })).toEqual({ url: 'smtp://127.0.0.1:2525', from: 'ops@example.com' });
  });

  it.each([
    [{ error: 'ECONNREFUSED' }, true],
    [{ status: 421 }, true],
    [{ status: 451 }, true],
    [{ status: 550 }, false],
    [{ status: 535 }, false],
  ])('SMTP %j is retried: %s', (a, want) => {
    expect(smtpRetryable(a)).toBe(want);
  });

  it('writes a subject that filters and the payload as text', () => {
    const p = buildPayload({ project: 'shop', env: 'production', event: 'service.unhealthy', reason: 'HTTP 502', url: 'https://shop.example.com/' }, new Date('2026-01-02T03:04:05Z'));
    const m = emailMessage(p, 'abc');
    expect(m.subject).toBe('[codeb] service.unhealthy: shop (production)');
    expect(m.text).toBe('service.unhealthy for shop (production)\n\nreason:  HTTP 502\nversion: -\nurl:     https://shop.example.com/\ntime:    2026-01-02T03:04:05.000Z\nevent id: abc\n');
  });
});
