/**
 * The hostile tenant, on the network: two projects deployed for real (web + internal api, a
 * database and a cache each), and from inside project A's web container everything that must
 * not answer is tried — the Caddy admin API and the stack's other ports, the stack's Postgres
 * superuser (with its real password), project B's containers by IP, B's slot ports and B's
 * internal service entry — along with a raw socket. What A may use must keep working: its own
 * internal api, and Postgres, Redis and S3 with its own credentials at the services address.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Docker from 'dockerode';
import { containerName, networkName } from '../../controller/manifest/names.js';
import { NetworkProvider } from '../../controller/providers/network.js';
import { reserveRedisDbs } from './helpers/apply.js';
import { DeployEnv, manifest, show, uniqueId, type Run } from './helpers/deploy.js';
import { appPorts, networkRangeFor, stackSettings } from './helpers/stack.js';
import { networkResource } from '../../controller/reconcile/desired.js';
import { chooseSubnet, gatewayOf, parseCidr, parsePool } from '../../controller/runtime/network.js';
import { libpodCall } from '../../controller/providers/libpod.js';

const t = new DeployEnv(appPorts('4250-4299'));
const a = uniqueId('ta');
const b = uniqueId('tb');
const container = (project: string, service: string) => containerName(project, 'production', service, 'blue');

const services = `  web:
    type: web
    image: localhost/codeb-testapp:v1
    port: 8080
    healthCheck:
      http:
        path: /api/health
        interval: 200ms
  api:
    type: internal
    image: localhost/codeb-testapp:v1
    port: 8080
    healthCheck:
      http:
        path: /api/health
        interval: 200ms
`;
const features = '  cache: true\n  storage: true\n';

type Ports = Record<string, { blue: number; green: number; entry: number }>;
let portsA: Ports;
let portsB: Ports;
let ipB: string;
let gatewayA: string;
/** A connection A must get (its Postgres at the services address): run with every refusal check. */
const OPEN_CONTROL = (): [string, number] => [t.settings.network.servicesAddress, t.settings.postgres.port];

/**
 * Run a node script inside A's web container; it prints one JSON line. The script gets its
 * input as argv[1] (JSON), so nothing is pasted into code.
 */
async function inA(script: string, input: unknown): Promise<unknown> {
  const r = await t.runtime.exec(container(a, 'web'), ['/usr/bin/node', '-e', script, JSON.stringify(input)], 30_000);
  expect(r.exitCode, r.output).toBe(0);
  return JSON.parse(r.output.trim().split('\n').at(-1)!);
}

/** The subnets of this stack's Podman networks only (not the host's routes). */
async function libpodSubnets(socketPath: string): Promise<string[]> {
  const r = await libpodCall(socketPath, 'GET', '/networks/json');
  return (r.json as Array<{ subnets?: Array<{ subnet: string }> }>).flatMap((n) => (n.subnets ?? []).map((x) => x.subnet));
}

/** TCP connect to each [host, port]: 'open', an error code (ECONNREFUSED, ...) or 'timeout' (1.5 s). */
const CONNECT = `const net = require('net');
const targets = JSON.parse(process.argv[1]);
Promise.all(targets.map(([host, port]) => new Promise((done) => {
  const s = net.connect({ host, port });
  const timer = setTimeout(() => { s.destroy(); done('timeout'); }, 1500);
  s.on('connect', () => { clearTimeout(timer); s.destroy(); done('open'); });
  s.on('error', (e) => { clearTimeout(timer); done(e.code || e.message); });
}))).then((r) => console.log(JSON.stringify(r)));`;

/**
 * HTTP GET of each URL: "<status>" or the error code. node:http with its own (ref'd) timeout:
 * fetch's AbortSignal.timeout does not keep node alive, so a connection closed under it could end
 * the process with nothing printed.
 */
const FETCH = `const http = require('http');
const urls = JSON.parse(process.argv[1]);
Promise.all(urls.map((u) => new Promise((done) => {
  const req = http.get(u, { timeout: 3000, agent: false }, (res) => { res.resume(); res.on('end', () => done(String(res.statusCode))); });
  req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'timeout' })));
  req.on('error', (e) => done(e.code || e.message));
}))).then((r) => console.log(JSON.stringify(r)));`;

