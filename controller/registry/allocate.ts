/**
 * Pure allocation of host ports and Redis DB slots against the registry document.
 * A known deployment keeps what it has (replica ports too: scaling up adds ports, scaling down
 * drops the last ones, the others stay); explicit ports are honoured when nobody else holds them;
 * new ports skip anything held in the registry or (on the local target) listened on by another process.
 */
import { CodebError } from '../errors.js';
import type { PortPair, PortRole, RegistryDocument } from './types.js';
import type { Slot } from '../manifest/names.js';

export interface PortRange {
  min: number;
  max: number;
}

export interface AllocationPolicy {
  portRange: PortRange;
  /** Number of Redis databases (redis.conf `databases`); 0 and 1 are reserved. */
  redisDatabases: number;
  /** Ports some other process listens on (local target only); never handed out anew. */
  busyPorts: Pick<ReadonlySet<number>, 'has'>;
  /** Redis DBs another owner holds on the server (its marker, or keys without one); never handed out anew. */
  busyRedisDbs?: ReadonlySet<number>;
  /** Ports of the stack or server services (reserved-ports.ts): port -> what holds it. Never allocated, refused when named. */
  reserved?: ReadonlyMap<number, string>;
}

export const DEFAULT_POLICY: AllocationPolicy = {
  portRange: { min: 3000, max: 3999 },
  redisDatabases: 16,
  busyPorts: new Set(),
};

/** DB 0 is the system's own cache, DB 1 is shared: projects get 2 and up. */
export const FIRST_PROJECT_REDIS_DB = 2;

/** Each web or internal service holds three host ports: one per slot, and the stable entry port (plus one per slot for each further replica). */
export const PORT_ROLES: readonly PortRole[] = ['blue', 'green', 'entry'];
const SLOTS: readonly Slot[] = ['blue', 'green'];

export interface AllocationRequest {
  projectId: string;
  env: string;
  /** explicit: host ports the manifest names (entry may be left to allocation). */
  /** replicas: containers per slot (default 1); each replica beyond the first gets its own slot ports. */
  services: Array<{ name: string; needsPorts: boolean; explicit: ExplicitPorts | null; replicas?: number }>;
  needsRedis: boolean;
}

export interface ExplicitPorts {
  blue: number;
  green: number;
  entry?: number;
}

export interface Allocation {
  ports: Record<string, PortPair>;
  redisDb: number | null;
}

export class AllocationError extends CodebError {
  constructor(message: string, hint: string) {
    super(message, { hint, exitCode: 1 });
  }
}

interface Holder {
  projectId: string;
  env: string;
  service: string;
  slot: PortRole;
  /** 0-based; set for the ports of replicas beyond the first. */
  replica?: number;
}

function describe(h: Holder): string {
  const what = h.slot === 'entry' ? 'entry port' : h.replica ? `${h.slot}, replica ${h.replica + 1}` : h.slot;
  return `project "${h.projectId}" (environment ${h.env}, service ${h.service}, ${what})`;
}

/** Every port and Redis DB held by deployments other than (projectId, env). */
function heldByOthers(doc: RegistryDocument, projectId: string, env: string): { ports: Map<number, Holder>; redis: Map<number, string> } {
  const ports = new Map<number, Holder>();
  const redis = new Map<number, string>();
  for (const p of Object.values(doc.projects)) {
    for (const e of Object.values(p.environments)) {
      if (p.id === projectId && e.env === env) continue;
      for (const [service, pair] of Object.entries(e.ports)) {
        for (const role of PORT_ROLES) ports.set(pair[role], { projectId: p.id, env: e.env, service, slot: role });
        for (const slot of SLOTS) pair.replicas?.[slot].forEach((port, i) => ports.set(port, { projectId: p.id, env: e.env, service, slot, replica: i + 1 }));
      }
      if (e.redisDb !== null) redis.set(e.redisDb, `${p.id} (${e.env})`);
    }
  }
  return { ports, redis };
}

