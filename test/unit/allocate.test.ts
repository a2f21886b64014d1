/**
 * The pure allocation of host ports and Redis DB slots (controller/registry/allocate.ts), the
 * release of a deployment (records.ts) and the /proc/net/tcp parser (ports-in-use.ts).
 */
import { describe, expect, it } from 'vitest';
import { CodebError } from '../../controller/errors.js';
import {
  allocate,
  AllocationError,
  DEFAULT_POLICY,
  FIRST_PROJECT_REDIS_DB,
  parsePortRange,
  policyFromEnv,
  type Allocation,
  type AllocationPolicy,
  type AllocationRequest,
  type ExplicitPorts,
} from '../../controller/registry/allocate.js';
import { parseProcNetTcp } from '../../controller/registry/ports-in-use.js';
import { reservedPorts } from '../../controller/registry/reserved-ports.js';
import { releaseDeployment } from '../../controller/registry/records.js';
import { placeholderRecord } from '../helpers/records.js';
import { emptyRegistry, type PortPair, type PortRole, type RegistryDocument } from '../../controller/registry/types.js';

const NOW = '2025-01-01T00:00:00.000Z';

type Svc = AllocationRequest['services'][number];
const web = (name = 'web', explicit: ExplicitPorts | null = null): Svc => ({ name, needsPorts: true, explicit });
const worker = (name = 'worker'): Svc => ({ name, needsPorts: false, explicit: null });

function request(projectId: string, services: Svc[], opts: { env?: string; redis?: boolean } = {}): AllocationRequest {
  return { projectId, env: opts.env ?? 'production', services, needsRedis: opts.redis ?? false };
}

function policy(over: Partial<AllocationPolicy> = {}): AllocationPolicy {
  return { ...DEFAULT_POLICY, busyPorts: new Set(), ...over };
}

/** Record an allocation the way recordAllocation does, without needing a whole manifest. */
function put(doc: RegistryDocument, projectId: string, env: string, a: Allocation): RegistryDocument {
  const project = (doc.projects[projectId] ??= { id: projectId, name: projectId, createdAt: NOW, updatedAt: NOW, environments: {} });
  const rec = placeholderRecord({ now: NOW, env, domain: `${projectId}.localhost`, ports: a.ports, redisDb: a.redisDb });
  project.environments[env] = rec;
  return doc;
}

/** Allocate and record in one step, as `registry allocate` does under the lock. */
function allocateAndRecord(doc: RegistryDocument, req: AllocationRequest, pol = policy()): Allocation {
  const a = allocate(doc, req, pol);
  put(doc, req.projectId, req.env, a);
  return a;
}

function allPorts(doc: RegistryDocument): number[] {
  return Object.values(doc.projects).flatMap((p) => Object.values(p.environments).flatMap((e) => Object.values(e.ports).flatMap((pp) => [pp.blue, pp.green, pp.entry])));
}

function catchError(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected an error, none was thrown');
}

