/** Pure changes to the registry document: record an allocation, release a deployment. */
import type { Deployment } from '../manifest/types.js';
import { bucketName, databaseName, databaseRole, namedDatabase, redisKeyPrefix, redisUser, volumeName, type NameScope } from '../manifest/names.js';
import { AllocationError, type Allocation, type AllocationRequest } from './allocate.js';
import type { EnvironmentRecord, RegistryDocument, ServiceRouteRecord, Tombstone } from './types.js';
import { CodebError } from '../errors.js';

export function allocationRequest(d: Deployment): AllocationRequest {
  return {
    projectId: d.projectId,
    env: d.env,
    // Web and internal services get a blue and a green host port per replica (internal ones bind
    // to 127.0.0.1 only, for codeb's health probes); workers listen on nothing.
    services: d.services.map((s) => ({ name: s.name, needsPorts: s.port !== null, explicit: s.hostPorts, replicas: s.replicas })),
    needsRedis: d.features.cache !== null,
  };
}

/**
 * Names reach Postgres, Redis and S3 once and must never change under a running deployment, so a
 * known deployment keeps the names it was given even if the manifest later grows environments.
 */
export function deploymentNames(d: Deployment, existing: (Pick<EnvironmentRecord, 'database' | 'databaseRole' | 'buckets'> & { redisUser?: string | null; redisKeyPrefix?: string }) | undefined) {
  const scope: NameScope = { projectId: d.projectId, env: d.env, multiEnv: d.multiEnv };
  const buckets = d.features.storage ? d.features.storage.buckets.map((b) => keptBucket(scope, b, existing?.buckets ?? [])) : [];
  const named = d.features.database?.name ? namedDatabase(d.features.database.name) : null;
  // A database is never renamed or replaced under a deployment: a new name would start empty
  // beside the old one's data. Refused, with the ways out.
  if (named && existing?.database && existing.database !== named.database) {
    throw new CodebError(`${d.projectId} (${d.env}) has database ${existing.database}; the manifest names ${named.database}. codeb does not rename a database, and a new one would start empty beside the data in ${existing.database}.`, {
      exitCode: 2,
      hint: `Keep ${existing.database}: set database.name of ${d.env} to ${existing.database} (or remove it). Start over with an empty ${named.database}: \`codeb destroy ${d.projectId} --env ${d.env} --delete-data\` first (it deletes ${existing.database}). Nothing was changed.`,
    });
  }
  return {
    database: d.features.database ? existing?.database ?? named?.database ?? databaseName(scope) : null,
    databaseRole: d.features.database ? existing?.databaseRole ?? named?.role ?? databaseRole(scope) : null,
    redisUser: d.features.cache ? existing?.redisUser ?? redisUser(scope) : null,
    redisKeyPrefix: d.features.cache?.isolation === 'prefix' ? existing?.redisKeyPrefix ?? redisKeyPrefix(scope) : null,
    buckets,
  };
}

/**
 * The deployment's volumes: those the manifest names now, plus every one it had before (a volume
 * dropped from the manifest keeps its data until destroy --delete-data). Sorted.
 */
export function deploymentVolumes(d: Deployment, before: { volumes?: string[] } | undefined): string[] {
  const now = d.services.flatMap((s) => s.volumes.map((v) => volumeName(d.projectId, d.env, s.name, v.name)));
  return [...new Set([...(before?.volumes ?? []), ...now])].sort();
}

/**
 * A bucket suffix's name: the one the deployment already has for it, in either naming form (one
 * environment or several: a manifest that grew environments keeps its buckets), else derived.
 * Matched by the whole name, never by the text after the last dash (suffixes may hold dashes:
 * `a-img` and `img` are two buckets).
 */
function keptBucket(scope: NameScope, suffix: string, old: readonly string[]): string {
  const derived = bucketName(scope, suffix);
  if (old.includes(derived)) return derived;
  const otherForm = bucketName({ ...scope, multiEnv: !scope.multiEnv }, suffix);
  return old.includes(otherForm) ? otherForm : derived;
}

/** Who holds data names: every other deployment, and every destroyed one whose data was kept. */
interface NameHolder {
  project: string;
  env: string;
  database: string | null;
  databaseRole: string | null;
  redisUser: string | null;
  buckets: string[];
  /** `project "p" (env)` or `destroyed project "p" (env)`. */
  who: string;
  /** Set for a tombstone: when and by whom, for the message. */
  kept?: string;
}

function nameHolders(doc: RegistryDocument): NameHolder[] {
  const live = Object.values(doc.projects).flatMap((p) =>
    Object.values(p.environments).map((e): NameHolder => ({ project: p.id, env: e.env, database: e.database, databaseRole: e.databaseRole, redisUser: e.redisUser, buckets: e.buckets, who: `project "${p.id}" (${e.env})` })),
  );
  const kept = (doc.tombstones ?? []).map((t): NameHolder => ({
    project: t.project, env: t.env, database: t.database, databaseRole: t.databaseRole, redisUser: null, buckets: t.buckets,
    who: `destroyed project "${t.project}" (${t.env})`, kept: `destroyed ${t.destroyedAt} by ${t.by}, data kept`,
  }));
  return [...live, ...kept];
}

