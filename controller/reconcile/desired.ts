/**
 * desired(deployment, names, settings): every resource one deployment needs, in dependency order.
 * Pure: the same inputs always give the same resources. Secret values never appear, only their
 * names as `${secret:NAME}` placeholders that the files provider fills in when it writes.
 */
import type { Deployment, ResolvedService } from '../manifest/types.js';
import { deploymentSites } from '../manifest/sites.js';
import { envFileName, networkName, redisKeyPrefix, routeId, storageUser, volumeName, BACKUP_BUCKET } from '../manifest/names.js';
import { storageCapabilities } from '../providers/storage-access.js';
import { bridgeName, gatewayOf } from '../runtime/network.js';
import { CodebError } from '../errors.js';
import type { NetworkSpec } from '../providers/network.js';
import type { VolumeSpec } from '../providers/volume.js';
import type { EnvironmentRecord } from '../registry/types.js';
import type { Settings } from '../settings.js';
import { makeResource, resourceKey, type Resource } from './model.js';
import { releaseName, releaseResource } from './release.js';

/** The registry names and allocation a deployment was given (see registry/records.ts). */
export type DeploymentNames = Pick<EnvironmentRecord, 'database' | 'databaseRole' | 'redisDb' | 'redisUser' | 'buckets' | 'ports' | 'liveSlot' | 'subnet'> &
  Partial<Pick<EnvironmentRecord, 'status' | 'redisKeyPrefix'>>;

/**
 * Data made by an earlier codeb carries a marker without an owner: only a deployment the registry
 * already knew (applied before, status past `allocated`) may take it over, never a new one.
 */
function knownBefore(n: DeploymentNames): boolean {
  return n.status !== undefined && n.status !== 'allocated';
}

export function secretRef(name: string): string {
  return `\${secret:${name}}`;
}

/** The secret-store key of a service's basic-auth bcrypt hash. */
export function basicAuthSecret(service: string): string {
  return `routeAuth:${service}`;
}

/**
 * Route auth as planned and observed: the user, where the hash is kept (the secret store; the
 * proxy provider hands it to the forwarder) and its fingerprint (host-routes.ts hashFingerprint),
 * which tells a changed hash without showing it.
 */
export interface RouteAuthSpec {
  basic: { user: string; secret: string; fingerprint: string } | null;
  allow: string[];
}

export interface RouteUpstream {
  path: string | null;
  port: number;
  service: string;
  auth?: RouteAuthSpec;
}

/** Host names of the deployment beyond its domain and aliases (services.<s>.domains). */
export interface RouteSiteSpec {
  domains: string[];
  tls: 'auto' | 'internal' | 'off';
  upstreams: RouteUpstream[];
}

export interface RouteSpec extends Record<string, unknown> {
  domains: string[];
  tls: 'auto' | 'internal' | 'off';
  upstreams: RouteUpstream[];
  websockets: boolean;
  /** Absent when no service has host names of its own. */
  sites?: RouteSiteSpec[];
  /** Caddy's static front sends every site to the forwarder's router (false when observed broken: drift). */
  caddyFront: boolean;
}

function routeAuth(svc: ResolvedService, fingerprints: Record<string, string>): RouteAuthSpec {
  const b = svc.auth!.basic;
  return { basic: b ? { user: b.user, secret: basicAuthSecret(svc.name), fingerprint: fingerprints[svc.name] ?? 'fp:none' } : null, allow: [...svc.auth!.allow] };
}

/** The deployment's Podman network (docs/runtime.md, "Networks"). */
export function networkResource(projectId: string, env: string, subnet: string): Resource<NetworkSpec> {
  const spec: NetworkSpec = { subnet, gateway: gatewayOf(subnet), bridge: bridgeName(subnet), isolate: true, owner: `${projectId}/${env}` };
  return makeResource('network.project', networkName(projectId, env), spec);
}

/** Every named volume of a deployment's stateful services (docs/manifest.md, "Stateful services"). */
export function volumeResources(d: Deployment): Resource<VolumeSpec>[] {
  const owner = `${d.projectId}/${d.env}`;
  return d.services.flatMap((svc) =>
    svc.volumes.map((v) => makeResource('volume.data', volumeName(d.projectId, d.env, svc.name, v.name), { owner, service: svc.name, volume: v.name }, [], true)),
  );
}

