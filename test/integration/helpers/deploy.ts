/**
 * Helpers for the deploy tests (deploy-*.test.ts): run the built CLI against the local stack with a
 * registry of the test file's own, talk to Caddy with a project's Host header, look at containers.
 *
 * Separate registries do not know each other's ports, so each test file passes its own
 * CODEB_PORT_RANGE (`appPorts('<its slot-0 slice>')`, moved with the suite's slot; outside the
 * default 3000-3999 a demo allocates from): an idle slot's port is not listening, so "skip ports
 * in use" alone would not keep two registries apart.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request, type IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { PodmanApiRuntime } from '../../../controller/runtime/podman-api.js';
import type { EnvironmentRecord, RegistryDocument } from '../../../controller/registry/types.js';
import type { Settings } from '../../../controller/settings.js';
import { networkRangeFor, privateProxyPair, stackSettings } from './stack.js';

export const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const cliPath = join(repo, 'bin', 'codeb.js');

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** A command's exit code and output, for an assertion's message. */
export const show = (r: Pick<Run, 'code' | 'stdout' | 'stderr'>): string => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

export interface Started {
  child: ChildProcess;
  done: Promise<Run & { signal: NodeJS.Signals | null }>;
  stderr(): string;
}

export class DeployEnv {
  readonly dir = mkdtempSync(join(tmpdir(), 'codeb-deploy-test-'));
  readonly registry = join(this.dir, 'projects.json');
  settings: Settings = stackSettings();
  readonly runtime = new PodmanApiRuntime(this.settings.podman.socketPath);
  private readonly env: NodeJS.ProcessEnv;

  constructor(portRange: string, extraEnv: NodeJS.ProcessEnv = {}) {
    this.env = { ...process.env, CODEB_PORT_RANGE: portRange, CODEB_NETWORK_RANGE: networkRangeFor(portRange), NO_COLOR: '1', ...extraEnv };
  }

  private stopProxy?: () => Promise<void>;

  /**
   * A Caddy and a codeb forwarder of this test file's own (started by the stack's own code on free
   * ports: privateProxyPair), used by every command run through `codeb()`: the stack's forwarder
   * may still run the code of an older build, and `gc` in another file must not retire this
   * file's slots. Postgres, Redis, S3 and Podman stay the stack's.
   */
  async privateProxy(): Promise<void> {
    const pair = await privateProxyPair(this.dir, this.settings);
    this.stopProxy = pair.stop;
    this.settings = pair.settings;
    this.env.CODEB_SETTINGS = this.write('settings.json', JSON.stringify(this.settings, null, 2));
  }

  /** The usual beforeAll: this file's own Caddy and forwarder (privateProxy), then `apply file`, which must exit 0. */
  async up(file: string): Promise<Run> {
    await this.privateProxy();
    const r = await this.codeb('apply', file);
    expect(r.code, show(r)).toBe(0);
    return r;
  }

  /**
   * The usual afterAll: `destroy --delete-data` of each project, then close; each destroy must
   * exit 0 and leave none of the project's containers.
   */
  async down(...ids: string[]): Promise<void> {
    const runs: Run[] = [];
    for (const id of ids) runs.push(await this.codeb('destroy', id, '--delete-data', '--yes'));
    const left = (await Promise.all(ids.map((id) => this.runtime.list({ 'codeb.project': id })))).flat();
    await this.close();
    for (const r of runs) expect(r.code, show(r)).toBe(0);
    expect(left.map((c) => c.name)).toEqual([]);
  }

  /** `codeb --registry <tmp> ...args`, asynchronous so streams held by this process keep flowing. */
  codeb(...args: string[]): Promise<Run> {
    return this.codebWatching(args);
  }

