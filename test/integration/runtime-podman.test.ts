/**
 * PodmanApiRuntime against the real Podman API of the local stack, with the test images from
 * scripts/build-test-images.sh: a container on its project's own network answers its health check
 * on its slot port published on 127.0.0.1 (reaching the stack's Postgres and Redis at the services
 * address through the env file), runs without capabilities, carries its labels,
 * is found by labels, runs commands, runs release commands to completion, shows a crash loop,
 * is removed idempotently, runs on a read-only root when asked, and no env-file secret reaches an
 * error or an output codeb returns.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CodebError, ServiceUnavailableError } from '../../controller/errors.js';
import { parseManifest } from '../../controller/manifest/load.js';
import { validateLoaded } from '../../controller/manifest/validate.js';
import { resolveDeployment } from '../../controller/manifest/normalize.js';
import type { Deployment } from '../../controller/manifest/types.js';
import type { Slot } from '../../controller/manifest/names.js';
import { PodmanApiRuntime, TIMEOUT_EXIT_CODE } from '../../controller/runtime/podman-api.js';
import { containerSpec, releaseSpec } from '../../controller/runtime/spec.js';
import { LABEL, type ContainerSpec } from '../../controller/runtime/types.js';
import type { Settings } from '../../controller/settings.js';
import { appPorts, freePort, networkRangeFor, stackSettings, uniqueId } from './helpers/stack.js';
import { NetworkProvider } from '../../controller/providers/network.js';
import { networkResource } from '../../controller/reconcile/desired.js';
import { chooseSubnet, parseCidr, parsePool } from '../../controller/runtime/network.js';
import { networkName } from '../../controller/manifest/names.js';
import pg from 'pg';

const IMAGE = 'localhost/codeb-testapp:v1';
const project = uniqueId('rt');
let settings: Settings;
let rt: PodmanApiRuntime;
let dir: string;
let envFile: string;
const SECRET = `tok-${randomBytes(12).toString('hex')}`;
/** A login role of this test's own: the stack's superuser is refused from container networks. */
const ROLE = `rt_${randomBytes(6).toString('hex')}`;
const ROLE_PASSWORD = randomBytes(18).toString('hex');
let networks: NetworkProvider;

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ host: settings.postgres.host, port: settings.postgres.port, user: settings.postgres.user, password: settings.postgres.password, database: 'postgres' });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}
/** Every message and output the runtime produced, checked for secrets at the end. */
const produced: string[] = [];

function deployment(): Deployment {
  const text = `apiVersion: codeb/v1
project:
  id: ${project}
services:
  web:
    image: ${IMAGE}
    port: 8080
    resources: { cpu: 0.5, memory: 128Mi }
    env:
      GREETING: "hello $(world) %n"
  worker:
    type: worker
    image: ${IMAGE}
    command: ["node", "/app/app.js", "--worker"]
    restart: always
  readonly:
    type: worker
    image: ${IMAGE}
    command: ["node", "/app/app.js", "--worker"]
    readOnlyRootfs: true
`;
  const loaded = parseManifest(text, 'runtime-test.yaml');
  const { manifest, issues } = validateLoaded(loaded);
  expect(issues).toEqual([]);
  return resolveDeployment(manifest!);
}


async function specFor(service: 'web' | 'worker' | 'readonly', slot: Slot, extraEnv: Record<string, string> = {}): Promise<ContainerSpec> {
  const d = deployment();
  const s = d.services.find((x) => x.name === service)!;
  const port = s.type === 'worker' ? null : await freePort();
  const spec = containerSpec(d, s, slot, { port, envFile, serviceUrls: {}, version: 'v1' });
  return { ...spec, environment: { ...spec.environment, ...extraEnv } };
}

