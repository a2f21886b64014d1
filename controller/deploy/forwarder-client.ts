/** Talk to the forwarder daemon over its Unix control socket. */
import { request } from 'node:http';
import { ServiceUnavailableError } from '../errors.js';
import type { ForwarderEntry, SetResult } from './forwarder.js';
import type { HostRoute } from './host-routes.js';

/** The forwarder refused a request; `status` is its HTTP answer (404 unknown, 409 domain held, 400 invalid). */
export class ForwarderRefused extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

export class ForwarderClient {
  constructor(readonly socketPath: string) {}

  private call<T>(method: string, path: string, payload?: unknown): Promise<T> {
    return new Promise((resolve, reject) => {
      const data = payload === undefined ? undefined : JSON.stringify(payload);
      const req = request({ socketPath: this.socketPath, method, path, headers: data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {} }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          const value = text ? (JSON.parse(text) as T & { error?: string }) : ({} as T & { error?: string });
          if ((res.statusCode ?? 500) >= 400) reject(new ForwarderRefused(`forwarder: ${value.error ?? res.statusCode}`, res.statusCode ?? 500));
          else resolve(value);
        });
      });
      req.setTimeout(10_000, () => req.destroy(new Error('timed out')));
      req.on('error', (err) => reject(new ServiceUnavailableError('codeb forwarder', this.socketPath, err)));
      if (data) req.write(data);
      req.end();
    });
  }

  /**
   * answers: the forwarder marks verification answers (verify-answer.ts); targets: an entry may
   * have several targets (replicas); sites, routeAuth: it keeps routes' other host names and auth
   * (an older one would drop them). Older forwarders do not say.
   */
  health(): Promise<{ ok: boolean; pid: number; entries: number; routes?: number; router?: string | null; answers?: boolean; targets?: boolean; sites?: boolean; routeAuth?: boolean; build?: string | null }> {
    return this.call('GET', '/health');
  }
  async list(): Promise<ForwarderEntry[]> {
    return (await this.call<{ entries: ForwarderEntry[] }>('GET', '/entries')).entries;
  }
  /**
   * `allow`: the owning project's container subnet (the entry is then also reachable from those
   * containers at the services address). `to`: the slot port, or one per replica (all switched
   * together). `switchedAt` may be missing when the forwarder runs an older codeb.
   */
  set(id: string, entryPort: number, to: number | readonly number[], allow: string | null = null): Promise<Omit<SetResult, 'switchedAt'> & { switchedAt?: string }> {
    const targets = typeof to === 'number' ? [to] : [...to];
    return this.call('PUT', `/entries/${encodeURIComponent(id)}`, { entryPort, target: targets[0], targets, allow });
  }
  async retire(id: string, port: number, graceMs: number): Promise<number> {
    return (await this.call<{ closed: number }>('POST', `/entries/${encodeURIComponent(id)}/retire`, { port, graceMs })).closed;
  }
  async routes(): Promise<HostRoute[]> {
    return (await this.call<{ routes: HostRoute[] }>('GET', '/routes')).routes;
  }
  /** A host route, or undefined when the forwarder has none by that name. */
  async route(id: string): Promise<HostRoute | undefined> {
    try {
      return await this.call<HostRoute>('GET', `/routes/${encodeURIComponent(id)}`);
    } catch (err) {
      if (err instanceof ForwarderRefused && err.status === 404) return undefined;
      throw err;
    }
  }
  setRoute(route: HostRoute): Promise<HostRoute> {
    const { id, ...rest } = route;
    return this.call('PUT', `/routes/${encodeURIComponent(id)}`, rest);
  }
  async removeRoute(id: string): Promise<boolean> {
    return (await this.call<{ removed: boolean }>('DELETE', `/routes/${encodeURIComponent(id)}`)).removed;
  }
  async remove(id: string): Promise<boolean> {
    return (await this.call<{ removed: boolean }>('DELETE', `/entries/${encodeURIComponent(id)}`)).removed;
  }
}

/**
 * Time from `since` (process.hrtime.bigint()) until traffic was switched by every acknowledged
 * set (the forwarder's own switch instant), and until the last acknowledgement arrived.
 */
export function switchTimes(since: bigint, acks: Array<{ switchedAt?: string }>): { switchMs: number; ackMs: number } {
  const done = process.hrtime.bigint();
  let last = since;
  for (const a of acks) {
    const at = a.switchedAt ? BigInt(a.switchedAt) : done; // an older forwarder: only the answer is known
    if (at > last) last = at;
  }
  if (last > done) last = done;
  return { switchMs: Number(last - since) / 1e6, ackMs: Number(done - since) / 1e6 };
}