describe('tenant isolation on the network (a hostile project A against the stack and project B)', () => {
  beforeAll(async () => {
    await t.privateProxy();
    await reserveRedisDbs(t.settings, t.registry, 'tenant-network', 2);
    for (const id of [a, b]) {
      const r = await t.codeb('apply', t.write(`${id}.yaml`, manifest({ id, services, features })));
      expect(r.code, show(r)).toBe(0);
    }
    portsA = (await t.record(a)).ports as Ports;
    portsB = (await t.record(b)).ports as Ports;
    const docker = new Docker({ socketPath: t.settings.podman.socketPath });
    const info = await docker.getContainer(container(b, 'web')).inspect();
    ipB = info.NetworkSettings.Networks[networkName(b, 'production')]!.IPAddress;
    const rec = await t.record(a);
    gatewayA = rec.subnet!.replace(/\.(\d+)\/26$/, (_, last: string) => `.${Number(last) + 1}`);
  }, 120_000);

  afterAll(async () => {
    const results = await Promise.all([a, b].map((id) => t.codeb('destroy', id, '--delete-data', '--yes')));
    const networks = new NetworkProvider(t.settings.podman.socketPath);
    const left = await Promise.all([a, b].map((id) => networks.inspect(networkName(id, 'production'))));
    await t.close();
    for (const r of results) expect(r.code, show(r)).toBe(0);
    // destroy removes each project's network after its containers
    expect(left).toEqual([null, null]);
  });

  it('each project has a subnet of its own and its containers are on its network only', async () => {
    const [ra, rb] = [await t.record(a), await t.record(b)];
    expect(ra.subnet).toMatch(/^10\.|^172\.|^192\.168\./);
    expect(ra.subnet).not.toBe(rb.subnet);
    const docker = new Docker({ socketPath: t.settings.podman.socketPath });
    const info = await docker.getContainer(container(a, 'web')).inspect();
    expect(Object.keys(info.NetworkSettings.Networks)).toEqual([networkName(a, 'production')]);
    // Podman reports the dropped set expanded (every default capability), and none added.
    expect(info.HostConfig.CapDrop?.map((c: string) => c.toUpperCase().replace(/^CAP_/, ''))).toEqual(expect.arrayContaining(['NET_RAW', 'CHOWN', 'SETUID', 'NET_BIND_SERVICE']));
    expect(info.HostConfig.CapAdd ?? []).toEqual([]);
    expect(info.HostConfig.SecurityOpt).toContain('no-new-privileges');
    // The slot port is published on the host's loopback only.
    const bindings = info.HostConfig.PortBindings as Record<string, Array<{ HostIp: string; HostPort: string }>>;
    expect(Object.values(bindings).flat()).toEqual([{ HostIp: '127.0.0.1', HostPort: String(portsA.web!.blue) }]);
  });

  it("the stack's admin and service ports on the host's loopback are out of reach", async () => {
    // This file's own Caddy (the private proxy) and the stack's.
    // (An admin API on a unix socket is outside the container's mount namespace altogether.)
    const tcpPort = (url: string): number[] => (url.startsWith('http') ? [Number(new URL(url).port)] : []);
    const stack = stackSettings();
    const admin = [...tcpPort(t.settings.caddy.adminUrl), ...tcpPort(stack.caddy.adminUrl)];
    const web = [t.settings.caddy.httpPort, t.settings.caddy.httpsPort, stack.caddy.httpPort, stack.caddy.httpsPort];
    const ports = [...admin, ...web, t.settings.postgres.port, t.settings.redis.port, t.settings.storage.port, portsA.web!.entry];
    const at = t.settings.network.servicesAddress;
    // 127.0.0.1 inside the container is its own loopback; the services address and the gateway
    // answer only where a service listens there (not Caddy, not its admin API).
    const targets = [...ports.map((p) => ['127.0.0.1', p]), ...[...admin, ...web].flatMap((p) => [[at, p], [gatewayA, p]])];
    const [control, ...r] = (await inA(CONNECT, [OPEN_CONTROL(), ...targets])) as string[];
    // A connection that must succeed, in the same batch: a 'timeout' below is a refusal, not a slow machine.
    expect(control).toBe('open');
    r.forEach((outcome, i) => expect(outcome, `${JSON.stringify(targets[i])}`).not.toBe('open'));
  });

  it("the stack's Postgres superuser is refused from a container even with its real password", async () => {
    const script = `const { Client } = require('/app/node_modules/pg');
const [host, port, user, password] = JSON.parse(process.argv[1]);
const c = new Client({ host, port, user, password, database: 'postgres', connectionTimeoutMillis: 3000 });
c.connect().then(() => c.query('SELECT 1')).then(() => console.log(JSON.stringify('connected')), (e) => console.log(JSON.stringify(e.code || e.message))).finally(() => c.end().catch(() => {}));`;
    const outcome = await inA(script, [t.settings.network.servicesAddress, t.settings.postgres.port, t.settings.postgres.user, t.settings.postgres.password]);
    // 28000: pg_hba.conf rejects the superuser from the container pool.
    expect(outcome).toBe('28000');
  });

  it('the shared services work with A\'s own credentials at the services address (env file)', async () => {
    const script = `const { Client } = require('/app/node_modules/pg');
const Redis = require('/app/node_modules/ioredis');
(async () => {
  const out = {};
  const c = new Client({ connectionString: process.env.DATABASE_URL, connectionTimeoutMillis: 3000 });
  await c.connect();
  out.pg = (await c.query('SELECT current_user AS u')).rows[0].u;
  await c.end();
  const r = new Redis(process.env.REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0 });
  await r.connect();
  out.redis = await r.ping();
  r.disconnect();
  const s3 = await fetch(process.env.S3_ENDPOINT + '/_codeb/health').then((x) => x.status, (e) => e.cause && e.cause.code);
  out.s3 = s3;
  out.hosts = [process.env.DATABASE_URL, process.env.REDIS_URL, process.env.S3_ENDPOINT].map((u) => new URL(u).hostname);
  console.log(JSON.stringify(out));
})().catch((e) => console.log(JSON.stringify({ error: e.code || e.message })));`;
    const out = (await inA(script, null)) as Record<string, unknown>;
    const at = t.settings.network.servicesAddress;
    expect(out).toMatchObject({ pg: (await t.record(a)).databaseRole, redis: 'PONG', s3: 200, hosts: [at, at, at] });
  });

  it("B's containers and slot ports cannot be reached from A, by IP or through the host", async () => {
    const at = t.settings.network.servicesAddress;
    const targets = [
      [ipB, portsB.web!.blue],
      [ipB, portsB.api!.blue],
      ['127.0.0.1', portsB.web!.blue],
      [at, portsB.web!.blue],
      [at, portsB.api!.blue],
      [gatewayA, portsB.web!.blue],
    ];
    const [control, ...r] = (await inA(CONNECT, [OPEN_CONTROL(), ...targets])) as string[];
    expect(control).toBe('open');
    r.forEach((outcome, i) => expect(outcome, `${JSON.stringify(targets[i])}`).not.toBe('open'));
    // B's container by IP: isolated networks drop the packets (no answer at all).
    expect(r[0]).toBe('timeout');
  });

  it("A reaches its own internal api through API_URL; B's internal entry closes A's connections", async () => {
    const at = t.settings.network.servicesAddress;
    const apiUrl = await t.runtime.exec(container(a, 'web'), ['/usr/bin/node', '-e', 'process.stdout.write(process.env.API_URL)'], 10_000);
    expect(apiUrl.output).toBe(`http://${at}:${portsA.api!.entry}`);
    const r = (await inA(FETCH, [`http://${at}:${portsA.api!.entry}/api/health`, `http://${at}:${portsB.api!.entry}/api/health`, `http://${at}:${portsB.web!.entry}/`])) as string[];
    expect(r[0]).toBe('200');
    expect(r[1]).not.toMatch(/^\d+$/);
    expect(r[2]).not.toMatch(/^\d+$/);
    // B's own web container does reach B's api through the same address.
    const fromB = await t.runtime.exec(container(b, 'web'), ['/usr/bin/node', '-e', FETCH, JSON.stringify([`http://${at}:${portsB.api!.entry}/api/health`])], 30_000);
    expect(fromB.output.trim(), `exit ${fromB.exitCode}`).toBe('["200"]');
  });

  it("a network of the project's name that someone else owns blocks apply and is left alone", async () => {
    const c = uniqueId('tc');
    const networks = new NetworkProvider(t.settings.podman.socketPath);
    const subnet = chooseSubnet(parsePool(t.settings.network.pool), null, await networks.subnetsInUse(''), parseCidr(networkRangeFor(appPorts('4250-4299'))));
    const squatter = { ...networkResource('squatter', 'production', subnet), name: networkName(c, 'production') };
    await networks.execute({ op: 'create', key: squatter.key, kind: squatter.kind, name: squatter.name, reason: 'test', changes: [], resource: squatter }, { secret: () => '', progress: () => {} });
    try {
      const r = await t.codeb('apply', t.write(`${c}.yaml`, manifest({ id: c, database: false })));
      expect(r.code, show(r)).toBe(1);
      expect(r.stderr).toContain(`network.project ${networkName(c, 'production')}: Podman network ${networkName(c, 'production')} exists but belongs to squatter/production`);
      expect((await networks.inspect(networkName(c, 'production')))?.labels?.['codeb.project']).toBe('squatter');
      expect(await t.runtime.list({ 'codeb.project': c })).toEqual([]);
    } finally {
      await networks.remove(networkName(c, 'production'));
    }
  });

  it("a subnet held on the host outside this stack's Podman (a bridge left down by an earlier run) is skipped, not refused", async () => {
    const c = uniqueId('td');
    const networks = new NetworkProvider(t.settings.podman.socketPath);
    const range = parseCidr(networkRangeFor(appPorts('4250-4299')));
    // The subnet the next project would get, held by an interface Podman does not know.
    const doc = JSON.parse(readFileSync(t.registry, 'utf8')) as { projects: Record<string, { environments: Record<string, { subnet?: string }> }> };
    const recorded = Object.values(doc.projects).flatMap((p) => Object.values(p.environments).map((e) => e.subnet ?? '')).filter(Boolean);
    const podmanOnly = [...(await libpodSubnets(t.settings.podman.socketPath)), ...recorded];
    const held = chooseSubnet(parsePool(t.settings.network.pool), null, podmanOnly, range);
    const iface = `cbt${process.pid.toString(16).slice(-6)}`;
    execFileSync('ip', ['link', 'add', iface, 'type', 'bridge']);
    try {
      execFileSync('ip', ['addr', 'add', `${gatewayOf(held)}/26`, 'dev', iface]);
      expect(await networks.subnetsInUse('')).toContain(held);
      const r = await t.codeb('apply', t.write(`${c}.yaml`, manifest({ id: c, database: false })));
      expect(r.code, show(r)).toBe(0);
      const subnet = (await t.record(c)).subnet;
      expect(subnet).toBeTruthy();
      expect(subnet).not.toBe(held);
      const gone = await t.codeb('destroy', c, '--delete-data', '--yes');
      expect(gone.code, show(gone)).toBe(0);
    } finally {
      execFileSync('ip', ['link', 'del', iface]);
    }
  });

  it('a raw socket cannot be opened: ping fails for lack of NET_RAW', async () => {
    const r = await t.runtime.exec(container(a, 'web'), ['/usr/bin/busybox', 'ping', '-c', '1', '-W', '1', t.settings.network.servicesAddress], 10_000);
    expect(r.exitCode).not.toBe(0);
    expect(r.output).toMatch(/permission denied|not permitted/i);
  });
});
