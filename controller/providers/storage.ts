/**
 * Object storage (S3) provider: buckets and per-deployment keys on a RADOS Gateway or MinIO, or on
 * s3rver in the local stack, through the `minio` client (plain S3 API) plus a key manager for users.
 * The reads observe makes (bucket exists, bucket policy) are plain signed requests (s3-read.ts),
 * so a no-change apply never loads the client.
 *
 * Kind `storage.bucket` (name = bucket, spec `{ public, user, shared? }`, holds data):
 * - observe: does the bucket exist; is it public (a bucket policy granting anonymous s3:GetObject);
 *   which deployment user codeb's policy grants it to (`user`). Without policies (s3rver) every
 *   bucket is reported private and granted to nobody.
 * - create/update: make the bucket (region from the settings), then write the bucket policy codeb
 *   wants (public read and/or the owner grant; none = private, admin key only). On s3rver a public
 *   bucket fails with a CodebError before anything is created. The shared `backup` bucket is
 *   granted to nobody (only codeb's own key reaches it) and carries no expiry rule: codeb prunes
 *   backups itself (controller/ops/backup-retention.ts), and an earlier codeb's rule is removed.
 * - delete (explicit data-deleting destroy only): remove every object, page by page, then the bucket.
 *   The shared backup bucket is never deleted here.
 *
 * Kind `storage.user` (name = gateway user, spec `{ key: 'current', secret }`): only where the key
 * manager makes keys (radosgw). observe: does the user exist, and is the key in the deployment's
 * secret store its key; create/update: make the user (it cannot create buckets) / make that key its
 * only key; delete (data-deleting destroy): remove the user.
 */
import type { Client, LifecycleConfig } from 'minio';
import { BACKUP_BUCKET } from '../manifest/names.js';
import { CodebError, ServiceUnavailableError } from '../errors.js';
import type { Action, ExecContext, Observed, Provider, Resource } from '../reconcile/model.js';
import { RgwAdmin, type RgwKey } from './rgw-admin.js';
import { S3Reader } from './s3-read.js';
import { bucketPolicy, policyGrantsPublicRead, policyOwner, storageCapabilities, STORAGE_KEY_SECRETS, type StorageCapabilities, type StorageSettings } from './storage-access.js';

export { policyGrantsPublicRead, publicReadPolicy, storageCapabilities, sharedKeyNote, STORAGE_KEY_SECRETS } from './storage-access.js';
export type { StorageCapabilities, StorageSettings } from './storage-access.js';

/**
 * Users and keys per deployment, behind one interface so a MinIO admin-API implementation can sit
 * beside the RADOS Gateway one. `shared` means the server cannot make keys: every deployment gets
 * the configured key, and apply / registry inspect say so.
 */
export interface KeyManager {
  readonly shared: boolean;
  /** null when the user does not exist; otherwise whether `key` is its (only) current key. */
  observeUser(user: string, key: RgwKey | null): Promise<{ keyCurrent: boolean } | null>;
  /** Create the user with `key`, or make `key` its only key; it may not create buckets. */
  ensureUser(user: string, key: RgwKey): Promise<void>;
  removeUser(user: string): Promise<void>;
}

/** s3rver (and MinIO until its admin API is driven): no users; the one configured key is shared. */
export class SharedKeyManager implements KeyManager {
  readonly shared = true;
  async observeUser(): Promise<null> {
    return null;
  }
  async ensureUser(user: string): Promise<void> {
    throw new CodebError(`This object storage cannot make users: user ${user} cannot be created.`, { hint: 'Use a RADOS Gateway (CODEB_STACK_S3=radosgw) for a key per project.' });
  }
  async removeUser(): Promise<void> {}
}

/** RADOS Gateway users through radosgw-admin (dbstore gateways have no user admin REST API). */
export class RgwKeyManager implements KeyManager {
  readonly shared = false;
  constructor(private readonly admin: RgwAdmin) {}

  async observeUser(user: string, key: RgwKey | null): Promise<{ keyCurrent: boolean } | null> {
    const u = await this.admin.userInfo(user);
    if (!u) return null;
    return { keyCurrent: key !== null && u.hasKey(key) && u.accessKeys.length === 1 && u.maxBuckets < 0 && !u.suspended };
  }

