/**
 * Per-project object-storage keys, through the built CLI against a real S3 server with users: a
 * RADOS Gateway (Debian 13's radosgw, dbstore backend) started by the local stack code in its cached
 * Debian 13 rootfs, beside the test stack's Postgres, Redis, Podman and forwarder.
 *
 * - Project A's key lists, reads and writes A's bucket; B's bucket (get, put, list, delete) and the
 *   backup bucket are AccessDenied with it; it cannot make buckets or change its bucket's policy.
 * - A second apply is a no-op; a user removed behind codeb's back is planned again.
 * - destroy --delete-data removes A's user: its key stops working.
 * - Public read and the owner grant share one bucket policy; the backup bucket keeps no expiry rule.
 * - The gateway also answers at its stack's services address (where containers reach it).
 * - No key is ever printed.
 * - On the s3rver stack (no users) apply and registry inspect say plainly that the key is shared.
 *
 * The gateway needs root (chroot); scripts/test.sh builds the rootfs before vitest.
 */
import { Client } from 'minio';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RgwAdmin } from '../../controller/providers/rgw-admin.js';
import { BACKUP_LIFECYCLE_RULE, StorageProvider } from '../../controller/providers/storage.js';
import { makeResource, type ExecContext } from '../../controller/reconcile/model.js';
import { planApply } from '../../controller/reconcile/plan.js';
import { storageUser } from '../../controller/manifest/names.js';
import type { Settings } from '../../controller/settings.js';
import { stopStack, upStack } from '../../controller/stack/index.js';
import { FAST_DEPLOY, Sandbox, describeRun, json, parseEnvFile, type Run } from './helpers/apply.js';
import { appPorts, siblingPool, stackSettings, uniqueId } from './helpers/stack.js';
import { SECOND_OFFSET, SECOND_STEP, TEST_CANDIDATES } from '../../scripts/lib/stack-ports.mjs';

const isRoot = process.getuid?.() === 0;
// Ports 4850-4899 belong to this file; the gateway's stack is the third of stack.test.ts's (TBASE + 2 * SECOND_STEP).
const box = new Sandbox('storage-keys', { CODEB_PORT_RANGE: appPorts('4850-4879') });
const sharedBox = new Sandbox('storage-shared', { CODEB_PORT_RANGE: appPorts('4880-4899') });
const rgwPortBase = Number(process.env.CODEB_TEST_STACK_PORT_BASE || TEST_CANDIDATES[0]! + SECOND_OFFSET) + 2 * SECOND_STEP;
const rgwStack = { dir: join(box.dir, 'rgw-stack'), settingsFile: join(box.dir, 'rgw-stack', 'settings.json'), portBase: rgwPortBase };