describe('allocate: ports', () => {
  it.each([
    // Three ports per service, taken in the order blue, green, entry.
    { case: 'one web service', services: [web()], want: { web: { blue: 3000, green: 3001, entry: 3002 } } },
    { case: 'two web services', services: [web('api'), web('web')], want: { api: { blue: 3000, green: 3001, entry: 3002 }, web: { blue: 3003, green: 3004, entry: 3005 } } },
    { case: 'a worker only', services: [worker()], want: {} },
    { case: 'web and worker', services: [worker('beat'), web('web'), worker('celery')], want: { web: { blue: 3000, green: 3001, entry: 3002 } } },
  ])('first allocation in an empty registry: $case', ({ services, want }) => {
    const a = allocate(emptyRegistry(NOW), request('alpha', services));
    expect(a.ports).toEqual(want);
    expect(a.redisDb).toBeNull();
  });

  it('gives a second project the next free ports and never a port twice, entry ports included', () => {
    const doc = emptyRegistry(NOW);
    allocateAndRecord(doc, request('alpha', [web('api'), web('web')]));
    const b = allocateAndRecord(doc, request('beta', [web()]));
    expect(b.ports).toEqual({ web: { blue: 3006, green: 3007, entry: 3008 } });
    const ports = allPorts(doc);
    expect(ports).toHaveLength(9);
    expect(new Set(ports).size).toBe(ports.length);
  });

  it('treats another environment of the same project as another holder', () => {
    const doc = emptyRegistry(NOW);
    allocateAndRecord(doc, request('alpha', [web()], { env: 'production' }));
    const staging = allocateAndRecord(doc, request('alpha', [web()], { env: 'staging' }));
    expect(staging.ports).toEqual({ web: { blue: 3003, green: 3004, entry: 3005 } });
  });

  it('keeps the ports of a known deployment on re-run, even though its own containers now listen on them', () => {
    const doc = emptyRegistry(NOW);
    allocateAndRecord(doc, request('alpha', [web()]));
    const first = allocateAndRecord(doc, request('beta', [web()], { redis: true }));
    expect(first).toEqual({ ports: { web: { blue: 3003, green: 3004, entry: 3005 } }, redisDb: 2 });
    // alpha goes away, so the lowest free ports are 3000-3002 again; beta must still keep 3003-3005,
    // although its containers and its forwarder (on the entry port) listen on all three.
    releaseDeployment(doc, 'alpha', 'production');
    const again = allocate(doc, request('beta', [web()], { redis: true }), policy({ busyPorts: new Set([3003, 3004, 3005]) }));
    expect(again).toEqual(first);
  });

  it('adds three ports for a service new to a known deployment and keeps the old ones', () => {
    const doc = emptyRegistry(NOW);
    allocateAndRecord(doc, request('alpha', [web()]));
    allocateAndRecord(doc, request('beta', [web()]));
    const grown = allocate(doc, request('alpha', [web(), web('admin')]));
    expect(grown.ports).toEqual({ web: { blue: 3000, green: 3001, entry: 3002 }, admin: { blue: 3006, green: 3007, entry: 3008 } });
  });

  it('honours explicit hostPorts, also outside the automatic range, allocates a missing entry, and keeps automatic picks off them', () => {
    const a = allocate(
      emptyRegistry(NOW),
      request('stock', [web('gateway'), web('frontend', { blue: 3000, green: 3001 }), web('admin', { blue: 8100, green: 8101, entry: 8102 }), web('api', { blue: 3100, green: 3101, entry: 3003 })]),
    );
    expect(a.ports).toEqual({
      // Automatic picks skip every port the manifest names (3000, 3001 and api's entry 3003)...
      gateway: { blue: 3002, green: 3004, entry: 3005 },
      // ...and frontend, which names no entry, gets the next free one.
      frontend: { blue: 3000, green: 3001, entry: 3006 },
      admin: { blue: 8100, green: 8101, entry: 8102 },
      api: { blue: 3100, green: 3101, entry: 3003 },
    });
  });

  const roleName = (role: PortRole): string => (role === 'entry' ? 'entry port' : role);
  const HELD: PortPair = { blue: 3300, green: 3301, entry: 3302 };
  const conflicts = (['blue', 'green', 'entry'] as const).flatMap((wantedRole) => (['blue', 'green', 'entry'] as const).map((heldRole) => ({ wantedRole, heldRole })));

  it.each(conflicts)(
    'rejects an explicit $wantedRole port that another project holds as its $heldRole port, naming that project, env, service and role',
    ({ wantedRole, heldRole }) => {
      const doc = emptyRegistry(NOW);
      put(doc, 'alpha', 'staging', { ports: { api: { ...HELD } }, redisDb: null });
      const port = HELD[heldRole];
      const wanted: ExplicitPorts = { blue: 3500, green: 3501, entry: 3502, [wantedRole]: port };
      const err = catchError(() => allocate(doc, request('beta', [web('frontend', wanted)])));
      expect(err).toBeInstanceOf(AllocationError);
      expect(err.message).toBe(`Port ${port} (service frontend, ${roleName(wantedRole)}) is already held by project "alpha" (environment staging, service api, ${roleName(heldRole)}).`);
      expect((err as AllocationError).hint).toMatch(/hostPorts/);
      expect((err as AllocationError).exitCode).toBe(1);
    },
  );

  it('rejects an explicit port that is the automatically allocated entry port of another project', () => {
    const doc = emptyRegistry(NOW);
    // alpha names blue and green only; its entry port (3000) comes from the range.
    expect(allocateAndRecord(doc, request('alpha', [web('web', { blue: 3300, green: 3301 })])).ports).toEqual({ web: { blue: 3300, green: 3301, entry: 3000 } });
    const err = catchError(() => allocate(doc, request('beta', [web('web', { blue: 3400, green: 3401, entry: 3000 })])));
    expect(err).toBeInstanceOf(AllocationError);
    expect(err.message).toBe('Port 3000 (service web, entry port) is already held by project "alpha" (environment production, service web, entry port).');
  });

  it('allows the same explicit ports again for the deployment that already holds them', () => {
    const doc = emptyRegistry(NOW);
    allocateAndRecord(doc, request('stock', [web('frontend', { blue: 3300, green: 3301, entry: 3302 })]));
    expect(allocate(doc, request('stock', [web('frontend', { blue: 3300, green: 3301, entry: 3302 })])).ports).toEqual({ frontend: { blue: 3300, green: 3301, entry: 3302 } });
  });

  it('explicit blue and green without entry: the entry port is allocated once and kept on every re-run', () => {
    const doc = emptyRegistry(NOW);
    const first = allocateAndRecord(doc, request('stock', [web('frontend', { blue: 3300, green: 3301 })]));
    expect(first.ports).toEqual({ frontend: { blue: 3300, green: 3301, entry: 3000 } });
    // Its forwarder now listens on 3000, and another project takes the next ports...
    allocateAndRecord(doc, request('beta', [web()]));
    expect(doc.projects.beta!.environments.production!.ports).toEqual({ web: { blue: 3001, green: 3002, entry: 3003 } });
    // ...yet the re-run keeps 3000 as the entry port instead of picking a new one.
    const again = allocateAndRecord(doc, request('stock', [web('frontend', { blue: 3300, green: 3301 })]), policy({ busyPorts: new Set([3000, 3300, 3301]) }));
    expect(again).toEqual(first);
  });

  it('a known deployment whose manifest now names ports gets them and keeps the rest', () => {
    const doc = emptyRegistry(NOW);
    allocateAndRecord(doc, request('alpha', [web('api'), web('web')]));
    expect(doc.projects.alpha!.environments.production!.ports).toEqual({ api: { blue: 3000, green: 3001, entry: 3002 }, web: { blue: 3003, green: 3004, entry: 3005 } });
    // api now names new slot ports and no entry (its entry is kept); web names all three, with a new entry.
    const a = allocate(doc, request('alpha', [web('api', { blue: 3400, green: 3401 }), web('web', { blue: 3003, green: 3004, entry: 3500 })]));
    expect(a.ports).toEqual({ api: { blue: 3400, green: 3401, entry: 3002 }, web: { blue: 3003, green: 3004, entry: 3500 } });
  });

  it('skips busy ports for new allocations, entry ports included', () => {
    // 3005 would be api's entry port and 3009 web's entry port, were they free.
    const busy = new Set([3000, 3002, 3003, 3005, 3009]);
    const a = allocate(emptyRegistry(NOW), request('alpha', [web('api'), web('web')]), policy({ busyPorts: busy }));
    expect(a.ports).toEqual({ api: { blue: 3001, green: 3004, entry: 3006 }, web: { blue: 3007, green: 3008, entry: 3010 } });
  });

  it('uses the configured port range', () => {
    const a = allocate(emptyRegistry(NOW), request('alpha', [web()]), policy({ portRange: { min: 4500, max: 4600 } }));
    expect(a.ports).toEqual({ web: { blue: 4500, green: 4501, entry: 4502 } });
  });

  it.each([3, 4, 5, 6, 8, 9, 10])('a range of %i ports fits floor(N/3) services, then fails clearly', (size) => {
    const doc = emptyRegistry(NOW);
    const max = 3000 + size - 1;
    const pol = policy({ portRange: { min: 3000, max } });
    const fits = Math.floor(size / 3);
    for (let i = 0; i < fits; i++) allocateAndRecord(doc, request(`p${i}`, [web()]), pol);
    const ports = allPorts(doc);
    expect(ports).toHaveLength(3 * fits);
    expect(new Set(ports).size).toBe(ports.length);
    for (const p of ports) expect(p >= 3000 && p <= max).toBe(true);
    // What is left (size mod 3 ports) is not enough for blue, green and entry.
    const err = catchError(() => allocate(doc, request('gamma', [web()]), pol));
    expect(err).toBeInstanceOf(AllocationError);
    expect(err.message).toBe(`No free ports left in 3000-${max} for project "gamma" (production).`);
    expect((err as AllocationError).hint).toMatch(/CODEB_PORT_RANGE/);
  });

  it('two services need six ports: a range of five fits neither completely', () => {
    const pol = policy({ portRange: { min: 3000, max: 3004 } });
    expect(() => allocate(emptyRegistry(NOW), request('alpha', [web('api'), web('web')]), pol)).toThrow(/No free ports left in 3000-3004/);
    expect(allocate(emptyRegistry(NOW), request('alpha', [web('api'), web('web')]), policy({ portRange: { min: 3000, max: 3005 } })).ports).toEqual({
      api: { blue: 3000, green: 3001, entry: 3002 },
      web: { blue: 3003, green: 3004, entry: 3005 },
    });
  });

  it('counts busy ports towards exhaustion', () => {
    const range = { min: 3000, max: 3003 };
    // Four ports, one busy: three are left, exactly enough.
    expect(allocate(emptyRegistry(NOW), request('alpha', [web()]), policy({ portRange: range, busyPorts: new Set([3001]) })).ports).toEqual({ web: { blue: 3000, green: 3002, entry: 3003 } });
    // Two busy: no room for the entry port.
    const err = catchError(() => allocate(emptyRegistry(NOW), request('alpha', [web()]), policy({ portRange: range, busyPorts: new Set([3001, 3002]) })));
    expect(err).toBeInstanceOf(AllocationError);
    expect(err.message).toMatch(/No free ports left in 3000-3003/);
  });

  it('does not change the document it allocates against', () => {
    const doc = emptyRegistry(NOW);
    allocateAndRecord(doc, request('alpha', [web()], { redis: true }));
    const before = structuredClone(doc);
    allocate(doc, request('beta', [web()], { redis: true }));
    expect(doc).toEqual(before);
  });
});

