/**
 * The embedded local stack for real: a stack of its own in a temporary CODEB_HOME on other ports
 * (CODEB_TEST_STACK_PORT_BASE, which scripts/test.sh sets 50 above the test stack's base, in the
 * suite's own slot, clear of every other stack's ports; slot 0's when unset) so it never touches a
 * developer's stack, the demo's or the one scripts/test.sh starts for the other integration tests.
 *
 * Checks that each part really answers (and really wants its credentials), that `up` twice is a
 * no-op, that `status --json` tells the truth, that data and Caddy routes survive down/up, and that
 * `down` leaves no process behind. The `codeb stack` commands are bundled from the current sources.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { createServer as createHttpServer, request, type Server } from 'node:http';
import { connect, createServer } from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleChild } from '../helpers/bundle-child.js';
import { siblingPool } from './helpers/stack.js';
import { parsePool, servicesAddress } from '../../controller/runtime/network.js';
import pg from 'pg';
import { Redis } from 'ioredis';
import * as Minio from 'minio';
import { ensureStack, stackStatus, stopStack, PART_NAMES } from '../../controller/stack/index.js';
import type { Settings } from '../../controller/settings.js';
import { ForwarderClient } from '../../controller/deploy/forwarder-client.js';
import { freePort } from './helpers/stack.js';
import { SECOND_OFFSET, SECOND_STEP, TEST_CANDIDATES } from '../../scripts/lib/stack-ports.mjs';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const portBase = Number(process.env.CODEB_TEST_STACK_PORT_BASE || TEST_CANDIDATES[0]! + SECOND_OFFSET);
const home = mkdtempSync(join(tmpdir(), 'codeb-stack-test-'));

// Only what this test means: no settings/stack/port variables inherited from the caller.
const env: NodeJS.ProcessEnv = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !/^CODEB_(SETTINGS|STACK_|HOME|PG_|REDIS_|S3_|CADDY_|PODMAN_|NETWORK_)/.test(k)),
);
env.CODEB_HOME = home;
env.CODEB_STACK_PORT_BASE = String(portBase);
// Its own services address and subnets: the suite's stack runs beside it.
env.CODEB_NETWORK_POOL = siblingPool(1);

let cli = '';
let settings: Settings;
let firstPids: Record<string, number> = {};
let routedApp: Server | undefined;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function codeb(...args: string[]): Promise<Run> {
  return codebWith(env, ...args);
}

function codebWith(runEnv: NodeJS.ProcessEnv, ...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { env: runEnv, timeout: 120_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function pidFiles(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name of PART_NAMES) {
    const f = join(home, 'stack', 'run', `${name}.pid`);
    if (existsSync(f)) out[name] = (JSON.parse(readFileSync(f, 'utf8')) as { pid: number }).pid;
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Live processes whose command line or working directory mentions the test's home. */
function processesUsingHome(): string[] {
  const found: string[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ');
      let cwd = '';
      try {
        cwd = readlinkSync(`/proc/${entry}/cwd`);
      } catch {
        /* another user's process */
      }
      if ((cmd.includes(home) || cwd.startsWith(home)) && alive(Number(entry))) found.push(`${entry}: ${cmd.trim()} (cwd ${cwd})`);
    } catch {
      /* process ended while we looked */
    }
  }
  return found;
}

