/** The registry document: what codeb has handed out and what it believes runs where. No secrets. */
import type { Slot } from '../manifest/names.js';

export const REGISTRY_FORMAT_VERSION = 1;

/** allocated: ports and slot reserved; provisioning: an apply is under way or was cut short;
 * provisioned: every resource exists, no containers run yet; running: the live version is healthy;
 * degraded: the last apply or deploy failed while the previous version keeps serving; failed: nothing serves. */
export type DeploymentStatus = 'allocated' | 'provisioning' | 'provisioned' | 'running' | 'degraded' | 'failed';

export type PortRole = 'blue' | 'green' | 'entry';

/**
 * Host ports of one service: blue and green are the two slots' ports (of the first replica);
 * entry is the stable port the forwarder listens on and Caddy routes to (the blue-green switch
 * re-points it; docs/deploy.md).
 */
export interface PortPair {
  blue: number;
  green: number;
  entry: number;
  /**
   * With replicas > 1: the ports of replicas 2..N in each slot (same length in both). Absent for
   * one replica, so records written before replicas existed read as one replica.
   */
  replicas?: { blue: number[]; green: number[] };
}

export interface ServiceRouteRecord {
  /** Host names of its own; empty: served at the environment's domain and aliases. */
  domains: string[];
  tls: 'auto' | 'internal' | 'off';
  path: string | null;
  basicAuthUser: string | null;
  allow: string[];
}

export interface ContainerRecord {
  service: string;
  slot: Slot;
  /** names.containerName: the replica index is part of the name (absent suffix: the first). */
  name: string;
  id: string | null;
  image: string;
  hostPort: number | null;
  state: string;
  startedAt: string | null;
  /** A stateful service's one container (deploy/stateful.ts): no slot switch, rollback or gc touches it. */
  stateful?: boolean;
}

export interface HistoryEntry {
  at: string;
  /** user@host that ran the command. */
  by: string;
  action: string;
  result: 'ok' | 'failed' | 'rolled-back';
  detail?: Record<string, unknown>;
}

/** A job's last run. Finished fields are null while it runs (or when codeb was killed during it). */
export interface JobRunRecord {
  lastStartedAt: string;
  /** The schedule time a --due run answered; null when run by name. */
  scheduledFor: string | null;
  lastFinishedAt: string | null;
  exitCode: number | null;
  result: 'ok' | 'failed' | null;
  durationMs: number | null;
  image: string;
}

export interface EnvironmentRecord {
  env: string;
  status: DeploymentStatus;
  createdAt: string;
  updatedAt: string;
  domain: string | null;
  aliases: string[];
  /**
   * Web services with host names of their own (services.<s>.domains) or route auth: owned like
   * domain and aliases. Names the basic-auth user, never its password or hash. Absent: none.
   */
  serviceRoutes?: Record<string, ServiceRouteRecord>;
  /** Host ports per routed or probed service: one for blue, one for green. */
  ports: Record<string, PortPair>;
  redisDb: number | null;
  redisUser: string | null;
  /**
   * The key prefix of `isolation: prefix`, kept once given: it depends on how many environments the
   * manifest had (names.redisKeyPrefix), and the app's keys must not move when a second one is
   * added. Absent: db isolation, or a record written before the prefix was kept.
   */
  redisKeyPrefix?: string;
  database: string | null;
  databaseRole: string | null;
  /** The first bucket; `buckets` has all of them. */
  bucket: string | null;
  buckets: string[];
  liveSlot: Slot | null;
  /**
   * Podman volumes of its stateful services (names.volumeName): every one it was ever given, kept
   * when the manifest drops it, so destroy --delete-data removes exactly these.
   */
  volumes?: string[];
  /** The deployment's Podman network subnet (a /26 of the settings' network pool); absent before the first apply. */
  subnet?: string;
  containers: ContainerRecord[];
  /** Set by a deploy and by each `codeb monitor` pass. since: when the current status began. */
  health: { status: 'unknown' | 'healthy' | 'unhealthy'; lastCheck: string | null; detail?: string; since?: string };
  history: HistoryEntry[];
  /** The previous slot, kept running for an instant rollback until `until` (then `codeb gc` stops it). */
  retained?: { slot: Slot; until: string; images: Record<string, string> } | null;
  /** The last run of each scheduled job (`codeb jobs run`); its log tail is in <registry dir>/jobs/. */
  jobs?: Record<string, JobRunRecord>;
  /** Steps of the last apply, recorded as each completes (a crash leaves a true record). */
  journal?: Array<{ step: string; at: string; status: 'done' | 'failed'; detail?: string }>;
  /** The last deploy and how far it got, recorded before each step (absent in older documents). */
  deploy?: DeployProgress | null;
}

/**
 * Where a deploy is. Written before each step, so a deploy cut short (killed, machine lost) is
 * found by the next command, which knows what to finish (docs/deploy.md, "Interrupted deploys").
 * started: nothing of the new slot runs yet; gating: its containers run, the health gate is under
 * way; healthy: the gate passed, the switch is next; switched: traffic is on the new slot;
 * verifying / watching: the checks after the switch; rolling-back: traffic goes back.
 * The deploy ended with done, rolled-back or failed (stopped before the switch).
 */
export type DeployPhase = 'started' | 'gating' | 'healthy' | 'switched' | 'verifying' | 'watching' | 'rolling-back' | 'done' | 'rolled-back' | 'failed';

export interface DeployProgress {
  phase: DeployPhase;
  /** The slot the new version runs in. */
  slot: Slot;
  /** The slot that served before (null on a first deploy): where a rollback goes. */
  from: Slot | null;
  version: string;
  images: Record<string, string>;
  /** Who started it (user@host) and when. */
  by: string;
  startedAt: string;
  /** When the phase was recorded. */
  at: string;
  /** How much of the watch window has passed without a failure (a resumed deploy watches the rest). */
  watchedMs?: number;
}

export interface ProjectRecord {
  id: string;
  name: string;
  createdAt: string;
  updatedAt: string;
  environments: Record<string, EnvironmentRecord>;
}

/**
 * Data `destroy` kept (no --delete-data): the claim on its names stays, so no other project derives
 * and adopts them. The same project and environment take it back on their next apply;
 * `destroy <project> --env <env> --delete-data` deletes exactly this and removes the tombstone.
 */
export interface Tombstone {
  project: string;
  env: string;
  destroyedAt: string;
  by: string;
  database: string | null;
  databaseRole: string | null;
  buckets: string[];
  /** Podman volumes (absent in tombstones written before volumes existed). */
  volumes?: string[];
}

export interface RegistryDocument {
  formatVersion: number;
  updatedAt: string;
  projects: Record<string, ProjectRecord>;
  /** Absent in registries written before tombstones existed. */
  tombstones?: Tombstone[];
}

export function emptyRegistry(now = new Date().toISOString()): RegistryDocument {
  return { formatVersion: REGISTRY_FORMAT_VERSION, updatedAt: now, projects: {} };
}
