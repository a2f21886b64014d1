/**
 * A project of three services from the test image, deployed for real: `web` (routed by Caddy),
 * `api` (internal: no route, reached by the others through its entry URL, API_URL) and `worker`
 * (no port: healthy by staying up for its start period). Then a v2 of all three, and a v3 whose
 * worker crashes, which must fail the gate and leave v2 serving.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HistoryEntry } from '../../controller/registry/types.js';
import { ForwarderClient } from '../../controller/deploy/forwarder-client.js';
import { DeployEnv, get, manifest, show, uniqueId } from './helpers/deploy.js';
import { appPorts } from './helpers/stack.js';

const t = new DeployEnv(appPorts('4150-4199'));
const id = uniqueId('ms');
const domain = `${id}.localhost`;
const name = (service: string, slot: string) => `${id}--production--${service}--${slot}`;

function services(workerEnv: Record<string, string> = {}): string {
  const env = Object.entries({ WORKER_TICK_MS: '500', ...workerEnv });
  const http = `    healthCheck:
      http:
        path: /api/health
        timeout: 1s
        interval: 200ms
        successes: 3
`;
  // HEALTH_PATH=/web-only: a path only the web service answers, to tell who Caddy reaches.
  return `  web:
    type: web
    image: localhost/codeb-testapp:v1
    port: 8080
    env:
      HEALTH_PATH: /web-only
${http}  api:
    type: internal
    image: localhost/codeb-testapp:v1
    port: 8080
${http}  worker:
    type: worker
    image: localhost/codeb-testapp:v1
    command: ["/usr/bin/node", "/app/app.js", "--worker"]
    env:
${env.map(([k, v]) => `      ${k}: "${v}"`).join('\n')}
    healthCheck:
      startPeriod: 2s
`;
}

const base = t.write('project.yaml', manifest({ id, services: services() }));
const crashing = t.write('crash.yaml', manifest({ id, services: services({ FAIL_MODE: 'crash' }), deadline: '8s' }));
const lastDeploy = (h: HistoryEntry[]) => h.filter((e) => e.action === 'deploy').at(-1)!;

/** The project's route in the forwarder's host table: which services it routes, at which entry port. */
async function routedServices(): Promise<Array<{ service: string; port: number }>> {
  const route = await new ForwarderClient(t.settings.forwarder.socketPath).route(`codeb-${id}--production`);
  return (route?.upstreams ?? []).map((u) => ({ service: u.service, port: u.port }));
}

/** In a container: GET process.env[variable] + path with the image's own node; prints status and body. */
async function fetchFrom(container: string, variable: string, path: string): Promise<{ exitCode: number; output: string }> {
  const script = `fetch(process.env.${variable} + ${JSON.stringify(path)}).then(async (r) => console.log(r.status, await r.text())).catch((e) => { console.log('ERR', e.cause?.code ?? e.message); process.exit(1); })`;
  return t.runtime.exec(container, ['/usr/bin/node', '-e', script], 10_000);
}