/** GET over a unix socket, or over TCP with an explicit Host header (fetch cannot set Host). */
function httpGet(where: { socketPath: string } | { port: number; host: string }, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const target =
      'socketPath' in where
        ? { socketPath: where.socketPath }
        : { host: '127.0.0.1', port: where.port, headers: { host: where.host } };
    const req = request({ ...target, path, method: 'GET', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function minio(s: Settings, secretKey = s.storage.secretKey, accessKey = s.storage.accessKey): Minio.Client {
  return new Minio.Client({
    endPoint: s.storage.endPoint,
    port: s.storage.port,
    useSSL: s.storage.useSSL,
    accessKey,
    secretKey,
    region: s.storage.region,
  });
}

async function pgQuery(s: Settings, sql: string, password = s.postgres.password): Promise<unknown[]> {
  const client = new pg.Client({ ...s.postgres, password, connectionTimeoutMillis: 30_000 });
  await client.connect();
  try {
    return (await client.query(sql)).rows;
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  // Bundle just the stack commands from source, under the repo's git-ignored .codeb/ so that
  // bare imports resolve from node_modules and scripts/stack-s3rver.mjs is found.
  cli = await bundleChild(join(repo, 'test', 'integration', 'stack-cli.entry.ts'));
}, 60_000);

// A second, broken stack for the failure paths.
const home2 = mkdtempSync(join(tmpdir(), 'codeb-stack-fail-'));
const env2: NodeJS.ProcessEnv = { ...env, CODEB_HOME: home2, CODEB_STACK_PORT_BASE: String(portBase + SECOND_STEP), CODEB_NETWORK_POOL: siblingPool(2) };

afterAll(async () => {
  try {
    await stopStack({ env, purge: true });
    await stopStack({ env: env2, purge: true });
  } finally {
    rmSync(home, { recursive: true, force: true });
    rmSync(home2, { recursive: true, force: true });
    rmSync(cli, { force: true });
  }
}, 120_000);

describe('codeb stack (real services on 127.0.0.1)', () => {
  it('starts every part from nothing and writes the settings file with mode 0600', async () => {
    settings = await ensureStack({ env });
    const file = join(home, 'settings.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(settings);
    expect(settings.postgres).toMatchObject({ host: '127.0.0.1', port: portBase + 5432, user: 'codeb', database: 'postgres' });
    expect(settings.redis).toMatchObject({ host: '127.0.0.1', port: portBase + 6379, user: 'default', databases: 16 });
    expect(settings.storage).toMatchObject({ endPoint: '127.0.0.1', port: portBase + 9000, useSSL: false, kind: 's3rver' });
    expect(settings.caddy).toEqual({ adminUrl: `unix://${join(home, 'stack', 'caddy', 'run', 'admin.sock')}`, httpPort: portBase + 8080, httpsPort: portBase + 8443, tlsIssuer: 'internal' });
    expect(settings.forwarder).toEqual({ socketPath: join(home, 'stack', 'forwarder', 'control.sock'), routerSocket: join(home, 'stack', 'forwarder', 'router.sock') });
    expect(settings.podman.socketPath).toBe(join(home, 'stack', 'podman', 'podman.sock'));
    for (const secret of [settings.postgres.password, settings.redis.password, settings.storage.secretKey]) {
      expect(secret ?? '').toMatch(/^[A-Za-z0-9_-]{24,}$/);
    }
    firstPids = pidFiles();
    expect(Object.keys(firstPids).sort()).toEqual([...PART_NAMES].sort());
  }, 120_000);

  it('postgres: the admin role logs in with its password over TCP, a wrong password is refused', async () => {
    expect(await pgQuery(settings, 'SELECT 1 AS one')).toEqual([{ one: 1 }]);
    const rows = (await pgQuery(settings, 'SELECT rolsuper FROM pg_roles WHERE rolname = current_user')) as { rolsuper: boolean }[];
    expect(rows[0]?.rolsuper).toBe(true);
    await expect(pgQuery(settings, 'SELECT 1', 'wrong-password')).rejects.toThrow(/password authentication failed/);
  }, 30_000);

  it('redis: PING works with the password and is refused without it', async () => {
    const ok = new Redis({ ...settings.redis, username: settings.redis.user, lazyConnect: true, maxRetriesPerRequest: 0 });
    try {
      await ok.connect();
      expect(await ok.ping()).toBe('PONG');
      expect(await ok.config('GET', 'databases')).toEqual(['databases', '16']);
    } finally {
      ok.disconnect();
    }
    // Without credentials (raw protocol: ioredis would fail earlier, at its HELLO handshake).
    const answer = await new Promise<string>((resolve, reject) => {
      const sock = connect({ host: settings.redis.host, port: settings.redis.port }, () => sock.write('PING\r\n'));
      sock.once('data', (d) => {
        resolve(d.toString());
        sock.destroy();
      });
      sock.once('error', reject);
    });
    expect(answer).toMatch(/^-NOAUTH/);
  }, 30_000);

  it('s3: a bucket and an object round-trip with the generated keys; anonymous and unknown keys are refused', async () => {
    const s3 = minio(settings);
    await s3.makeBucket('stack-test-uploads', settings.storage.region);
    expect(await s3.bucketExists('stack-test-uploads')).toBe(true);
    await s3.putObject('stack-test-uploads', 'hello.txt', Buffer.from('hello from the stack test'));
    let body = '';
    for await (const chunk of await s3.getObject('stack-test-uploads', 'hello.txt')) body += String(chunk);
    expect(body).toBe('hello from the stack test');

    const anon = await fetch(`http://127.0.0.1:${settings.storage.port}/stack-test-uploads/hello.txt`);
    expect(anon.status).toBe(403);
    await expect(minio(settings, 'x', 'UNKNOWNKEY').listBuckets()).rejects.toThrow();
  }, 30_000);

  it("caddy: the admin API answers on its socket only; every host goes to the forwarder's router (unknown: 404)", async () => {
    const sock = settings.caddy.adminUrl.slice('unix://'.length);
    const cfg = await httpGet({ socketPath: sock }, '/config/');
    expect(cfg.status).toBe(200);
    const json = JSON.parse(cfg.body) as { admin: { listen: string }; apps: { http: { servers: Record<string, { listen: string[] }> } } };
    expect(json.admin.listen).toBe(`unix/${sock}`);
    expect(json.apps.http.servers.codeb?.listen).toEqual([`127.0.0.1:${settings.caddy.httpPort}`]);
    expect(json.apps.http.servers['codeb-https']?.listen).toEqual([`127.0.0.1:${settings.caddy.httpsPort}`]);
    // The port the admin API used to have (base + 2019) is closed.
    await expect(httpGet({ port: portBase + 2019, host: 'localhost' }, '/config/')).rejects.toThrow(/ECONNREFUSED/);
    const unknown = await httpGet({ port: settings.caddy.httpPort, host: 'stack-test.localhost' }, '/');
    expect(unknown.status).toBe(404);
    // A route in the forwarder's host table (what the proxy provider writes) answers through Caddy.
    routedApp = createHttpServer((_req, res) => res.end('routed'));
    await new Promise<void>((r) => routedApp!.listen(0, '127.0.0.1', () => r()));
    const fwd = new ForwarderClient(settings.forwarder.socketPath);
    const entry = await freePort();
    await fwd.set('stack-test-production-web', entry, (routedApp.address() as { port: number }).port);
    await fwd.setRoute({ id: 'codeb-stack-test-production', domains: ['stack-test.localhost'], tls: 'off', upstreams: [{ path: null, port: entry, service: 'web' }], websockets: false });
    expect(await httpGet({ port: settings.caddy.httpPort, host: 'stack-test.localhost' }, '/')).toEqual({ status: 200, body: 'routed' });
  }, 30_000);

  it("podman: the Docker-compatible API answers on the stack's socket with storage under the stack", async () => {
    const ping = await httpGet({ socketPath: settings.podman.socketPath }, '/v1.40/_ping');
    expect(ping).toEqual({ status: 200, body: 'OK' });
    const info = JSON.parse((await httpGet({ socketPath: settings.podman.socketPath }, '/v4.0.0/libpod/info')).body) as {
      store: { graphRoot: string };
      host: { ociRuntime: { name: string } };
    };
    expect(info.store.graphRoot).toBe(join(home, 'stack', 'podman', 'storage'));
    expect(info.host.ociRuntime.name).toBe('runc');
  }, 30_000);

  it('`stack up` again is a no-op: every part already running, same processes, no secret printed', async () => {
    const r = await codeb('stack', 'up', '--json');
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { ok: boolean; parts: { name: string; state: string; pid: number }[] };
    expect(out.ok).toBe(true);
    expect(out.parts.map((p) => [p.name, p.state]).sort()).toEqual(PART_NAMES.map((n) => [n, 'running']).sort());
    expect(pidFiles()).toEqual(firstPids);
    const text = await codeb('stack', 'up');
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/postgres\s+\.\.\. already running \(127\.0\.0\.1:\d+, \d+\.\d+\.\d+\.\d+:\d+\)/);
    for (const secret of [settings.postgres.password!, settings.redis.password!, settings.storage.secretKey]) {
      expect(r.stdout + r.stderr + text.stdout + text.stderr).not.toContain(secret);
    }
    expect(JSON.parse(readFileSync(join(home, 'settings.json'), 'utf8'))).toEqual(settings);
  }, 60_000);

  it('`stack up` of another codeb build restarts a running forwarder, whose routes come back from its table; nothing else restarts', async () => {
    const before = pidFiles();
    // This file's stack CLI runs from source (no build id); the loader of a build hands its id over in this global.
    const otherBuild = 'data:text/javascript,globalThis[Symbol.for("codeb.build")]="0123456789abcdef"';
    const r = await new Promise<Run>((resolve) =>
      execFile(process.execPath, ['--import', otherBuild, cli, 'stack', 'up', '--json'], { env, timeout: 120_000 }, (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
      ),
    );
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { notes: string[]; parts: Array<{ name: string; state: string }> };
    // The forwarder runs bin/codeb.js of this checkout: its build is dist/'s, not the one claimed above.
    expect(out.notes.join('\n')).toMatch(/restarted the forwarder: it ran codeb build [0-9a-f]{16}, this is build 0123456789abcdef/);
    expect(out.parts.find((p) => p.name === 'forwarder')?.state).toBe('started');
    const after = pidFiles();
    expect(after.forwarder).not.toBe(before.forwarder);
    expect({ ...after, forwarder: 0 }).toEqual({ ...before, forwarder: 0 });
    expect(await new ForwarderClient(settings.forwarder.socketPath).route('codeb-stack-test-production')).toMatchObject({ domains: ['stack-test.localhost'] });
    expect(await httpGet({ port: settings.caddy.httpPort, host: 'stack-test.localhost' }, '/')).toEqual({ status: 200, body: 'routed' });
    // A codeb without a build id (from source, as here) restarts nothing.
    const again = await codeb('stack', 'up', '--json');
    expect(again.code, again.stderr).toBe(0);
    expect(pidFiles()).toEqual(after);
    firstPids = after;
  }, 60_000);

  it('`stack status --json` reports each part up with its address and pid', async () => {
    const r = await codeb('stack', 'status', '--json');
    expect(r.code, r.stderr).toBe(0);
    const st = JSON.parse(r.stdout) as { allUp: boolean; parts: { name: string; state: string; address: string; pid?: number }[] };
    expect(st.allUp).toBe(true);
    const by = Object.fromEntries(st.parts.map((p) => [p.name, p]));
    // Loopback for codeb, the services address (the pool's first address) for containers.
    const at = settings.network.servicesAddress;
    expect(at).toBe(servicesAddress(parsePool(env.CODEB_NETWORK_POOL!)));
    expect(by.postgres).toMatchObject({ state: 'up', address: `127.0.0.1:${portBase + 5432}, ${at}:${portBase + 5432}`, pid: firstPids.postgres });
    expect(by.redis).toMatchObject({ state: 'up', address: `127.0.0.1:${portBase + 6379}, ${at}:${portBase + 6379}`, pid: firstPids.redis });
    expect(by.s3).toMatchObject({ state: 'up', address: `127.0.0.1:${portBase + 9000}, ${at}:${portBase + 9000}`, pid: firstPids.s3 });
    expect(by.caddy).toMatchObject({ state: 'up', pid: firstPids.caddy });
    expect(by.caddy?.address).toContain(`127.0.0.1:${portBase + 8080}`);
    expect(by.podman).toMatchObject({ state: 'up', address: `unix://${settings.podman.socketPath}`, pid: firstPids.podman });
  }, 30_000);

  it('data, credentials and routes (forwarder table, static Caddy front) survive `down` + `up`', async () => {
    await pgQuery(settings, 'CREATE TABLE IF NOT EXISTS survives (v text); INSERT INTO survives VALUES (\'kept\')');
    const r0 = new Redis({ ...settings.redis, username: settings.redis.user, maxRetriesPerRequest: 0 });
    await r0.set('stack-test:key', 'kept');
    await r0.save();
    // Users saved with ACL SAVE (what the Redis provider does when there is an aclfile) are kept.
    await r0.call('ACL', 'SETUSER', 'stack-test-user', 'on', '>user-password', '~stack-test:*', '+get');
    await r0.call('ACL', 'SAVE');
    r0.disconnect();

    const down = await codeb('stack', 'down');
    expect(down.code, down.stderr).toBe(0);
    const again = await ensureStack({ env });
    expect(again).toEqual(settings); // same ports, same credentials

    expect(await pgQuery(settings, 'SELECT v FROM survives')).toEqual([{ v: 'kept' }]);
    const r1 = new Redis({ ...settings.redis, username: settings.redis.user, maxRetriesPerRequest: 0 });
    expect(await r1.get('stack-test:key')).toBe('kept');
    expect(await r1.call('ACL', 'USERS')).toEqual(expect.arrayContaining(['default', 'stack-test-user']));
    r1.disconnect();
    expect(await minio(settings).bucketExists('stack-test-uploads')).toBe(true);
    expect(await httpGet({ port: settings.caddy.httpPort, host: 'stack-test.localhost' }, '/')).toEqual({ status: 200, body: 'routed' });
    routedApp?.close();
  }, 120_000);

  it('`stack down` stops every part and leaves no process behind', async () => {
    const pids = pidFiles();
    expect(Object.keys(pids)).toHaveLength(PART_NAMES.length);
    const r = await codeb('stack', 'down', '--json');
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { parts: { name: string; state: string }[] };
    expect(out.parts.every((p) => p.state === 'stopped')).toBe(true);

    for (const [name, pid] of Object.entries(pids)) expect(alive(pid), `${name} (pid ${pid}) still alive`).toBe(false);
    expect(processesUsingHome()).toEqual([]);
    expect(pidFiles()).toEqual({});

    const st = await stackStatus({ env });
    expect(st.parts.map((p) => p.state)).toEqual(PART_NAMES.map(() => 'down'));
    expect(st.allUp).toBe(false);

    const again = await codeb('stack', 'down');
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/postgres\s+\.\.\. not running/);
  }, 120_000);
});

describe('codeb stack when something is wrong', () => {
  it('names the missing Debian package and how to install it, and starts nothing', async () => {
    const r = await codebWith({ ...env2, CODEB_STACK_PG_BINDIR: '/nonexistent/bin' }, 'stack', 'up');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Debian package postgresql');
    expect(r.stderr).toMatch(/apt-get install -y postgresql/);
    expect(r.stderr).toMatch(/bash \S*scripts\/setup\.sh/);
    expect(existsSync(join(home2, 'stack', 'run'))).toBe(false);
  }, 30_000);

  it('a part that cannot start makes `up` exit 1 with its reason and log tail; the others come up', async () => {
    const redisPort = portBase + SECOND_STEP + 6379;
    const blocker = createServer().listen(redisPort, '127.0.0.1');
    await once(blocker, 'listening');
    try {
      const r = await codebWith({ ...env2, CODEB_STACK_PODMAN_DRIVER: 'bogus' }, 'stack', 'up');
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(/redis\s+\.\.\. FAILED/);
      expect(r.stdout).toMatch(/podman\s+\.\.\. FAILED/);
      expect(r.stdout).toMatch(/postgres\s+\.\.\. up \(127\.0\.0\.1:\d+, [\d.]+:\d+\)/);
      expect(r.stderr).toContain(`port ${redisPort} on 127.0.0.1 is in use by another program`);
      expect(r.stderr).toContain(`last lines of ${join(home2, 'stack', 'logs', 'podman.log')}`);
      expect(r.stderr).toContain('bogus'); // podman's own complaint about the storage driver, from its log

      const st = await stackStatus({ env: env2 });
      const state = Object.fromEntries(st.parts.map((p) => [p.name, p.state]));
      expect(state).toEqual({ postgres: 'up', redis: 'down', s3: 'up', caddy: 'up', podman: 'down', forwarder: 'up' });
      expect(st.allUp).toBe(false);
    } finally {
      blocker.close();
      await stopStack({ env: env2, purge: true });
    }
  }, 120_000);
});
