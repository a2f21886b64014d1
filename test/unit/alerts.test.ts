import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { backoffDelays, buildPayload, describeDelivery, retryable, signBody, webhookProblem, type AlertDelivery } from '../../controller/ops/alerts.js';
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
    ['https://hooks.example.com/codeb', null],
    ['http://127.0.0.1:9/x', null],
    ['ftp://example.com/x', 'the webhook must be an http(s) URL, not ftp:'],
    ['not a url', 'the webhook "not a url" is not a URL'],
  ])('%s', (url, want) => {
    expect(webhookProblem(url)).toBe(want);
  });
});

describe('describeDelivery', () => {
  const base = { id: 'i', event: 'backup.failed' as const, project: 'p', env: 'e' };
  it.each<[AlertDelivery['webhook'], string]>([
    [{ result: 'sent', attempts: [{ status: 200 }] }, 'alert backup.failed: sent to the webhook'],
    [{ result: 'sent', attempts: [{ status: 503 }, { status: 200 }] }, 'alert backup.failed: sent to the webhook after 2 attempts'],
    [{ result: 'skipped', attempts: [], reason: 'monitoring.alerts.webhook is not set' }, 'alert backup.failed: not sent (monitoring.alerts.webhook is not set)'],
    [{ result: 'failed', attempts: [{ error: 'ECONNREFUSED' }, { status: 502 }] }, 'alert backup.failed: NOT delivered after 2 attempts (last: HTTP 502)'],
  ])('%j', (webhook, want) => {
    expect(describeDelivery({ ...base, webhook })).toBe(want);
  });
});
