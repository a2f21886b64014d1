/**
 * notify() against a real HTTP receiver on loopback: the signed payload, retries with backoff that
 * deliver the event once, a refusal that is not retried, and the settings read from the
 * deployment's last applied manifest and the project's signing secret.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ensureAlertSecret } from '../../controller/ops/alert-secret.js';
import { notify } from '../../controller/ops/alerts.js';
import { storedManifestPath } from '../../controller/reconcile/manifest-store.js';
import { manifest } from './helpers/deploy.js';
import { WebhookReceiver } from './helpers/webhook-receiver.js';

const dir = mkdtempSync(join(tmpdir(), 'codeb-alerts-'));
const registry = join(dir, 'registry', 'projects.json');
const receiver = new WebhookReceiver();
const fast = { registry, backoffMs: 20, fetchTimeoutMs: 2000 };

function storeManifest(project: string, webhook: string | null): void {
  const file = storedManifestPath(registry, project, 'production');
  mkdirSync(join(file, '..'), { recursive: true });
  writeFileSync(file, manifest({ id: project, extra: webhook ? `monitoring:\n  alerts:\n    webhook: ${webhook}\n` : '' }));
}

beforeAll(async () => {
  await receiver.start();
  receiver.secret = (await ensureAlertSecret(registry, 'shop')).secret;
  storeManifest('shop', receiver.url);
});
afterAll(async () => {
  await receiver.close();
  rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => {
  receiver.requests.length = 0;
  receiver.events.length = 0;
  receiver.failNext = 0;
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
