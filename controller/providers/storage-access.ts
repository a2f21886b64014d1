/**
 * Who can reach which bucket: what the configured object storage can do, and the bucket policies
 * codeb writes. Pure (no client, no I/O), so desired state, `registry inspect` and the provider
 * share one answer and the policy shapes get table tests.
 */
import type { Settings } from '../settings.js';

export type StorageSettings = Settings['storage'];
export type StorageKind = StorageSettings['kind'];

export interface StorageCapabilities {
  /** Bucket policies (public read for `features.storage.public`, per-deployment grants). */
  policies: boolean;
  /** Lifecycle rules (expiry of old backups in the shared backup bucket). */
  lifecycle: boolean;
  /**
   * A user and key pair per deployment that reaches only its own buckets. Without it every
   * deployment's env file carries the server's one key (`apply` and `registry inspect` say so).
   */
  perProjectKeys: boolean;
  note: string;
}

/** Secret names of a deployment's own key pair in its secret store (the env file's S3 key). */
export const STORAGE_KEY_SECRETS = { accessKey: 'storageAccessKey', secretKey: 'storageSecretKey' } as const;

/** What the configured object storage can do. */
export function storageCapabilities(settings: StorageSettings | Pick<Settings, 'storage'>): StorageCapabilities {
  const s = 'storage' in settings ? settings.storage : settings;
  switch (s.kind) {
    case 's3rver':
      return {
        policies: false,
        lifecycle: false,
        perProjectKeys: false,
        note:
          'shared key: s3rver has no users, so every project gets its one S3 key, which reaches every bucket ' +
          '(the backup bucket too). No bucket policies (public buckets need a real S3 server) and no lifecycle rules (old backups are not expired). ' +
          'For a key per project: CODEB_STACK_S3=radosgw on the local stack; on a server, a distribution with radosgw 17+ (Debian 13, Ubuntu 24.04), where `server init` sets up radosgw.',
      };
    case 'radosgw':
      return {
        policies: true,
        lifecycle: true,
        perProjectKeys: true,
        note:
          'own key: each project and environment gets a RADOS Gateway user whose key reaches only its own buckets; the backup bucket is codeb\'s alone. ' +
          'Bucket policies and lifecycle rules are applied by codeb.',
      };
    case 'minio':
      return {
        policies: true,
        lifecycle: true,
        perProjectKeys: false,
        note:
          'shared key: MinIO users need its admin API, which codeb does not drive yet, so every project gets the configured key, which reaches every bucket. ' +
          'Bucket policies and lifecycle rules are applied by codeb.',
      };
  }
}

/** The one line `apply` prints for a deployment with storage when the key is shared. */
export function sharedKeyNote(s: StorageSettings): string | null {
  if (storageCapabilities(s).perProjectKeys) return null;
  return `storage: ${s.kind} cannot make a key per project: S3_ACCESS_KEY/S3_SECRET_KEY are the server's shared key, which reaches every project's buckets and the backup bucket`;
}

const PUBLIC_READ_SID = 'CodebPublicRead';
const OWNER_SID = 'CodebOwner';

/**
 * What a deployment's own key may do in its bucket: objects and listing. Not the bucket itself
 * (policy, lifecycle, ACLs, deletion): that stays with codeb, so a tenant cannot widen its access.
 */
export const OWNER_ACTIONS = [
  's3:ListBucket',
  's3:ListBucketMultipartUploads',
  's3:GetBucketLocation',
  's3:GetObject',
  's3:PutObject',
  's3:DeleteObject',
  's3:AbortMultipartUpload',
  's3:ListMultipartUploadParts',
] as const;

/** The principal of a gateway user in a bucket policy (RGW without tenants). */
export function userPrincipal(user: string): string {
  return `arn:aws:iam:::user/${user}`;
}

interface Statement {
  Sid: string;
  Effect: 'Allow';
  Principal: { AWS: string[] };
  Action: string[];
  Resource: string[];
}

/** The bucket policy codeb wants: public read and/or the owner's grant; '' when neither (no policy). */
export function bucketPolicy(bucket: string, opts: { public: boolean; user: string | null }): string {
  const statements: Statement[] = [];
  if (opts.public) {
    // Objects readable by URL; the bucket is not listable anonymously.
    statements.push({ Sid: PUBLIC_READ_SID, Effect: 'Allow', Principal: { AWS: ['*'] }, Action: ['s3:GetObject'], Resource: [`arn:aws:s3:::${bucket}/*`] });
  }
  if (opts.user) {
    statements.push({
      Sid: OWNER_SID,
      Effect: 'Allow',
      Principal: { AWS: [userPrincipal(opts.user)] },
      Action: [...OWNER_ACTIONS],
      Resource: [`arn:aws:s3:::${bucket}`, `arn:aws:s3:::${bucket}/*`],
    });
  }
  return statements.length ? JSON.stringify({ Version: '2012-10-17', Statement: statements }) : '';
}

/** The read-only anonymous policy for a public bucket (objects readable, bucket not listable). */
export function publicReadPolicy(bucket: string): string {
  return bucketPolicy(bucket, { public: true, user: null });
}

const asList = (v: unknown): unknown[] => (Array.isArray(v) ? v : v === undefined ? [] : [v]);

function statements(policyJson: string): Array<Record<string, unknown>> {
  try {
    const doc = JSON.parse(policyJson) as { Statement?: unknown };
    return asList(doc.Statement).map((s) => (s ?? {}) as Record<string, unknown>);
  } catch {
    return [];
  }
}

const principals = (p: unknown): unknown[] => (p === '*' ? ['*'] : typeof p === 'object' && p !== null ? asList((p as { AWS?: unknown }).AWS) : []);

/** Does a bucket policy grant anyone (no credentials) s3:GetObject on the bucket's objects? */
export function policyGrantsPublicRead(policyJson: string, bucket: string): boolean {
  return statements(policyJson).some((st) => {
    if (st.Effect !== 'Allow' || st.Condition !== undefined) return false;
    const actions = asList(st.Action);
    const reads = actions.includes('s3:GetObject') || actions.includes('s3:*') || actions.includes('*');
    const covers = asList(st.Resource).some((r) => r === '*' || r === `arn:aws:s3:::${bucket}/*` || r === `arn:aws:s3:::${bucket}*`);
    return principals(st.Principal).includes('*') && reads && covers;
  });
}

/**
 * The user codeb's owner grant names, as observed: null when there is none, or when the policy holds
 * any other grant to a named user (a grant added by hand is drift that the next apply removes).
 */
export function policyOwner(policyJson: string): string | null {
  const named = statements(policyJson).filter((st) => st.Effect === 'Allow' && principals(st.Principal).some((p) => p !== '*'));
  if (named.length !== 1) return named.length ? `${named.length} users` : null;
  const st = named[0]!;
  const who = principals(st.Principal);
  const prefix = userPrincipal('');
  if (st.Sid !== OWNER_SID || who.length !== 1 || typeof who[0] !== 'string' || !who[0].startsWith(prefix)) return 'another grant';
  const actions = asList(st.Action);
  if (actions.length !== OWNER_ACTIONS.length || !OWNER_ACTIONS.every((a) => actions.includes(a))) return 'another grant';
  return who[0].slice(prefix.length);
}