async function getJson(url: string, timeoutMs = 1000): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function eventually<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < until) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} did not happen within ${timeoutMs} ms${last ? ` (last error: ${(last as Error).message})` : ''}`);
}

async function capture<T>(p: Promise<T>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    if (err instanceof Error) produced.push(err.message, (err as CodebError).hint ?? '');
    return err;
  }
  throw new Error('expected a failure');
}

beforeAll(async () => {
  settings = stackSettings();
  rt = new PodmanApiRuntime(settings.podman.socketPath);
  dir = mkdtempSync(join(tmpdir(), 'codeb-rt-'));
  envFile = join(dir, `${project}.production.env`);
  // The deployment's network, made as apply makes it (a subnet of this file's own range).
  networks = new NetworkProvider(settings.podman.socketPath);
  const subnet = chooseSubnet(parsePool(settings.network.pool), null, await networks.subnetsInUse(''), parseCidr(networkRangeFor(appPorts('3950-3999'))));
  const net = networkResource(project, 'production', subnet);
  await networks.execute({ op: 'create', key: net.key, kind: net.kind, name: net.name, reason: 'test', changes: [], resource: net }, { secret: () => '', progress: () => {} });
  await admin(async (c) => {
    await c.query(`CREATE ROLE ${ROLE} LOGIN PASSWORD '${ROLE_PASSWORD}'`);
    await c.query(`GRANT CONNECT ON DATABASE postgres TO ${ROLE}`);
  });
  const at = settings.network.servicesAddress;
  const redisPass = encodeURIComponent(settings.redis.password ?? '');
  writeFileSync(
    envFile,
    [
      '# test env file',
      `DATABASE_URL=postgresql://${ROLE}:${ROLE_PASSWORD}@${at}:${settings.postgres.port}/postgres`,
      `REDIS_URL=redis://${settings.redis.user}:${redisPass}@${at}:${settings.redis.port}/1`,
      `SECRET_TOKEN=${SECRET}`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  try {
    await rt.ensureImage(IMAGE);
  } catch (err) {
    throw new Error(`${(err as Error).message} — the test images are built by scripts/build-test-images.sh`);
  }
});

