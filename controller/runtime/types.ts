/**
 * One container as codeb wants it, independent of how it is run (Podman API, Quadlet or systemd
 * units, Kubernetes later). Built by a pure function from the deployment; drivers only translate.
 */
import type { Slot } from '../manifest/names.js';

export interface ContainerSpec {
  /** <project>--<env>--<service>--<slot>[--<replica number from 2>] (names.containerName) */
  name: string;
  projectId: string;
  env: string;
  service: string;
  serviceType: 'web' | 'internal' | 'worker';
  slot: Slot;
  image: string;
  /** Argument array (no shell); null = the image's own command. */
  command: string[] | null;
  /** Plain (non-secret) variables: the manifest's env plus PORT, HOST and service URLs. */
  environment: Record<string, string>;
  /** The deployment's 0600 env file with connection details and secrets (read by the runtime). */
  envFile: string | null;
  labels: Record<string, string>;
  /**
   * The deployment's own Podman network (names.networkName): the container joins only that one,
   * reaches Postgres, Redis, S3 and its project's entries at the services address, and nothing of
   * other projects. See docs/runtime.md, "Networks".
   */
  network: string;
  /**
   * Named volumes (names.volumeName) mounted read-write at absolute paths, sorted by volume name.
   * Only stateful services have any; they run one container (docs/deploy.md, "Stateful services").
   */
  volumes: Array<{ volume: string; path: string }>;
  /**
   * The slot port the app listens on inside its network namespace (PORT, on 0.0.0.0), published
   * on the host's 127.0.0.1 under the same number for the forwarder and codeb's health probes;
   * null for workers.
   */
  port: number | null;
  /**
   * Capabilities dropped (all) and added back (none for a web app); no-new-privileges always;
   * a read-only root filesystem (with a writable tmpfs at READ_ONLY_TMPFS) when the service asks.
   */
  security: { capDrop: string[]; capAdd: string[]; noNewPrivileges: boolean; readOnlyRootfs: boolean };
  cpu: number;
  memoryBytes: number;
  restart: 'always' | 'on-failure' | 'no';
  /** Podman's k8s-file driver truncates the log at this size (Podman keeps no rotated files). */
  logs: { maxSizeBytes: number };
  /** For units that carry their own health check (Quadlet); codeb probes health itself anyway. */
  healthCheck: { kind: 'http' | 'command' | 'uptime'; path: string; command: string[]; intervalMs: number; timeoutMs: number; startPeriodMs: number; retries: number };
  stopTimeoutSeconds: number;
}

export interface ContainerState {
  name: string;
  id: string;
  image: string;
  running: boolean;
  status: string;
  restartCount: number;
  startedAt: string | null;
  exitCode: number | null;
  labels: Record<string, string>;
}

/** What every container runtime driver can do. */
export interface Runtime {
  readonly kind: 'podman' | 'quadlet' | 'systemd' | 'kubernetes';
  /** The image is present (or can be pulled); a clear error otherwise. */
  ensureImage(image: string): Promise<void>;
  /** Create and start; replaces a stopped leftover of the same name. */
  start(spec: ContainerSpec): Promise<ContainerState>;
  /** Stop (with the spec's grace period) and remove; no error if it is already gone. */
  remove(name: string, stopTimeoutSeconds?: number): Promise<void>;
  /**
   * Stop a container for maintenance (a volume restore) and keep it stopped: nothing, not even a
   * unit's Restart=, starts it again until `resume`. True when it was running.
   */
  halt(name: string): Promise<boolean>;
  /** Start again a container `halt` stopped; its state once it runs. */
  resume(name: string): Promise<ContainerState>;
  inspect(name: string): Promise<ContainerState | null>;
  /** Containers carrying every given label. */
  list(labels: Record<string, string>): Promise<ContainerState[]>;
  /** Run a command in a running container: its exit code and output. */
  exec(name: string, command: string[], timeoutMs: number): Promise<{ exitCode: number; output: string }>;
  /** Run a one-off container to completion (release commands): exit code and output tail. */
  runOnce(spec: ContainerSpec, timeoutMs: number): Promise<{ exitCode: number; output: string }>;
  logsTail(name: string, lines: number): Promise<string>;
  close(): Promise<void>;
}

/** The one writable path (a tmpfs) of a container whose root filesystem is read-only. */
export const READ_ONLY_TMPFS = '/tmp';

export const LABEL = {
  managed: 'codeb.managed',
  project: 'codeb.project',
  env: 'codeb.env',
  service: 'codeb.service',
  slot: 'codeb.slot',
  /** 1-based replica number, on replicas beyond the first only. */
  replica: 'codeb.replica',
  version: 'codeb.version',
  specHash: 'codeb.spec-hash',
} as const;