describe('allocate: Redis DBs', () => {
  it('starts at DB 2 and never hands out 0 or 1', () => {
    expect(FIRST_PROJECT_REDIS_DB).toBe(2);
    const doc = emptyRegistry(NOW);
    const dbs: number[] = [];
    for (let i = 0; i < 14; i++) dbs.push(allocateAndRecord(doc, request(`p${i}`, [worker()], { redis: true })).redisDb!);
    expect(dbs).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
  });

  it('gives no DB to a deployment without a cache', () => {
    expect(allocate(emptyRegistry(NOW), request('alpha', [web()], { redis: false })).redisDb).toBeNull();
  });

  it('fails clearly after 14 projects with the default 16 databases', () => {
    const doc = emptyRegistry(NOW);
    for (let i = 0; i < 14; i++) allocateAndRecord(doc, request(`p${i}`, [web()], { redis: true }));
    const err = catchError(() => allocate(doc, request('one-too-many', [web()], { redis: true })));
    expect(err).toBeInstanceOf(AllocationError);
    expect(err.message).toBe('All Redis DBs 2-15 are taken (14 deployments hold one).');
    expect((err as AllocationError).hint).toMatch(/CODEB_REDIS_DATABASES/);
    // A project without a cache still fits.
    expect(allocate(doc, request('no-cache', [web()], { redis: false })).redisDb).toBeNull();
  });

  it('uses the configured number of databases', () => {
    const doc = emptyRegistry(NOW);
    const pol = policy({ redisDatabases: 4 });
    expect(allocateAndRecord(doc, request('a', [], { redis: true }), pol).redisDb).toBe(2);
    expect(allocateAndRecord(doc, request('b', [], { redis: true }), pol).redisDb).toBe(3);
    expect(() => allocate(doc, request('c', [], { redis: true }), pol)).toThrow(/All Redis DBs 2-3 are taken/);
    expect(allocate(doc, request('c', [], { redis: true }), policy({ redisDatabases: 32 })).redisDb).toBe(4);
  });

  it('keeps the DB of a known deployment on re-run', () => {
    const doc = emptyRegistry(NOW);
    put(doc, 'alpha', 'production', { ports: {}, redisDb: 9 });
    expect(allocate(doc, request('alpha', [], { redis: true })).redisDb).toBe(9);
    // ...while a new one takes the lowest free slot.
    expect(allocate(doc, request('beta', [], { redis: true })).redisDb).toBe(2);
  });

  it('gives another environment of the same project its own DB', () => {
    const doc = emptyRegistry(NOW);
    allocateAndRecord(doc, request('qna', [], { env: 'production', redis: true }));
    expect(allocate(doc, request('qna', [], { env: 'staging', redis: true })).redisDb).toBe(3);
  });
});

