/** Effects around the pure allocation: load the manifest, lock the registry, allocate, record. */
import { requireManifest } from '../manifest/index.js';
import { resolveDeployment } from '../manifest/normalize.js';
import { loadSettings, registryPath, settingsPath, type Settings } from '../settings.js';
import { existsSync } from 'node:fs';
import { reservedPorts } from './reserved-ports.js';
import { allocate, policyFromEnv } from './allocate.js';
import { lazyListeningPorts } from './ports-in-use.js';
import { allocationRequest, recordAllocation } from './records.js';
import { withRegistryLock } from './store.js';
import type { PortPair } from './types.js';

export interface AllocationReport {
  registry: string;
  project: string;
  env: string;
  ports: Record<string, PortPair>;
  redisDb: number | null;
  database: string | null;
  bucket: string | null;
}

export async function allocateForManifest(manifestFile: string, env: string | undefined, registryOpt?: string): Promise<AllocationReport> {
  const manifest = requireManifest(manifestFile);
  const deployment = resolveDeployment(manifest, env);
  const file = registryPath(registryOpt);
  // Only the local target can see which ports other processes hold.
  const busy = deployment.server.host === 'local' ? lazyListeningPorts() : new Set<number>();
  const policy = policyFromEnv(process.env, busy, reservedPorts(settingsIfAny()));
  return withRegistryLock(file, { command: `codeb registry allocate ${manifestFile}` }, async (tx) => {
    const doc = tx.read();
    const allocation = allocate(doc, allocationRequest(deployment), policy);
    const rec = recordAllocation(doc, deployment, allocation, new Date().toISOString());
    await tx.write(doc);
    return { registry: file, project: deployment.projectId, env: deployment.env, ports: rec.ports, redisDb: rec.redisDb, database: rec.database, bucket: rec.bucket };
  });
}

/** `registry allocate` works without a stack: then only the server's own ports (sshd) are known. */
function settingsIfAny(): Settings | null {
  return existsSync(settingsPath()) ? loadSettings() : null;
}
