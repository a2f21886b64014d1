/**
 * containerSpec(deployment, service, slot, opts): the one ContainerSpec every runtime driver
 * translates (Podman API, Quadlet and systemd units). Pure: the same inputs give the same spec,
 * byte for byte, including the spec-hash label the reconciler compares to see whether a running
 * container still matches the manifest.
 */
import { createHash } from 'node:crypto';
import { CodebError, EXIT } from '../errors.js';
import { containerName, networkName, volumeName, type Slot } from '../manifest/names.js';
import type { Deployment, ResolvedService } from '../manifest/types.js';
import { LABEL, type ContainerSpec } from './types.js';

export interface SpecOptions {
  /** The slot's host port the app listens on (PORT); null for workers. */
  port: number | null;
  /** The deployment's 0600 env file (connection details, secrets), read by the runtime at start. */
  envFile: string | null;
  /** Entry URLs of the project's other services, injected as plain variables (e.g. GATEWAY_URL). */
  serviceUrls: Record<string, string>;
  /** What is being deployed (image tag, commit sha or deploy id), for people and the registry. */
  version: string;
  /** 0-based replica index (names.containerName); the first replica when absent. */
  replica?: number;
}

/** Stop grace period when the deployment's drain window is shorter. */
export const MIN_STOP_TIMEOUT_SECONDS = 10;
/** Consecutive failures before a unit-carried health check calls the container unhealthy. */
export const HEALTH_RETRIES = 3;

/**
 * Host the app listens on inside its own network namespace: every interface there (its project
 * network's address, where the slot port is published to the host's 127.0.0.1).
 */
export const APP_HOST = '0.0.0.0';

/**
 * What a container may do: no capability at all (apps bind ports above 1024, so none is needed;
 * without NET_RAW no raw socket can sniff or forge traffic) and no privilege gain through setuid
 * binaries. One set for every driver (Podman API, Quadlet, plain units).
 */
export const CONTAINER_SECURITY: Omit<ContainerSpec['security'], 'readOnlyRootfs'> = { capDrop: ['ALL'], capAdd: [], noNewPrivileges: true };

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  K: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  Ki: 1024,
  Mi: 1024 ** 2,
  Gi: 1024 ** 3,
  Ti: 1024 ** 4,
};

/**
 * A size in bytes. Units follow Kubernetes quantities, so one manifest means the same on every
 * runtime: Ki, Mi, Gi, Ti are powers of 1024; K, M, G, T powers of 1000 (512M = 512,000,000
 * bytes; 512Mi = 536,870,912). A bare number is bytes. Fractions round down to whole bytes.
 */
export function parseSize(text: string, what = 'size'): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|K|M|G|T)?$/.exec(text.trim());
  const bytes = m ? Math.floor(Number(m[1]) * SIZE_UNITS[m[2] ?? '']!) : NaN;
  if (!m || !Number.isSafeInteger(bytes) || bytes <= 0) {
    throw new CodebError(`Invalid ${what} ${JSON.stringify(text)}.`, {
      exitCode: EXIT.invalid,
      hint: 'Write a number and a unit: Ki, Mi, Gi (powers of 1024) or K, M, G (powers of 1000), e.g. 256Mi, 1Gi, 10M.',
    });
  }
  return bytes;
}

