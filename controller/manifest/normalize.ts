/**
 * Resolve one environment of a validated manifest into a Deployment: overrides merged, every
 * default filled in, durations in milliseconds. Pure. Defaults here match the `default`
 * annotations in schemas/project-manifest.schema.json (a unit test keeps them in step).
 */
import { CodebError, EXIT } from '../errors.js';
import type { BackupPart, Deployment, HttpHealthCheck, Manifest, ResolvedHealthCheck, ResolvedService, ServerSpec, ServiceSpec, Tls } from './types.js';

export const DEFAULTS = {
  environment: 'production',
  cpu: 1,
  memory: '512Mi',
  replicas: 1,
  restart: 'always' as const,
  readOnlyRootfs: false,
  health: { path: '/api/health', expectStatus: 200, timeout: '500ms', interval: '1s', successes: 3, startPeriod: '0s' },
  workerStartPeriod: '10s',
  logs: { maxSize: '10M' },
  releaseTimeout: '5m',
  jobTimeout: '30m',
  checksAfterDeploy: 3,
  backup: { enabled: true, schedule: '0 3 * * *', retentionDays: 30, include: ['database'] as BackupPart[] },
  deploy: { strategy: 'blue-green' as const, deadline: '2m', verifyAfterSwitch: 3, watchAfterSwitch: '10s', keepPrevious: '1h', drain: '10s' },
  storageBuckets: ['uploads'],
  cacheIsolation: 'prefix' as const,
};

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function durationMs(d: string): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(d);
  if (!m) throw new CodebError(`Invalid duration ${JSON.stringify(d)}`, { exitCode: EXIT.invalid, hint: 'Write durations like 500ms, 5s, 10m, 1h.' });
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

export function environmentNames(m: Manifest): string[] {
  return [m.environment?.name ?? DEFAULTS.environment, ...Object.keys(m.environments ?? {})];
}

export function primaryEnvironment(m: Manifest): string {
  return m.environment?.name ?? DEFAULTS.environment;
}

/** Local-only names get plain HTTP by default; anything else gets automatic TLS. */
export function defaultTls(domain: string): Tls {
  return /(^|\.)(localhost|test|local|internal|example)$/.test(domain) ? 'off' : 'auto';
}

function withTag(image: string, tag: string | undefined): string {
  if (!tag) return image;
  const at = image.indexOf('@');
  const bare = at >= 0 ? image.slice(0, at) : image;
  const lastSlash = bare.lastIndexOf('/');
  const colon = bare.lastIndexOf(':');
  const name = colon > lastSlash ? bare.slice(0, colon) : bare;
  return `${name}:${tag}`;
}

function resolveHealth(svc: ServiceSpec, projectDefault: HttpHealthCheck | undefined): ResolvedHealthCheck {
  const type = svc.type ?? 'web';
  const hc = svc.healthCheck ?? {};
  const http = hc.http ?? (type !== 'worker' && !hc.command ? projectDefault ?? {} : undefined);
  const d = DEFAULTS.health;
  const kind: ResolvedHealthCheck['kind'] = http ? 'http' : hc.command ? 'command' : 'uptime';
  return {
    kind,
    path: http?.path ?? d.path,
    expectStatus: http?.expectStatus ?? d.expectStatus,
    command: hc.command ?? [],
    timeoutMs: durationMs(http?.timeout ?? hc.timeout ?? d.timeout),
    intervalMs: durationMs(http?.interval ?? hc.interval ?? d.interval),
    successes: http?.successes ?? hc.successes ?? d.successes,
    startPeriodMs: durationMs(http?.startPeriod ?? hc.startPeriod ?? (kind === 'uptime' ? DEFAULTS.workerStartPeriod : d.startPeriod)),
  };
}

function stringEnv(...layers: Array<Record<string, string | number | boolean> | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const layer of layers) for (const [k, v] of Object.entries(layer ?? {})) out[k] = String(v);
  return out;
}

