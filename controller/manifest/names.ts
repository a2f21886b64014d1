/**
 * The one place where names that reach other systems are derived (databases, roles, buckets, Redis
 * users and keys, containers, networks, volumes, files). Inputs are already validated by the schema
 * (lowercase DNS labels of bounded length); every output is checked again here, so a name that
 * would break a system's rules fails loudly instead of being truncated or escaped into something else.
 *
 * Runtime names join their parts with SEP ("--"): ids, environments and service names are labels
 * with single dashes only, so no two (project, environment, service) give the same container, route,
 * forwarder entry or network name (a single dash made id s-c + environment x-production collide with
 * s-c-x + production). Data names (database, role, bucket) keep the reference design's shape and are
 * owned instead: the registry refuses a name another deployment (or a tombstone) holds, and each
 * provider's marker names its project and environment.
 */
import { CodebError } from '../errors.js';

/** Between the parts of a runtime name; never inside a valid id, environment or service name. */
export const SEP = '--';

const LABEL = /^[a-z](?:[a-z0-9]|-(?=[a-z0-9]))*$/;
const SQL_IDENT = /^[a-z_][a-z0-9_]{0,62}$/;
const BUCKET = /^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){1,61}[a-z0-9]$/;

function assertLabel(kind: string, value: string, max: number): void {
  if (!LABEL.test(value) || value.length > max) {
    throw new CodebError(`Invalid ${kind} ${JSON.stringify(value)}: use lowercase letters, digits and single dashes, starting with a letter, at most ${max} characters.`, { exitCode: 2 });
  }
}

function checked(kind: string, value: string, re: RegExp): string {
  if (!re.test(value)) throw new CodebError(`Derived ${kind} name ${JSON.stringify(value)} breaks that system's naming rules.`, { exitCode: 2 });
  return value;
}

/** food-delivery-app -> food-delivery (the reference design drops a trailing -app). */
export function baseName(projectId: string): string {
  assertLabel('project id', projectId, 40);
  return projectId.endsWith('-app') ? projectId.slice(0, -'-app'.length) : projectId;
}

/** development -> dev, production -> prod, others unchanged (used in database and bucket names). */
export function envShort(env: string): string {
  assertLabel('environment name', env, 12);
  if (env === 'development') return 'dev';
  if (env === 'production') return 'prod';
  return env;
}

export interface NameScope {
  projectId: string;
  env: string;
  /** Manifests with several environments carry the environment in shared-resource names. */
  multiEnv: boolean;
}

/** food-delivery-app -> food_delivery_db; with environments: food_delivery_prod, food_delivery_staging. */
export function databaseName(s: NameScope): string {
  const base = baseName(s.projectId).replaceAll('-', '_');
  const suffix = s.multiEnv ? envShort(s.env).replaceAll('-', '_') : 'db';
  return checked('database', `${base}_${suffix}`, SQL_IDENT);
}

export function databaseRole(s: NameScope): string {
  return checked('role', `${databaseName(s)}_owner`, SQL_IDENT);
}

/** The schema's databaseName rule, checked again: a name the manifest gives (database.name). */
const NAMED_DATABASE = /^(?!pg_)[a-z][a-z0-9_]{1,56}$/;
const RESERVED_DATABASES = new Set(['postgres', 'template0', 'template1']);

export function namedDatabase(name: string): { database: string; role: string } {
  if (!NAMED_DATABASE.test(name) || RESERVED_DATABASES.has(name)) {
    throw new CodebError(`Invalid database name ${JSON.stringify(name)}: use lowercase letters, digits and underscores, starting with a letter, 2-57 characters, not starting with pg_ and not postgres, template0 or template1.`, { exitCode: 2 });
  }
  return { database: name, role: checked('role', `${name}_owner`, SQL_IDENT) };
}

/** food-delivery-app + uploads -> food-delivery-uploads; with environments: food-delivery-staging-uploads. */
export function bucketName(s: NameScope, suffix = 'uploads'): string {
  const parts = [baseName(s.projectId), ...(s.multiEnv ? [envShort(s.env)] : []), suffix];
  return checked('bucket', parts.join('-'), BUCKET);
}

