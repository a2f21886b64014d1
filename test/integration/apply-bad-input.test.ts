/**
 * Bad input changes nothing: an invalid manifest (exit 2), a service that cannot be reached (exit 1;
 * the message names the service, its address and `codeb stack up`), an exhausted port range or
 * Redis (exit 1, a clear message) each stop before the first effect. Checked against a registry
 * that does not exist yet (it must stay absent, with no secrets or lock left behind) and against
 * one with a deployed project (it must stay byte-identical, not even rewritten), and in the real
 * systems: no database, role, Redis slot or user, bucket, route or container appeared.
 */
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Settings } from '../../controller/settings.js';
import {
  Sandbox,
  proxyRoute,
  databaseFacts,
  describeRun,
  fullManifest,
  projectContainers,
  redisAdmin,
  redisUserExists,
  reserveRedisDbs,
  roleExists,
  s3,
  viaCaddy,
  type Run,
} from './helpers/apply.js';
import { SLOT_MARKER } from '../../controller/providers/redis.js';
import { appPort, appPorts, freePort, stackSettings, uniqueId } from './helpers/stack.js';

// This file's own ports (outside the default 3000-3999 and the other test files' ranges).
const PORT_RANGE = appPorts('4790-4839');
let settings: Settings;
/** Never written: every case must leave it absent. */
const fresh = new Sandbox('bad-fresh', { CODEB_PORT_RANGE: PORT_RANGE });
/** Holds a deployed project: every case must leave the file byte-identical. */
const populated = new Sandbox('bad-populated', { CODEB_PORT_RANGE: PORT_RANGE });
const existing = uniqueId('badold');
let closedPort: number;
let busyPort: number;
let squatter: Server | undefined;

/** Everything the project would have had, checked in the systems themselves. */
async function expectNothingFor(id: string): Promise<void> {
  const base = id;
  const database = `${base.replaceAll('-', '_')}_db`;
  expect(await databaseFacts(settings, database), `database ${database}`).toEqual({ exists: false });
  expect(await roleExists(settings, `${database}_owner`)).toBe(false);
  expect(await s3(settings).bucketExists(`${base}-uploads`)).toBe(false);
  expect((await proxyRoute(settings, `codeb-${id}--production`)).status).not.toBe(200);
  expect(await projectContainers(settings, id)).toEqual([]);
  expect(await redisUserExists(settings, `codeb-${id}--prod`)).toBe(false);
  const admin = redisAdmin(settings, 0);
  try {
    for (let db = 2; db < settings.redis.databases; db++) {
      await admin.select(db);
      expect(await admin.get(SLOT_MARKER), `Redis DB ${db} not claimed by ${id}`).not.toBe(`${id}/production`);
    }
  } finally {
    admin.disconnect();
  }
}

interface Case {
  name: string;
  /** The manifest text for a project id. */
  manifest: (id: string) => string;
  env: () => NodeJS.ProcessEnv;
  code: number;
  /** What stderr must say. */
  says: () => Array<string | RegExp>;
}

const invalidManifest = (id: string) =>
  fullManifest(id).replace('    port: 8080\n', '    port: 8080\n    replicas: many\n');