/** Stable JSON: object keys sorted at every level, so equal data always gives equal text. */
export function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    return `{${Object.keys(obj)
      .sort()
      .filter((k) => obj[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${stableJson(obj[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

const LEGACY_LOG_FILES = 3;

/**
 * sha256 of what decides whether a container must be replaced when the manifest changes: image,
 * command, environment, cpu, memory, restart policy, log settings, network, volumes and privileges. PORT is left out (it is the
 * slot's, not the manifest's), so the same manifest hashes alike on blue and green; the env file's
 * contents are left out too (secrets never go into a label, not even hashed).
 */
export function specHash(s: Pick<ContainerSpec, 'image' | 'command' | 'environment' | 'cpu' | 'memoryBytes' | 'restart' | 'logs' | 'network' | 'security'> & { volumes?: ContainerSpec['volumes'] }): string {
  const { PORT: _port, ...environment } = s.environment;
  // readOnlyRootfs enters the hash only when on, so containers made before the field keep their hash.
  const { readOnlyRootfs, ...security } = s.security;
  // Earlier versions hashed a log file count (default 3) that Podman never honoured; hashing it as
  // before keeps containers made before its removal from being replaced by an upgrade.
  const logs = { ...s.logs, maxFiles: LEGACY_LOG_FILES };
  // Volumes likewise: only when the service has some.
  const volumes = s.volumes?.length ? { volumes: s.volumes } : {};
  const material = { image: s.image, command: s.command, environment, cpu: s.cpu, memoryBytes: s.memoryBytes, restart: s.restart, logs, network: s.network, security: readOnlyRootfs ? s.security : security, ...volumes };
  return createHash('sha256').update(stableJson(material)).digest('hex');
}

function sortedRecord(r: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(r).sort()) out[k] = r[k]!;
  return out;
}

export function containerSpec(d: Deployment, service: ResolvedService, slot: Slot, opts: SpecOptions): ContainerSpec {
  const where = `${d.projectId}/${d.env} service ${service.name}`;
  const listens = service.type !== 'worker' && service.port !== null;
  if (listens && opts.port === null) {
    throw new CodebError(`No host port for ${where} (${slot}).`, { hint: 'Allocate the deployment first (`codeb registry allocate`); web and internal services need a blue and a green port.' });
  }
  if (!listens && opts.port !== null) {
    throw new CodebError(`${where} listens on no port, but a host port (${opts.port}) was given for it.`);
  }
  if (opts.port !== null && (!Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65535)) {
    throw new CodebError(`Invalid host port ${opts.port} for ${where} (${slot}).`);
  }
  if (!Number.isFinite(service.cpu) || service.cpu <= 0) {
    throw new CodebError(`Invalid CPU limit ${service.cpu} for ${where}.`, { exitCode: EXIT.invalid, hint: 'Give cores as a number above 0, e.g. 0.5 or 2.' });
  }

  // The manifest's variables, then the entry URLs codeb injects, then PORT and HOST, which must
  // be the slot's: the app listens on 0.0.0.0:$PORT in its namespace, published on 127.0.0.1:$PORT.
  const environment: Record<string, string> = { ...service.env, ...opts.serviceUrls };
  if (opts.port !== null) {
    environment.PORT = String(opts.port);
    environment.HOST = APP_HOST;
  }
  for (const key of Object.keys(environment)) {
    if (!ENV_NAME.test(key)) throw new CodebError(`Invalid environment variable name ${JSON.stringify(key)} for ${where}.`, { exitCode: EXIT.invalid });
  }

  const base = {
    image: service.image,
    command: service.command ? [...service.command] : null,
    environment: sortedRecord(environment),
    cpu: service.cpu,
    memoryBytes: parseSize(service.memory, `memory limit of ${where}`),
    restart: service.restart,
    logs: { maxSizeBytes: parseSize(service.logs.maxSize, `log size of ${where}`) },
    network: networkName(d.projectId, d.env),
    volumes: service.volumes.map((v) => ({ volume: volumeName(d.projectId, d.env, service.name, v.name), path: v.path })),
    security: { capDrop: [...CONTAINER_SECURITY.capDrop], capAdd: [...CONTAINER_SECURITY.capAdd], noNewPrivileges: CONTAINER_SECURITY.noNewPrivileges, readOnlyRootfs: service.readOnlyRootfs },
  };
  const replica = opts.replica ?? 0;
  const name = containerName(d.projectId, d.env, service.name, slot, replica);
  const labels: Record<string, string> = {
    [LABEL.managed]: 'true',
    [LABEL.project]: d.projectId,
    [LABEL.env]: d.env,
    [LABEL.service]: service.name,
    [LABEL.slot]: slot,
    [LABEL.version]: opts.version,
    [LABEL.specHash]: specHash(base),
    // Only on further replicas: the first replica's spec stays byte for byte what it was before replicas.
    ...(replica > 0 ? { [LABEL.replica]: String(replica + 1) } : {}),
  };
  const hc = service.healthCheck;
  return {
    name,
    projectId: d.projectId,
    env: d.env,
    service: service.name,
    serviceType: service.type,
    slot,
    ...base,
    envFile: opts.envFile,
    labels: sortedRecord(labels),
    port: opts.port,
    healthCheck: {
      kind: hc.kind,
      path: hc.path,
      command: [...hc.command],
      intervalMs: hc.intervalMs,
      timeoutMs: hc.timeoutMs,
      startPeriodMs: hc.startPeriodMs,
      retries: HEALTH_RETRIES,
    },
    stopTimeoutSeconds: Math.max(MIN_STOP_TIMEOUT_SECONDS, Math.ceil(d.deploy.drainMs / 1000)),
  };
}

/** The spec of a one-off release command: the service's container with the release command. */
export function releaseSpec(spec: ContainerSpec, command: string[]): ContainerSpec {
  return {
    ...spec,
    name: `${spec.name}-release`,
    command: [...command],
    port: null,
    restart: 'no',
    labels: { ...spec.labels, 'codeb.role': 'release' },
  };
}
