/** The manifest as written (after schema validation). Field docs: docs/manifest.md. */
export type Duration = string; // "500ms" | "5s" | "10m" | "1h" | "1d"
export type ServiceType = 'web' | 'internal' | 'worker';
export type Tls = 'auto' | 'internal' | 'off';
export type DeployStrategy = 'blue-green' | 'recreate';
export type BackupPart = 'database' | 'storage' | 'volumes';
export type EnvVars = Record<string, string | number | boolean>;

export interface HostPorts {
  blue: number;
  green: number;
  entry?: number;
}
export interface ServiceResources {
  cpu?: number;
  memory?: string;
}
export interface HttpHealthCheck {
  path?: string;
  expectStatus?: number;
  timeout?: Duration;
  interval?: Duration;
  successes?: number;
  startPeriod?: Duration;
}
export interface HealthCheckSpec {
  http?: HttpHealthCheck;
  command?: string[];
  timeout?: Duration;
  interval?: Duration;
  successes?: number;
  startPeriod?: Duration;
}
/** Who may reach a web service's route: basic auth and/or client addresses (docs/manifest.md). */
export interface RouteAuthSpec {
  basic?: { user: string; passwordHash?: string; generate?: boolean };
  allow?: string[];
}
export interface ServiceSpec {
  type?: ServiceType;
  image: string;
  command?: string[];
  port?: number;
  routePath?: string;
  /** Host names of this service's own (web only); it is then not served at the environment's domain. */
  domains?: string[];
  tls?: Tls;
  auth?: RouteAuthSpec;
  hostPorts?: HostPorts;
  env?: EnvVars;
  resources?: ServiceResources;
  replicas?: number;
  restart?: 'always' | 'on-failure' | 'no';
  readOnlyRootfs?: boolean;
  /** volume name -> absolute mount path (docs/manifest.md, "Stateful services"). */
  volumes?: Record<string, string>;
  healthCheck?: HealthCheckSpec;
  dependsOn?: string[];
  release?: { command: string[]; timeout?: Duration };
  logs?: { maxSize?: string };
}
export interface ServiceOverride {
  image?: string;
  domains?: string[];
  tls?: Tls;
  auth?: RouteAuthSpec;
  replicas?: number;
  resources?: ServiceResources;
  env?: EnvVars;
  hostPorts?: HostPorts;
}
export interface EnvironmentOverride {
  domain?: string;
  aliases?: string[];
  tls?: Tls;
  imageTag?: string;
  resources?: ServiceResources;
  replicas?: number;
  env?: EnvVars;
  server?: string;
  services?: Record<string, ServiceOverride>;
  database?: { name?: string };
  deploy?: { strategy?: DeployStrategy };
}
export interface ServerSpec {
  name: string;
  host: string;
  roles?: Array<'app' | 'proxy' | 'database' | 'cache' | 'storage'>;
  runtime?: 'podman' | 'quadlet' | 'systemd' | 'kubernetes';
}
export interface Manifest {
  apiVersion: 'codeb/v1';
  project: { id: string; name?: string; description?: string; owner?: string; labels?: Record<string, string> };
  environment?: { name?: string; domain?: string; aliases?: string[]; tls?: Tls; env?: EnvVars; database?: { name?: string } };
  environments?: Record<string, EnvironmentOverride>;
  servers?: ServerSpec[];
  resources?: ServiceResources;
  services: Record<string, ServiceSpec>;
  features?: {
    database?: boolean | { extensions?: string[] };
    cache?: boolean | { isolation?: 'db' | 'prefix' };
    storage?: boolean | { buckets?: string[]; public?: boolean };
    websockets?: boolean;
  };
  monitoring?: {
    healthCheck?: HttpHealthCheck;
    checksAfterDeploy?: number;
    alerts?: { webhook?: string; email?: string[] };
  };
  backup?: { enabled?: boolean; schedule?: string; retentionDays?: number; include?: BackupPart[] };
  jobs?: Record<string, { service?: string; command: string[]; schedule: string; timeout?: Duration }>;
  deploy?: {
    strategy?: DeployStrategy;
    healthGate?: { deadline?: Duration; verifyAfterSwitch?: number; watchAfterSwitch?: Duration };
    keepPrevious?: Duration;
    drain?: Duration;
  };
}

/** One environment of a manifest with every default filled in: what one deployment needs. */
export interface ResolvedHealthCheck {
  kind: 'http' | 'command' | 'uptime';
  path: string;
  expectStatus: number;
  command: string[];
  timeoutMs: number;
  intervalMs: number;
  successes: number;
  startPeriodMs: number;
}
export interface ResolvedVolume {
  /** The manifest's name (unique within the service); the Podman volume is names.volumeName(). */
  name: string;
  /** Absolute path inside the container. */
  path: string;
}
export interface ResolvedService {
  name: string;
  type: ServiceType;
  image: string;
  command: string[] | null;
  port: number | null;
  routePath: string | null;
  /** Host names of its own (web services; empty: served at the environment's domain and aliases). */
  domains: string[];
  /** TLS of those host names (the environment's when it has none). */
  tls: Tls;
  /** Route authentication (web services); null: open. */
  auth: ResolvedRouteAuth | null;
  hostPorts: HostPorts | null;
  env: Record<string, string>;
  cpu: number;
  memory: string;
  replicas: number;
  restart: 'always' | 'on-failure' | 'no';
  /** Read-only root filesystem with a writable tmpfs at /tmp. */
  readOnlyRootfs: boolean;
  /**
   * Named volumes, sorted by name. A service with any is stateful: one container that is stopped
   * before its new version starts (never two at once) and that keeps running through deploys
   * that do not change it.
   */
  volumes: ResolvedVolume[];
  healthCheck: ResolvedHealthCheck;
  dependsOn: string[];
  release: { command: string[]; timeoutMs: number } | null;
  logs: { maxSize: string };
}
export interface ResolvedRouteAuth {
  /** passwordHash null: codeb generates the password (shown once) and keeps only its hash. */
  basic: { user: string; passwordHash: string | null } | null;
  allow: string[];
}
export interface ResolvedJob {
  name: string;
  service: string;
  command: string[];
  schedule: string;
  timeoutMs: number;
}
export interface Deployment {
  projectId: string;
  projectName: string;
  env: string;
  /** True when the manifest names more than one environment: derived names then carry the env. */
  multiEnv: boolean;
  domain: string;
  aliases: string[];
  tls: Tls;
  server: ServerSpec;
  services: ResolvedService[];
  features: {
    /** name: the manifest's database.name for this environment; null = the derived name. */
    database: { extensions: string[]; name: string | null } | null;
    cache: { isolation: 'db' | 'prefix' } | null;
    storage: { buckets: string[]; public: boolean } | null;
    websockets: boolean;
  };
  monitoring: { checksAfterDeploy: number; alerts: { webhook?: string; email: string[] } };
  backup: { enabled: boolean; schedule: string; retentionDays: number; include: BackupPart[] };
  /** Scheduled jobs (run by `codeb jobs run`), in manifest order. */
  jobs: ResolvedJob[];
  deploy: {
    strategy: DeployStrategy;
    deadlineMs: number;
    verifyAfterSwitch: number;
    watchAfterSwitchMs: number;
    keepPreviousMs: number;
    drainMs: number;
  };
}