function manifest(id: string): string {
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
  storage:
    buckets: [uploads]
backup:
  include: [storage]
deploy:
  healthGate:
    deadline: ${FAST_DEPLOY.deadline}
    watchAfterSwitch: ${FAST_DEPLOY.watchAfterSwitch}
`;
}

function ok(r: Run, code = 0): Run {
  expect(r.code, describeRun(r)).toBe(code);
  return r;
}

/** The S3 error code of a failed call, or 'ok'. */
async function outcome(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
    return 'ok';
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}

async function text(s: NodeJS.ReadableStream): Promise<string> {
  let out = '';
  for await (const c of s) out += String(c);
  return out;
}

describe.skipIf(!isRoot)('per-project keys on a RADOS Gateway', () => {
  const a = uniqueId('ka');
  const b = uniqueId('kb');
  let settings: Settings;
  let admin: Client;
  let rgwAdmin: RgwAdmin;
  let rgwServicesAddress: string;
  const clientFor = (env: Record<string, string>) =>
    new Client({ endPoint: settings.storage.endPoint, port: settings.storage.port, useSSL: false, accessKey: env.S3_ACCESS_KEY!, secretKey: env.S3_SECRET_KEY!, region: env.S3_REGION, pathStyle: true, retryOptions: { disableRetry: true } } as ConstructorParameters<typeof Client>[0]);
  const envOf = (id: string) => parseEnvFile(readFileSync(box.envFile(id), 'utf8'));

  beforeAll(async () => {
    // A stack of its own beside the suite's: its own network pool too (services address, interface).
    const up = await upStack({ ...rgwStack, parts: ['s3'], env: { ...process.env, CODEB_STACK_S3: 'radosgw', CODEB_NETWORK_POOL: siblingPool(3) } });
    expect(up.settings.storage.kind).toBe('radosgw');
    rgwServicesAddress = up.settings.network.servicesAddress;
    settings = box.useSettings({ ...stackSettings(), storage: up.settings.storage });
    admin = new Client({ endPoint: settings.storage.endPoint, port: settings.storage.port, useSSL: false, accessKey: settings.storage.accessKey, secretKey: settings.storage.secretKey, region: settings.storage.region, pathStyle: true });
    rgwAdmin = new RgwAdmin(settings.storage.rgwAdmin!);
    ok(await box.run(['apply', box.write(`${a}.yaml`, manifest(a))]));
    ok(await box.run(['apply', box.write(`${b}.yaml`, manifest(b))]));
  }, 300_000);

  afterAll(async () => {
    for (const id of [a, b]) if (box.record(id)) await box.run(['destroy', id, '--yes', '--delete-data']);
    await stopStack(rgwStack);
    await box.close();
  }, 120_000);

  it('each project gets its own user and key, not the admin key, and apply says nothing about a shared key', async () => {
    const [ea, eb] = [envOf(a), envOf(b)];
    expect(ea.S3_ACCESS_KEY).toMatch(/^CB[0-9A-F]{18}$/);
    expect(new Set([ea.S3_ACCESS_KEY, eb.S3_ACCESS_KEY, settings.storage.accessKey]).size).toBe(3);
    expect(ea.S3_SECRET_KEY).not.toBe(settings.storage.secretKey);
    const user = await rgwAdmin.userInfo(storageUser(a, 'production'));
    expect(user?.accessKeys).toEqual([ea.S3_ACCESS_KEY]);
    expect(user?.maxBuckets).toBe(-1);
    expect(box.outputs.join('\n')).not.toContain('shared key');
  });

  it("A's key lists, reads and writes A's bucket only", async () => {
    const ea = envOf(a);
    const s3 = clientFor(ea);
    await s3.putObject(ea.S3_BUCKET!, 'hello.txt', 'from A');
    expect(await text(await s3.getObject(ea.S3_BUCKET!, 'hello.txt'))).toBe('from A');
    const listed = await s3.listObjectsQuery(ea.S3_BUCKET!, '', '', { Delimiter: '', MaxKeys: 100 });
    expect(listed.objects.map((o) => o.name)).toEqual(['hello.txt']);
    await s3.removeObject(ea.S3_BUCKET!, 'hello.txt');
    // Its bucket is codeb's: listing all buckets shows none of anyone's (B's and backup included).
    expect((await s3.listBuckets()).map((x) => x.name)).toEqual([]);
  });

  it("the gateway answers at the stack's services address too (where containers reach it): A's key works there", async () => {
    const ea = envOf(a);
    // The env file names the services address and the gateway's port; this gateway's stack has
    // a services address of its own (its own network pool), so the host checks it there.
    expect(Number(new URL(ea.S3_ENDPOINT!).port)).toBe(settings.storage.port);
    const at = new Client({ endPoint: rgwServicesAddress, port: settings.storage.port, useSSL: false, accessKey: ea.S3_ACCESS_KEY!, secretKey: ea.S3_SECRET_KEY!, region: ea.S3_REGION, pathStyle: true, retryOptions: { disableRetry: true } } as ConstructorParameters<typeof Client>[0]);
    await at.putObject(ea.S3_BUCKET!, 'via-services.txt', 'at the services address');
    expect(await text(await at.getObject(ea.S3_BUCKET!, 'via-services.txt'))).toBe('at the services address');
    await at.removeObject(ea.S3_BUCKET!, 'via-services.txt');
    expect(await outcome(() => at.listObjectsQuery(envOf(b).S3_BUCKET!, '', '', { Delimiter: '', MaxKeys: 1 }))).toBe('AccessDenied');
  });

  it("B's bucket and the backup bucket are AccessDenied with A's key; A cannot make buckets or widen its policy", async () => {
    const s3 = clientFor(envOf(a));
    const bBucket = envOf(b).S3_BUCKET!;
    await admin.putObject(bBucket, 'b-secret.txt', 'B data');
    await admin.putObject('backup', `${b}/dump.sql`, 'backup data');
    const denied = {
      'get B': await outcome(() => s3.getObject(bBucket, 'b-secret.txt')),
      'put B': await outcome(() => s3.putObject(bBucket, 'evil.txt', 'x')),
      'list B': await outcome(() => s3.listObjectsQuery(bBucket, '', '', { Delimiter: '', MaxKeys: 10 })),
      'delete in B': await outcome(() => s3.removeObject(bBucket, 'b-secret.txt')),
      'delete B': await outcome(() => s3.removeBucket(bBucket)),
      'get backup': await outcome(() => s3.getObject('backup', `${b}/dump.sql`)),
      'put backup': await outcome(() => s3.putObject('backup', 'evil.txt', 'x')),
      'list backup': await outcome(() => s3.listObjectsQuery('backup', '', '', { Delimiter: '', MaxKeys: 10 })),
      'delete in backup': await outcome(() => s3.removeObject('backup', `${b}/dump.sql`)),
      'make a bucket': await outcome(() => s3.makeBucket(`${a}-extra`, 'us-east-1')),
      'policy of its own bucket': await outcome(() => s3.setBucketPolicy(envOf(a).S3_BUCKET!, '')),
    };
    expect(denied).toEqual(Object.fromEntries(Object.keys(denied).map((k) => [k, 'AccessDenied'])));
    // Nothing moved: B's object and the backup are still there, with their content.
    expect(await text(await admin.getObject(bBucket, 'b-secret.txt'))).toBe('B data');
    expect(await text(await admin.getObject('backup', `${b}/dump.sql`))).toBe('backup data');
  });

  it('a second apply is a no-op; a user removed behind codeb\'s back is planned and made again', async () => {
    const again = json<{ applied: boolean; steps: Array<{ kind: string; op: string }> }>(ok(await box.run(['apply', join(box.dir, `${a}.yaml`), '--json'])));
    expect(again.applied).toBe(false);
    expect(again.steps.filter((s) => s.kind.startsWith('storage.')).map((s) => s.op)).toEqual(['unchanged', 'unchanged', 'unchanged']);

    await rgwAdmin.removeUser(storageUser(a, 'production'));
    const plan = json<{ actions: Array<{ key: string; op: string }> }>(ok(await box.run(['plan', join(box.dir, `${a}.yaml`), '--json']), 10));
    // Only the user: the bucket's grant names it by id and reaches it again once it exists.
    expect(plan.actions.filter((x) => x.op !== 'unchanged').map((x) => `${x.op} ${x.key}`)).toEqual([`create storage.user/${storageUser(a, 'production')}`]);
    ok(await box.run(['apply', join(box.dir, `${a}.yaml`)]));
    const ea = envOf(a);
    await clientFor(ea).putObject(ea.S3_BUCKET!, 'back.txt', 'again');
  });

  it('destroy --delete-data removes the user: its key stops working', async () => {
    const ea = envOf(a);
    ok(await box.run(['destroy', a, '--yes', '--delete-data']));
    expect(await rgwAdmin.userInfo(storageUser(a, 'production'))).toBeNull();
    expect(await outcome(() => clientFor(ea).listObjectsQuery('backup', '', '', { Delimiter: '', MaxKeys: 1 }))).toBe('InvalidAccessKeyId');
    expect(existsSync(box.envFile(a))).toBe(false);
    // B is untouched.
    const eb = envOf(b);
    expect(await text(await clientFor(eb).getObject(eb.S3_BUCKET!, 'b-secret.txt'))).toBe('B data');
  });

  it('public read and the owner grant live side by side in one policy', async () => {
    const eb = envOf(b);
    const bucket = eb.S3_BUCKET!;
    const user = storageUser(b, 'production');
    const provider = new StorageProvider(settings.storage);
    const ctx: ExecContext = { secret: () => '', progress: () => {} };
    const want = (pub: boolean) => makeResource('storage.bucket', bucket, { public: pub, user }, [], true);
    const anonymous = () => fetch(`http://${settings.storage.endPoint}:${settings.storage.port}/${bucket}/b-secret.txt`).then((r) => r.status);
    expect(await anonymous()).toBe(403);
    const [open] = planApply([want(true)], await provider.observe([want(true)]));
    expect(open!.changes).toEqual([{ field: 'public', from: false, to: true }]);
    await provider.execute(open!, ctx);
    expect(await anonymous()).toBe(200);
    expect(await text(await clientFor(eb).getObject(bucket, 'b-secret.txt'))).toBe('B data');
    const [close] = planApply([want(false)], await provider.observe([want(false)]));
    await provider.execute(close!, ctx);
    expect(await anonymous()).toBe(403);
    expect(planApply([want(false)], await provider.observe([want(false)]))[0]!.op).toBe('unchanged');
  });

  it('the backup bucket keeps no expiry rule: an earlier codeb rule is removed, another rule is kept (codeb prunes backups itself)', async () => {
    const ruleIds = async () => [(await admin.getBucketLifecycle('backup').catch(() => null))?.Rule ?? []].flat().map((r) => r.ID);
    const expiry = (ID: string, Prefix: string) => ({ ID, Status: 'Enabled', Filter: { Prefix }, Expiration: { Days: 30 } });
    await admin.setBucketLifecycle('backup', { Rule: [expiry(BACKUP_LIFECYCLE_RULE, ''), expiry('someone-elses', 'tmp/')] } as never);
    expect(await ruleIds()).toEqual(expect.arrayContaining([BACKUP_LIFECYCLE_RULE, 'someone-elses']));
    const provider = new StorageProvider(settings.storage);
    const backup = makeResource('storage.bucket', 'backup', { public: false, shared: true }, [], true);
    const messages: string[] = [];
    await provider.execute({ op: 'create', key: backup.key, kind: backup.kind, name: backup.name, reason: 'test', changes: [], resource: backup }, { secret: () => '', progress: (m) => messages.push(m) });
    expect(await ruleIds()).toEqual(['someone-elses']);
    expect(messages.join('\n')).toContain(`removing the old expiry rule ${BACKUP_LIFECYCLE_RULE}`);
  });

  it('no key is ever printed', () => {
    expect(box.outputs.length).toBeGreaterThan(5);
    const printed = box.outputs.join('\n');
    for (const s of [settings.storage.secretKey, envOf(b).S3_SECRET_KEY!]) expect(printed).not.toContain(s);
  });
});

