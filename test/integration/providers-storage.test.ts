/**
 * StorageProvider against the real object storage of the local stack (s3rver; the same tests run
 * against a MinIO when settings.storage.kind is "minio", plus the policy and lifecycle checks only a
 * MinIO can answer): create twice plans nothing the second time, a bucket removed behind codeb's
 * back is seen, deleting a bucket empties it page by page first, public buckets on s3rver fail
 * clearly, the shared backup bucket is never deleted, and an unreachable server gives
 * ServiceUnavailableError.
 */
import { Client } from 'minio';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CodebError, ServiceUnavailableError } from '../../controller/errors.js';
import { BACKUP_BUCKET } from '../../controller/manifest/names.js';
import { BACKUP_LIFECYCLE_RULE, StorageProvider, policyGrantsPublicRead, publicReadPolicy, storageCapabilities } from '../../controller/providers/storage.js';
import { makeResource, type Action, type ExecContext, type Resource } from '../../controller/reconcile/model.js';
import { planApply, planDestroy } from '../../controller/reconcile/plan.js';
import type { Settings } from '../../controller/settings.js';
import { freePort, stackSettings, uniqueId } from './helpers/stack.js';

// Read at load time so MinIO-only tests show as skipped (not silently passed) on s3rver.
const settings: Settings = stackSettings();
let provider: StorageProvider;
let s3: Client;
const run = uniqueId('st');
const made = new Set<string>();
const messages: string[] = [];
const ctx: ExecContext = { secret: () => '', progress: (m) => messages.push(m) };

function bucket(tag: string, isPublic = false): Resource {
  const name = `${run}-${tag}`;
  made.add(name);
  return makeResource('storage.bucket', name, { public: isPublic }, [], true);
}

async function apply(r: Resource): Promise<Action> {
  const [a] = planApply([r], await provider.observe([r]));
  await provider.execute(a!, ctx);
  return a!;
}

async function plan(r: Resource): Promise<Action> {
  return planApply([r], await provider.observe([r]))[0]!;
}

async function put(name: string, count: number): Promise<void> {
  for (let i = 0; i < count; i += 50) {
    await Promise.all(Array.from({ length: Math.min(50, count - i) }, (_, j) => s3.putObject(name, `dir-${(i + j) % 7}/obj-${i + j}.txt`, Buffer.from(`object ${i + j}`))));
  }
}

beforeAll(() => {
  provider = new StorageProvider(settings.storage);
  const { kind: _kind, ...opts } = settings.storage;
  s3 = new Client({ ...opts, pathStyle: true });
});

afterAll(async () => {
  for (const name of made) {
    const r = makeResource('storage.bucket', name, {}, [], true);
    for (const a of planDestroy([r], await provider.observe([r]), true)) if (a.op === 'delete') await provider.execute(a, ctx);
  }
  await provider?.close();
});