describe('release', () => {
  it('frees the ports and the Redis slot for the next project', () => {
    const doc = emptyRegistry(NOW);
    const alpha = allocateAndRecord(doc, request('alpha', [web()], { redis: true }));
    allocateAndRecord(doc, request('beta', [web()], { redis: true }));
    expect(allocate(doc, request('gamma', [web()], { redis: true }))).toEqual({ ports: { web: { blue: 3006, green: 3007, entry: 3008 } }, redisDb: 4 });

    expect(releaseDeployment(doc, 'alpha', 'production')).toBe(true);
    expect(doc.projects.alpha).toBeUndefined();
    expect(allocate(doc, request('gamma', [web()], { redis: true }))).toEqual(alpha);
  });

  it('keeps the project while it has other environments, and says false for an unknown deployment', () => {
    const doc = emptyRegistry(NOW);
    allocateAndRecord(doc, request('qna', [web()], { env: 'production' }));
    allocateAndRecord(doc, request('qna', [web()], { env: 'staging' }));
    expect(releaseDeployment(doc, 'qna', 'staging')).toBe(true);
    expect(Object.keys(doc.projects.qna!.environments)).toEqual(['production']);
    expect(releaseDeployment(doc, 'qna', 'staging')).toBe(false);
    expect(releaseDeployment(doc, 'nobody', 'production')).toBe(false);
  });

  it('frees explicit and allocated entry ports for another project', () => {
    const doc = emptyRegistry(NOW);
    allocateAndRecord(doc, request('alpha', [web('web', { blue: 3300, green: 3301 })]));
    expect(() => allocate(doc, request('beta', [web('web', { blue: 3300, green: 3301 })]))).toThrow(AllocationError);
    expect(() => allocate(doc, request('beta', [web('web', { blue: 3400, green: 3401, entry: 3000 })]))).toThrow(AllocationError);
    releaseDeployment(doc, 'alpha', 'production');
    expect(allocate(doc, request('beta', [web('web', { blue: 3300, green: 3301 })])).ports.web).toEqual({ blue: 3300, green: 3301, entry: 3000 });
    expect(allocate(doc, request('beta', [web('web', { blue: 3400, green: 3401, entry: 3000 })])).ports.web).toEqual({ blue: 3400, green: 3401, entry: 3000 });
  });
});

