/**
 * A web container spec as a deploy of a one-service manifest makes it (the spec the runtime drivers
 * take), for tests that drive a runtime without a manifest. Pure.
 */
import { specHash } from '../../controller/runtime/spec.js';
import type { ContainerSpec } from '../../controller/runtime/types.js';

export function webContainerSpec(o: {
  project: string;
  network: string;
  slot: 'blue' | 'green';
  version: string;
  port: number;
  /** Added to HOST and PORT. */
  environment?: Record<string, string>;
}): ContainerSpec {
  const base = {
    image: `localhost/codeb-testapp:${o.version}`,
    command: null,
    environment: { HOST: '0.0.0.0', PORT: String(o.port), ...o.environment },
    cpu: 0.5,
    memoryBytes: 256 * 1024 ** 2,
    restart: 'always' as const,
    logs: { maxSizeBytes: 10_000_000, maxFiles: 3 },
    network: o.network,
    volumes: [] as ContainerSpec['volumes'],
    security: { capDrop: ['ALL'], capAdd: [], noNewPrivileges: true, readOnlyRootfs: false },
  };
  return {
    ...base,
    name: `${o.project}-production-web-${o.slot}`,
    projectId: o.project,
    env: 'production',
    service: 'web',
    serviceType: 'web',
    slot: o.slot,
    envFile: null,
    labels: { 'codeb.managed': 'true', 'codeb.project': o.project, 'codeb.env': 'production', 'codeb.service': 'web', 'codeb.slot': o.slot, 'codeb.version': o.version, 'codeb.spec-hash': specHash(base) },
    port: o.port,
    healthCheck: { kind: 'http', path: '/health', command: [], intervalMs: 1000, timeoutMs: 1000, startPeriodMs: 0, retries: 3 },
    stopTimeoutSeconds: 10,
  };
}
