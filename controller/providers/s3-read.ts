/**
 * The S3 reads observe makes (does a bucket exist, what is its policy) as plain signed HTTP
 * requests. A no-change apply makes one or two of them per bucket; the minio client that
 * storage.ts uses for everything else costs ~40 ms of CPU just to load (1.2 MB of JavaScript with
 * its XML parser and MIME table), more than the requests themselves. Requests are signed by aws4
 * (AWS Signature V4) and share one kept-alive connection per reader, closed by close().
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import aws4 from 'aws4';
import type { StorageSettings } from './storage-access.js';

/** An S3 error answer: `code` as S3 names it (NoSuchBucketPolicy, AccessDenied, ...). */
export class S3ResponseError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'S3Error';
  }
}

/** Waiting costs nothing on a loaded machine; a server that never answers still ends in an error. */
const TIMEOUT_MS = 30_000;

type S3Endpoint = Pick<StorageSettings, 'endPoint' | 'port' | 'useSSL' | 'accessKey' | 'secretKey' | 'region'>;

interface Transport {
  agent: HttpAgent;
  request: typeof httpRequest;
}

export class S3Reader {
  private transport?: Promise<Transport>;
  private agent?: HttpAgent;

  constructor(private readonly settings: S3Endpoint) {}

  /** One kept-alive connection for all of a reader's requests; TLS is loaded only for an https endpoint. */
  private open(): Promise<Transport> {
    return (this.transport ??= (this.settings.useSSL ? import('node:https') : Promise.resolve({ Agent: HttpAgent, request: httpRequest })).then((m) => {
      this.agent = new m.Agent({ keepAlive: true, maxSockets: 1 });
      return { agent: this.agent, request: m.request as typeof httpRequest };
    }));
  }

  /** HEAD /bucket: true, or false when S3 answers 404. */
  async bucketExists(bucket: string): Promise<boolean> {
    const r = await this.send('HEAD', `/${bucket}`);
    if (r.status === 404) return false;
    if (r.status >= 300) throw responseError(r.status, r.body);
    return true;
  }

  /** GET /bucket?policy: the policy document, '' when the bucket has none. */
  async bucketPolicy(bucket: string): Promise<string> {
    const r = await this.send('GET', `/${bucket}?policy`);
    if (r.status >= 300) {
      const err = responseError(r.status, r.body);
      if (err.code === 'NoSuchBucketPolicy') return '';
      throw err;
    }
    return r.body;
  }

  /** Drop the kept-alive connection at once (nothing is waited for). */
  close(): void {
    this.agent?.destroy();
  }

  private async send(method: 'GET' | 'HEAD', path: string): Promise<{ status: number; body: string }> {
    const s = this.settings;
    const standard = s.port === (s.useSSL ? 443 : 80);
    const signed = aws4.sign(
      { method, path, service: 's3', region: s.region, headers: { Host: standard ? s.endPoint : `${s.endPoint}:${s.port}` } },
      { accessKeyId: s.accessKey, secretAccessKey: s.secretKey },
    );
    const { agent, request } = await this.open();
    return new Promise((resolve, reject) => {
      const req = request({ hostname: s.endPoint, port: s.port, method, path, headers: signed.headers, agent, timeout: TIMEOUT_MS }, (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer from ${s.endPoint}:${s.port} in ${TIMEOUT_MS / 1000} s`), { code: 'ETIMEDOUT' })));
      req.on('error', reject);
      req.end();
    });
  }
}

/**
 * The error of an S3 answer: its XML <Code> and <Message>, or for a body-less answer (HEAD) the
 * code S3 clients give that status.
 */
export function responseError(status: number, body: string): S3ResponseError {
  const entities: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
  const tag = (name: string) => new RegExp(`<${name}>([^<]*)</${name}>`).exec(body)?.[1]?.replace(/&(amp|lt|gt|quot|apos);/g, (_, e: string) => entities[e]!);
  const code = tag('Code') ?? (status === 403 ? 'AccessDenied' : status === 404 ? 'NotFound' : status === 301 ? 'PermanentRedirect' : `HTTP${status}`);
  return new S3ResponseError(tag('Message') ?? `S3 answered HTTP ${status} (${code})`, code, status);
}