const CASES: Case[] = [
  {
    name: 'an invalid manifest',
    manifest: invalidManifest,
    env: () => ({}),
    code: 2,
    says: () => [/\.yaml:\d+:\d+/, 'replicas'],
  },
  {
    name: 'Postgres unreachable (CODEB_PG_PORT)',
    manifest: (id) => fullManifest(id),
    env: () => ({ CODEB_PG_PORT: String(closedPort) }),
    code: 1,
    says: () => ['Postgres', `127.0.0.1:${closedPort}`, 'codeb stack up'],
  },
  {
    name: 'Redis unreachable (CODEB_REDIS_PORT)',
    manifest: (id) => fullManifest(id),
    env: () => ({ CODEB_REDIS_PORT: String(closedPort) }),
    code: 1,
    says: () => ['Redis', `127.0.0.1:${closedPort}`, 'codeb stack up'],
  },
  {
    name: 'Caddy unreachable (CODEB_CADDY_ADMIN)',
    manifest: (id) => fullManifest(id),
    env: () => ({ CODEB_CADDY_ADMIN: `http://127.0.0.1:${closedPort}` }),
    code: 1,
    says: () => ['Caddy', `127.0.0.1:${closedPort}`, 'codeb stack up'],
  },
  {
    name: 'object storage unreachable (CODEB_S3_PORT)',
    manifest: (id) => fullManifest(id),
    env: () => ({ CODEB_S3_PORT: String(closedPort) }),
    code: 1,
    says: () => ['S3', `127.0.0.1:${closedPort}`, 'codeb stack up'],
  },
  {
    name: 'Podman unreachable (CODEB_PODMAN_SOCKET)',
    manifest: (id) => fullManifest(id),
    env: () => ({ CODEB_PODMAN_SOCKET: '/nonexistent/codeb-test/podman.sock' }),
    code: 1,
    says: () => ['Podman', '/nonexistent/codeb-test/podman.sock', 'codeb stack up'],
  },
  {
    name: 'the forwarder unreachable (CODEB_FORWARDER_SOCKET)',
    manifest: (id) => fullManifest(id),
    env: () => ({ CODEB_FORWARDER_SOCKET: '/nonexistent/codeb-test/forwarder.sock' }),
    code: 1,
    says: () => ['forwarder', '/nonexistent/codeb-test/forwarder.sock', 'codeb stack up'],
  },
  {
    name: 'an exhausted port range (CODEB_PORT_RANGE=3990-3991)',
    manifest: (id) => fullManifest(id),
    env: () => ({ CODEB_PORT_RANGE: '3990-3991' }),
    code: 1,
    says: () => ['No free ports left in 3990-3991', 'CODEB_PORT_RANGE'],
  },
  // The stack's own ports are refused before the route is written (issue 9, finding 7).
  ...(['httpPort', 'httpsPort'] as const).map(
    (which): Case => ({
      name: `hostPorts on Caddy's ${which === 'httpPort' ? 'HTTP' : 'HTTPS'} port`,
      manifest: (id) => fullManifest(id).replace('    port: 8080\n', `    port: 8080\n    hostPorts: { blue: ${appPort(4838)}, green: ${settings.caddy[which]} }\n`),
      env: () => ({}),
      code: 2,
      says: () => [`Port ${settings.caddy[which]} (service web, green)`, which === 'httpPort' ? 'Caddy HTTP' : 'Caddy HTTPS', 'hostPorts'],
    }),
  ),
  {
    name: 'hostPorts on a port another process listens on',
    manifest: (id) => fullManifest(id).replace('    port: 8080\n', `    port: 8080\n    hostPorts: { blue: ${busyPort}, green: ${appPort(4837)} }\n`),
    env: () => ({}),
    code: 1,
    says: () => [`port ${busyPort} (web, blue slot) is in use by another process`, 'Nothing was changed'],
  },
  {
    name: 'hostPorts on the Postgres port',
    manifest: (id) => fullManifest(id).replace('    port: 8080\n', `    port: 8080\n    hostPorts: { blue: ${settings.postgres.port}, green: ${appPort(4838)} }\n`),
    env: () => ({}),
    code: 2,
    says: () => [`Port ${settings.postgres.port} (service web, blue) is Postgres's port`],
  },
];

/** A runtime this version cannot drive is refused at plan and apply (exit 2), never run through Podman. */
const onServerRuntime = (runtime: string) => (id: string) =>
  `${fullManifest(id)}servers:\n  - name: local\n    host: local\n    runtime: ${runtime}\n`;
const RUNTIME_CASES: Case[] = [
  { name: 'runtime: kubernetes', manifest: onServerRuntime('kubernetes'), env: () => ({}), code: 2, says: () => ['servers[0].runtime', 'no Kubernetes driver'] },
  { name: 'runtime: quadlet', manifest: onServerRuntime('quadlet'), env: () => ({}), code: 2, says: () => ['servers[0].runtime', 'systemd is not PID 1'] },
  { name: 'runtime: systemd', manifest: onServerRuntime('systemd'), env: () => ({}), code: 2, says: () => ['servers[0].runtime', 'systemd is not PID 1'] },
];

function snapshot(box: Sandbox): { files: string[]; registry: string | null; mtimeMs: number | null } {
  const dir = join(box.dir, 'registry');
  return {
    files: readdirSync(dir).sort(),
    registry: existsSync(box.registry) ? readFileSync(box.registry, 'utf8') : null,
    mtimeMs: existsSync(box.registry) ? statSync(box.registry).mtimeMs : null,
  };
}

async function badApply(box: Sandbox, c: Case, id: string): Promise<Run> {
  const file = box.write(`${id}.yaml`, c.manifest(id));
  const before = snapshot(box);
  const r = await box.run(['apply', file], c.env());
  expect(r.code, describeRun(r)).toBe(c.code);
  for (const s of c.says()) {
    if (typeof s === 'string') expect(r.stderr, describeRun(r)).toContain(s);
    else expect(r.stderr, describeRun(r)).toMatch(s);
  }
  expect(r.stderr).not.toMatch(/unexpectedly|at .*\.mjs:\d+/);
  expect(r.stdout).toBe('');
  // Nothing written: the registry folder has the same files, the registry the same bytes and mtime.
  expect(snapshot(box)).toEqual(before);
  await expectNothingFor(id);
  return r;
}

