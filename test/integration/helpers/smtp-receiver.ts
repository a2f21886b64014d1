/**
 * An SMTP server on 127.0.0.1 (the smtp-server package, no TLS, no auth) for email alert tests:
 * records each accepted message (envelope and raw text) and can be told to answer the first N
 * MAIL FROM commands with a temporary failure (451), as a busy mail server does.
 */
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';

export interface ReceivedMail {
  from: string;
  to: string[];
  raw: string;
  /** Header value by lowercase name (first occurrence, unfolded). */
  header(name: string): string | undefined;
}

export class SmtpReceiver {
  readonly mails: ReceivedMail[] = [];
  /** MAIL FROM commands answered 451 so far. */
  refused = 0;
  failNext = 0;
  private server: SMTPServer | null = null;

  async start(): Promise<string> {
    this.server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS', 'AUTH'],
      logger: false,
      onMailFrom: (_address, _session, cb) => {
        if (this.failNext > 0) {
          this.failNext--;
          this.refused++;
          return cb(Object.assign(new Error('Mailbox busy, try again later'), { responseCode: 451 }));
        }
        cb();
      },
      onData: (stream, session, cb) => {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          const raw = Buffer.concat(chunks).toString('utf8');
          const head = raw.split(/\r?\n\r?\n/)[0]!.replace(/\r?\n[ \t]+/g, ' ');
          const header = (name: string) => head.split(/\r?\n/).find((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`))?.slice(name.length + 1).trim();
          const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
          this.mails.push({ from, to: session.envelope.rcptTo.map((r) => r.address), raw, header });
          cb();
        });
      },
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', () => resolve()));
    return this.url;
  }

  get url(): string {
    // smtp-server keeps its net.Server as `server`.
    const port = ((this.server as unknown as { server: { address(): AddressInfo } }).server.address()).port;
    return `smtp://127.0.0.1:${port}`;
  }

  async close(): Promise<void> {
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}
