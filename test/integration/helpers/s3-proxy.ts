/**
 * A TCP proxy on 127.0.0.1 in front of the stack's S3, for failure tests: it forwards everything
 * until a request line matches a rule, then either HOLDS that connection (nothing more is
 * forwarded, so the client waits: the moment a test can SIGKILL a backup at a known step) or CUTS
 * it and stops accepting connections (the object store becomes unreachable mid-upload).
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export type ProxyAction = 'hold' | 'cut';

export class S3Proxy {
  /** Request lines seen ("PUT /backup/... HTTP/1.1"). */
  readonly requests: string[] = [];
  /** The request line that triggered the rule, once it did. */
  triggered: string | null = null;
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private waiters: Array<() => void> = [];

  constructor(
    private readonly upstreamPort: number,
    private readonly rule: { match: RegExp; action: ProxyAction },
  ) {}

  async start(): Promise<number> {
    this.server = createServer((client) => {
      const upstream = connect(this.upstreamPort, '127.0.0.1');
      this.sockets.add(client).add(upstream);
      let held = false;
      client.on('data', (chunk: Buffer) => {
        if (held) return;
        const text = chunk.toString('latin1');
        for (const m of text.matchAll(/^(?:GET|PUT|POST|HEAD|DELETE) \S+ HTTP\/1\.1/gm)) this.requests.push(m[0]);
        const hit = this.triggered === null && text.split('\r\n').find((l) => this.rule.match.test(l));
        if (hit) {
          this.triggered = hit;
          if (this.rule.action === 'hold') {
            held = true;
          } else {
            client.destroy();
            upstream.destroy();
            this.server?.close();
          }
          for (const w of this.waiters.splice(0)) w();
          return;
        }
        upstream.write(chunk);
      });
      upstream.on('data', (d: Buffer) => {
        if (!held) client.write(d);
      });
      const end = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on('error', end).on('close', end);
      upstream.on('error', end).on('close', () => {
        if (!held) end();
      });
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    return (this.server.address() as AddressInfo).port;
  }

  /** Resolves when the rule has fired (rejects after timeoutMs). */
  async waitTriggered(timeoutMs = 60_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (this.triggered === null) {
      if (Date.now() > deadline) throw new Error(`the proxy rule ${this.rule.match} never matched; requests: ${this.requests.join(' | ')}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 500).unref();
      });
    }
    return this.triggered;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => (this.server?.listening ? this.server.close(() => r()) : r()));
  }
}