describe('StorageProvider (real object storage)', () => {
  it('creates a private bucket once: the second plan is unchanged and a repeated create is harmless', async () => {
    const r = bucket('uploads');
    expect((await plan(r)).op).toBe('create');
    const first = await apply(r);
    expect(first.op).toBe('create');
    expect(await s3.bucketExists(r.name)).toBe(true);
    const second = await plan(r);
    expect(second.op, JSON.stringify(second.changes)).toBe('unchanged');
    await provider.execute(first, ctx); // a crashed apply run again
    expect((await plan(r)).op).toBe('unchanged');
    expect((await provider.observe([r]))[0]).toEqual({ key: r.key, exists: true, spec: { public: false, user: null } });
  });

  it('sees a bucket removed behind its back, and creates it again', async () => {
    const r = bucket('gone');
    await apply(r);
    await s3.removeBucket(r.name);
    expect((await provider.observe([r]))[0]).toEqual({ key: r.key, exists: false });
    expect((await plan(r)).op).toBe('create');
    await apply(r);
    expect((await plan(r)).op).toBe('unchanged');
  });

  it('deletes a bucket holding objects (more than one page) by emptying it first; deleting again is a no-op', async () => {
    const r = bucket('full');
    await apply(r);
    await put(r.name, 1234);
    const owned = makeResource('storage.bucket', r.name, {}, [], true);

    // a destroy without --delete-data keeps it
    const [kept] = planDestroy([owned], await provider.observe([owned]), false);
    expect(kept!.op).toBe('keep');

    const [del] = planDestroy([owned], await provider.observe([owned]), true);
    expect(del!.op).toBe('delete');
    await provider.execute(del!, ctx);
    expect(await s3.bucketExists(r.name)).toBe(false);
    expect(messages.some((m) => m.startsWith(`bucket ${r.name} deleted`))).toBe(true);
    await provider.execute(del!, ctx);
    expect((await provider.observe([owned]))[0]!.exists).toBe(false);
  }, 120_000);

  it('never deletes the shared backup bucket', async () => {
    const backup = makeResource('storage.bucket', BACKUP_BUCKET, { public: false, shared: true }, [], true);
    await apply(backup); // shared: created when missing, kept by everyone
    expect((await plan(backup)).op).toBe('unchanged');
    // a create on the existing bucket converges (and says where expiry is not available)
    const create: Action = { op: 'create', key: backup.key, kind: backup.kind, name: backup.name, reason: 'test', changes: [], resource: backup };
    await provider.execute(create, ctx);
    if (settings.storage.kind === 's3rver') expect(messages.some((m) => m.includes('s3rver has no lifecycle rules'))).toBe(true);
    const del: Action = { ...create, op: 'delete' };
    await expect(provider.execute(del, ctx)).rejects.toThrow(/shared bucket backup/);
    expect(await s3.bucketExists(BACKUP_BUCKET)).toBe(true);
  });

  it.runIf(settings.storage.kind === 's3rver')('on s3rver: a public bucket fails clearly, before anything is created', async () => {
    const r = bucket('public', true);
    const err = await apply(r).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CodebError);
    expect((err as CodebError).message).toMatch(/public buckets need a real S3 server/);
    expect((err as CodebError).hint).toMatch(/features\.storage\.public/);
    expect(await s3.bucketExists(r.name)).toBe(false);
  });

  // s3rver has neither policies nor lifecycle (see storageCapabilities): these run against a MinIO or
  // a RADOS Gateway only (storage-keys.test.ts runs its own gateway for the policy checks).
  it.runIf(storageCapabilities(settings).policies)('with policies: public read policy and backup expiry are applied and observed', async () => {
    const r = bucket('pub', true);
    await apply(r);
    expect((await provider.observe([r]))[0]!.spec).toEqual({ public: true, user: null });
    expect((await plan(r)).op).toBe('unchanged');
    await s3.putObject(r.name, 'hello.txt', Buffer.from('hi'));
    const anon = await fetch(`${settings.storage.useSSL ? 'https' : 'http'}://${settings.storage.endPoint}:${settings.storage.port}/${r.name}/hello.txt`);
    expect(anon.status).toBe(200);
    const priv = makeResource('storage.bucket', r.name, { public: false }, [], true);
    const change = await plan(priv);
    expect(change.changes).toEqual([{ field: 'public', from: true, to: false }]);
    await provider.execute(change, ctx);
    expect((await plan(priv)).op).toBe('unchanged');
    const lifecycle = await s3.getBucketLifecycle(BACKUP_BUCKET);
    expect([lifecycle?.Rule ?? []].flat().some((x) => x.ID === BACKUP_LIFECYCLE_RULE)).toBe(true);
  });

  it('an unreachable server is a ServiceUnavailableError naming it', async () => {
    const port = await freePort();
    const p = new StorageProvider({ ...settings.storage, endPoint: '127.0.0.1', port });
    const err = await p.observe([makeResource('storage.bucket', `${run}-x`, { public: false })]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServiceUnavailableError);
    expect((err as Error).message).toContain('Object storage (S3)');
    expect((err as Error).message).toContain(`127.0.0.1:${port}`);
  });

  it('wrong credentials are a CodebError that says to check the keys', async () => {
    const p = new StorageProvider({ ...settings.storage, accessKey: 'not-a-key' });
    const err = await p.observe([makeResource('storage.bucket', `${run}-x`, { public: false })]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CodebError);
    expect(err).not.toBeInstanceOf(ServiceUnavailableError);
    expect((err as CodebError).hint ?? '').toMatch(/accessKey/);
  });
});

describe('storage capabilities and policies (pure)', () => {
  it('says what s3rver lacks and what MinIO has', () => {
    const local = storageCapabilities({ ...settingsLike(), kind: 's3rver' });
    expect(local).toMatchObject({ policies: false, lifecycle: false, perProjectKeys: false });
    expect(local.note).toMatch(/^shared key/);
    expect(storageCapabilities({ storage: { ...settingsLike(), kind: 'minio' } })).toMatchObject({ policies: true, lifecycle: true, perProjectKeys: false });
  });

  it('recognises an anonymous read policy, and only that', () => {
    expect(policyGrantsPublicRead(publicReadPolicy('b'), 'b')).toBe(true);
    expect(policyGrantsPublicRead(publicReadPolicy('b'), 'other')).toBe(false);
    const writeOnly = JSON.stringify({ Statement: [{ Effect: 'Allow', Principal: '*', Action: 's3:PutObject', Resource: 'arn:aws:s3:::b/*' }] });
    expect(policyGrantsPublicRead(writeOnly, 'b')).toBe(false);
    const mc = JSON.stringify({ Statement: [{ Effect: 'Allow', Principal: { AWS: '*' }, Action: ['s3:GetObject'], Resource: ['arn:aws:s3:::b/*'] }] });
    expect(policyGrantsPublicRead(mc, 'b')).toBe(true);
    expect(policyGrantsPublicRead('not json', 'b')).toBe(false);
  });
});

function settingsLike(): Settings['storage'] {
  return { endPoint: '127.0.0.1', port: 9000, useSSL: false, accessKey: 'a', secretKey: 'b', region: 'us-east-1', kind: 's3rver' };
}