/**
 * `authFingerprints`: per service with basic auth, the fingerprint of the hash it will have (the
 * manifest's, or the one generated earlier; a missing one plans a change).
 */
export function desired(d: Deployment, n: DeploymentNames, s: Settings, authFingerprints: Record<string, string> = {}): Resource[] {
  const out: Resource[] = [];
  const env: Record<string, string> = {};
  const owner = `${d.projectId}/${d.env}`;
  if (!n.subnet) throw new CodebError(`${owner} has no network subnet allocated.`, { hint: 'Apply it again: apply allocates one from the network pool.' });
  // Containers reach Postgres, Redis and S3 at the services address, never at the host's loopback.
  const services = s.network.servicesAddress;
  const network = networkResource(d.projectId, d.env, n.subnet);
  out.push(network);

  if (d.features.database && n.database && n.databaseRole) {
    // The role goes with its database: kept (with its password) unless data is deleted.
    const adoptLegacy = knownBefore(n);
    const role = makeResource('postgres.role', n.databaseRole, { login: true, claimedBy: owner, adoptLegacy, secret: 'postgres' }, [], true);
    out.push(role);
    out.push(
      makeResource(
        'postgres.database',
        n.database,
        { owner: n.databaseRole, claimedBy: owner, adoptLegacy, publicConnect: false, systemDatabasesClosed: true, extensions: [...d.features.database.extensions].sort() },
        [role.key],
        true,
      ),
    );
    env.DATABASE_URL = `postgresql://${n.databaseRole}:${secretRef('postgres')}@${services}:${s.postgres.port}/${n.database}`;
    env.PGDATABASE = n.database;
  }

  if (d.features.cache && n.redisDb !== null && n.redisUser) {
    // A Redis slot is a cache: destroy flushes it so the slot can be handed to the next project.
    const slot = makeResource('redis.slot', String(n.redisDb), { db: n.redisDb, owner });
    out.push(slot);
    // The prefix the deployment was given (records.ts keeps it when the manifest grows environments).
    const prefix = d.features.cache.isolation === 'prefix' ? n.redisKeyPrefix ?? redisKeyPrefix({ projectId: d.projectId, env: d.env, multiEnv: d.multiEnv }) : null;
    out.push(makeResource('redis.user', n.redisUser, { db: n.redisDb, isolation: d.features.cache.isolation, keyPrefix: prefix, secret: 'redis' }, [slot.key]));
    env.REDIS_URL = `redis://${n.redisUser}:${secretRef('redis')}@${services}:${s.redis.port}/${n.redisDb}`;
    if (prefix) env.REDIS_KEY_PREFIX = prefix;
  }

  if (d.features.storage && n.buckets.length) {
    // Where the server makes users (radosgw), the deployment gets its own key, granted its buckets
    // only; elsewhere (s3rver) its env file carries the server's shared key (apply says so).
    const user = storageCapabilities(s).perProjectKeys ? storageUser(d.projectId, d.env) : null;
    const userDeps: string[] = [];
    if (user) {
      // Kept with the buckets (and the secret store that holds its key) unless data is deleted.
      const u = makeResource('storage.user', user, { key: 'current', secret: 'storage' }, [], true);
      out.push(u);
      userDeps.push(u.key);
    }
    for (const b of n.buckets) out.push(makeResource('storage.bucket', b, { public: d.features.storage.public, user }, userDeps, true));
    if (d.backup.enabled && d.backup.include.length) {
      // Shared by every project: created when missing, never deleted by a project's destroy, and
      // granted to no deployment: only codeb's own key reaches it.
      out.push(makeResource('storage.bucket', BACKUP_BUCKET, { public: false, user: null, shared: true }, [], true));
    }
    const scheme = s.storage.useSSL ? 'https' : 'http';
    env.S3_ENDPOINT = `${scheme}://${services}:${s.storage.port}`;
    env.S3_REGION = s.storage.region;
    env.S3_BUCKET = n.buckets[0]!;
    env.S3_ACCESS_KEY = secretRef('storageAccessKey');
    env.S3_SECRET_KEY = secretRef('storageSecretKey');
  }

  const deps = out.filter((r) => r.kind !== 'network.project' && (r.kind !== 'storage.bucket' || r.name !== BACKUP_BUCKET)).map((r) => r.key);
  const envFile = makeResource('files.envfile', envFileName(d.projectId, d.env), { variables: env }, deps);
  out.push(envFile);

  const web = d.services.filter((svc) => svc.type === 'web' && svc.port !== null);
  const routeKeys: string[] = [];
  if (web.length) {
    // The route is a forwarder host-table entry pointing at each service's stable entry port,
    // never at a slot: neither a deploy nor a route change touches Caddy's configuration. The
    // route may exist before the first container: until the first deploy passes its health gate
    // the entry has no target and the router answers 502.
    const upstreams = (services: ResolvedService[]): RouteUpstream[] =>
      services
        .map((svc) => ({ path: svc.routePath, port: n.ports[svc.name]!.entry, service: svc.name, ...(svc.auth ? { auth: routeAuth(svc, authFingerprints) } : {}) }))
        // Longest path prefix first; the catch-all (null) last.
        .sort((a, b) => (b.path?.length ?? -1) - (a.path?.length ?? -1));
    const [main, ...others] = deploymentSites(d);
    const spec: RouteSpec = { domains: main!.domains, tls: main!.tls, upstreams: upstreams(main!.services), websockets: d.features.websockets, caddyFront: true };
    if (others.length) spec.sites = others.map((site) => ({ domains: site.domains, tls: site.tls, upstreams: upstreams(site.services) }));
    const route = makeResource('proxy.route', routeId(d.projectId, d.env), spec, [envFile.key]);
    out.push(route);
    routeKeys.push(route.key);
  }
  // Volumes hold data: kept by destroy unless --delete-data, made before the containers mount them.
  const volumes = volumeResources(d);
  out.push(...volumes);
  // Containers last: they need the env file, and the deploy verifies through the route.
  out.push(releaseResource(d, n, null, [network.key, envFile.key, ...routeKeys, ...volumes.map((v) => v.key)], services));
  return out;
}

