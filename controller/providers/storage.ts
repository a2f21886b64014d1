/**
 * Object storage (S3) provider: buckets on MinIO, or on s3rver in the local stack, through the
 * `minio` client (plain S3 API), so the same code works against a real MinIO unchanged.
 *
 * Kind `storage.bucket` (name = bucket, spec `{ public: boolean, shared?: true }`, holds data):
 * - observe: does the bucket exist, and is it public (a bucket policy granting anonymous
 *   s3:GetObject). s3rver has no bucket policies: there every bucket is reported private.
 * - create: make the bucket (region from the settings), private by default; `public: true` sets a
 *   read-only anonymous policy. On s3rver a public bucket fails with a CodebError before anything is
 *   created (public buckets need a real MinIO). The shared `backup` bucket gets a lifecycle rule that
 *   expires objects after `backupRetentionDays` (30) where the server supports lifecycle (MinIO).
 * - update: only `public` can differ: set or remove the anonymous read policy.
 * - delete (explicit data-deleting destroy only): remove every object, page by page, then the bucket.
 *   The shared backup bucket is never deleted here.
 *
 * What only a real MinIO can check (see docs/providers.md): policies, lifecycle, per-project keys.
 */
import type { Client, LifecycleConfig } from 'minio';
import { lazyModule } from '../lazy-module.js';

const minio = lazyModule<typeof import('minio')>('minio');
import { BACKUP_BUCKET } from '../manifest/names.js';
import { CodebError, ServiceUnavailableError } from '../errors.js';
import type { Action, ExecContext, Observed, Provider, Resource } from '../reconcile/model.js';
import type { Settings } from '../settings.js';

export type StorageSettings = Settings['storage'];

export interface StorageCapabilities {
  /** Bucket policies (public read for `features.storage.public`). */
  policies: boolean;
  /** Lifecycle rules (expiry of old backups in the shared backup bucket). */
  lifecycle: boolean;
  /** An access key per project; needs MinIO's admin API (not the S3 API). */
  perProjectKeys: boolean;
  note: string;
}

/** What the configured object storage can do; `codeb registry inspect` shows it next to a bucket. */
export function storageCapabilities(settings: StorageSettings | Pick<Settings, 'storage'>): StorageCapabilities {
  const s = 'storage' in settings ? settings.storage : settings;
  if (s.kind === 's3rver') {
    return {
      policies: false,
      lifecycle: false,
      perProjectKeys: false,
      note:
        'Local s3rver: buckets and objects only. No bucket policies (every bucket is private; public buckets need a real MinIO), ' +
        'no lifecycle rules (old backups are not expired), no admin API (all projects share the stack key).',
    };
  }
  return {
    policies: true,
    lifecycle: true,
    perProjectKeys: false,
    note:
      'MinIO: bucket policies and lifecycle rules are applied by codeb. Per-project access keys need the MinIO admin API ' +
      '(mc admin user/policy), which codeb does not drive yet: projects get the configured key until it does.',
  };
}

export interface StorageProviderOptions {
  /** Days after which objects in the shared backup bucket expire (lifecycle; MinIO only). */
  backupRetentionDays?: number;
}

/** The id of the lifecycle rule codeb puts on the backup bucket. */
export const BACKUP_LIFECYCLE_RULE = 'codeb-backup-expiry';
const PUBLIC_READ_SID = 'CodebPublicRead';
/** S3 DeleteObjects takes at most 1000 keys per request. */
const PAGE = 1000;

const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'UND_ERR_SOCKET']);

function errorCode(err: unknown): string | undefined {
  if (!err || typeof err !== 'object') return undefined;
  const e = err as { code?: unknown; errors?: unknown[]; cause?: unknown };
  if (typeof e.code === 'string') return e.code;
  if (Array.isArray(e.errors)) for (const inner of e.errors) { const c = errorCode(inner); if (c) return c; }
  if (e.cause) return errorCode(e.cause);
  return undefined;
}

export function isUnreachable(err: unknown): boolean {
  const c = errorCode(err);
  return c !== undefined && UNREACHABLE.has(c);
}

/** The read-only anonymous policy for a public bucket (objects readable, bucket not listable). */
export function publicReadPolicy(bucket: string): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [{ Sid: PUBLIC_READ_SID, Effect: 'Allow', Principal: { AWS: ['*'] }, Action: ['s3:GetObject'], Resource: [`arn:aws:s3:::${bucket}/*`] }],
  });
}

const asList = (v: unknown): unknown[] => (Array.isArray(v) ? v : v === undefined ? [] : [v]);