  async ensureUser(user: string, key: RgwKey): Promise<void> {
    const u = await this.admin.userInfo(user);
    // max-buckets -1: the user cannot create buckets of its own; codeb makes them and grants them.
    if (!u) return this.admin.createUser(user, `codeb deployment ${user}`, key, -1);
    if (u.maxBuckets >= 0) await this.admin.setMaxBuckets(user, -1);
    await this.admin.replaceKeys(user, key);
  }

  removeUser(user: string): Promise<void> {
    return this.admin.removeUser(user);
  }
}

export function keyManagerFor(settings: StorageSettings): KeyManager {
  if (storageCapabilities(settings).perProjectKeys && settings.kind === 'radosgw') return new RgwKeyManager(new RgwAdmin(settings.rgwAdmin ?? []));
  return new SharedKeyManager();
}

export interface StorageProviderOptions {
  /** The deployment's secrets (observe compares its key with the user's); may throw when missing. */
  secret?: (name: string) => string;
  /** Default: keyManagerFor(settings). */
  keys?: KeyManager;
}

/**
 * An S3 client for the admin key of `settings`. Its library is imported here, on first use, so it
 * is a chunk of its own in the bundle that only the commands that write to S3 read.
 */
export async function s3Client(settings: Pick<StorageSettings, 'endPoint' | 'port' | 'useSSL' | 'accessKey' | 'secretKey' | 'region'>): Promise<Client> {
  const { Client } = await import('minio');
  return new Client({
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
  });
}

/** The id of the expiry rule earlier codeb versions put on the backup bucket (now removed). */
export const BACKUP_LIFECYCLE_RULE = 'codeb-backup-expiry';
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

/** An S3 client error as codeb reports it: unreachable, refused (with what to check), or failed. */
export function s3Error(address: string, what: string, err: unknown): Error {
  if (err instanceof CodebError) return err;
  if (isUnreachable(err)) return new ServiceUnavailableError('Object storage (S3)', address, err);
  const code = errorCode(err);
  const msg = err instanceof Error ? err.message : String(err);
  const denied = code === 'AccessDenied' || code === 'InvalidAccessKeyId' || code === 'SignatureDoesNotMatch';
  return new CodebError(`Object storage (S3) at ${address} refused to ${what}: ${msg}${code && !msg.includes(code) ? ` (${code})` : ''}`, {
    hint: denied
      ? 'Check settings.storage.accessKey/secretKey (or CODEB_S3_ACCESS_KEY/CODEB_S3_SECRET_KEY): codeb needs the server\'s admin key there.'
      : 'Check the object storage logs; re-running converges once the cause is fixed.',
    cause: err,
  });
}

export function isUnreachable(err: unknown): boolean {
  const c = errorCode(err);
  return c !== undefined && UNREACHABLE.has(c);
}

export class StorageProvider implements Provider {
  readonly system = 'storage' as const;
  private s3?: Promise<Client>;
  private s3Reads?: S3Reader;
  private readonly keys: KeyManager;
  private readonly secret: (name: string) => string;

  constructor(
    private readonly settings: StorageSettings,
    opts: StorageProviderOptions = {},
  ) {
    this.keys = opts.keys ?? keyManagerFor(settings);
    this.secret = opts.secret ?? (() => '');
  }

  /** The S3 client for writes and listings, made (and its library loaded) on first use. */
  private client(): Promise<Client> {
    return (this.s3 ??= s3Client(this.settings));
  }