/**
 * Different project ids can derive the same names (food-app and food both give food_db): a name
 * another deployment holds, or a destroyed one kept, is refused, never shared — sharing would hand
 * one project the other's database, bucket or Redis user.
 */
export function assertNamesFree(doc: RegistryDocument, d: Deployment, names: ReturnType<typeof deploymentNames>): void {
  // A name the manifest chose (database.name) is bad input when taken: exit 2, naming the owner.
  const named = Boolean(d.features.database?.name);
  for (const h of nameHolders(doc)) {
    if (h.project === d.projectId && h.env === d.env) continue;
    const database = Boolean(names.database && (h.database === names.database || h.databaseRole === names.databaseRole));
    const clash =
      (database && `database ${names.database}`) ||
      (names.redisUser && h.redisUser === names.redisUser && `Redis user ${names.redisUser}`) ||
      names.buckets.filter((b) => h.buckets.includes(b)).map((b) => `bucket ${b}`)[0];
    if (!clash) continue;
    const destroy = `destroy ${h.project} --env ${h.env} --delete-data`;
    if (database && named) {
      throw namedClash(d, names, h.kept ? `${h.who} kept it (${h.kept})` : `${h.who} already has it`, h.kept ? `or delete that kept data first (${destroy})` : `or free it first (${destroy})`);
    }
    // The holder may have derived it or named it (database.name): say only who has it.
    const ways = [
      ...(h.kept ? [`delete it with \`codeb ${destroy}\``] : []),
      ...(database ? [`give ${d.env} a database of its own with database.name (environment.database.name, or environments.${d.env}.database.name)`] : []),
      DIFFERENT_ID,
    ];
    const hint = `${ways.slice(0, -1).join(', ')}${ways.length > 1 ? ', or ' : ''}${ways.at(-1)}.`;
    throw new AllocationError(
      `${d.projectId} (${d.env}) would use ${clash}, which ${h.who} ${h.kept ? `kept (${h.kept})` : 'already has'}.`,
      `${h.kept ? 'Kept data stays with its owner. ' : ''}${hint[0]!.toUpperCase()}${hint.slice(1)}`,
    );
  }
}

const DIFFERENT_ID = 'choose a project id that derives other names (a trailing -app is dropped, dashes become underscores; docs/manifest.md lists the rules)';

function namedClash(d: Deployment, names: ReturnType<typeof deploymentNames>, owner: string, free: string): CodebError {
  return new CodebError(`${d.projectId} (${d.env}) names database ${names.database} (database.name), which ${owner}.`, {
    exitCode: 2,
    hint: `A database belongs to one deployment. Choose another database.name, ${free}. Nothing was changed.`,
  });
}

export function findTombstone(doc: RegistryDocument, projectId: string, env: string): Tombstone | undefined {
  return doc.tombstones?.find((t) => t.project === projectId && t.env === env);
}

export function removeTombstone(doc: RegistryDocument, projectId: string, env: string): void {
  if (!doc.tombstones) return;
  doc.tombstones = doc.tombstones.filter((t) => !(t.project === projectId && t.env === env));
  if (doc.tombstones.length === 0) delete doc.tombstones;
}

/** Destroy kept data: its names stay claimed by (projectId, env) until --delete-data. */
export function addTombstone(doc: RegistryDocument, t: Tombstone): void {
  removeTombstone(doc, t.project, t.env);
  (doc.tombstones ??= []).push(t);
}

/** Every host name a registry record holds: domain, aliases and its services' own. */
export function recordHosts(e: Pick<EnvironmentRecord, 'domain' | 'aliases' | 'serviceRoutes'>): Array<{ host: string; service: string | null }> {
  const out: Array<{ host: string; service: string | null }> = [];
  for (const h of [e.domain, ...e.aliases]) if (h) out.push({ host: h.toLowerCase(), service: null });
  for (const [svc, r] of Object.entries(e.serviceRoutes ?? {})) for (const h of r.domains) out.push({ host: h.toLowerCase(), service: svc });
  return out;
}

/**
 * Domains, aliases and services' own host names are owned across every project and environment:
 * a host another deployment serves is refused (exit 2, naming the owner), so no manifest can take
 * over another site's traffic by naming it.
 */
export function assertDomainsFree(doc: RegistryDocument, d: Pick<Deployment, 'projectId' | 'env' | 'domain' | 'aliases' | 'services'>): void {
  const wanted: Array<{ host: string; what: string }> = [
    { host: d.domain.toLowerCase(), what: 'domain' },
    ...d.aliases.map((h) => ({ host: h.toLowerCase(), what: 'alias' })),
    ...d.services.flatMap((s) => (s.type === 'web' ? s.domains.map((h) => ({ host: h.toLowerCase(), what: `host name (service ${s.name})` })) : [])),
  ];
  for (const p of Object.values(doc.projects)) {
    for (const e of Object.values(p.environments)) {
      if (p.id === d.projectId && e.env === d.env) continue;
      const held = recordHosts(e);
      for (const w of wanted) {
        const h = held.find((x) => x.host === w.host);
        if (!h) continue;
        throw new CodebError(`${d.projectId} (${d.env}) asks for ${w.what} ${w.host}, which project "${p.id}" (${e.env}) already serves${h.service ? ` (service ${h.service})` : ''}.`, {
          exitCode: 2,
          hint: `A host name belongs to one deployment. Choose another, or free it first (change or destroy ${p.id} (${e.env})). Nothing was changed.`,
        });
      }
    }
  }
}