describe('policyFromEnv', () => {
  it('uses the defaults when nothing is set', () => {
    const busy = new Set([3000]);
    expect(policyFromEnv({}, busy)).toEqual({ portRange: { min: 3000, max: 3999 }, redisDatabases: 16, busyPorts: busy });
  });

  it.each([
    ['4000-4999', { min: 4000, max: 4999 }],
    [' 3000-3000 ', { min: 3000, max: 3000 }],
    ['1024-65535', { min: 1024, max: 65535 }],
  ])('parses CODEB_PORT_RANGE=%j', (text, range) => {
    expect(policyFromEnv({ CODEB_PORT_RANGE: text }).portRange).toEqual(range);
    expect(parsePortRange(text)).toEqual(range);
  });

  it.each(['abc', '3000', '3000-', '-3999', '3999-3000', '80-90', '3000-70000', '3000:3999', '3000-3999-4000', '3e3-4e3'])('rejects CODEB_PORT_RANGE=%j', (text) => {
    const err = catchError(() => policyFromEnv({ CODEB_PORT_RANGE: text }));
    expect(err).toBeInstanceOf(CodebError);
    expect(err.message).toContain(JSON.stringify(text));
    expect((err as CodebError).exitCode).toBe(2);
    expect((err as CodebError).hint).toMatch(/MIN-MAX/);
  });

  it.each([
    ['3', 3],
    ['32', 32],
  ])('parses CODEB_REDIS_DATABASES=%j', (text, n) => {
    expect(policyFromEnv({ CODEB_REDIS_DATABASES: text }).redisDatabases).toBe(n);
  });

  it.each(['2', '0', '-16', '1.5', 'sixteen', '4096'])('rejects CODEB_REDIS_DATABASES=%j', (text) => {
    const err = catchError(() => policyFromEnv({ CODEB_REDIS_DATABASES: text }));
    expect(err).toBeInstanceOf(CodebError);
    expect(err.message).toContain('CODEB_REDIS_DATABASES');
    expect((err as CodebError).exitCode).toBe(2);
  });
});