/** The shared bucket for database dumps and upload backups. */
export const BACKUP_BUCKET = 'backup';

export function redisUser(s: NameScope): string {
  assertLabel('project id', s.projectId, 40);
  return `codeb-${s.projectId}${SEP}${envShort(s.env)}`;
}

/** Key prefix for the prefix isolation mode: <project>: (single environment) or <project>:<env>:. */
export function redisKeyPrefix(s: NameScope): string {
  assertLabel('project id', s.projectId, 40);
  return s.multiEnv ? `${s.projectId}:${envShort(s.env)}:` : `${s.projectId}:`;
}

export type Slot = 'blue' | 'green';

/** Most replicas a service may run (the schema's maximum): a bound for anything that counts them. */
export const MAX_REPLICAS = 20;

/**
 * A service's container in a slot. replica is 0-based: the first replica keeps the name a service
 * had before replicas existed (<project>--<env>--<service>--<slot>), so containers made then are
 * still found; replica i > 0 appends its 1-based number (...--blue--2, ...--blue--3).
 */
export function containerName(projectId: string, env: string, service: string, slot: Slot, replica = 0): string {
  assertLabel('project id', projectId, 40);
  assertLabel('environment name', env, 12);
  assertLabel('service name', service, 30);
  if (!Number.isInteger(replica) || replica < 0 || replica >= MAX_REPLICAS) {
    throw new CodebError(`Invalid replica index ${replica} of service ${JSON.stringify(service)}: replicas are numbered 0 to ${MAX_REPLICAS - 1}.`, { exitCode: 2 });
  }
  return [projectId, env, service, slot, ...(replica > 0 ? [String(replica + 1)] : [])].join(SEP);
}

/** Every container name of a service in a slot, for `replicas` replicas. */
export function replicaNames(projectId: string, env: string, service: string, slot: Slot, replicas: number): string[] {
  return Array.from({ length: replicas }, (_, i) => containerName(projectId, env, service, slot, i));
}

/** The forwarder's entry of one service's stable port: one per project, environment and service. */
export function entryName(projectId: string, env: string, service: string): string {
  assertLabel('project id', projectId, 40);
  assertLabel('environment name', env, 12);
  assertLabel('service name', service, 30);
  return [projectId, env, service].join(SEP);
}

/** The registry's and plan's name for a deployment's containers as one resource. */
export function deploymentName(projectId: string, env: string): string {
  assertLabel('project id', projectId, 40);
  assertLabel('environment name', env, 12);
  return [projectId, env].join(SEP);
}

/**
 * The Podman volume of one of a service's named volumes: codeb-<project>--<env>--<service>--<volume>.
 * Per environment, so staging never mounts production's data.
 */
export function volumeName(projectId: string, env: string, service: string, volume: string): string {
  assertLabel('project id', projectId, 40);
  assertLabel('environment name', env, 12);
  assertLabel('service name', service, 30);
  assertLabel('volume name', volume, 20);
  return `codeb-${[projectId, env, service, volume].join(SEP)}`;
}

export function networkName(projectId: string, env: string): string {
  assertLabel('project id', projectId, 40);
  assertLabel('environment name', env, 12);
  return `codeb-${projectId}${SEP}${env}`;
}

/** File name (never a path) of the per-deployment env file under the secrets folder. */
export function envFileName(projectId: string, env: string): string {
  assertLabel('project id', projectId, 40);
  assertLabel('environment name', env, 12);
  return `${projectId}.${env}.env`;
}

/** Caddy @id of a deployment's route: unique per project and environment. */
export function routeId(projectId: string, env: string): string {
  assertLabel('project id', projectId, 40);
  assertLabel('environment name', env, 12);
  return `codeb-${projectId}${SEP}${env}`;
}

/**
 * The object-storage user (RADOS Gateway uid) of a deployment: codeb.<project>.<env>. Dots cannot
 * occur in project ids or environment names, so no two deployments can derive the same user.
 */
export function storageUser(projectId: string, env: string): string {
  assertLabel('project id', projectId, 40);
  assertLabel('environment name', env, 12);
  return `codeb.${projectId}.${env}`;
}