export function resolveDeployment(m: Manifest, envName?: string): Deployment {
  const primary = primaryEnvironment(m);
  const env = envName ?? primary;
  const all = environmentNames(m);
  if (!all.includes(env)) {
    throw new CodebError(`Project "${m.project.id}" has no environment "${env}".`, { exitCode: EXIT.invalid, hint: `Use one of: ${all.join(', ')} (or add it under environments).` });
  }
  const isPrimary = env === primary;
  const o = isPrimary ? {} : m.environments![env]!;
  const servers: ServerSpec[] = m.servers ?? [{ name: 'local', host: 'local' }];
  const server = o.server ? servers.find((s) => s.name === o.server)! : servers[0]!;
  const domain = o.domain ?? (isPrimary ? m.environment?.domain : undefined) ?? (isPrimary ? `${m.project.id}.localhost` : `${m.project.id}-${env}.localhost`);
  const aliases = o.aliases ?? (isPrimary ? m.environment?.aliases ?? [] : []);

  const envTls = o.tls ?? (isPrimary ? m.environment?.tls : undefined);
  const tls = envTls ?? defaultTls(domain);
  const services: ResolvedService[] = Object.entries(m.services).map(([name, svc]) => {
    const so = o.services?.[name] ?? {};
    const type = svc.type ?? 'web';
    // A service's own host names belong to the primary environment; another environment names
    // its own, or gets <service>.<its domain> (never the primary's: they would collide).
    const domains = type !== 'web' ? [] : so.domains ?? (isPrimary ? svc.domains ?? [] : svc.domains?.length ? [`${name}.${domain}`] : []);
    const auth = type === 'web' ? so.auth ?? svc.auth : undefined;
    return {
      name,
      type,
      image: so.image ?? withTag(svc.image, o.imageTag),
      command: svc.command ?? null,
      port: type === 'worker' ? null : svc.port ?? null,
      routePath: type === 'web' ? svc.routePath ?? null : null,
      domains,
      tls: domains.length ? so.tls ?? (isPrimary ? svc.tls : undefined) ?? envTls ?? defaultTls(domains[0]!) : tls,
      auth: auth ? { basic: auth.basic ? { user: auth.basic.user, passwordHash: auth.basic.passwordHash ?? null } : null, allow: auth.allow ?? [] } : null,
      // Service-level hostPorts belong to the primary environment; others are allocated unless overridden.
      hostPorts: so.hostPorts ?? (isPrimary ? svc.hostPorts ?? null : null),
      env: stringEnv(m.environment?.env, isPrimary ? undefined : o.env, svc.env, so.env),
      cpu: so.resources?.cpu ?? svc.resources?.cpu ?? o.resources?.cpu ?? m.resources?.cpu ?? DEFAULTS.cpu,
      memory: so.resources?.memory ?? svc.resources?.memory ?? o.resources?.memory ?? m.resources?.memory ?? DEFAULTS.memory,
      replicas: so.replicas ?? o.replicas ?? svc.replicas ?? DEFAULTS.replicas,
      restart: svc.restart ?? DEFAULTS.restart,
      readOnlyRootfs: svc.readOnlyRootfs ?? DEFAULTS.readOnlyRootfs,
      volumes: Object.entries(svc.volumes ?? {})
        .map(([vname, path]) => ({ name: vname, path: path.length > 1 ? path.replace(/\/$/, '') : path }))
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
      healthCheck: resolveHealth(svc, m.monitoring?.healthCheck),
      dependsOn: svc.dependsOn ?? [],
      release: svc.release ? { command: svc.release.command, timeoutMs: durationMs(svc.release.timeout ?? DEFAULTS.releaseTimeout) } : null,
      logs: { maxSize: svc.logs?.maxSize ?? DEFAULTS.logs.maxSize },
    };
  });

  const f = m.features ?? {};
  const db = f.database;
  const cache = f.cache;
  const storage = f.storage;
  const dep = m.deploy ?? {};
  const b = m.backup ?? {};
  return {
    projectId: m.project.id,
    projectName: m.project.name ?? m.project.id,
    env,
    multiEnv: all.length > 1,
    domain,
    aliases,
    tls,
    server,
    services,
    features: {
      database: db ? { extensions: typeof db === 'object' ? db.extensions ?? [] : [], name: (isPrimary ? m.environment?.database?.name : o.database?.name) ?? null } : null,
      cache: cache ? { isolation: (typeof cache === 'object' ? cache.isolation : undefined) ?? DEFAULTS.cacheIsolation } : null,
      storage: storage
        ? { buckets: (typeof storage === 'object' ? storage.buckets : undefined) ?? DEFAULTS.storageBuckets, public: typeof storage === 'object' ? storage.public ?? false : false }
        : null,
      websockets: f.websockets ?? false,
    },
    monitoring: { checksAfterDeploy: m.monitoring?.checksAfterDeploy ?? DEFAULTS.checksAfterDeploy, alerts: { webhook: m.monitoring?.alerts?.webhook, email: m.monitoring?.alerts?.email ?? [] } },
    backup: {
      enabled: b.enabled ?? DEFAULTS.backup.enabled,
      schedule: b.schedule ?? DEFAULTS.backup.schedule,
      retentionDays: b.retentionDays ?? DEFAULTS.backup.retentionDays,
      include: b.include ?? DEFAULTS.backup.include,
    },
    jobs: Object.entries(m.jobs ?? {}).map(([name, j]) => ({
      name,
      service: j.service ?? services[0]!.name,
      command: j.command,
      schedule: j.schedule,
      timeoutMs: durationMs(j.timeout ?? DEFAULTS.jobTimeout),
    })),
    deploy: {
      strategy: (isPrimary ? undefined : o.deploy?.strategy) ?? dep.strategy ?? DEFAULTS.deploy.strategy,
      deadlineMs: durationMs(dep.healthGate?.deadline ?? DEFAULTS.deploy.deadline),
      verifyAfterSwitch: dep.healthGate?.verifyAfterSwitch ?? DEFAULTS.deploy.verifyAfterSwitch,
      watchAfterSwitchMs: durationMs(dep.healthGate?.watchAfterSwitch ?? DEFAULTS.deploy.watchAfterSwitch),
      keepPreviousMs: durationMs(dep.keepPrevious ?? DEFAULTS.deploy.keepPrevious),
      drainMs: durationMs(dep.drain ?? DEFAULTS.deploy.drain),
    },
  };
}