describe('parseProcNetTcp', () => {
  // Trimmed from a real /proc/net/tcp and /proc/net/tcp6: state 0A is LISTEN, 01 ESTABLISHED, 06 TIME_WAIT.
  const tcp = [
    '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
    '   0: 0100007F:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 41234 1 0000000000000000 100 0 0 10 0',
    '   1: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 21001 1 0000000000000000 100 0 0 10 0',
    '   2: 0100007F:0BB8 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 41299 1 0000000000000000 20 4 30 10 -1',
    '   3: 0100007F:9C40 0100007F:0BB8 01 00000000:00000000 00:00000000 00000000  1000        0 41300 1 0000000000000000 20 4 30 10 -1',
    '   4: 0100007F:D431 0100007F:1F90 06 00000000:00000000 03:00000123 00000000     0        0 0 3 0000000000000000',
    '',
  ].join('\n');
  const tcp6 = [
    '  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
    '   0: 00000000000000000000000000000000:0CE4 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 31337 1 0000000000000000 100 0 0 10 0',
    '   1: 00000000000000000000000001000000:0CE5 00000000000000000000000001000000:E4A2 01 00000000:00000000 00:00000000 00000000     0        0 31338 1 0000000000000000 20 4 30 10 -1',
  ].join('\n');

  it('returns the local ports in LISTEN state only', () => {
    expect(parseProcNetTcp(tcp)).toEqual([3000, 8080]);
    expect(parseProcNetTcp(tcp6)).toEqual([3300]);
  });

  it('ignores the header, blank lines and junk', () => {
    expect(parseProcNetTcp('')).toEqual([]);
    expect(parseProcNetTcp(tcp.split('\n')[0]!)).toEqual([]);
    expect(parseProcNetTcp('header\nnot a table line\n\n')).toEqual([]);
  });
});

describe('allocate: reserved ports of the stack and server (issue 9, finding 7)', () => {
  const settings = {
    postgres: { host: '127.0.0.1', port: 3002, user: 'postgres', database: 'postgres' },
    redis: { host: '127.0.0.1', port: 3003, user: 'default', databases: 16 },
    storage: { endPoint: '127.0.0.1', port: 3004, useSSL: false, accessKey: 'k', secretKey: 's', region: 'r', kind: 's3rver' as const },
    caddy: { adminUrl: 'http://127.0.0.1:3005', httpPort: 3000, httpsPort: 3001 },
  };
  const reserved = reservedPorts(settings);

  it('names every stack service port and sshd', () => {
    expect(Object.fromEntries(reserved)).toEqual({ 22: 'sshd', 3000: 'Caddy HTTP', 3001: 'Caddy HTTPS', 3002: 'Postgres', 3003: 'Redis', 3004: 'S3', 3005: 'Caddy admin API' });
    expect(reservedPorts(null)).toEqual(new Map([[22, 'sshd']]));
  });

  it('never hands out a reserved port', () => {
    const a = allocate(emptyRegistry(NOW), request('shop', [web()]), policy({ reserved }));
    expect(a.ports.web).toEqual({ blue: 3006, green: 3007, entry: 3008 });
  });

  it.each([
    [3000, 'Caddy HTTP'],
    [3001, 'Caddy HTTPS'],
    [3005, 'Caddy admin API'],
    [3002, 'Postgres'],
    [22, 'sshd'],
  ])('refuses explicit hostPorts on %i (%s) with exit 2, naming the holder', (port, holder) => {
    let err: unknown;
    try {
      allocate(emptyRegistry(NOW), request('shop', [web('web', { blue: 3500, green: port })]), policy({ reserved }));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CodebError);
    expect((err as CodebError).exitCode).toBe(2);
    expect((err as CodebError).message).toContain(`Port ${port}`);
    expect((err as CodebError).message).toContain(holder);
  });
});