/**
 * What a deployment owns, from its registry record alone (destroy has no manifest). The shared
 * backup bucket is never in here.
 */
export function ownedResources(projectId: string, rec: EnvironmentRecord): Resource[] {
  const out: Resource[] = [];
  // First, so destroy (reverse order) removes it after the containers that use it.
  // With its owner: a network of that name another deployment owns is blocked, not removed.
  if (rec.subnet) out.push(makeResource('network.project', networkName(projectId, rec.env), { owner: `${projectId}/${rec.env}` }));
  // Volumes the registry knows (every one the deployment ever had), removed after the containers.
  for (const v of rec.volumes ?? []) out.push(makeResource('volume.data', v, { owner: `${projectId}/${rec.env}` }, [], true));
  // The registry knows these, so a marker of an earlier codeb (no owner) is this deployment's.
  const claim = { claimedBy: `${projectId}/${rec.env}`, adoptLegacy: true };
  if (rec.databaseRole) out.push(makeResource('postgres.role', rec.databaseRole, { login: true, ...claim }, [], true));
  if (rec.database) out.push(makeResource('postgres.database', rec.database, { ...claim }, rec.databaseRole ? [resourceKey('postgres.role', rec.databaseRole)] : [], true));
  if (rec.redisDb !== null) out.push(makeResource('redis.slot', String(rec.redisDb), { db: rec.redisDb, owner: `${projectId}/${rec.env}` }));
  if (rec.redisUser) out.push(makeResource('redis.user', rec.redisUser, { db: rec.redisDb }));
  // The user exists only where the server makes keys; elsewhere observe finds none and skips it.
  const user = rec.buckets.length ? [makeResource('storage.user', storageUser(projectId, rec.env), {}, [], true)] : [];
  out.push(...user);
  for (const b of rec.buckets) out.push(makeResource('storage.bucket', b, {}, user.map((u) => u.key), true));
  out.push(makeResource('files.envfile', envFileName(projectId, rec.env), {}));
  out.push(makeResource('proxy.route', routeId(projectId, rec.env), {}));
  // Containers of both slots and the forwarder's entries.
  out.push(makeResource('runtime.release', releaseName(projectId, rec.env), {}));
  return out;
}