/** What the registry keeps of the services' routes (no secret), or undefined when none has any. */
export function serviceRoutes(d: Pick<Deployment, 'services'>): Record<string, ServiceRouteRecord> | undefined {
  const out: Record<string, ServiceRouteRecord> = {};
  for (const s of d.services) {
    if (s.type !== 'web' || (!s.domains.length && !s.auth)) continue;
    out[s.name] = { domains: [...s.domains], tls: s.tls, path: s.routePath, basicAuthUser: s.auth?.basic?.user ?? null, allow: [...(s.auth?.allow ?? [])] };
  }
  return Object.keys(out).length ? out : undefined;
}

export function recordAllocation(doc: RegistryDocument, d: Deployment, a: Allocation, now: string): EnvironmentRecord {
  const project = (doc.projects[d.projectId] ??= { id: d.projectId, name: d.projectName, createdAt: now, updatedAt: now, environments: {} });
  project.name = d.projectName;
  project.updatedAt = now;
  const existing = project.environments[d.env];
  // The same project and environment take back the data their destroy kept.
  const names = deploymentNames(d, existing ?? findTombstone(doc, d.projectId, d.env));
  const volumes = deploymentVolumes(d, existing ?? findTombstone(doc, d.projectId, d.env));
  assertDomainsFree(doc, d);
  assertNamesFree(doc, d, names);
  removeTombstone(doc, d.projectId, d.env);
  const rec: EnvironmentRecord = {
    env: d.env,
    status: existing?.status ?? 'allocated',
    createdAt: existing?.createdAt ?? now,
    updatedAt: now,
    domain: d.domain,
    aliases: d.aliases,
    ...(serviceRoutes(d) ? { serviceRoutes: serviceRoutes(d) } : {}),
    ports: a.ports,
    redisDb: a.redisDb,
    redisUser: names.redisUser,
    ...(names.redisKeyPrefix ? { redisKeyPrefix: names.redisKeyPrefix } : {}),
    database: names.database,
    databaseRole: names.databaseRole,
    bucket: names.buckets[0] ?? null,
    buckets: names.buckets,
    liveSlot: existing?.liveSlot ?? null,
    ...(volumes.length ? { volumes } : {}),
    ...(existing?.subnet ? { subnet: existing.subnet } : {}),
    containers: existing?.containers ?? [],
    health: existing?.health ?? { status: 'unknown', lastCheck: null },
    history: existing?.history ?? [],
    ...(existing?.retained !== undefined ? { retained: existing.retained } : {}),
    ...(existing?.journal ? { journal: existing.journal } : {}),
    ...(existing?.deploy !== undefined ? { deploy: existing.deploy } : {}),
  };
  project.environments[d.env] = rec;
  return rec;
}

/** Remove a deployment (its ports and Redis slot become free). Returns false when it was not there. */
export function releaseDeployment(doc: RegistryDocument, projectId: string, env: string): boolean {
  const project = doc.projects[projectId];
  if (!project?.environments[env]) return false;
  delete project.environments[env];
  if (Object.keys(project.environments).length === 0) delete doc.projects[projectId];
  return true;
}

/**
 * `codeb registry release`: the deployment leaves the registry, but its database, role, buckets and volumes
 * stay on the servers (release deletes nothing), so their names stay claimed by a tombstone, as
 * destroy without --delete-data leaves. False when there is no such deployment.
 */
export function releaseKeepingData(doc: RegistryDocument, projectId: string, env: string, when: { by: string; at: string }): boolean {
  const rec = doc.projects[projectId]?.environments[env];
  if (!rec || !releaseDeployment(doc, projectId, env)) return false;
  if (rec.database || rec.buckets.length || rec.volumes?.length) {
    addTombstone(doc, { project: projectId, env, destroyedAt: when.at, by: when.by, database: rec.database, databaseRole: rec.databaseRole, buckets: rec.buckets, ...(rec.volumes?.length ? { volumes: rec.volumes } : {}) });
  }
  return true;
}

/** The record of one deployment, or an error that says which environments the project does have. */
export function requireDeployment(doc: RegistryDocument, file: string, projectId: string, env: string): EnvironmentRecord {
  const rec = doc.projects[projectId]?.environments[env];
  if (rec) return rec;
  const envs = Object.keys(doc.projects[projectId]?.environments ?? {});
  throw new CodebError(`No deployment ${projectId} (${env}) in ${file}.`, {
    hint: envs.length ? `${projectId} has environments: ${envs.join(', ')} (use --env).` : 'See `codeb registry list`.',
  });
}