  /** The same, calling `onStderr` with all of stderr so far whenever more arrives (to act at a step). */
  codebWatching(args: string[], onStderr?: (all: string) => void): Promise<Run> {
    const t0 = Date.now();
    return new Promise((resolve) => {
      const child = execFile(process.execPath, [cliPath, '--registry', this.registry, ...args], { env: this.env, timeout: 290_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr, ms: Date.now() - t0 });
      });
      let all = '';
      if (onStderr) child.stderr!.on('data', (c: Buffer | string) => onStderr((all += String(c))));
    });
  }

  /**
   * `codeb --registry <tmp> ...args` as a child the test can kill; `extraEnv` is added to this
   * file's environment. `stderr()` is what it printed so far; `done` resolves when it exits.
   */
  start(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Started {
    const t0 = Date.now();
    const child = spawn(process.execPath, [cliPath, '--registry', this.registry, ...args], { env: { ...this.env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const done = new Promise<Run & { signal: NodeJS.Signals | null }>((resolve) =>
      child.once('close', (code, signal) => resolve({ code: code ?? 1, signal, stdout, stderr, ms: Date.now() - t0 })),
    );
    return { child, done, stderr: () => stderr };
  }

  write(name: string, text: string): string {
    const file = join(this.dir, name);
    writeFileSync(file, text, { mode: 0o600 });
    return file;
  }

  async record(project: string, env = 'production'): Promise<EnvironmentRecord> {
    const r = await this.codeb('registry', 'inspect', project, '--json');
    if (r.code !== 0) throw new Error(`registry inspect failed: ${r.stderr}`);
    return (JSON.parse(r.stdout) as RegistryDocument['projects'][string]).environments[env]!;
  }

  /** GET through Caddy's plain-HTTP port with the project's domain as Host. */
  viaCaddy(domain: string, path = '/'): Promise<{ status: number; body: string; headers: IncomingMessage['headers'] }> {
    return get(this.settings.caddy.httpPort, path, domain);
  }

  async running(name: string): Promise<boolean> {
    return Boolean((await this.runtime.inspect(name))?.running);
  }

  async close(): Promise<void> {
    await this.runtime.close();
    await this.stopProxy?.();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export function get(port: number, path: string, host?: string, timeoutMs = 5000, socketPath?: string): Promise<{ status: number; body: string; headers: IncomingMessage['headers'] }> {
  return new Promise((resolve, reject) => {
    const target = socketPath ? { socketPath } : { host: '127.0.0.1', port };
    const req = request({ ...target, path, agent: false, headers: host ? { host } : {} }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** A manifest for the test app: one web service, or whatever `services` says. Short windows. */
export function manifest(o: {
  id: string;
  services?: string;
  env?: Record<string, string | number>;
  release?: boolean;
  database?: boolean;
  watch?: string;
  deadline?: string;
  /** More lines under `features:`, e.g. "  websockets: true\n". */
  features?: string;
  extra?: string;
}): string {
  const env = Object.entries(o.env ?? {});
  const web = `  web:
    type: web
    image: localhost/codeb-testapp:v1
    port: 8080
${env.length ? `    env:\n${env.map(([k, v]) => `      ${k}: "${v}"`).join('\n')}\n` : ''}${o.release ? '    release:\n      command: ["/usr/bin/node", "/app/app.js", "--migrate"]\n      timeout: 60s\n' : ''}    healthCheck:
      http:
        path: /api/health
        timeout: 1s
        interval: 200ms
        successes: 3
`;
  return `apiVersion: codeb/v1
project:
  id: ${o.id}
environment:
  domain: ${o.id}.localhost
services:
${o.services ?? web}features:
  database: ${o.database ?? true}
${o.features ?? ''}deploy:
  healthGate:
    deadline: ${o.deadline ?? '120s'}
    verifyAfterSwitch: 2
    watchAfterSwitch: ${o.watch ?? '2s'}
  drain: 1s
${o.extra ?? ''}`;
}

export { uniqueId } from './stack.js';

export interface StreamMessage {
  version: string;
  n: number;
  at: number;
}

/** A server-sent event stream (the test app's /events) and how it ended. */
export interface SseStream {
  status: number;
  events: StreamMessage[];
  /** 'end': the response ended with its terminating chunk; 'aborted': cut off. */
  state: 'open' | 'end' | 'aborted' | 'error';
  detail: string;
  closed: Promise<void>;
  close(): void;
}

export function openSse(port: number, host: string, path = '/events'): Promise<SseStream> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, headers: { host, accept: 'text/event-stream' } }, (res) => {
      let buf = '';
      let done!: () => void;
      const s: SseStream = { status: res.statusCode ?? 0, events: [], state: 'open', detail: '', closed: new Promise((r) => (done = r)), close: () => req.destroy() };
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (data) s.events.push({ ...(JSON.parse(data) as { version: string; n: number }), at: Date.now() });
        }
      });
      res.on('aborted', () => {
        if (s.state === 'open') s.state = 'aborted';
      });
      res.on('error', (err) => {
        if (s.state === 'open') [s.state, s.detail] = ['error', err.message];
      });
      res.on('end', () => {
        if (s.state === 'open') s.state = res.complete ? 'end' : 'aborted';
      });
      res.on('close', () => {
        if (s.state === 'open') s.state = res.complete ? 'end' : 'aborted';
        done();
      });
      resolve(s);
    });
    req.setTimeout(10_000, () => req.destroy(new Error('no answer for /events')));
    req.on('error', reject);
    req.end();
  });
}

/** A websocket client (the test app's /ws), enough for text and close frames from the server. */
export interface WsStream {
  messages: StreamMessage[];
  /** Code of the close frame received, null when none came. */
  closeCode: number | null;
  /** 'end': the server closed the TCP connection (FIN); 'error': reset or other error. */
  state: 'open' | 'end' | 'error';
  detail: string;
  closed: Promise<void>;
  close(): void;
}

export function openWs(port: number, host: string, path = '/ws'): Promise<WsStream> {
  return new Promise((resolve, reject) => {
    const key = randomBytes(16).toString('base64');
    const req = request({ host: '127.0.0.1', port, path, agent: false, headers: { host, connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': key } });
    req.setTimeout(10_000, () => req.destroy(new Error('no upgrade for /ws')));
    req.on('error', reject);
    req.on('response', (res) => reject(new Error(`websocket refused: HTTP ${res.statusCode}`)));
    req.on('upgrade', (res, socket, head) => {
      req.setTimeout(0);
      const accept = createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
      if (res.headers['sec-websocket-accept'] !== accept) return reject(new Error('bad Sec-WebSocket-Accept'));
      let done!: () => void;
      const ws: WsStream = { messages: [], closeCode: null, state: 'open', detail: '', closed: new Promise((r) => (done = r)), close: () => socket.destroy() };
      let buf: Buffer = head;
      const parse = () => {
        while (buf.length >= 2) {
          const op = buf[0]! & 0x0f;
          let len = buf[1]! & 0x7f;
          let off = 2;
          if (len === 126) {
            if (buf.length < 4) return;
            len = buf.readUInt16BE(2);
            off = 4;
          }
          if (buf.length < off + len) return;
          const payload = buf.subarray(off, off + len);
          buf = buf.subarray(off + len);
          if (op === 1) ws.messages.push({ ...(JSON.parse(payload.toString('utf8')) as { version: string; n: number }), at: Date.now() });
          if (op === 8) ws.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        }
      };
      socket.on('data', (c: Buffer) => {
        buf = Buffer.concat([buf, c]);
        parse();
      });
      socket.on('end', () => {
        if (ws.state === 'open') ws.state = 'end';
      });
      socket.on('error', (err: NodeJS.ErrnoException) => {
        if (ws.state === 'open') [ws.state, ws.detail] = ['error', err.code ?? err.message];
      });
      socket.on('close', () => done());
      parse();
      resolve(ws);
    });
    req.end();
  });
}

/** Resolves when `check` holds, polling every 50 ms; rejects with `what` after `ms`. */
export async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
