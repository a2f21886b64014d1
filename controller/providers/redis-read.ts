/**
 * The Redis reads observe makes (a slot's marker and size, an ACL user and its DRYRUN probes), sent
 * pipelined on one plain connection. A no-change apply needs two round trips of read-only
 * commands; ioredis, which redis.ts uses for every change, costs ~20 ms of CPU to load and sends
 * six more commands per connection (HELLO, CLIENT SETNAME/SETINFO, INFO for its ready check).
 * Answers are parsed by redis-parser; commands are written as RESP arrays of bulk strings.
 */
import { connect, type Socket } from 'node:net';
import Parser from 'redis-parser';

/** An error reply (`-ERR ...`, `-NOPERM ...`): returned as a value among a batch's answers. */
export class RedisReplyError extends Error {
  override name = 'ReplyError';
}

/** Waiting costs nothing on a loaded machine; a server that never answers still ends in an error. */
const TIMEOUT_MS = 15_000;

export interface RedisEndpoint {
  host: string;
  port: number;
  user?: string;
  password?: string;
}

/** One connection, opened by the first batch (which logs in first) and dropped by close(). */
export class RedisReader {
  private socket?: Socket;
  private readonly waiting: Array<{ resolve: (v: unknown) => void; reject: (e: Error) => void }> = [];
  private failure?: Error;

  constructor(private readonly endpoint: RedisEndpoint) {}

  /**
   * Send commands in one write and return their answers in order; an error reply is returned as a
   * RedisReplyError. A connection failure (refused, reset, no answer in time) or a refused login
   * rejects.
   */
  async send(commands: string[][]): Promise<unknown[]> {
    if (this.failure) throw this.failure;
    const { user, password } = this.endpoint;
    // The login goes in the same write as the first batch: one round trip for both.
    const login = !this.socket && password ? [user ? ['AUTH', user, password] : ['AUTH', password]] : [];
    const socket = this.socket ?? this.connect();
    const answers = [...login, ...commands].map(() => new Promise<unknown>((resolve, reject) => this.waiting.push({ resolve, reject })));
    socket.write(login.concat(commands).map(encode).join(''));
    const all = await Promise.all(answers);
    if (login.length && all[0] instanceof RedisReplyError) throw all[0];
    return all.slice(login.length);
  }

  /** Drop the connection at once: the commands are reads, nothing is waited for. */
  close(): void {
    this.socket?.destroy();
    this.fail(new Error('Connection is closed.'));
  }

  private connect(): Socket {
    const { host, port } = this.endpoint;
    const parser = new Parser({
      returnReply: (reply: unknown) => this.waiting.shift()?.resolve(reply),
      returnError: (err: Error) => this.waiting.shift()?.resolve(new RedisReplyError(err.message)),
      returnFatalError: (err: Error) => {
        this.fail(err);
        socket.destroy();
      },
    });
    const socket = connect({ host, port });
    socket.setTimeout(TIMEOUT_MS, () => socket.destroy(Object.assign(new Error(`ETIMEDOUT: no answer from ${host}:${port} in ${TIMEOUT_MS / 1000} s`), { code: 'ETIMEDOUT' })));
    socket.on('data', (chunk: Buffer) => parser.execute(chunk));
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new Error('Connection is closed.')));
    this.socket = socket;
    return socket;
  }

  /** Every command still waiting fails with the first failure; later batches fail at once. */
  private fail(err: Error): void {
    this.failure ??= err;
    for (const w of this.waiting.splice(0)) w.reject(this.failure);
  }
}

/** A command as RESP: an array of bulk strings (lengths in bytes). */
function encode(args: string[]): string {
  return `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
}