describe('a multi-service project: web + internal api + worker', () => {
  let ports: Record<string, { blue: number; green: number; entry: number }>;

  beforeAll(async () => {
    await t.up(base);
    ports = (await t.record(id)).ports as typeof ports;
  });
  afterAll(() => t.down(id));

  it('starts all three; the worker has no port and was judged by staying up', async () => {
    expect(Object.keys(ports).sort()).toEqual(['api', 'web']);
    for (const s of ['web', 'api', 'worker']) {
      const st = await t.runtime.inspect(name(s, 'blue'));
      expect(st?.running, s).toBe(true);
      expect(st?.labels).toMatchObject({ 'codeb.project': id, 'codeb.env': 'production', 'codeb.service': s, 'codeb.slot': 'blue', 'codeb.version': 'v1' });
    }
    // Its first line, however many 500 ms ticks followed it on a slow machine (1000 lines: ~8 min).
    expect(await t.runtime.logsTail(name('worker', 'blue'), 1000)).toContain('worker started');
    const rec = await t.record(id);
    const health = lastDeploy(rec.history).detail!.health as Array<{ service: string; healthy: boolean; ms: number }>;
    expect(health.map((h) => h.service).sort()).toEqual(['api', 'web', 'worker']);
    expect(health.every((h) => h.healthy)).toBe(true);
    // Uptime: not healthy before its 2 s start period had passed.
    expect(health.find((h) => h.service === 'worker')!.ms).toBeGreaterThanOrEqual(2000);
  });

  it('only web is routed through Caddy; the internal api has no route', async () => {
    expect(await routedServices()).toEqual([{ service: 'web', port: ports.web!.entry }]);
    const r = await t.viaCaddy(domain, '/');
    expect(r.status).toBe(200);
    expect(r.body).toBe('hello from v1\n');
    // The domain reaches web (the only one answering /web-only), and api answers 404 there.
    expect((await t.viaCaddy(domain, '/web-only')).status).toBe(200);
    expect((await get(ports.web!.blue, '/web-only')).status).toBe(200);
    expect((await get(ports.api!.blue, '/web-only')).status).toBe(404);
  });

  it('the internal api is reachable from the web container through API_URL (its entry port on the services address)', async () => {
    const env = await t.runtime.exec(name('web', 'blue'), ['/usr/bin/node', '-e', 'console.log(process.env.API_URL, process.env.WEB_URL, process.env.WORKER_URL)'], 10_000);
    const at = t.settings.network.servicesAddress;
    expect(env.output.trim()).toBe(`http://${at}:${ports.api!.entry} http://${at}:${ports.web!.entry} undefined`);
    const r = await fetchFrom(name('web', 'blue'), 'API_URL', '/api/health');
    expect(r.exitCode, r.output).toBe(0);
    expect(r.output).toMatch(/^200 \{"ok":true,"version":"v1","database":"ok"/);
    // The worker reaches it the same way.
    const w = await fetchFrom(name('worker', 'blue'), 'API_URL', '/');
    expect(w.output.trim()).toBe('200 hello from v1');
  });

  it('v2 of all three: entries follow the switch, the old worker stops, old web and api are retained', async () => {
    const r = await t.codeb('deploy', base, '--image', 'localhost/codeb-testapp:v2');
    expect(r.code, show(r)).toBe(0);
    expect((await t.viaCaddy(domain, '/')).body).toBe('hello from v2\n');
    const fromWeb = await fetchFrom(name('web', 'green'), 'API_URL', '/api/version');
    expect(fromWeb.output).toMatch(/^200 \{"version":"v2"/);
    for (const s of ['web', 'api', 'worker']) expect(await t.running(name(s, 'green')), s).toBe(true);
    expect(await t.running(name('web', 'blue'))).toBe(true);
    expect(await t.running(name('api', 'blue'))).toBe(true);
    expect(await t.runtime.inspect(name('worker', 'blue'))).toBeNull();
    const rec = await t.record(id);
    expect(rec.retained).toMatchObject({ slot: 'blue', images: { web: 'localhost/codeb-testapp:v1', api: 'localhost/codeb-testapp:v1' } });
  });

  it('a worker that crashes fails the gate: exit 3, v2 keeps serving, the v3 containers are removed', async () => {
    const r = await t.codeb('deploy', crashing, '--image', 'localhost/codeb-testapp:v3');
    expect(r.code, show(r)).toBe(3);
    expect(r.stderr).toMatch(/traffic was not moved: worker: /);
    expect(r.stderr).toContain('crashing now (FAIL_MODE=crash)');
    expect(r.stderr).not.toMatch(/(web|api): (not healthy|the container)/);
    expect((await t.viaCaddy(domain, '/')).body).toBe('hello from v2\n');
    expect((await fetchFrom(name('web', 'green'), 'API_URL', '/')).output.trim()).toBe('200 hello from v2');
    for (const s of ['web', 'api', 'worker']) {
      expect(await t.runtime.inspect(name(s, 'blue')), s).toBeNull();
      expect(await t.running(name(s, 'green')), s).toBe(true);
    }
    const h = lastDeploy((await t.record(id)).history);
    expect(h).toMatchObject({ result: 'failed', detail: { outcome: 'health-failed' } });
    expect((h.detail!.health as Array<{ service: string; healthy: boolean }>).find((x) => x.service === 'worker')!.healthy).toBe(false);
  });
});
