/**
 * Validate a loaded manifest: the JSON Schema first (precompiled ajv), then the rules a schema
 * cannot express (references between services, port collisions). Every problem is collected, not
 * just the first, and mapped back to its line and column.
 */
import type { ErrorObject } from 'ajv';
import { validateManifest as compiled } from '../generated/validators.js';
import { closest, type ManifestIssue } from './issues.js';
import { locate, type LoadedManifest, type PathSegment } from './load.js';
import { databaseName, envShort } from './names.js';
import { parseCron } from '../ops/cron.js';
import type { Deployment, Manifest, RouteAuthSpec, ServiceSpec } from './types.js';
import { environmentNames, resolveDeployment } from './normalize.js';
import { siteConflicts } from './sites.js';
import { parseCidr } from '../runtime/network.js';
import { findCycle } from './depends.js';

type SchemaNode = Record<string, unknown>;

export interface ValidationResult {
  manifest?: Manifest;
  issues: ManifestIssue[];
}

export function validateLoaded(loaded: LoadedManifest): ValidationResult {
  if (loaded.issues.length > 0) return { issues: sortIssues(loaded.issues) };
  const data = loaded.data;
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    return { issues: [{ file: loaded.file, line: 1, col: 1, path: '', code: 'type', message: 'a manifest must be a YAML mapping (key: value pairs) with apiVersion, project and services', allowed: 'see manifests/minimal.yaml' }] };
  }
  const issues: ManifestIssue[] = [];
  if (!compiled(data)) {
    for (const e of compiled.errors ?? []) {
      const issue = issueFromAjv(loaded, e);
      if (issue) issues.push(issue);
    }
  }
  if (issues.length === 0) issues.push(...semanticIssues(loaded, data as Manifest));
  const unique = dedupe(issues);
  return unique.length === 0 ? { manifest: data as Manifest, issues: [] } : { issues: sortIssues(unique) };
}