// The test stack runs s3rver unless it was started with CODEB_STACK_S3=radosgw.
describe.skipIf(stackSettings().storage.kind !== 's3rver')('shared key on s3rver', () => {
  const id = uniqueId('ks');

  afterAll(async () => {
    if (sharedBox.record(id)) await sharedBox.run(['destroy', id, '--yes', '--delete-data']);
    await sharedBox.close();
  }, 120_000);

  it('apply and registry inspect say plainly that the key is shared', async () => {
    const settings = sharedBox.useSettings(stackSettings());
    const applied = ok(await sharedBox.run(['apply', sharedBox.write(`${id}.yaml`, manifest(id))]));
    expect(applied.stdout + applied.stderr).toMatch(/note: storage: s3rver cannot make a key per project: .*shared key/);
    const env = parseEnvFile(readFileSync(sharedBox.envFile(id), 'utf8'));
    expect(env.S3_ACCESS_KEY).toBe(settings.storage.accessKey);
    const inspect = ok(await sharedBox.run(['registry', 'inspect', id]));
    expect(inspect.stdout).toMatch(/storage access: shared key/);
    const inspectJson = json<{ storage: { perProjectKeys: boolean; note: string } }>(ok(await sharedBox.run(['registry', 'inspect', id, '--json'])));
    expect(inspectJson.storage).toMatchObject({ perProjectKeys: false, note: expect.stringMatching(/^shared key/) });
    expect(sharedBox.outputs.join('\n')).not.toContain(settings.storage.secretKey);
  });
});
