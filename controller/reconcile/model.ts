/**
 * The vocabulary of reconciliation: resources codeb wants (desired), what exists (observed),
 * and the actions that turn one into the other. Specs never hold secret values: a resource that
 * needs one names it (`secret: 'postgres'`) and the executor fetches it from the secret store.
 */
export type ResourceKind =
  | 'postgres.role'
  | 'postgres.database'
  | 'redis.slot'
  | 'redis.user'
  | 'storage.bucket'
  | 'storage.user'
  | 'files.envfile'
  | 'runtime.release'
  | 'proxy.route'
  | 'network.project'
  | 'volume.data';

export type System = 'postgres' | 'redis' | 'storage' | 'files' | 'runtime' | 'proxy' | 'network' | 'volume';

export function systemOf(kind: ResourceKind): System {
  return kind.split('.')[0] as System;
}

export type Spec = Record<string, unknown>;

export interface Resource<S extends Spec = Spec> {
  kind: ResourceKind;
  /** The resource's name in its system (database name, bucket name, route @id, ...). */
  name: string;
  /** Unique within one plan: `${kind}/${name}`. */
  key: string;
  /** The fields codeb manages, compared one by one with what is observed. */
  spec: S;
  /** Keys of resources that must exist first. */
  dependsOn: string[];
  /** Holds data a user would lose on delete (databases, buckets, volumes): deleted only with --delete-data. */
  holdsData?: boolean;
}

export interface Observed<S extends Spec = Spec> {
  key: string;
  exists: boolean;
  /** Only the managed fields, as found. */
  spec?: Partial<S>;
  /** Set when the resource exists but belongs to someone else: applying would take it over. */
  conflict?: string;
}

export type Op = 'create' | 'update' | 'delete' | 'unchanged' | 'blocked' | 'keep';

export interface FieldChange {
  field: string;
  from: unknown;
  to: unknown;
}

export interface Action {
  op: Op;
  key: string;
  kind: ResourceKind;
  name: string;
  reason: string;
  changes: FieldChange[];
  /** The desired resource (or, for a delete, the one that exists). */
  resource: Resource;
}

export function resourceKey(kind: ResourceKind, name: string): string {
  return `${kind}/${name}`;
}

export function makeResource<S extends Spec>(kind: ResourceKind, name: string, spec: S, dependsOn: string[] = [], holdsData = false): Resource<S> {
  return { kind, name, key: resourceKey(kind, name), spec, dependsOn, ...(holdsData ? { holdsData } : {}) };
}

/** Progress and secrets handed to providers while they act. */
export interface ExecContext {
  /** A secret value for this deployment by name (generated once, stored 0600, never printed). */
  secret(name: string): string;
  /** One line of progress for the current step. */
  progress(message: string): void;
}

/**
 * One adapter per real system. observe() reads and changes nothing; execute() carries out one
 * action idempotently (checks, then acts), so re-running after a crash converges.
 */
export interface Provider {
  readonly system: System;
  observe(resources: Resource[]): Promise<Observed[]>;
  execute(action: Action, ctx: ExecContext): Promise<void>;
  close(): Promise<void>;
}