function pointerToPath(pointer: string): PathSegment[] {
  if (!pointer) return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

function pathToPointer(path: PathSegment[]): string {
  return path.map((s) => '/' + String(s).replaceAll('~', '~0').replaceAll('/', '~1')).join('');
}

/** ajv's schemaPath is relative to the $ref'd definition, so use the parent schema it hands us (verbose). */
function parentOf(e: ErrorObject): SchemaNode | undefined {
  return (e.parentSchema as SchemaNode | undefined) ?? undefined;
}

function describe(e: ErrorObject): string | undefined {
  const d = parentOf(e)?.description;
  return typeof d === 'string' ? d : undefined;
}

/** servers[].roles: every one, on the one server of an environment (the only placement there is). */
const ALL_ROLES = ['app', 'proxy', 'database', 'cache', 'storage'] as const;

/** Keys earlier versions accepted and nothing could honour: refused with the reason. */
const REMOVED_KEYS: Record<string, string> = {
  'logs.maxFiles': 'Podman keeps no rotated log files: it truncates the log at maxSize; remove maxFiles',
  'features.sse': 'server-sent event streams always pass uncompressed and unbuffered; remove sse',
};

function issueFromAjv(loaded: LoadedManifest, e: ErrorObject): ManifestIssue | undefined {
  const path = pointerToPath(e.instancePath);
  const base = { file: loaded.file, path: e.instancePath };
  const at = (p: PathSegment[], which: 'key' | 'value' = 'value') => locate(loaded, p, which);
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = String(p.additionalProperty);
      const parent = parentOf(e);
      const allowed = Object.keys((parent?.properties as SchemaNode | undefined) ?? {});
      const full = [...path, key];
      const removed = REMOVED_KEYS[`${String(path.at(-1))}.${key}`];
      return { ...base, ...at(full, 'key'), path: pathToPointer(full), code: 'unknown-key', message: `unknown key "${key}"${removed ? ` (${removed})` : ''}`, allowed: allowed.length ? allowed.join(', ') : undefined, suggestion: closest(key, allowed) };
    }
    case 'required': {
      const key = String(p.missingProperty);
      const where = path.length ? at(path, 'key') : { line: 1, col: 1 };
      return { ...base, ...where, code: 'required', message: `missing required key "${key}"` + requiredReason(e.schemaPath, key) };
    }
    case 'propertyNames':
      return undefined; // the nested error (with propertyName) says what is wrong with the name
    case 'if':
      return undefined; // the failing `then` branch reports the real problem
    case 'type': {
      const expected = Array.isArray(p.type) ? (p.type as string[]).join(' or ') : String(p.type);
      return { ...base, ...at(path), code: 'type', message: `must be ${expected === 'integer' ? 'a whole number' : `a${/^[aeiou]/.test(expected) ? 'n' : ''} ${expected}`}, got ${kindOf(valueAt(loaded.data, path))}` };
    }
    case 'enum': {
      const allowed = (p.allowedValues as unknown[]).map(String);
      const got = valueAt(loaded.data, path);
      return { ...base, ...at(path), code: 'enum', message: `${JSON.stringify(got)} is not allowed`, allowed: allowed.join(', '), suggestion: typeof got === 'string' ? closest(got, allowed) : undefined };
    }
    case 'const':
      return { ...base, ...at(path), code: 'enum', message: `must be ${JSON.stringify(p.allowedValue)}`, allowed: String(p.allowedValue) };
    case 'pattern':
    case 'maxLength':
    case 'minLength':
    case 'format': {
      const isName = e.propertyName !== undefined;
      const full = isName ? [...path, e.propertyName as string] : path;
      const got = isName ? e.propertyName : valueAt(loaded.data, path);
      const what = isName ? 'name' : 'value';
      const why = e.keyword === 'maxLength' ? `is too long (at most ${String(p.limit)} characters)` : e.keyword === 'minLength' ? `is too short (at least ${String(p.limit)} characters)` : 'is not allowed here';
      return { ...base, ...at(full, isName ? 'key' : 'value'), path: pathToPointer(full), code: e.keyword === 'pattern' ? 'pattern' : 'length', message: `${what} ${JSON.stringify(shorten(String(got)))} ${why}`, allowed: describe(e) };
    }
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum': {
      const node = parentOf(e);
      const lo = node?.minimum ?? (node?.exclusiveMinimum !== undefined ? `more than ${String(node.exclusiveMinimum)}` : undefined);
      const hi = node?.maximum;
      return { ...base, ...at(path), code: 'range', message: `${JSON.stringify(valueAt(loaded.data, path))} is out of range`, allowed: `${lo ?? '...'} to ${hi ?? '...'}` + (describe(e) ? ` (${describe(e)})` : '') };
    }
    case 'not':
      return { ...base, ...at(path), code: 'conflict', message: notMessage(e) };
    default:
      return { ...base, ...at(path), code: e.keyword, message: e.message ?? 'is invalid' };
  }
}

function requiredReason(schemaPath: string, key: string): string {
  if (schemaPath.includes('/then') && key === 'port') return ' (web and internal services listen on a container port)';
  return '';
}

function notMessage(e: ErrorObject): string {
  const not = (e.schema ?? {}) as SchemaNode;
  if (Array.isArray(not.anyOf)) return 'a worker has no port: remove port and hostPorts, or make it type: internal';
  if (Array.isArray(not.required) && not.required.includes('http')) return 'a health check is either http or command, not both';
  return 'this combination of keys is not allowed';
}

function valueAt(data: unknown, path: PathSegment[]): unknown {
  let v: unknown = data;
  for (const s of path) v = (v as Record<string | number, unknown> | undefined)?.[s];
  return v;
}

function kindOf(v: unknown): string {
  if (v === null) return 'null (an empty value)';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `${typeof v} ${JSON.stringify(shorten(String(v)))}`;
}

function shorten(s: string): string {
  return s.length > 60 ? s.slice(0, 57) + '...' : s;
}