beforeAll(async () => {
  settings = stackSettings();
  closedPort = await freePort();
  // Another process on a port a manifest names: the deploy would refuse it after the route was written.
  busyPort = await freePort();
  squatter = createServer().listen(busyPort, '127.0.0.1');
  // A deployed project in the populated registry (no Redis: the registry holds no slot for it).
  const r = await populated.run(['apply', populated.write(`${existing}.yaml`, fullManifest(existing, { cache: false }))]);
  if (r.code !== 0) throw new Error(describeRun(r));
});

afterAll(async () => {
  squatter?.close();
  const r = await populated.run(['destroy', existing, '--yes', '--delete-data']);
  if (r.code !== 0) console.error(`cleanup failed: ${describeRun(r)}`);
  rmSync(fresh.dir, { recursive: true, force: true });
  await populated.close();
});

describe('bad input stops before the first effect', () => {
  describe('with no registry yet', () => {
    it.each(CASES)('$name', async (c) => {
      await badApply(fresh, c, uniqueId('badnew'));
      expect(existsSync(fresh.registry)).toBe(false);
      expect(readdirSync(join(fresh.dir, 'registry'))).toEqual([]);
    });
  });

  describe('a runtime codeb cannot drive yet', () => {
    it.each(RUNTIME_CASES)('$name: apply exits 2 with the reason, in a fresh and in a populated registry', async (c) => {
      await badApply(fresh, c, uniqueId('badrt'));
      expect(existsSync(fresh.registry)).toBe(false);
      await badApply(populated, c, uniqueId('badrt'));
    });

    it.each(RUNTIME_CASES)('$name: plan exits 2 too', async (c) => {
      const id = uniqueId('badrt');
      const before = snapshot(populated);
      const r = await populated.run(['plan', populated.write(`${id}.yaml`, c.manifest(id))]);
      expect(r.code, describeRun(r)).toBe(2);
      for (const say of c.says()) expect(r.stderr, describeRun(r)).toContain(say);
      expect(snapshot(populated)).toEqual(before);
    });
  });

  describe('with a registry holding a deployed project', () => {
    it.each(CASES)('$name', async (c) => {
      await badApply(populated, c, uniqueId('badnew'));
    });

    it('the deployed project itself, its manifest now asking for a new image, under each failure', async () => {
      // The change (image v2) would redeploy: every failure must stop before it. Left out: Redis
      // (this project has no cache, so Redis is not its business) and the port range (a known
      // deployment keeps its ports, so a narrower range does not concern it), and the reserved-port
      // cases (their manifests, not this one, name the ports).
      for (const c of CASES.filter((x) => !x.name.startsWith('Redis') && !x.name.startsWith('an exhausted') && !x.name.startsWith('hostPorts'))) {
        const text = c === CASES[0] ? invalidManifest(existing) : fullManifest(existing, { cache: false, image: 'localhost/codeb-testapp:v2' });
        const file = populated.write(`${existing}-changed.yaml`, text);
        const before = snapshot(populated);
        const containers = await projectContainers(settings, existing);
        const r = await populated.run(['apply', file], c.env());
        expect(r.code, `${c.name}: ${describeRun(r)}`).toBe(c.code);
        for (const say of c.says()) {
          if (typeof say === 'string') expect(r.stderr, c.name).toContain(say);
          else expect(r.stderr, c.name).toMatch(say);
        }
        expect(snapshot(populated), c.name).toEqual(before);
        expect(await projectContainers(settings, existing), c.name).toEqual(containers);
      }
      expect(await viaCaddy(settings, `${existing}.localhost`, '/')).toEqual({ status: 200, body: 'hello from v1\n' });
    }, 120_000);

    it('all Redis DBs held by other deployments: exit 1, nothing written', async () => {
      const box = new Sandbox('bad-redis', { CODEB_PORT_RANGE: PORT_RANGE });
      try {
        // Placeholders hold every project DB but the picked one; then one more deployment takes that too.
        const [free] = await reserveRedisDbs(settings, box.registry, 'apply-bad-input');
        const { updateRegistry } = await import('../../controller/registry/store.js');
        const { placeholderRecord } = await import('./helpers/apply.js');
        await updateRegistry(box.registry, { command: 'test' }, (doc) => {
          const now = new Date().toISOString();
          doc.projects['zz-last-slot'] = { id: 'zz-last-slot', name: 'last', createdAt: now, updatedAt: now, environments: { production: placeholderRecord({ redisDb: free!, now }) } };
        });
        const c: Case = { name: 'Redis full', manifest: (id) => fullManifest(id), env: () => ({}), code: 1, says: () => [`All Redis DBs 2-${settings.redis.databases - 1} are taken`] };
        await badApply(box, c, uniqueId('badnew'));
      } finally {
        rmSync(box.dir, { recursive: true, force: true });
      }
    });
  });
});