afterAll(async () => {
  if (rt) {
    for (const c of await rt.list({ [LABEL.project]: project }).catch(() => [])) await rt.remove(c.name, 0).catch(() => {});
    await rt.close();
  }
  await networks?.remove(networkName(project, 'production')).catch(() => {});
  if (settings) await admin((c) => c.query(`DROP ROLE IF EXISTS ${ROLE}`)).catch(() => {});
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('PodmanApiRuntime (real Podman API)', () => {
  it('a missing image gives a clear error that says how to build it', async () => {
    const err = await capture(rt.ensureImage('localhost/codeb-no-such-image:v9'));
    expect(err).toBeInstanceOf(CodebError);
    expect((err as CodebError).message).toMatch(/localhost\/codeb-no-such-image:v9 is not present/);
    expect((err as CodebError).hint).toMatch(/build-test-images\.sh/);
  });

  it('starts the test app on its own network: health 200 with v1, Postgres and Redis reached at the services address', async () => {
    const spec = await specFor('web', 'blue');
    const state = await rt.start(spec);
    expect(state.running).toBe(true);
    expect(state.name).toBe(spec.name);
    expect(state.labels[LABEL.managed]).toBe('true');
    expect(state.labels[LABEL.project]).toBe(project);
    expect(state.labels[LABEL.slot]).toBe('blue');
    expect(state.labels[LABEL.specHash]).toBe(spec.labels[LABEL.specHash]);
    const health = await eventually('health 200', async () => {
      const r = await getJson(`http://127.0.0.1:${spec.port}/api/health`);
      return r.status === 200 ? r : undefined;
    });
    expect(health.body).toEqual({ ok: true, version: 'v1', database: 'ok', redis: 'ok' });

    // The same spec again is a no-op; a different spec on a running name is refused.
    expect((await rt.start(spec)).id).toBe(state.id);
    const changed = { ...spec, labels: { ...spec.labels, [LABEL.specHash]: 'other' } };
    expect(await capture(rt.start(changed))).toBeInstanceOf(CodebError);

    // inspect and list by labels
    const again = await rt.inspect(spec.name);
    expect(again).toMatchObject({ id: state.id, running: true, image: IMAGE, exitCode: null });
    expect(again!.startedAt).toMatch(/^\d{4}-/);
    const listed = await rt.list({ [LABEL.project]: project, [LABEL.service]: 'web' });
    expect(listed.map((c) => c.name)).toEqual([spec.name]);
    expect(await rt.list({ [LABEL.project]: project, [LABEL.slot]: 'green' })).toEqual([]);

    // exec: output and exit codes, and a timeout
    const v = await rt.exec(spec.name, ['node', '-e', 'console.log(process.env.VERSION, process.env.GREETING)'], 10_000);
    expect(v).toEqual({ exitCode: 0, output: 'v1 hello $(world) %n\n' });
    expect((await rt.exec(spec.name, ['node', '-e', 'console.error("bad"); process.exit(3)'], 10_000)).exitCode).toBe(3);

    // No capability at all, no privilege gain: what /proc says about the app's process.
    const status = await rt.exec(spec.name, ['node', '-e', 'process.stdout.write(require("fs").readFileSync("/proc/1/status","utf8"))'], 10_000);
    expect(status.output).toMatch(/^CapEff:\s+0000000000000000$/m);
    expect(status.output).toMatch(/^CapBnd:\s+0000000000000000$/m);
    expect(status.output).toMatch(/^NoNewPrivs:\s+1$/m);
    const slow = await rt.exec(spec.name, ['node', '-e', 'setTimeout(() => {}, 20000)'], 500);
    expect(slow.exitCode).toBe(TIMEOUT_EXIT_CODE);

    // logs: the app's start line
    const logs = await rt.logsTail(spec.name, 50);
    produced.push(logs);
    expect(logs).toContain(`listening on http://0.0.0.0:${spec.port}`);

    // remove is idempotent
    await rt.remove(spec.name, 5);
    expect(await rt.inspect(spec.name)).toBeNull();
    await rt.remove(spec.name, 5);
    await expect(fetch(`http://127.0.0.1:${spec.port}/api/health`, { signal: AbortSignal.timeout(1000) })).rejects.toThrow();
  });

  it('runOnce runs a release command to completion: 0 when it migrates, 1 when it fails, removed after', async () => {
    const web = await specFor('web', 'green');
    const ok = await rt.runOnce(releaseSpec(web, ['node', 'app.js', '--migrate']), 60_000);
    produced.push(ok.output);
    expect(ok.exitCode).toBe(0);
    expect(ok.output).toContain('migrated');
    const failing = releaseSpec({ ...web, environment: { ...web.environment, MIGRATE_FAIL: '1' } }, ['node', 'app.js', '--migrate']);
    const bad = await rt.runOnce(failing, 60_000);
    produced.push(bad.output);
    expect(bad.exitCode).toBe(1);
    expect(bad.output).toContain('migration failed');
    expect(await rt.inspect(failing.name)).toBeNull();

    const hanging = releaseSpec({ ...web, environment: { ...web.environment, MIGRATE_DELAY_MS: '30000' } }, ['node', 'app.js', '--migrate']);
    const timedOut = await rt.runOnce(hanging, 1_500);
    expect(timedOut.exitCode).toBe(TIMEOUT_EXIT_CODE);
    expect(timedOut.output).toMatch(/did not finish within 1500 ms/);
    expect(await rt.inspect(hanging.name)).toBeNull();
  });

  it('a crashing container (FAIL_MODE=crash) shows restarts or stays down', async () => {
    const spec = await specFor('worker', 'blue', { FAIL_MODE: 'crash' });
    await rt.start(spec).catch(() => undefined); // it may be gone before start returns
    const state = await eventually('a restart or a stop', async () => {
      const s = await rt.inspect(spec.name);
      return s && (s.restartCount > 0 || !s.running) ? s : undefined;
    });
    expect(state.restartCount > 0 || state.exitCode === 1).toBe(true);
    await rt.remove(spec.name, 0);
  });

  it('a worker stays up; list finds it by project and service', async () => {
    const spec = await specFor('worker', 'green');
    const state = await rt.start(spec);
    expect(state.running).toBe(true);
    expect(state.labels[LABEL.service]).toBe('worker');
    await new Promise((r) => setTimeout(r, 500));
    expect((await rt.inspect(spec.name))!.running).toBe(true);
    expect((await rt.list({ [LABEL.project]: project })).map((c) => c.name)).toContain(spec.name);
    await rt.remove(spec.name, 2);
  });

  it('readOnlyRootfs: the root filesystem refuses writes (EROFS), /tmp (a tmpfs) takes them; without it the root is writable', async () => {
    const write = (name: string, path: string) =>
      rt.exec(name, ['node', '-e', `try { require("fs").writeFileSync(${JSON.stringify(path)}, "x"); console.log("ok") } catch (e) { console.log(e.code) }`], 10_000);
    const ro = await specFor('readonly', 'blue');
    expect(ro.security.readOnlyRootfs).toBe(true);
    expect((await rt.start(ro)).running).toBe(true);
    const rw = await specFor('worker', 'blue');
    expect(rw.security.readOnlyRootfs).toBe(false);
    expect((await rt.start(rw)).running).toBe(true);
    try {
      // /app belongs to the image's user (root, uid 0), so only the read-only mount can refuse it.
      expect(await write(ro.name, '/app/probe')).toEqual({ exitCode: 0, output: 'EROFS\n' });
      expect(await write(ro.name, '/tmp/probe')).toEqual({ exitCode: 0, output: 'ok\n' });
      expect(await write(rw.name, '/app/probe')).toEqual({ exitCode: 0, output: 'ok\n' });
      const mounts = await rt.exec(ro.name, ['node', '-e', 'process.stdout.write(require("fs").readFileSync("/proc/mounts","utf8"))'], 10_000);
      expect(mounts.output).toMatch(/^overlay \/ overlay ro,/m);
      expect(mounts.output).toMatch(/^tmpfs \/tmp tmpfs rw,/m);
    } finally {
      await rt.remove(ro.name, 0);
      await rt.remove(rw.name, 0);
    }
  });

  it('env-file secrets never reach an error, a log line or an output codeb returns', async () => {
    const web = await specFor('web', 'blue');
    // The app prints the secret itself: codeb's copy of the output is redacted.
    const leak = await rt.runOnce(releaseSpec(web, ['node', '-e', 'console.log("token=" + process.env.SECRET_TOKEN, process.env.DATABASE_URL)']), 30_000);
    produced.push(leak.output);
    expect(leak.exitCode).toBe(0);
    expect(leak.output).toContain('token=[redacted]');
    // Errors while the env file is loaded: a missing image, a command in a missing container.
    await capture(rt.start({ ...web, image: 'localhost/codeb-no-such-image:v9' }));
    await capture(rt.exec(`${project}-missing`, ['true'], 1000));
    await capture(rt.logsTail(`${project}-missing`, 10));
    const joined = produced.join('\n');
    expect(joined.length).toBeGreaterThan(0);
    expect(joined).not.toContain(SECRET);
    if (settings.postgres.password) expect(joined).not.toContain(settings.postgres.password);
    if (settings.redis.password) expect(joined).not.toContain(settings.redis.password);
  });

  it('an unreachable socket is ServiceUnavailableError pointing at `codeb stack up`', async () => {
    const dead = new PodmanApiRuntime(join(dir, 'no-such.sock'));
    const err = await capture(dead.inspect('anything'));
    expect(err).toBeInstanceOf(ServiceUnavailableError);
    expect((err as CodebError).message).toMatch(/Podman API is not reachable at .*no-such\.sock/);
    expect((err as CodebError).hint).toMatch(/codeb stack up/);
  });
});