function dedupe(issues: ManifestIssue[]): ManifestIssue[] {
  const seen = new Set<string>();
  return issues.filter((i) => {
    const k = `${i.path}|${i.code}|${i.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function sortIssues(issues: ManifestIssue[]): ManifestIssue[] {
  return [...issues].sort((a, b) => a.line - b.line || a.col - b.col);
}

/** Rules across fields that JSON Schema cannot say. The manifest has passed the schema. */
function semanticIssues(loaded: LoadedManifest, m: Manifest): ManifestIssue[] {
  const out: ManifestIssue[] = [];
  const add = (path: PathSegment[], code: string, message: string, extra: Partial<ManifestIssue> = {}, which: 'key' | 'value' = 'value') =>
    out.push({ file: loaded.file, ...locate(loaded, path, which), path: pathToPointer(path), code, message, ...extra });
  const names = Object.keys(m.services);

  const web = names.filter((n) => (m.services[n]!.type ?? 'web') === 'web');
  // Services with host names of their own are checked per host below (routeIssues).
  const onMain = (n: string) => !m.services[n]!.domains?.length;
  const catchAll = web.filter((n) => !m.services[n]!.routePath && onMain(n));
  for (const n of catchAll.slice(1)) {
    add(['services', n], 'conflict', `only one web service takes every request and "${catchAll[0]}" already does`, { allowed: 'give this one a routePath (e.g. /api) or domains of its own, or make it type: internal' }, 'key');
  }
  const paths = new Map<string, string>();
  for (const n of names) {
    const svc = m.services[n]!;
    if (svc.routePath === undefined || ((svc.type ?? 'web') === 'web' && !onMain(n))) continue;
    if ((svc.type ?? 'web') !== 'web') add(['services', n, 'routePath'], 'conflict', 'only web services are routed; remove routePath or make the service type: web');
    else if (paths.has(svc.routePath)) add(['services', n, 'routePath'], 'conflict', `routePath ${svc.routePath} is already routed to "${paths.get(svc.routePath)}"`);
    else paths.set(svc.routePath, n);
  }

  // A volume has one writer: a stateful service runs one container, never two at once.
  for (const n of names) {
    const vols = m.services[n]!.volumes;
    if (!vols || Object.keys(vols).length === 0) continue;
    const stateful = { allowed: 'replicas: 1 (or 0). Volumes have one writer: a service with volumes runs one container, stopped before its new version starts' };
    const why = `service "${n}" has volumes`;
    if ((m.services[n]!.replicas ?? 1) > 1) add(['services', n, 'replicas'], 'conflict', `${why}, so it cannot run ${m.services[n]!.replicas} replicas`, stateful);
    for (const [env, o] of Object.entries(m.environments ?? {})) {
      const so = o.services?.[n]?.replicas;
      if (so !== undefined && so > 1) add(['environments', env, 'services', n, 'replicas'], 'conflict', `${why}, so it cannot run ${so} replicas`, stateful);
      else if (so === undefined && o.replicas !== undefined && o.replicas > 1) add(['environments', env, 'replicas'], 'conflict', `${why}, so it cannot run ${o.replicas} replicas in environment "${env}"`, { allowed: `${stateful.allowed}; or set environments.${env}.services.${n}.replicas: 1` });
    }
    if (m.services[n]!.release) add(['services', n, 'release'], 'conflict', `${why}: a release command would run beside its running container, two writers on one volume`, { allowed: 'run migrations when the service starts, or move the release command to a service without volumes' });
    const at = new Map<string, string>();
    for (const [v, path] of Object.entries(vols)) {
      const p = path.length > 1 ? path.replace(/\/$/, '') : path;
      const holder = at.get(p);
      if (holder) add(['services', n, 'volumes', v], 'conflict', `volume "${v}" is mounted at ${p}, where volume "${holder}" already is`, { allowed: 'give every volume of a service its own path' });
      else at.set(p, v);
    }
  }

  for (const n of names) {
    for (const [i, dep] of (m.services[n]!.dependsOn ?? []).entries()) {
      if (dep === n) add(['services', n, 'dependsOn', i], 'reference', 'a service cannot depend on itself');
      else if (!names.includes(dep)) add(['services', n, 'dependsOn', i], 'reference', `no service named "${dep}"`, { allowed: names.join(', '), suggestion: closest(dep, names) });
    }
  }
  // A cycle would leave no service to start first.
  const cycle = findCycle(Object.fromEntries(names.map((n) => [n, m.services[n]!.dependsOn ?? []])));
  if (cycle) {
    const [from, to] = [cycle[cycle.length - 2]!, cycle[cycle.length - 1]!];
    add(['services', from, 'dependsOn', (m.services[from]!.dependsOn ?? []).indexOf(to)], 'cycle', `dependsOn forms a cycle: ${cycle.join(' -> ')}`, { allowed: 'remove one of these dependencies: services start after the ones they depend on' });
  }

  for (const [job, j] of Object.entries(m.jobs ?? {})) {
    if (j.service !== undefined && !names.includes(j.service)) {
      add(['jobs', job, 'service'], 'reference', `no service named "${j.service}"`, { allowed: names.join(', '), suggestion: closest(j.service, names) });
    }
    // A job's container runs beside the service's: it would be a second writer on its volumes.
    const runsIn = j.service ?? names[0]!;
    if (Object.keys(m.services[runsIn]?.volumes ?? {}).length) {
      const free = names.filter((n) => !Object.keys(m.services[n]!.volumes ?? {}).length);
      add(j.service !== undefined ? ['jobs', job, 'service'] : ['jobs', job], 'conflict', `the job would run in a container of "${runsIn}" beside its running one, and "${runsIn}" has volumes (one writer only)`, { allowed: free.length ? `name a service without volumes: ${free.join(', ')}` : 'give the job a service without volumes' }, j.service !== undefined ? 'value' : 'key');
    }
    try {
      parseCron(j.schedule);
    } catch (err) {
      add(['jobs', job, 'schedule'], 'schedule', (err as Error).message.replace(/\.$/, ''), { allowed: 'five fields: minute hour day-of-month month day-of-week (UTC), e.g. "0 3 * * *"' });
    }
  }

  const primary = m.environment?.name ?? 'production';
  const serverNames = (m.servers ?? []).map((s) => s.name);
  const dupServers = serverNames.filter((s, i) => serverNames.indexOf(s) !== i);
  for (const s of new Set(dupServers)) add(['servers', serverNames.lastIndexOf(s), 'name'], 'conflict', `server name "${s}" is used twice`);
  // Nothing places a role elsewhere yet: an environment's server runs all of them. A shorter list
  // would be a promise nothing keeps, so it is refused rather than ignored.
  (m.servers ?? []).forEach((s, i) => {
    const missing = s.roles ? ALL_ROLES.filter((r) => !s.roles!.includes(r)) : [];
    if (missing.length) {
      add(['servers', i, 'roles'], 'conflict', `server "${s.name}" would not run ${missing.join(', ')}, but this version runs every role on the server an environment names`, { allowed: `remove roles, or list all of them: ${ALL_ROLES.join(', ')}` });
    }
  });

  for (const [env, o] of Object.entries(m.environments ?? {})) {
    if (env === primary) add(['environments', env], 'conflict', `"${env}" is already the primary environment (environment.name)`, { allowed: 'put its settings under environment, or rename it' }, 'key');
    for (const svc of Object.keys(o.services ?? {})) {
      if (!names.includes(svc)) add(['environments', env, 'services', svc], 'reference', `no service named "${svc}"`, { allowed: names.join(', '), suggestion: closest(svc, names) }, 'key');
    }
    if (o.server !== undefined && !serverNames.includes(o.server)) {
      add(['environments', env, 'server'], 'reference', `no server named "${o.server}"`, { allowed: serverNames.join(', ') || 'define servers first', suggestion: closest(o.server, serverNames) });
    }
  }

  // The schema checks the characters; the values (minute 0-59, ...) are checked by the parser the
  // scheduler uses, so a schedule that validates is one that runs.
  if (m.backup?.schedule !== undefined) {
    try {
      parseCron(m.backup.schedule);
    } catch (err) {
      add(['backup', 'schedule'], 'invalid', (err as Error).message.replace(/^Invalid cron schedule "[^"]*": /, '').replace(/\.$/, ''), { allowed: 'minute 0-59, hour 0-23, day 1-31, month 1-12, weekday 0-7; e.g. "0 3 * * *" (03:00 UTC)' });
    }
  }

  // Database, bucket and Redis user names carry the short environment name (production -> prod,
  // development -> dev), so no two environments may shorten to the same name.
  const shortNames = new Map<string, string>([[envShort(primary), primary]]);
  for (const env of Object.keys(m.environments ?? {})) {
    if (env === primary) continue; // reported above
    const short = envShort(env);
    const holder = shortNames.get(short);
    if (holder) add(['environments', env], 'conflict', `environments "${holder}" and "${env}" would share database, bucket and Redis names (both shorten to "${short}")`, { allowed: 'rename one of them' }, 'key');
    else shortNames.set(short, env);
  }

  databaseNameIssues(m, primary, add);

  // Domains must differ between environments, or two deployments would fight over one route.
  const domains = new Map<string, string>();
  const claim = (domain: string | undefined, env: string, path: PathSegment[]) => {
    if (!domain) return;
    const holder = domains.get(domain);
    if (holder) add(path, 'conflict', `domain "${domain}" is already used by environment "${holder}"`);
    else domains.set(domain, env);
  };
  claim(m.environment?.domain, primary, ['environment', 'domain']);
  (m.environment?.aliases ?? []).forEach((d, i) => claim(d, primary, ['environment', 'aliases', i]));
  for (const [env, o] of Object.entries(m.environments ?? {})) {
    claim(o.domain, env, ['environments', env, 'domain']);
    (o.aliases ?? []).forEach((d, i) => claim(d, env, ['environments', env, 'aliases', i]));
  }

  routeIssues(m, add);

  // Explicit host ports must not collide inside the manifest (the registry checks other projects).
  const ports = new Map<number, string>();
  const claimPort = (port: number, owner: string, path: PathSegment[]) => {
    const holder = ports.get(port);
    if (holder) add(path, 'port-conflict', `host port ${port} is already used by ${holder}`, { allowed: 'give every service and slot its own port, or leave hostPorts out to have one assigned' });
    else ports.set(port, owner);
  };
  for (const n of names) {
    const hp = m.services[n]!.hostPorts;
    if (hp) {
      claimPort(hp.blue, `${n} (blue)`, ['services', n, 'hostPorts', 'blue']);
      claimPort(hp.green, `${n} (green)`, ['services', n, 'hostPorts', 'green']);
      if (hp.entry !== undefined) claimPort(hp.entry, `${n} (entry)`, ['services', n, 'hostPorts', 'entry']);
    }
  }
  for (const [env, o] of Object.entries(m.environments ?? {})) {
    for (const [svc, so] of Object.entries(o.services ?? {})) {
      if (so.hostPorts) {
        claimPort(so.hostPorts.blue, `${svc} (blue, ${env})`, ['environments', env, 'services', svc, 'hostPorts', 'blue']);
        claimPort(so.hostPorts.green, `${svc} (green, ${env})`, ['environments', env, 'services', svc, 'hostPorts', 'green']);
        if (so.hostPorts.entry !== undefined) claimPort(so.hostPorts.entry, `${svc} (entry, ${env})`, ['environments', env, 'services', svc, 'hostPorts', 'entry']);
      }
    }
  }
  return out;
}

type AddIssue = (path: PathSegment[], code: string, message: string, extra?: Partial<ManifestIssue>, which?: 'key' | 'value') => void;

/**
 * A per-environment database.name needs a database, and no two environments of the manifest may
 * end up with the same database (named or derived). Other projects are checked at plan (registry).
 */
function databaseNameIssues(m: Manifest, primary: string, add: AddIssue): void {
  const envs: Array<[string, { name?: string } | undefined, PathSegment[]]> = [
    [primary, m.environment?.database, ['environment', 'database', 'name']],
    ...Object.entries(m.environments ?? {}).filter(([env]) => env !== primary).map(([env, o]): [string, { name?: string } | undefined, PathSegment[]] => [env, o.database, ['environments', env, 'database', 'name']]),
  ];
  if (!m.features?.database) {
    for (const [, db, path] of envs) if (db?.name !== undefined) add(path, 'conflict', 'database.name needs a database', { allowed: 'turn on features.database, or remove database.name' });
    return;
  }
  const multiEnv = envs.length > 1;
  const holders = new Map<string, string>();
  for (const [env, db] of envs) if (db?.name === undefined) holders.set(databaseName({ projectId: m.project.id, env, multiEnv }), env);
  for (const [env, db, path] of envs) {
    if (db?.name === undefined) continue;
    const holder = holders.get(db.name);
    if (holder) add(path, 'conflict', `database "${db.name}" is already environment "${holder}"'s`, { allowed: 'give every environment its own database name' });
    else holders.set(db.name, env);
  }
}

/**
 * Per-service host names and route auth: only on web services; per environment, no host taken
 * twice (sites.ts) nor by two environments; basic auth says how its password is set; allow-list
 * entries are network addresses.
 */
function routeIssues(m: Manifest, add: AddIssue): void {
  const primary = m.environment?.name ?? 'production';
  const servicePath = (env: string, n: string): PathSegment[] => (env === primary || !m.environments?.[env]?.services?.[n] ? ['services', n] : ['environments', env, 'services', n]);
  const authAt: Array<[PathSegment[], RouteAuthSpec | undefined, ServiceSpec]> = [];
  for (const [n, svc] of Object.entries(m.services)) {
    authAt.push([['services', n], svc.auth, svc]);
    for (const [env, o] of Object.entries(m.environments ?? {})) {
      const so = o.services?.[n];
      if (so) authAt.push([['environments', env, 'services', n], so.auth, svc]);
      if (so && (svc.type ?? 'web') !== 'web') {
        for (const k of ['domains', 'tls', 'auth'] as const) if (so[k] !== undefined) add(['environments', env, 'services', n, k], 'conflict', `only web services are routed; remove ${k} or make the service type: web`);
      }
    }
    if ((svc.type ?? 'web') !== 'web') {
      for (const k of ['domains', 'tls', 'auth'] as const) if (svc[k] !== undefined) add(['services', n, k], 'conflict', `only web services are routed; remove ${k} or make the service type: web`);
    } else if (svc.tls !== undefined && !svc.domains?.length) add(['services', n, 'tls'], 'conflict', 'tls here is for the service\'s own domains, and it has none; set environment.tls for the main domain');
  }
  for (const [path, auth, svc] of authAt) {
    if (!auth || (svc.type ?? 'web') !== 'web') continue;
    const b = auth.basic;
    if (b && (b.passwordHash === undefined) === (b.generate !== true)) {
      add([...path, 'auth', 'basic'], 'invalid', b.passwordHash === undefined ? 'basic auth needs a password: passwordHash (bcrypt) or generate: true' : 'give either passwordHash or generate: true, not both', {
        allowed: 'passwordHash: a bcrypt hash (htpasswd -nbB user pass), or generate: true (codeb shows the password once)',
      });
    }
    (auth.allow ?? []).forEach((c, i) => {
      try {
        parseCidr(c, 'allow entry');
      } catch (err) {
        add([...path, 'auth', 'allow', i], 'invalid', (err as Error).message.replace(/\.$/, ''));
      }
    });
  }
  // Host names per environment: each once in the deployment, and no two environments share one
  // (two main domains are reported with the domains above).
  const owner = new Map<string, { env: string; service: string | null }>();
  for (const env of environmentNames(m)) {
    let d: Deployment;
    try {
      d = resolveDeployment(m, env);
    } catch {
      continue; // reported elsewhere
    }
    for (const c of siteConflicts(d)) add([...servicePath(env, c.service), 'domains'], 'conflict', `${env}: ${c.message}`);
    for (const s of d.services) {
      for (const h of s.domains) {
        const holder = owner.get(h);
        if (holder && holder.env !== env) add([...servicePath(env, s.name), 'domains'], 'conflict', `host name ${h} of ${env} is already used by environment "${holder.env}"`, { allowed: `give ${s.name} other domains in ${env} (environments.${env}.services.${s.name}.domains)` });
        else owner.set(h, { env, service: s.name });
      }
    }
    for (const h of [d.domain, ...d.aliases]) {
      const holder = owner.get(h);
      if (holder && holder.env !== env && holder.service) add([...servicePath(holder.env, holder.service), 'domains'], 'conflict', `host name ${h} of ${holder.env} is the domain of environment "${env}"`);
      else if (!holder) owner.set(h, { env, service: null });
    }
  }
}