export function allocate(doc: RegistryDocument, req: AllocationRequest, policy: AllocationPolicy = DEFAULT_POLICY): Allocation {
  const existing = doc.projects[req.projectId]?.environments[req.env];
  const others = heldByOthers(doc, req.projectId, req.env);
  const taken = new Set<number>(others.ports.keys());
  const ports: Record<string, PortPair> = {};

  // Explicit ports first, so an automatic pick never steals a port the manifest names.
  const explicit: Record<string, Partial<PortPair>> = {};
  for (const s of req.services) {
    if (!s.needsPorts || !s.explicit) continue;
    for (const role of PORT_ROLES) {
      const port = s.explicit[role];
      if (port === undefined) continue;
      const service = policy.reserved?.get(port);
      if (service) {
        throw new CodebError(`Port ${port} (service ${s.name}, ${role === 'entry' ? 'entry port' : role}) is ${service}'s port on this server; a deployment cannot take it.`, {
          exitCode: 2,
          hint: 'Choose another hostPorts value in the manifest, or leave hostPorts out to have free ports assigned.',
        });
      }
      const holder = others.ports.get(port);
      if (holder) {
        throw new AllocationError(
          `Port ${port} (service ${s.name}, ${role === 'entry' ? 'entry port' : role}) is already held by ${describe(holder)}.`,
          'Choose another hostPorts value in the manifest, or leave hostPorts out to have free ports assigned.',
        );
      }
      taken.add(port);
    }
    explicit[s.name] = { ...s.explicit };
  }
  // Kept allocations next: a known deployment keeps its ports on every run.
  for (const s of req.services) {
    if (!s.needsPorts) continue;
    const kept = existing?.ports[s.name];
    if (!kept) continue;
    const want = (explicit[s.name] ??= {});
    for (const role of PORT_ROLES) {
      if (want[role] === undefined && kept[role] !== undefined && !taken.has(kept[role])) {
        want[role] = kept[role];
        taken.add(kept[role]);
      }
    }
  }
  // Then new ports from the range for whatever is still missing.
  let cursor = policy.portRange.min;
  const next = (): number => {
    while (cursor <= policy.portRange.max) {
      const p = cursor++;
      if (!taken.has(p) && !policy.busyPorts.has(p) && !policy.reserved?.has(p)) {
        taken.add(p);
        return p;
      }
    }
    throw new AllocationError(
      `No free ports left in ${policy.portRange.min}-${policy.portRange.max} for project "${req.projectId}" (${req.env}).`,
      'Destroy unused projects (`codeb destroy`), or widen the range with CODEB_PORT_RANGE=3000-4999.',
    );
  };
  for (const s of req.services) {
    if (!s.needsPorts) continue;
    const want = explicit[s.name] ?? {};
    ports[s.name] = { blue: want.blue ?? next(), green: want.green ?? next(), entry: want.entry ?? next() };
  }
  // Replicas beyond the first, after every first-replica port, so adding replicas to one service
  // never moves another service's ports. Kept ports stay (in order); a scale-up appends new ones.
  const extra = (s: AllocationRequest['services'][number]) => Math.max(0, (s.replicas ?? 1) - 1);
  const keptExtra: Record<string, Record<Slot, number[]>> = {};
  for (const s of req.services) {
    if (!s.needsPorts || extra(s) === 0) continue;
    const kept = existing?.ports[s.name]?.replicas;
    const k = (keptExtra[s.name] = { blue: [] as number[], green: [] as number[] });
    for (const slot of SLOTS) {
      for (const port of kept?.[slot].slice(0, extra(s)) ?? []) {
        if (taken.has(port)) break; // the rest is re-allocated in order
        taken.add(port);
        k[slot].push(port);
      }
    }
  }
  for (const s of req.services) {
    if (!s.needsPorts || extra(s) === 0) continue;
    const k = keptExtra[s.name]!;
    const fill = (list: number[]) => [...list, ...Array.from({ length: extra(s) - list.length }, next)];
    ports[s.name]!.replicas = { blue: fill(k.blue), green: fill(k.green) };
  }

  let redisDb: number | null = null;
  if (req.needsRedis) {
    if (existing?.redisDb != null && !others.redis.has(existing.redisDb)) {
      redisDb = existing.redisDb;
    } else {
      for (let db = FIRST_PROJECT_REDIS_DB; db < policy.redisDatabases; db++) {
        if (!others.redis.has(db) && !policy.busyRedisDbs?.has(db)) {
          redisDb = db;
          break;
        }
      }
      if (redisDb === null) {
        throw new AllocationError(
          `All Redis DBs ${FIRST_PROJECT_REDIS_DB}-${policy.redisDatabases - 1} are taken (${others.redis.size} deployments hold one${policy.busyRedisDbs?.size ? `, ${policy.busyRedisDbs.size} hold data of other owners` : ''}).`,
          'Destroy unused projects, use features.cache: false for projects without a cache, or raise `databases` in redis.conf and CODEB_REDIS_DATABASES.',
        );
      }
    }
  }
  return { ports, redisDb };
}

/** Parse "3000-3999". */
export function parsePortRange(text: string): PortRange {
  const m = /^(\d{1,5})-(\d{1,5})$/.exec(text.trim());
  const min = Number(m?.[1]);
  const max = Number(m?.[2]);
  if (!m || min < 1024 || max > 65535 || min > max) {
    throw new CodebError(`Invalid port range ${JSON.stringify(text)}.`, { exitCode: 2, hint: 'Write it as MIN-MAX within 1024-65535, e.g. 3000-3999.' });
  }
  return { min, max };
}

/** Policy from the environment (CODEB_PORT_RANGE, CODEB_REDIS_DATABASES) with the given busy ports. */
export function policyFromEnv(env: NodeJS.ProcessEnv, busyPorts: Pick<ReadonlySet<number>, 'has'> = new Set(), reserved?: ReadonlyMap<number, string>): AllocationPolicy {
  const dbs = env.CODEB_REDIS_DATABASES ? Number(env.CODEB_REDIS_DATABASES) : DEFAULT_POLICY.redisDatabases;
  if (!Number.isInteger(dbs) || dbs < 3 || dbs > 1024) {
    throw new CodebError(`Invalid CODEB_REDIS_DATABASES ${JSON.stringify(env.CODEB_REDIS_DATABASES)}.`, { exitCode: 2, hint: 'Use the `databases` value of redis.conf (16 by default).' });
  }
  return {
    portRange: env.CODEB_PORT_RANGE ? parsePortRange(env.CODEB_PORT_RANGE) : DEFAULT_POLICY.portRange,
    redisDatabases: dbs,
    busyPorts,
    ...(reserved ? { reserved } : {}),
  };
}
