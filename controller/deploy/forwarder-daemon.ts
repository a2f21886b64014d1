/**
 * `codeb forwarder run`: the long-running process that owns every entry port on this machine.
 * Controlled over HTTP on a Unix socket (owner-only), so only local codeb commands can switch.
 * On a server it runs as the codeb-forwarder systemd unit; locally `codeb stack up` starts it.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { Forwarder } from './forwarder.js';

async function body(req: IncomingMessage): Promise<Record<string, unknown>> {
  let text = '';
  for await (const chunk of req) text += chunk;
  return text ? (JSON.parse(text) as Record<string, unknown>) : {};
}

function send(res: ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(value));
}

const ID = /^[a-z0-9-]{1,120}$/;

export async function runForwarder(socketPath: string, tableFile: string, servicesAddress: string | null = null): Promise<() => Promise<void>> {
  const fwd = new Forwarder(tableFile, servicesAddress);
  await fwd.restore();
  mkdirSync(dirname(socketPath), { recursive: true, mode: 0o700 });
  rmSync(socketPath, { force: true });
  const control = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://forwarder');
      const m = /^\/entries\/([^/]+)(\/retire)?$/.exec(url.pathname);
      try {
        if (req.method === 'GET' && url.pathname === '/health') return send(res, 200, { ok: true, pid: process.pid, entries: fwd.list().length });
        if (req.method === 'GET' && url.pathname === '/entries') return send(res, 200, { entries: fwd.list() });
        if (!m || !ID.test(m[1]!)) return send(res, 404, { error: 'no such endpoint' });
        const id = m[1]!;
        if (req.method === 'PUT' && !m[2]) {
          const b = await body(req);
          const entryPort = Number(b.entryPort);
          const target = Number(b.target);
          if (!Number.isInteger(entryPort) || !Number.isInteger(target)) return send(res, 400, { error: 'entryPort and target must be port numbers' });
          const allow = typeof b.allow === 'string' ? b.allow : null;
          return send(res, 200, await fwd.set(id, entryPort, target, true, allow));
        }
        if (req.method === 'POST' && m[2]) {
          const b = await body(req);
          return send(res, 200, { closed: await fwd.retire(id, Number(b.port), Number(b.graceMs ?? 0)) });
        }
        if (req.method === 'DELETE' && !m[2]) return send(res, 200, { removed: await fwd.remove(id) });
        return send(res, 405, { error: 'method not allowed' });
      } catch (err) {
        send(res, 500, { error: (err as Error).message });
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    control.once('error', reject);
    control.listen(socketPath, () => resolve());
  });
  chmodSync(socketPath, 0o600);
  return async () => {
    await new Promise<void>((resolve) => control.close(() => resolve()));
    await fwd.close();
    rmSync(socketPath, { force: true });
  };
}
