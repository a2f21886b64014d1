/**
 * Neighbour-safe route changes (issue 9, finding 10): on the stack's own Caddy and forwarder, a
 * bounded load client sends requests for project A through Caddy while project B's route is
 * created, changed (domains, services) and removed, three times over, through the proxy provider
 * (what apply and destroy do). Not one of A's requests may fail, and Caddy's configuration must be
 * the same afterwards: routes are forwarder host-table entries, never Caddy config changes (which
 * on Caddy 2.6 reload every site and fail the requests in flight). Also: unknown hosts get 404,
 * and the stack's Caddy listens on no TCP port but HTTP and HTTPS (its admin API is a socket).
 */
import { createServer, request, Agent, type Server } from 'node:http';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ForwarderClient } from '../../controller/deploy/forwarder-client.js';
import { caddyAdminRequest, ProxyProvider } from '../../controller/providers/proxy.js';
import type { RouteSpec } from '../../controller/reconcile/desired.js';
import { makeResource, type ExecContext, type Resource } from '../../controller/reconcile/model.js';
import { planApply, planDestroy } from '../../controller/reconcile/plan.js';
import type { Settings } from '../../controller/settings.js';
import { resolveStack } from '../../controller/stack/layout.js';
import { freePort, stackSettings, uniqueId } from './helpers/stack.js';

const run = uniqueId('nb');
const ctx: ExecContext = { secret: () => '', progress: () => {} };
let settings: Settings;
let provider: ProxyProvider;
let forwarder: ForwarderClient;
const servers: Server[] = [];
const entries: string[] = [];
const routeNames = [`codeb-${run}-a-production`, `codeb-${run}-b-production`];

async function app(name: string): Promise<number> {
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`${name} ${req.url}`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  servers.push(server);
  const slot = (server.address() as { port: number }).port;
  const entry = await freePort();
  const id = `${run}-${name}-production-web`;
  await forwarder.set(id, entry, slot);
  entries.push(id);
  return entry;
}

function spec(domains: string[], upstreams: RouteSpec['upstreams']): RouteSpec {
  return { domains, tls: 'off', upstreams, websockets: true, caddyFront: true };
}

async function converge(r: Resource): Promise<void> {
  const [a] = planApply([r], await provider.observe([r]));
  await provider.execute(a!, ctx);
}

async function remove(name: string): Promise<void> {
  const r = makeResource('proxy.route', name, {});
  for (const a of planDestroy([r], await provider.observe([r]), true)) if (a.op === 'delete') await provider.execute(a, ctx);
}

function get(host: string, path: string, agent: Agent | false = false): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: settings.caddy.httpPort, path, agent, headers: { host } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

async function waitFor(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`not reached: ${what}`);
}

beforeAll(async () => {
  settings = stackSettings();
  provider = new ProxyProvider(settings.caddy, settings.forwarder);
  forwarder = new ForwarderClient(settings.forwarder.socketPath);
});

afterAll(async () => {
  for (const name of routeNames) await remove(name).catch(() => {});
  for (const id of entries) await forwarder.remove(id).catch(() => false);
  for (const s of servers) s.close();
});

describe('route changes of one project fail no request of another', () => {
  it("B's route created, changed and removed three times while A is under load: 0 of A's requests fail, Caddy's config unchanged", async () => {
    const [aName, bName] = routeNames as [string, string];
    const aHost = `a-${run}.localhost`;
    const bHost = `b-${run}.localhost`;
    await converge(makeResource('proxy.route', aName, spec([aHost], [{ path: null, port: await app('a'), service: 'web' }])));
    const bWeb = await app('b');
    const bApi = await app('b-api');
    expect(await get(aHost, '/')).toEqual({ status: 200, body: 'a /' });
    const caddyBefore = (await caddyAdminRequest(settings.caddy.adminUrl, 'GET', '/config/')).text;

    // The load: 10 keep-alive clients, bounded in count (20 000) and time (60 s); no retries.
    const agent = new Agent({ keepAlive: true, maxSockets: 10 });
    let stop = false;
    const counts = { sent: 0, ok: 0, failed: 0, duringChanges: 0 };
    const failures: string[] = [];
    let changing = false;
    const t0 = Date.now();
    const client = async () => {
      while (!stop && counts.sent < 20_000 && Date.now() - t0 < 60_000) {
        counts.sent++;
        if (changing) counts.duringChanges++;
        try {
          const r = await get(aHost, '/load', agent);
          if (r.status === 200 && r.body === 'a /load') counts.ok++;
          else (counts.failed++, failures.push(`HTTP ${r.status} ${r.body.slice(0, 80)}`));
        } catch (err) {
          counts.failed++;
          failures.push((err as NodeJS.ErrnoException).code ?? (err as Error).message);
        }
      }
    };
    const clients = Array.from({ length: 10 }, client);
    await waitFor('the load is running', async () => counts.ok > 100);

    changing = true;
    for (let round = 0; round < 3; round++) {
      await converge(makeResource('proxy.route', bName, spec([bHost], [{ path: null, port: bWeb, service: 'web' }])));
      await waitFor('B answers', async () => (await get(bHost, '/')).body === 'b /');
      await converge(makeResource('proxy.route', bName, spec([bHost, `www.${bHost}`], [{ path: '/api', port: bApi, service: 'api' }, { path: null, port: bWeb, service: 'web' }])));
      await waitFor("B's change answers", async () => (await get(`www.${bHost}`, '/api/x')).body === 'b-api /api/x');
      await remove(bName);
      await waitFor('B is gone', async () => (await get(bHost, '/')).status === 404);
    }
    changing = false;
    stop = true;
    await Promise.all(clients);
    agent.destroy();

    expect(failures.slice(0, 5)).toEqual([]);
    expect(counts.failed).toBe(0);
    expect(counts.duringChanges).toBeGreaterThan(0);
    expect(counts.ok).toBe(counts.sent);
    expect((await caddyAdminRequest(settings.caddy.adminUrl, 'GET', '/config/')).text).toBe(caddyBefore);
  });

  it('an unknown host gets 404 through Caddy', async () => {
    const r = await get(`unknown-${run}.localhost`, '/');
    expect(r.status).toBe(404);
    expect((await get(`b-${run}.localhost`, '/')).status).toBe(404);
  });

  it("the stack's Caddy listens on no TCP port but HTTP and HTTPS: its admin API is a Unix socket", async () => {
    expect(settings.caddy.adminUrl).toMatch(/^unix:\/\//);
    const pid = Number((JSON.parse(readFileSync(resolveStack().paths.pidFile('caddy'), 'utf8')) as { pid: number }).pid);
    const inodes = new Set(readdirSync(`/proc/${pid}/fd`).map((fd) => /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1]).filter(Boolean));
    const listening = ['/proc/net/tcp', '/proc/net/tcp6'].flatMap((f) =>
      readFileSync(f, 'utf8').split('\n').slice(1).map((l) => l.trim().split(/\s+/)).filter((c) => c[3] === '0A' && inodes.has(c[9])).map((c) => parseInt(c[1]!.split(':')[1]!, 16)),
    );
    expect(listening.sort()).toEqual([settings.caddy.httpPort, settings.caddy.httpsPort].sort());
  });
});
