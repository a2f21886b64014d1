/**
 * `codeb backup` against the real stack (Postgres, s3rver, Podman, Caddy): a backup of a database
 * with rows verifies to the same tables and row counts; a restore into a new database is served by
 * the app after the switch; a corrupted object fails verify with an alert; an object store cut
 * mid-upload and a SIGKILL mid-backup leave nothing counted good, and the next run succeeds;
 * retention keeps the newest good backup; `run --due` alerts a missed schedule and catches up.
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureAlertSecret } from '../../controller/ops/alert-secret.js';
import { updateRegistry } from '../../controller/registry/store.js';
import type { Settings } from '../../controller/settings.js';
import { FAST_DEPLOY, Sandbox, describeRun, json, parseEnvFile, pgQuery, s3, secretValues, viaCaddy } from './helpers/apply.js';
import { S3Proxy } from './helpers/s3-proxy.js';
import { appPorts, stackSettings, uniqueId } from './helpers/stack.js';
import { WebhookReceiver } from './helpers/webhook-receiver.js';

const box = new Sandbox('backup', { CODEB_PORT_RANGE: appPorts('5150-5179') });
const receiver = new WebhookReceiver();
const id = uniqueId('bk');
const ROWS = 500;
let settings: Settings;
let bucket: string;

interface Listed {
  id: string;
  status: 'good' | 'unfinished';
  tables: number | null;
  rows: number | null;
  lastVerify: { ok: boolean; problems: string[] } | null;
}

function manifest(webhook: string): string {
  return `apiVersion: codeb/v1
project:
  id: ${id}
environment:
  domain: ${id}.localhost
services:
  web:
    image: localhost/codeb-testapp:v1
    port: 8080
    healthCheck:
      http:
        interval: ${FAST_DEPLOY.healthInterval}
features:
  database: {}
  storage: true
monitoring:
  alerts:
    webhook: ${webhook}
backup:
  schedule: "0 3 * * *"
  retentionDays: 30
  include: [database, storage]
deploy:
  healthGate:
    deadline: ${FAST_DEPLOY.deadline}
    watchAfterSwitch: ${FAST_DEPLOY.watchAfterSwitch}
`;
}

/** SQL as the project's own role (DATABASE_URL), so the app can read what the test writes. */
async function asApp(sql: string): Promise<void> {
  const env = parseEnvFile(readFileSync(box.envFile(id), 'utf8'));
  const c = new pg.Client({ connectionString: env.DATABASE_URL, connectionTimeoutMillis: 5000 });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

async function list(): Promise<Listed[]> {
  const r = await box.run(['backup', 'list', id, '--json']);
  expect(r.code, describeRun(r)).toBe(0);
  return json<{ backups: Listed[] }>(r).backups;
}

const good = async () => (await list()).filter((b) => b.status === 'good').map((b) => b.id);

async function runBackup(env: NodeJS.ProcessEnv = {}): Promise<{ id: string; manifest: { database: { tables: Array<{ table: string; rows: number }> }; objects: Array<{ key: string }> } }> {
  const r = await box.run(['backup', 'run', id, '--json'], env);
  expect(r.code, describeRun(r)).toBe(0);
  return json(r);
}

async function keys(prefix: string): Promise<string[]> {
  const out: string[] = [];
  const stream = s3(settings).listObjects('backup', prefix, true);
  for await (const o of stream as AsyncIterable<{ name?: string }>) if (o.name) out.push(o.name);
  return out;
}

beforeAll(async () => {
  settings = box.useSettings(stackSettings());
  const url = await receiver.start();
  receiver.secret = (await ensureAlertSecret(box.registry, id)).secret;
  const r = await box.run(['apply', box.write('m.yaml', manifest(url))]);
  expect(r.code, describeRun(r)).toBe(0);
  bucket = box.record(id)!.buckets[0]!;
  await asApp(`CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL);
               INSERT INTO items (name) SELECT 'item ' || g FROM generate_series(1, ${ROWS}) g;
               CREATE TABLE notes (body text); INSERT INTO notes VALUES ('a'), ('b'), ('c');`);
  for (const [k, v] of [['a.txt', 'alpha'], ['dir/b.txt', 'beta']]) await s3(settings).putObject(bucket, k!, Buffer.from(v!));
}, 180_000);

afterAll(async () => {
  await box.run(['destroy', id, '--yes', '--delete-data']);
  for (const k of await keys(`${id}/`).catch(() => [])) await s3(settings).removeObject('backup', k).catch(() => {});
  await receiver.close();
  await box.close();
}, 120_000);

describe('codeb backup', () => {
  let first: string;

  it('backs up a database with rows and the bucket; verify restores the same tables and row counts', async () => {
    const b = await runBackup();
    first = b.id;
    expect(b.manifest.database.tables.map((t) => [t.table, t.rows])).toEqual([['items', ROWS], ['notes', 3]]);
    expect(b.manifest.objects.map((o) => o.key).sort()).toEqual(['database.dump', `storage/${bucket}/a.txt`, `storage/${bucket}/dir/b.txt`]);
    expect(await keys(`${id}/production/${first}/`)).toContain(`${id}/production/${first}/manifest.json`);

    const v = await box.run(['backup', 'verify', id, '--json']);
    expect(v.code, describeRun(v)).toBe(0);
    expect(json(v)).toMatchObject({ id: first, ok: true, tables: 2, rows: ROWS + 3, problems: [] });
    // The scratch database is gone, and the result is recorded beside the backup.
    expect(await pgQuery(settings, "SELECT datname FROM pg_database WHERE datname LIKE 'codeb_verify_%'")).toEqual([]);
    expect((await list()).find((x) => x.id === first)).toMatchObject({ status: 'good', tables: 2, rows: ROWS + 3, lastVerify: { ok: true } });
  }, 120_000);

  it('restores into a new database, and after the switch the app serves the restored rows', async () => {
    await asApp('DELETE FROM items WHERE id > 100');
    const before = box.record(id)!.database!;
    const live = await viaCaddy(settings, `${id}.localhost`, '/api/items');
    expect(JSON.parse(live.body).items).toHaveLength(100);

    const r = await box.run(['backup', 'restore', id, '--id', first, '--switch', '--json']);
    expect(r.code, describeRun(r)).toBe(0);
    const out = json<{ database: string; previousDatabase: string; switched: boolean }>(r);
    expect(out).toMatchObject({ previousDatabase: before, switched: true });
    expect(out.database).not.toBe(before);
    expect(box.record(id)!.database).toBe(out.database);
    expect(parseEnvFile(readFileSync(box.envFile(id), 'utf8')).DATABASE_URL).toMatch(new RegExp(`/${out.database}$`));

    const served = JSON.parse((await viaCaddy(settings, `${id}.localhost`, '/api/items')).body) as { database: string; items: unknown[] };
    expect(served.database).toBe(out.database);
    expect(served.items).toHaveLength(ROWS);
    // The previous database is kept until removed, and only a database the project does not use can be.
    expect(await pgQuery(settings, 'SELECT 1 FROM pg_database WHERE datname = $1', [before])).toHaveLength(1);
    const refused = await box.run(['backup', 'drop-database', id, '--database', out.database, '--yes']);
    expect(refused.code).toBe(2);
    const dropped = await box.run(['backup', 'drop-database', id, '--database', before, '--yes']);
    expect(dropped.code, describeRun(dropped)).toBe(0);
    expect(await pgQuery(settings, 'SELECT 1 FROM pg_database WHERE datname = $1', [before])).toHaveLength(0);
  }, 180_000);

  it('restores in place with --yes after a safety backup of the current state', async () => {
    await asApp('DELETE FROM items WHERE id > 10');
    const database = box.record(id)!.database;
    const r = await box.run(['backup', 'restore', id, '--id', first, '--in-place', '--yes', '--json']);
    expect(r.code, describeRun(r)).toBe(0);
    const out = json<{ database: string; inPlace: boolean; safetyBackup: string }>(r);
    expect(out).toMatchObject({ database, inPlace: true });
    expect((await list()).find((b) => b.id === out.safetyBackup)).toMatchObject({ status: 'good', rows: 10 + 3 });
    const served = JSON.parse((await viaCaddy(settings, `${id}.localhost`, '/api/items')).body) as { database: string; items: unknown[] };
    expect(served).toMatchObject({ database });
    expect(served.items).toHaveLength(ROWS);
  }, 120_000);

  it('refuses bad input with exit 2, changes nothing and alerts nobody', async () => {
    const rec = box.record(id)!;
    const alerts = receiver.events.length;
    const cases: Array<[string[], string]> = [
      [['backup', 'restore', id, '--id', first, '--in-place'], '--yes'],
      [['backup', 'restore', id], "required option '--id <id>'"],
      [['backup', 'verify', id, '--id', '../../etc'], 'Invalid backup id'],
      [['backup', 'run'], 'Which project?'],
      [['backup', 'run', id, '--due'], 'takes no project'],
      [['backup', 'switch', id, '--database', 'x; DROP DATABASE y'], 'Invalid database name'],
    ];
    for (const [args, says] of cases) {
      const r = await box.run(args);
      expect(r.code, describeRun(r)).toBe(2);
      expect(r.stderr).toContain(says);
    }
    expect(box.record(id)).toEqual(rec);
    expect(receiver.events).toHaveLength(alerts);
  }, 60_000);

  it('a corrupted backup object fails verify with exit 1 and a backup.failed alert', async () => {
    const b = await runBackup();
    const key = `${id}/production/${b.id}/database.dump`;
    const obj = await s3(settings).getObject('backup', key);
    const chunks: Buffer[] = [];
    for await (const c of obj as AsyncIterable<Buffer>) chunks.push(c);
    const bytes = Buffer.concat(chunks);
    const at = Math.floor(bytes.length / 2);
    bytes[at] = bytes[at]! ^ 0xff;
    await s3(settings).putObject('backup', key, bytes);

    const alertsBefore = receiver.of('backup.failed').length;
    const v = await box.run(['backup', 'verify', id, '--id', b.id]);
    expect(v.code, describeRun(v)).toBe(1);
    expect(v.stderr).toContain('database.dump: sha256 or size differs');
    const [alert] = (await receiver.waitFor('backup.failed', alertsBefore + 1)).slice(alertsBefore);
    expect(alert!.signatureOk).toBe(true);
    expect(alert!.payload).toMatchObject({ event: 'backup.failed', project: id, env: 'production' });
    expect(String(alert!.payload.reason)).toContain(b.id);
    expect((await list()).find((x) => x.id === b.id)!.lastVerify).toMatchObject({ ok: false });
    // Restore refuses it too.
    const restore = await box.run(['backup', 'restore', id, '--id', b.id]);
    expect(restore.code).toBe(1);
    expect(restore.stderr).toContain('is damaged');
  }, 120_000);

  it('object store unreachable during the upload: not marked good, exit 1, alert sent', async () => {
    const goodBefore = await good();
    const proxy = new S3Proxy(settings.storage.port, { match: /^PUT \/backup\/\S+\/database\.dump/, action: 'cut' });
    const port = await proxy.start();
    try {
      const alertsBefore = receiver.of('backup.failed').length;
      const r = await box.run(['backup', 'run', id], { CODEB_S3_PORT: String(port) });
      expect(proxy.triggered).not.toBeNull();
      expect(r.code, describeRun(r)).toBe(1);
      expect(r.stderr).toMatch(/Object storage \(S3\)/);
      const [alert] = (await receiver.waitFor('backup.failed', alertsBefore + 1)).slice(alertsBefore);
      expect(String(alert!.payload.reason)).toContain('backup of');
    } finally {
      await proxy.close();
    }
    expect(await good()).toEqual(goodBefore);
  }, 120_000);

  it('SIGKILL during a backup leaves nothing counted good; the next run succeeds', async () => {
    const goodBefore = await good();
    // Held at the last step: everything is uploaded and read back, only manifest.json is missing.
    const proxy = new S3Proxy(settings.storage.port, { match: /^PUT \/backup\/\S+\/manifest\.json/, action: 'hold' });
    const port = await proxy.start();
    const child = box.start(['backup', 'run', id], { CODEB_S3_PORT: String(port) });
    const done = box.finish(child);
    try {
      const line = await proxy.waitTriggered();
      child.kill('SIGKILL');
      const r = await done;
      expect(r.signal).toBe('SIGKILL');
      const killedId = /\/production\/([^/]+)\/manifest\.json/.exec(line)![1]!;
      expect(await keys(`${id}/production/${killedId}/`)).toContain(`${id}/production/${killedId}/database.dump`);
      expect((await list()).find((x) => x.id === killedId)).toMatchObject({ status: 'unfinished' });
      expect(await good()).toEqual(goodBefore);
      const v = await box.run(['backup', 'verify', id, '--id', killedId]);
      expect(v.code).toBe(1);
      expect(v.stderr).toContain('unfinished');
    } finally {
      await proxy.close();
    }
    const next = await runBackup();
    expect(await good()).toEqual([...goodBefore, next.id]);
  }, 120_000);

  it('retention deletes what is older than retentionDays, never the newest good one', async () => {
    const now = Date.now();
    const stamp = (daysAgo: number) => new Date(now - daysAgo * 86400_000).toISOString().replace(/[-:]/g, '');
    const old = [stamp(45), stamp(40)];
    const leftover = stamp(3);
    const src = `${id}/production/${first}/manifest.json`;
    for (const o of old) await s3(settings).copyObject('backup', `${id}/production/${o}/manifest.json`, `/backup/${src}`);
    await s3(settings).putObject('backup', `${id}/production/${leftover}/database.dump`, Buffer.from('half'));
    const r = await box.run(['backup', 'prune', id, '--json']);
    expect(r.code, describeRun(r)).toBe(0);
    expect(json<{ deleted: string[] }>(r).deleted.sort()).toEqual([...old, leftover].sort());
    const ids = (await list()).map((b) => b.id);
    for (const o of [...old, leftover]) expect(ids).not.toContain(o);
    expect(ids).toContain(first);
  }, 60_000);

  it('run --due alerts backup.missed once the schedule plus grace passed without a good backup, and catches up', async () => {
    for (const k of await keys(`${id}/production/`)) await s3(settings).removeObject('backup', k);
    await updateRegistry(box.registry, { command: 'test: backdate' }, (doc) => {
      doc.projects[id]!.environments.production!.createdAt = new Date(Date.now() - 3 * 86400_000).toISOString();
    });
    const missedBefore = receiver.of('backup.missed').length;
    const r = await box.run(['backup', 'run', '--due', '--json']);
    expect(r.code, describeRun(r)).toBe(0);
    const mine = json<{ deployments: Array<{ project: string; action: string; missed?: string }> }>(r).deployments.find((d) => d.project === id)!;
    expect(mine.action).toBe('backed-up');
    expect(mine.missed).toMatch(/T03:00:00.000Z$/);
    const [alert] = (await receiver.waitFor('backup.missed', missedBefore + 1)).slice(missedBefore);
    expect(alert!.payload).toMatchObject({ event: 'backup.missed', project: id, env: 'production' });
    expect(await good()).toHaveLength(1);
    // Caught up: nothing is due now, and the missed slot is not alerted again.
    const again = await box.run(['backup', 'run', '--due', '--json']);
    expect(json<{ deployments: Array<{ project: string; action: string }> }>(again).deployments.find((d) => d.project === id)!.action).toBe('not-due');
    expect(receiver.of('backup.missed')).toHaveLength(missedBefore + 1);
  }, 120_000);

  it('never prints a secret', () => {
    const env = parseEnvFile(readFileSync(box.envFile(id), 'utf8'));
    expect(box.outputs.length).toBeGreaterThan(5);
    for (const v of [...secretValues(env), settings.postgres.password ?? '', settings.storage.secretKey].filter((x) => x.length > 3)) {
      for (const out of box.outputs) expect(out).not.toContain(v);
    }
  });
});
