/**
 * Who reaches which bucket, as pure data: the capabilities per S3 server, the bucket policies codeb
 * writes and reads back, the radosgw-admin argument lists (no secret on a command line), and which
 * S3 server the local stack runs.
 */
import { describe, expect, it } from 'vitest';
import {
  bucketPolicy,
  OWNER_ACTIONS,
  policyGrantsPublicRead,
  policyOwner,
  sharedKeyNote,
  storageCapabilities,
  userPrincipal,
  type StorageSettings,
} from '../../controller/providers/storage-access.js';
import { answered, checkUserId, keyEnv, parseUser, rgwArgs } from '../../controller/providers/rgw-admin.js';
import { storageUser } from '../../controller/manifest/names.js';
import { chooseS3Kind } from '../../controller/stack/layout.js';

const base: StorageSettings = { endPoint: '127.0.0.1', port: 29000, useSSL: false, accessKey: 'AK', secretKey: 'SK', region: 'us-east-1', kind: 's3rver' };

describe('storage capabilities and the shared-key note', () => {
  it.each([
    ['s3rver', { policies: false, lifecycle: false, perProjectKeys: false }, 'shared key'],
    ['radosgw', { policies: true, lifecycle: true, perProjectKeys: true }, 'own key'],
    ['minio', { policies: true, lifecycle: true, perProjectKeys: false }, 'shared key'],
  ] as const)('%s', (kind, caps, note) => {
    const c = storageCapabilities({ ...base, kind });
    expect(c).toMatchObject(caps);
    expect(c.note.startsWith(note)).toBe(true);
    const line = sharedKeyNote({ ...base, kind });
    if (caps.perProjectKeys) expect(line).toBeNull();
    else expect(line).toMatch(/shared key, which reaches every project's buckets and the backup bucket/);
  });
});

describe('bucket policies', () => {
  const user = 'codeb.shop.production';

  it.each([
    [{ public: false, user: null }, false, null],
    [{ public: true, user: null }, true, null],
    [{ public: false, user }, false, user],
    [{ public: true, user }, true, user],
  ] as const)('%j reads back as public=%s user=%s', (want, isPublic, owner) => {
    const p = bucketPolicy('shop-uploads', want);
    expect(p === '').toBe(!want.public && !want.user);
    expect(policyGrantsPublicRead(p, 'shop-uploads')).toBe(isPublic);
    expect(policyOwner(p)).toBe(owner);
  });

  it('the owner gets objects and listing of its own bucket only, never the bucket policy or deletion', () => {
    const doc = JSON.parse(bucketPolicy('shop-uploads', { public: false, user })) as { Statement: Array<Record<string, unknown>> };
    expect(doc.Statement).toEqual([
      {
        Sid: 'CodebOwner',
        Effect: 'Allow',
        Principal: { AWS: [userPrincipal(user)] },
        Action: [...OWNER_ACTIONS],
        Resource: ['arn:aws:s3:::shop-uploads', 'arn:aws:s3:::shop-uploads/*'],
      },
    ]);
    for (const a of ['s3:*', 's3:PutBucketPolicy', 's3:DeleteBucket', 's3:PutLifecycleConfiguration', 's3:PutBucketAcl']) expect(OWNER_ACTIONS).not.toContain(a);
  });

  it('grants added by hand are drift, not the owner', () => {
    const extra = (statements: unknown[]) => JSON.stringify({ Version: '2012-10-17', Statement: statements });
    const ours = (JSON.parse(bucketPolicy('b', { public: false, user })) as { Statement: unknown[] }).Statement[0] as Record<string, unknown>;
    expect(policyOwner(extra([ours, { ...ours, Sid: 'Mine', Principal: { AWS: [userPrincipal('other')] } }]))).toBe('2 users');
    expect(policyOwner(extra([{ ...ours, Action: ['s3:*'] }]))).toBe('another grant');
    expect(policyOwner(extra([{ ...ours, Sid: 'Hand' }]))).toBe('another grant');
    expect(policyOwner('not json')).toBeNull();
    expect(policyGrantsPublicRead(extra([{ Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: 'arn:aws:s3:::b/*', Condition: {} }]), 'b')).toBe(false);
  });
});

describe('radosgw-admin commands', () => {
  it('are argument lists with the key only in CEPH_ARGS (the environment), never on the command line', () => {
    const id = storageUser('shop', 'production');
    expect(id).toBe('codeb.shop.production');
    expect(rgwArgs.userCreate(id, 'codeb deployment codeb.shop.production', -1)).toEqual([
      'user',
      'create',
      '--uid=codeb.shop.production',
      '--display-name=codeb deployment codeb.shop.production',
      '--max-buckets=-1',
      '--key-type=s3',
    ]);
    expect(rgwArgs.keyCreate(id)).toEqual(['key', 'create', '--uid=codeb.shop.production', '--key-type=s3']);
    expect(rgwArgs.keyRemove(id, 'CBOLDKEY0000')).toEqual(['key', 'rm', '--uid=codeb.shop.production', '--key-type=s3', '--access-key=CBOLDKEY0000']);
    expect(rgwArgs.userRemove(id)).toEqual(['user', 'rm', '--uid=codeb.shop.production']);
    expect(keyEnv({ accessKey: 'CB0123456789ABCDEF01', secretKey: 'abc_DEF-123456789' })).toEqual({ CEPH_ARGS: '--access-key CB0123456789ABCDEF01 --secret-key abc_DEF-123456789' });
  });

  it('refuse ids and keys that could smuggle options', () => {
    for (const bad of ['', '-uid', 'a b', 'a$b', 'A', 'x'.repeat(64)]) expect(() => checkUserId(bad)).toThrow(/not a valid RADOS Gateway user id/);
    expect(() => keyEnv({ accessKey: 'CB01234567', secretKey: 'x --caps=*' })).toThrow(/cannot pass safely/);
    expect(rgwArgs.userCreate('x', 'a=b;c', 0)[3]).toBe('--display-name=a_b_c');
  });

  it('user JSON: compares the key pair without keeping the secret', () => {
    const u = parseUser(JSON.stringify({ user_id: 'u', max_buckets: -1, suspended: 0, keys: [{ access_key: 'AK1', secret_key: 'S1' }] }), 'u');
    expect(u.accessKeys).toEqual(['AK1']);
    expect(u.hasKey({ accessKey: 'AK1', secretKey: 'S1' })).toBe(true);
    expect(u.hasKey({ accessKey: 'AK1', secretKey: 'S2' })).toBe(false);
    expect(JSON.stringify(u)).not.toContain('S1');
    expect(u.maxBuckets).toBe(-1);
  });
});

describe('which S3 server the stack runs', () => {
  it.each([
    [undefined, undefined, 's3rver'],
    ['', 'radosgw', 'radosgw'],
    [undefined, 's3rver', 's3rver'],
    ['radosgw', 's3rver', 'radosgw'],
    ['s3rver', 'radosgw', 's3rver'],
    [undefined, 'minio', 's3rver'],
  ] as const)('env %s, settings %s -> %s', (env, settings, want) => {
    expect(chooseS3Kind(env, settings)).toBe(want);
  });

  it('an unknown CODEB_STACK_S3 is invalid input', () => {
    expect(() => chooseS3Kind('minio', undefined)).toThrow(expect.objectContaining({ exitCode: 2, message: expect.stringContaining('CODEB_STACK_S3=minio') }));
  });
});

describe('radosgw-admin answers', () => {
  it.each([
    ['', '', null],
    ['{"user_id": "u",', '', null],
    ['{"user_id": "u"}\n', '', 0],
    ['', 'did not load config file\n', null],
    ['', 'could not fetch user info: no user info saved\n', 22],
  ] as const)('stdout %j stderr %j -> %s', (stdout, stderr, code) => {
    expect(answered(stdout, stderr)).toBe(code);
  });
});
