/** The registry document: what codeb has handed out and what it believes runs where. No secrets. */
import type { Slot } from '../manifest/names.js';

export const REGISTRY_FORMAT_VERSION = 1;

/** allocated: ports and slot reserved; provisioning: an apply is under way or was cut short;
 * provisioned: every resource exists, no containers run yet; running: the live version is healthy;
 * degraded: the last apply or deploy failed while the previous version keeps serving; failed: nothing serves. */
export type DeploymentStatus = 'allocated' | 'provisioning' | 'provisioned' | 'running' | 'degraded' | 'failed';

export type PortRole = 'blue' | 'green' | 'entry';

/**
 * Host ports of one service: blue and green are the two slots' ports; entry is the stable port
 * the forwarder listens on and Caddy routes to (the blue-green switch re-points it; docs/deploy.md).
 */
export interface PortPair {
  blue: number;
  green: number;
  entry: number;
}

export interface ContainerRecord {
  service: string;
  slot: Slot;
  name: string;
  id: string | null;
  image: string;
  hostPort: number | null;
  state: string;
  startedAt: string | null;
}

export interface HistoryEntry {
  at: string;
  /** user@host that ran the command. */
  by: string;
  action: string;
  result: 'ok' | 'failed' | 'rolled-back';
  detail?: Record<string, unknown>;
}

export interface EnvironmentRecord {
  env: string;
  status: DeploymentStatus;
  createdAt: string;
  updatedAt: string;
  domain: string | null;
  aliases: string[];
  /** Host ports per routed or probed service: one for blue, one for green. */
  ports: Record<string, PortPair>;
  redisDb: number | null;
  redisUser: string | null;
  database: string | null;
  databaseRole: string | null;
  /** The first bucket; `buckets` has all of them. */
  bucket: string | null;
  buckets: string[];
  liveSlot: Slot | null;
  /** The deployment's Podman network subnet (a /26 of the settings' network pool); absent before the first apply. */
  subnet?: string;
  containers: ContainerRecord[];
  health: { status: 'unknown' | 'healthy' | 'unhealthy'; lastCheck: string | null; detail?: string };
  history: HistoryEntry[];
  /** The previous slot, kept running for an instant rollback until `until` (then `codeb gc` stops it). */
  retained?: { slot: Slot; until: string; images: Record<string, string> } | null;
  /** Steps of the last apply, recorded as each completes (a crash leaves a true record). */
  journal?: Array<{ step: string; at: string; status: 'done' | 'failed'; detail?: string }>;
}

export interface ProjectRecord {
  id: string;
  name: string;
  createdAt: string;
  updatedAt: string;
  environments: Record<string, EnvironmentRecord>;
}

export interface RegistryDocument {
  formatVersion: number;
  updatedAt: string;
  projects: Record<string, ProjectRecord>;
}

export function emptyRegistry(now = new Date().toISOString()): RegistryDocument {
  return { formatVersion: REGISTRY_FORMAT_VERSION, updatedAt: now, projects: {} };
}