/** Does a bucket policy grant anyone (no credentials) s3:GetObject on the bucket's objects? */
export function policyGrantsPublicRead(policyJson: string, bucket: string): boolean {
  let doc: { Statement?: unknown };
  try {
    doc = JSON.parse(policyJson) as { Statement?: unknown };
  } catch {
    return false;
  }
  return asList(doc.Statement).some((raw) => {
    const st = (raw ?? {}) as { Effect?: unknown; Principal?: unknown; Action?: unknown; Resource?: unknown; Condition?: unknown };
    if (st.Effect !== 'Allow' || st.Condition !== undefined) return false;
    const p = st.Principal;
    const anyone = p === '*' || (typeof p === 'object' && p !== null && asList((p as { AWS?: unknown }).AWS).includes('*'));
    const actions = asList(st.Action);
    const reads = actions.includes('s3:GetObject') || actions.includes('s3:*') || actions.includes('*');
    const resources = asList(st.Resource);
    const covers = resources.some((r) => r === '*' || r === `arn:aws:s3:::${bucket}/*` || r === `arn:aws:s3:::${bucket}*`);
    return anyone && reads && covers;
  });
}

export class StorageProvider implements Provider {
  readonly system = 'storage' as const;
  private s3?: Client;
  private readonly retentionDays: number;

  constructor(
    private readonly settings: StorageSettings,
    opts: StorageProviderOptions = {},
  ) {
    this.retentionDays = opts.backupRetentionDays ?? 30;
  }

  /** The S3 client, made (and its library loaded) on first use. */
  private get client(): Client {
    const settings = this.settings;
    return (this.s3 ??= new (minio().Client)({
      endPoint: settings.endPoint,
      port: settings.port,
      useSSL: settings.useSSL,
      accessKey: settings.accessKey,
      secretKey: settings.secretKey,
      region: settings.region,
      pathStyle: true,
      // The client's own retry prints to the console (noise in codeb's output) and hides the S3 error
      // text behind "Retryable HTTP status"; the one place that needs a retry does its own (destroy).
      retryOptions: { disableRetry: true },
    }));
  }

  get address(): string {
    return `${this.settings.endPoint}:${this.settings.port}`;
  }

  get capabilities(): StorageCapabilities {
    return storageCapabilities(this.settings);
  }

  async observe(resources: Resource[]): Promise<Observed[]> {
    const out: Observed[] = [];
    for (const r of resources) {
      if (r.kind !== 'storage.bucket') continue;
      const exists = await this.call(`check bucket ${r.name}`, () => this.client.bucketExists(r.name));
      if (!exists) {
        out.push({ key: r.key, exists: false });
        continue;
      }
      out.push({ key: r.key, exists: true, spec: { public: await this.isPublic(r.name) } });
    }
    return out;
  }

  async execute(action: Action, ctx: ExecContext): Promise<void> {
    if (action.kind !== 'storage.bucket') throw new CodebError(`The storage provider cannot handle ${action.kind} (${action.key}).`);
    const bucket = action.name;
    const want = action.resource.spec as { public?: unknown };
    switch (action.op) {
      case 'create':
      case 'update':
        return this.ensure(bucket, want.public === true, ctx);
      case 'delete':
        return this.destroy(bucket, action.resource, ctx);
      default:
        return;
    }
  }

  async close(): Promise<void> {
    // The minio client keeps no connections that need closing (plain keep-alive agent).
  }

  /** Whether the bucket is publicly readable; always false where policies do not exist (s3rver). */
  private async isPublic(bucket: string): Promise<boolean> {
    if (!this.capabilities.policies) return false;
    try {
      const policy = await this.client.getBucketPolicy(bucket);
      return policyGrantsPublicRead(policy, bucket);
    } catch (err) {
      if (errorCode(err) === 'NoSuchBucketPolicy') return false;
      throw this.wrap(`read the policy of bucket ${bucket}`, err);
    }
  }

  private async ensure(bucket: string, isPublic: boolean, ctx: ExecContext): Promise<void> {
    if (isPublic && !this.capabilities.policies) {
      throw new CodebError(`Bucket ${bucket} should be public, but the local s3rver has no bucket policies: public buckets need a real MinIO.`, {
        hint: 'Set features.storage.public to false for local development, or point codeb at a MinIO (settings.storage.kind "minio", CODEB_S3_* variables).',
        where: `storage.bucket/${bucket}`,
      });
    }
    const exists = await this.call(`check bucket ${bucket}`, () => this.client.bucketExists(bucket));
    if (!exists) {
      ctx.progress(`creating bucket ${bucket}`);
      try {
        await this.client.makeBucket(bucket, this.settings.region);
      } catch (err) {
        // Another apply (or a crashed earlier one) made it in between: that is what we wanted.
        const code = errorCode(err);
        if (code !== 'BucketAlreadyOwnedByYou' && code !== 'BucketAlreadyExists') throw this.wrap(`create bucket ${bucket}`, err);
        if (code === 'BucketAlreadyExists' && !(await this.client.bucketExists(bucket))) throw this.wrap(`create bucket ${bucket}`, err);
      }
    }
    if (this.capabilities.policies) {
      const publicNow = await this.isPublic(bucket);
      if (isPublic && !publicNow) {
        ctx.progress(`allowing anonymous read of ${bucket}`);
        await this.call(`set the policy of bucket ${bucket}`, () => this.client.setBucketPolicy(bucket, publicReadPolicy(bucket)));
      } else if (!isPublic && publicNow) {
        ctx.progress(`removing anonymous read of ${bucket}`);
        // An empty policy deletes the bucket policy (private again).
        await this.call(`remove the policy of bucket ${bucket}`, () => this.client.setBucketPolicy(bucket, ''));
      }
    }
    if (bucket === BACKUP_BUCKET) await this.ensureBackupExpiry(bucket, ctx);
  }

