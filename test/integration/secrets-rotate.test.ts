/**
 * `codeb secrets rotate`: the old password stops working, the new one works, the env file is
 * rewritten, the containers are redeployed and healthy with it, and no secret is printed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { Redis } from 'ioredis';
import { appPorts, stackSettings, uniqueId } from './helpers/stack.js';
import { Sandbox, describeRun, fullManifest, parseEnvFile, reserveRedisDbs, secretValues, viaCaddy } from './helpers/apply.js';
import type { Settings } from '../../controller/settings.js';
import { readFileSync } from 'node:fs';

async function pgLogin(url: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 30_000 });
  try {
    await c.connect();
    await c.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => {});
  }
}

async function redisLogin(url: string): Promise<boolean> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 10_000 });
  r.on('error', () => {}); // a refused login is the expected answer here
  try {
    await r.connect();
    return (await r.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

describe('codeb secrets rotate', () => {
  const box = new Sandbox('rotate', { CODEB_PORT_RANGE: appPorts('5000-5089') });
  const id = uniqueId('rot');
  let settings: Settings;
  let manifest: string;

  beforeAll(async () => {
    settings = stackSettings();
    await reserveRedisDbs(settings, box.registry, 'secrets-rotate');
    manifest = box.write('m.yaml', fullManifest(id));
    const r = await box.run(['apply', manifest]);
    expect(r.code, describeRun(r)).toBe(0);
  }, 120_000);

  afterAll(async () => {
    await box.run(['destroy', id, '--yes', '--delete-data']);
    await box.close();
  }, 60_000);

  for (const secret of ['postgres', 'redis'] as const) {
    it(`rotates the ${secret} password and redeploys with it`, async () => {
      const before = parseEnvFile(readFileSync(box.envFile(id), 'utf8'));
      const key = secret === 'postgres' ? 'DATABASE_URL' : 'REDIS_URL';
      const login = secret === 'postgres' ? pgLogin : redisLogin;
      expect(await login(before[key]!)).toBe(true);
      const slotBefore = box.record(id)!.liveSlot;

      const r = await box.run(['secrets', 'rotate', id, secret]);
      expect(r.code, describeRun(r)).toBe(0);

      const after = parseEnvFile(readFileSync(box.envFile(id), 'utf8'));
      expect(after[key]).not.toBe(before[key]);
      expect(await login(before[key]!)).toBe(false);
      expect(await login(after[key]!)).toBe(true);
      const rec = box.record(id)!;
      expect(rec.liveSlot).not.toBe(slotBefore);
      expect(rec.history.filter((h) => h.action === 'deploy').at(-1)).toMatchObject({ result: 'ok' });
      const health = await viaCaddy(settings, `${id}.localhost`, '/api/health');
      expect(health.status).toBe(200);
      expect(JSON.parse(health.body)).toMatchObject({ database: 'ok', redis: 'ok' });
      for (const v of [...secretValues(before), ...secretValues(after)]) for (const out of box.outputs) expect(out).not.toContain(v);
    }, 120_000);
  }

  it('refuses an unknown secret with exit 2 and changes nothing', async () => {
    const envBefore = readFileSync(box.envFile(id), 'utf8');
    const r = await box.run(['secrets', 'rotate', id, 'bogus']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('Rotatable secrets: postgres, redis');
    expect(readFileSync(box.envFile(id), 'utf8')).toBe(envBefore);
  });
});
