/**
 * A webhook receiver on 127.0.0.1 for alert tests: records every request (raw body, headers,
 * whether its signature verifies with the secret it is given), can be told to answer the first N
 * requests with a failure, and counts each event id once, as a real receiver that dedupes would.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedRequest {
  body: string;
  headers: IncomingHttpHeaders;
  /** The answer this receiver gave. */
  status: number;
  signatureOk: boolean;
  /** What `atArrival` returned when the request arrived (a test's look at the world at that moment). */
  seen?: unknown;
}

export interface ReceivedEvent {
  id: string;
  payload: Record<string, unknown>;
  signatureOk: boolean;
}

export function verifySignature(body: string, header: string | undefined, secret: string): boolean {
  if (!header?.startsWith('sha256=')) return false;
  const want = Buffer.from(createHmac('sha256', secret).update(body).digest('hex'));
  const got = Buffer.from(header.slice('sha256='.length));
  return got.length === want.length && timingSafeEqual(got, want);
}

export class WebhookReceiver {
  readonly requests: ReceivedRequest[] = [];
  /** Accepted events, one per event id (repeats of an id are answered 200 and not recorded again). */
  readonly events: ReceivedEvent[] = [];
  /** Answer this many of the coming requests with `failStatus` (0: answer every one with 200). */
  failNext = 0;
  failStatus = 503;
  /** Set by the test once it knows the secret (codeb prints it at the first apply with a webhook). */
  secret = '';
  /** Called as each request arrives; its answer is kept in the request's `seen`. */
  atArrival: (() => unknown) | null = null;
  private readonly waiters: Array<() => void> = [];
  private server: Server | null = null;

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      const seen = this.atArrival?.();
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const signatureOk = this.secret !== '' && verifySignature(body, req.headers['x-codeb-signature'] as string | undefined, this.secret);
        let status = 200;
        if (this.failNext > 0) {
          this.failNext--;
          status = this.failStatus;
        } else if (!signatureOk) {
          status = 401;
        }
        this.requests.push({ body, headers: req.headers, status, signatureOk, ...(this.atArrival ? { seen } : {}) });
        const id = String(req.headers['x-codeb-event-id'] ?? '');
        if (status === 200 && !this.events.some((e) => e.id === id)) {
          this.events.push({ id, payload: JSON.parse(body) as Record<string, unknown>, signatureOk });
        }
        res.writeHead(status, { 'content-type': 'text/plain' }).end(status === 200 ? 'ok\n' : 'no\n');
        for (const w of this.waiters.splice(0)) w();
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return this.url;
  }

  get url(): string {
    const port = (this.server!.address() as AddressInfo).port;
    return `http://127.0.0.1:${port}/hooks/codeb`;
  }

  /** Resolves once `count` events of that name have been accepted (rejects after `timeoutMs`). */
  async waitFor(event: string, count = 1, timeoutMs = 60_000): Promise<ReceivedEvent[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const got = this.events.filter((e) => e.payload.event === event);
      if (got.length >= count) return got;
      if (Date.now() > deadline) throw new Error(`no ${count} ${event} event(s) within ${timeoutMs} ms; received: ${this.requests.map((r) => r.body).join(' | ') || 'nothing'}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 500).unref();
      });
    }
  }

  of(event: string): ReceivedEvent[] {
    return this.events.filter((e) => e.payload.event === event);
  }

  async close(): Promise<void> {
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}
