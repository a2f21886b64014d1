/**
 * The backup bucket and the project buckets, as backups need them: upload a file and read it back
 * with its sha256, copy objects, list, fetch small JSON documents, delete a backup. The S3 adapter
 * for controller/ops (plain S3 API through the minio client, so s3rver and MinIO both work).
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Client } from 'minio';
import { CodebError } from '../errors.js';
import { s3Client, s3Error } from '../providers/storage.js';
import type { Settings } from '../settings.js';

/** S3 DeleteObjects and ListObjects take at most 1000 keys per request. */
const PAGE = 1000;

export interface Listed {
  key: string;
  size: number;
}

/** Counts bytes and hashes them as they pass; `onBytes` for progress lines. */
class Digest extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;
  constructor(private readonly onBytes?: (n: number) => void) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null, d?: Buffer) => void): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    this.onBytes?.(this.bytes);
    cb(null, chunk);
  }
}

export async function sha256File(file: string): Promise<{ sha256: string; size: number }> {
  const d = new Digest();
  await pipeline(createReadStream(file), d, async function* (src: AsyncIterable<Buffer>) {
    for await (const _ of src) void _;
  });
  return { sha256: d.hash.digest('hex'), size: d.bytes };
}

export class BackupStore {
  private s3?: Promise<Client>;

  constructor(private readonly settings: Settings['storage']) {}

  /** The S3 client, made (and its library loaded) on first use. */
  private client(): Promise<Client> {
    return (this.s3 ??= s3Client(this.settings));
  }

  get address(): string {
    return `${this.settings.endPoint}:${this.settings.port}`;
  }

  async ensureBucket(bucket: string): Promise<void> {
    if (await this.call(`check bucket ${bucket}`, async () => (await this.client()).bucketExists(bucket))) return;
    await this.call(`create bucket ${bucket}`, async () => (await this.client()).makeBucket(bucket, this.settings.region)).catch(async (err: unknown) => {
      if (!(await (await this.client()).bucketExists(bucket).catch(() => false))) throw err;
    });
  }

  async bucketExists(bucket: string): Promise<boolean> {
    return this.call(`check bucket ${bucket}`, async () => (await this.client()).bucketExists(bucket));
  }

  /** Every object under a prefix (ListObjects V1: s3rver's V2 continuation tokens fail on Node 17+). */
  async list(bucket: string, prefix: string): Promise<Listed[]> {
    const out: Listed[] = [];
    let marker = '';
    for (;;) {
      const page = await this.call(`list ${bucket}/${prefix}`, async () => (await this.client()).listObjectsQuery(bucket, prefix, marker, { Delimiter: '', MaxKeys: PAGE }));
      for (const o of page.objects) if (o.name) out.push({ key: o.name, size: o.size ?? 0 });
      if (!page.isTruncated || page.objects.length === 0) break;
      marker = page.objects.at(-1)!.name ?? '';
    }
    return out;
  }

  /** Upload a local file; returns its sha256 as sent. */
  async putFile(bucket: string, key: string, file: string, size: number, onBytes?: (n: number) => void): Promise<string> {
    const d = new Digest(onBytes);
    const body = createReadStream(file).pipe(d);
    await this.call(`upload ${bucket}/${key}`, async () => (await this.client()).putObject(bucket, key, body, size, { 'Content-Type': 'application/octet-stream' }));
    return d.hash.digest('hex');
  }

  async putJson(bucket: string, key: string, value: unknown): Promise<void> {
    const body = Buffer.from(JSON.stringify(value, null, 2) + '\n');
    await this.call(`upload ${bucket}/${key}`, async () => (await this.client()).putObject(bucket, key, body, body.length, { 'Content-Type': 'application/json' }));
  }

  async getJson<T>(bucket: string, key: string): Promise<T> {
    const stream = await this.call(`read ${bucket}/${key}`, async () => (await this.client()).getObject(bucket, key));
    const chunks: Buffer[] = [];
    for await (const c of stream as AsyncIterable<Buffer>) chunks.push(c);
    try {
      return JSON.parse(Buffer.concat(chunks).toString('utf8')) as T;
    } catch (err) {
      throw new CodebError(`${bucket}/${key} is not valid JSON: ${(err as Error).message}`, { hint: 'The backup is damaged; use another one (`codeb backup list`).' });
    }
  }

  /** Read an object back and hash it; with `toFile` it is also written there (restores read it once). */
  async readBack(bucket: string, key: string, toFile?: string, onBytes?: (n: number) => void): Promise<{ sha256: string; size: number }> {
    const d = new Digest(onBytes);
    await this.call(`read ${bucket}/${key}`, async () => {
      const src: Readable = await (await this.client()).getObject(bucket, key);
      if (toFile) await pipeline(src, d, createWriteStream(toFile, { mode: 0o600 }));
      else
        await pipeline(src, d, async function* (s: AsyncIterable<Buffer>) {
          for await (const _ of s) void _;
        });
    });
    return { sha256: d.hash.digest('hex'), size: d.bytes };
  }

  /** Copy one object across buckets through this process (s3rver has no server-side copy between buckets it trusts). */
  async copyObject(fromBucket: string, fromKey: string, toBucket: string, toKey: string): Promise<{ sha256: string; size: number }> {
    const d = new Digest();
    const stat = await this.call(`stat ${fromBucket}/${fromKey}`, async () => (await this.client()).statObject(fromBucket, fromKey));
    const src = await this.call(`read ${fromBucket}/${fromKey}`, async () => (await this.client()).getObject(fromBucket, fromKey));
    await this.call(`upload ${toBucket}/${toKey}`, async () => (await this.client()).putObject(toBucket, toKey, src.pipe(d), stat.size));
    return { sha256: d.hash.digest('hex'), size: d.bytes };
  }

  async putStream(bucket: string, key: string, body: Readable, size: number): Promise<void> {
    await this.call(`upload ${bucket}/${key}`, async () => (await this.client()).putObject(bucket, key, body, size));
  }

  async getStream(bucket: string, key: string): Promise<Readable> {
    return this.call(`read ${bucket}/${key}`, async () => (await this.client()).getObject(bucket, key));
  }

  async exists(bucket: string, key: string): Promise<boolean> {
    try {
      await (await this.client()).statObject(bucket, key);
      return true;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'NotFound' || code === 'NoSuchKey') return false;
      throw this.wrap(`stat ${bucket}/${key}`, err);
    }
  }

  /** Delete every object under a prefix. The manifest goes first, so a half-deleted backup is never "good". */
  async deletePrefix(bucket: string, prefix: string, firstKey?: string): Promise<number> {
    const keys = (await this.list(bucket, prefix)).map((o) => o.key);
    if (firstKey && keys.includes(firstKey)) await this.call(`delete ${bucket}/${firstKey}`, async () => (await this.client()).removeObject(bucket, firstKey));
    const rest = keys.filter((k) => k !== firstKey);
    for (let i = 0; i < rest.length; i += PAGE) {
      const results = await this.call(`delete objects in ${bucket}/${prefix}`, async () => (await this.client()).removeObjects(bucket, rest.slice(i, i + PAGE)));
      const failed = results.find((r) => r?.Error);
      if (failed?.Error) throw new CodebError(`Could not delete ${bucket}/${failed.Error.Key ?? '?'}: ${failed.Error.Code ?? ''} ${failed.Error.Message ?? ''}`.trim());
    }
    return keys.length;
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