  /** Plain signed requests for the reads observe makes (s3-read.ts: no client library to load). */
  private get reads(): S3Reader {
    return (this.s3Reads ??= new S3Reader(this.settings));
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
      if (r.kind === 'storage.user') {
        const u = await this.keys.observeUser(r.name, this.storedKey(this.secret));
        out.push(u ? { key: r.key, exists: true, spec: { key: u.keyCurrent ? 'current' : 'not the stored key' } } : { key: r.key, exists: false });
        continue;
      }
      if (r.kind !== 'storage.bucket') continue;
      const exists = await this.call(`check bucket ${r.name}`, () => this.reads.bucketExists(r.name));
      if (!exists) {
        out.push({ key: r.key, exists: false });
        continue;
      }
      const policy = await this.policy(r.name);
      out.push({ key: r.key, exists: true, spec: { public: policyGrantsPublicRead(policy, r.name), user: policyOwner(policy) } });
    }
    return out;
  }

  async execute(action: Action, ctx: ExecContext): Promise<void> {
    if (action.kind === 'storage.user') return this.executeUser(action, ctx);
    if (action.kind !== 'storage.bucket') throw new CodebError(`The storage provider cannot handle ${action.kind} (${action.key}).`);
    const bucket = action.name;
    const want = action.resource.spec as { public?: unknown; user?: unknown };
    switch (action.op) {
      case 'create':
      case 'update':
        return this.ensure(bucket, want.public === true, typeof want.user === 'string' ? want.user : null, ctx);
      case 'delete':
        return this.destroy(bucket, action.resource, ctx);
      default:
        return;
    }
  }

  private async executeUser(action: Action, ctx: ExecContext): Promise<void> {
    const user = action.name;
    if (action.op === 'delete') {
      await this.keys.removeUser(user);
      ctx.progress(`user ${user} and its key removed`);
      return;
    }
    if (action.op !== 'create' && action.op !== 'update') return;
    const key = this.storedKey(ctx.secret);
    if (!key) throw new CodebError(`The S3 key of ${user} is not in the deployment's secret store.`, { where: `storage.user/${user}` });
    await this.keys.ensureUser(user, key);
    ctx.progress(action.op === 'create' ? `user ${user} with its own key` : `key of ${user} replaced`);
  }

  /** The deployment's key pair from its secret store, or null when it has none yet. */
  private storedKey(secret: (name: string) => string): RgwKey | null {
    try {
      const accessKey = secret(STORAGE_KEY_SECRETS.accessKey);
      const secretKey = secret(STORAGE_KEY_SECRETS.secretKey);
      return accessKey && secretKey ? { accessKey, secretKey } : null;
    } catch {
      return null;
    }
  }

  async close(): Promise<void> {
    // The minio client keeps no connections that need closing (its agent's idle sockets do not
    // hold the process); the reader's kept-alive connection is dropped now.
    this.s3Reads?.close();
  }

  /** The bucket's policy text ('' for none; always '' where policies do not exist, as on s3rver). */
  private async policy(bucket: string): Promise<string> {
    if (!this.capabilities.policies) return '';
    try {
      return await this.reads.bucketPolicy(bucket);
    } catch (err) {
      throw this.wrap(`read the policy of bucket ${bucket}`, err);
    }
  }

  private async ensure(bucket: string, isPublic: boolean, user: string | null, ctx: ExecContext): Promise<void> {
    if (isPublic && !this.capabilities.policies) {
      throw new CodebError(`Bucket ${bucket} should be public, but the local s3rver has no bucket policies: public buckets need a real S3 server.`, {
        hint: 'Set features.storage.public to false for local development, or run the stack with CODEB_STACK_S3=radosgw (or point codeb at a MinIO: settings.storage.kind "minio", CODEB_S3_* variables).',
        where: `storage.bucket/${bucket}`,
      });
    }
    if (user && !this.capabilities.policies) {
      throw new CodebError(`Bucket ${bucket} should be granted to user ${user}, but this object storage has no bucket policies.`, { where: `storage.bucket/${bucket}` });
    }
    const exists = await this.call(`check bucket ${bucket}`, () => this.reads.bucketExists(bucket));
    if (!exists) {
      ctx.progress(`creating bucket ${bucket}`);
      try {
        await (await this.client()).makeBucket(bucket, this.settings.region);
      } catch (err) {
        // Another apply (or a crashed earlier one) made it in between: that is what we wanted.
        const code = errorCode(err);
        if (code !== 'BucketAlreadyOwnedByYou' && code !== 'BucketAlreadyExists') throw this.wrap(`create bucket ${bucket}`, err);
        if (code === 'BucketAlreadyExists' && !(await (await this.client()).bucketExists(bucket))) throw this.wrap(`create bucket ${bucket}`, err);
      }
    }
    if (this.capabilities.policies) {
      // codeb owns the whole policy: public read and/or the owner grant, nothing else.
      const want = bucketPolicy(bucket, { public: isPublic, user });
      const have = await this.policy(bucket);
      if (policyGrantsPublicRead(have, bucket) !== isPublic || policyOwner(have) !== user || (want === '') !== (have === '')) {
        ctx.progress(`${bucket}: ${[isPublic ? 'anonymous read' : 'private', user ? `reached by ${user}` : 'codeb\'s key only'].join(', ')}`);
        // An empty policy deletes the bucket policy.
        await this.call(`set the policy of bucket ${bucket}`, async () => (await this.client()).setBucketPolicy(bucket, want));
      }
    }
    if (bucket === BACKUP_BUCKET) await this.dropBackupExpiry(bucket, ctx);
  }

  /**
   * A lifecycle rule expires objects by age alone: it cannot tell the newest good backup from the
   * rest and deletes every backup once backups stop for its number of days. Retention is codeb's
   * (`codeb backup prune`, which always keeps the newest good one), so the expiry rule earlier
   * codeb versions put here is removed; rules codeb did not write are left alone.
   */
  private async dropBackupExpiry(bucket: string, ctx: ExecContext): Promise<void> {
    if (!this.capabilities.lifecycle) return;
    const current = await (await this.client()).getBucketLifecycle(bucket).catch((err: unknown) => {
      if (errorCode(err) === 'NoSuchLifecycleConfiguration') return null;
      throw this.wrap(`read the lifecycle of bucket ${bucket}`, err);
    });
    // The client parses a single <Rule> as an object, several as an array.
    const rules = [current?.Rule ?? []].flat();
    if (!rules.some((r) => r.ID === BACKUP_LIFECYCLE_RULE)) return;
    const rest = rules.filter((r) => r.ID !== BACKUP_LIFECYCLE_RULE);
    ctx.progress(`${bucket}: removing the old expiry rule ${BACKUP_LIFECYCLE_RULE} (codeb prunes backups itself and keeps the newest good one)`);
    await this.call(`set the lifecycle of bucket ${bucket}`, async () =>
      rest.length ? (await this.client()).setBucketLifecycle(bucket, { Rule: rest } as LifecycleConfig) : (await this.client()).removeBucketLifecycle(bucket),
    );
  }

  private async destroy(bucket: string, resource: Resource, ctx: ExecContext): Promise<void> {
    if (bucket === BACKUP_BUCKET || resource.spec.shared === true) {
      throw new CodebError(`Refusing to delete the shared bucket ${bucket}: it holds every project's backups.`, {
        hint: 'Delete it by hand (mc rb --force) if you really mean to.',
        where: `storage.bucket/${bucket}`,
      });
    }
    if (!(await this.call(`check bucket ${bucket}`, async () => (await this.client()).bucketExists(bucket)))) return;
    let removed = 0;
    let failures = 0;
    // Page by page, always the first page again: what was deleted is gone, so this walks the whole
    // bucket without continuation tokens. ListObjects V1 on purpose: s3rver builds V2 continuation
    // tokens with DES, which Node 17+ (OpenSSL 3) refuses, so a truncated V2 listing fails with a 500.
    for (;;) {
      const page = await this.call(`list objects in ${bucket}`, async () => (await this.client()).listObjectsQuery(bucket, '', '', { Delimiter: '', MaxKeys: PAGE }));
      const names = page.objects.map((o) => o.name).filter((n): n is string => typeof n === 'string' && n.length > 0);
      if (names.length === 0) break;
      let results: Awaited<ReturnType<Client['removeObjects']>>;
      try {
        results = await (await this.client()).removeObjects(bucket, names);
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
    await this.call(`delete bucket ${bucket}`, async () => (await this.client()).removeBucket(bucket));
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
    return s3Error(this.address, what, err);
  }
}