  private async ensureBackupExpiry(bucket: string, ctx: ExecContext): Promise<void> {
    if (!this.capabilities.lifecycle) {
      ctx.progress(`${bucket}: s3rver has no lifecycle rules, old backups are not expired here`);
      return;
    }
    const current = await this.client.getBucketLifecycle(bucket).catch((err: unknown) => {
      if (errorCode(err) === 'NoSuchLifecycleConfiguration') return null;
      throw this.wrap(`read the lifecycle of bucket ${bucket}`, err);
    });
    const rules = current?.Rule ?? [];
    const ours = rules.find((r) => r.ID === BACKUP_LIFECYCLE_RULE);
    if (ours && ours.Status === 'Enabled' && Number(ours.Expiration?.Days) === this.retentionDays) return;
    const config: LifecycleConfig = {
      Rule: [
        ...rules.filter((r) => r.ID !== BACKUP_LIFECYCLE_RULE),
        { ID: BACKUP_LIFECYCLE_RULE, Status: 'Enabled', Filter: { Prefix: '' }, Expiration: { Days: this.retentionDays } },
      ],
    };
    ctx.progress(`${bucket}: objects expire after ${this.retentionDays} days`);
    await this.call(`set the lifecycle of bucket ${bucket}`, () => this.client.setBucketLifecycle(bucket, config));
  }

  private async destroy(bucket: string, resource: Resource, ctx: ExecContext): Promise<void> {
    if (bucket === BACKUP_BUCKET || resource.spec.shared === true) {
      throw new CodebError(`Refusing to delete the shared bucket ${bucket}: it holds every project's backups.`, {
        hint: 'Delete it by hand (mc rb --force) if you really mean to.',
        where: `storage.bucket/${bucket}`,
      });
    }
    if (!(await this.call(`check bucket ${bucket}`, () => this.client.bucketExists(bucket)))) return;
    let removed = 0;
    let failures = 0;
    // Page by page, always the first page again: what was deleted is gone, so this walks the whole
    // bucket without continuation tokens. ListObjects V1 on purpose: s3rver builds V2 continuation
    // tokens with DES, which Node 17+ (OpenSSL 3) refuses, so a truncated V2 listing fails with a 500.
    for (;;) {
      const page = await this.call(`list objects in ${bucket}`, () => this.client.listObjectsQuery(bucket, '', '', { Delimiter: '', MaxKeys: PAGE }));
      const names = page.objects.map((o) => o.name).filter((n): n is string => typeof n === 'string' && n.length > 0);
      if (names.length === 0) break;
      let results: Awaited<ReturnType<Client['removeObjects']>>;
      try {
        results = await this.client.removeObjects(bucket, names);
      } catch (err) {
        // s3rver answers 500 when two deleted objects race to remove their common folder; listing
        // again and retrying converges. Anything else that keeps failing is reported.
        if (isUnreachable(err) || ++failures > 3) throw this.wrap(`delete objects in ${bucket}`, err);
        await new Promise((r) => setTimeout(r, 200 * failures));
        continue;
      }
      const failed = results.find((r) => r?.Error);
      if (failed?.Error) {
        throw new CodebError(`Could not delete object ${failed.Error.Key ?? '?'} from bucket ${bucket}: ${failed.Error.Code ?? ''} ${failed.Error.Message ?? ''}`.trim(), {
          where: `storage.bucket/${bucket}`,
        });
      }
      failures = 0;
      removed += names.length;
      ctx.progress(`${bucket}: ${removed} objects deleted`);
    }
    await this.call(`delete bucket ${bucket}`, () => this.client.removeBucket(bucket));
    ctx.progress(`bucket ${bucket} deleted (${removed} objects)`);
  }

  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.wrap(what, err);
    }
  }

  private wrap(what: string, err: unknown): Error {
    if (err instanceof CodebError) return err;
    if (isUnreachable(err)) return new ServiceUnavailableError('Object storage (S3)', this.address, err);
    const code = errorCode(err);
    const msg = err instanceof Error ? err.message : String(err);
    const denied = code === 'AccessDenied' || code === 'InvalidAccessKeyId' || code === 'SignatureDoesNotMatch';
    return new CodebError(`Object storage (S3) at ${this.address} refused to ${what}: ${msg}${code && !msg.includes(code) ? ` (${code})` : ''}`, {
      hint: denied
        ? 'Check settings.storage.accessKey/secretKey (or CODEB_S3_ACCESS_KEY/CODEB_S3_SECRET_KEY).'
        : 'Check the object storage logs; re-running converges once the cause is fixed.',
      cause: err,
    });
  }
}
