/**
 * Provision one project's four shared resources (Postgres role+database, Redis slot+user, S3
 * bucket, Caddy route) from nothing, then the no-change pass (observe + plan only), N times.
 * Run through scripts/bench-providers.mjs, against the stack in $CODEB_HOME.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseManifest } from '../../controller/manifest/load.js';
import { validateLoaded } from '../../controller/manifest/validate.js';
import { resolveDeployment } from '../../controller/manifest/normalize.js';
import { allocate, DEFAULT_POLICY } from '../../controller/registry/allocate.js';
import { allocationRequest, recordAllocation } from '../../controller/registry/records.js';
import { emptyRegistry } from '../../controller/registry/types.js';
import { desired, ownedResources } from '../../controller/reconcile/desired.js';
import { planApply, planDestroy, hasChanges } from '../../controller/reconcile/plan.js';
import { closeAll, observeAll, openProviders, providerFor } from '../../controller/reconcile/providers.js';
import { generateSecret } from '../../controller/reconcile/secrets.js';
import { loadSettings } from '../../controller/settings.js';

const rounds = Number(process.argv[2] ?? 7);
const settings = loadSettings();
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const create: number[] = [];
const noChange: number[] = [];
for (let i = 0; i < rounds; i++) {
  const id = `bench-${process.pid.toString(36)}-${i}`;
  const src = `apiVersion: codeb/v1\nproject: { id: ${id} }\nenvironment: { domain: ${id}.localhost }\nservices:\n  web: { image: localhost/codeb-testapp:v1, port: 8080 }\nfeatures: { database: { extensions: [pg_trgm] }, cache: true, storage: true }\nbackup: { enabled: false }\n`;
  const { manifest } = validateLoaded(parseManifest(src, `${id}.yaml`));
  const d = resolveDeployment(manifest!);
  const doc = emptyRegistry();
  // A free Redis DB far from what tests allocate (counting down from 15).
  const rec = recordAllocation(doc, d, { ...allocate(doc, allocationRequest(d), DEFAULT_POLICY), redisDb: 15 - (i % 4) }, new Date().toISOString());
  const dir = mkdtempSync(join(tmpdir(), 'codeb-bench-'));
  const secrets: Record<string, string> = { postgres: generateSecret(), redis: generateSecret() };
  const secret = (n: string) => (n === 'storageAccessKey' ? settings.storage.accessKey : n === 'storageSecretKey' ? settings.storage.secretKey : secrets[n]!);
  const providers = openProviders(settings, dir, secret);
  // Containers are not part of this bench (see bench:apply and bench:switch).
  const resources = desired(d, rec, settings).filter((r) => r.kind !== 'runtime.release');
  try {
    const t0 = performance.now();
    const actions = planApply(resources, await observeAll(providers, resources));
    for (const a of actions) if (a.op === 'create' || a.op === 'update') await providerFor(providers, a).execute(a, { secret, progress: () => {} });
    create.push(performance.now() - t0);
    const t1 = performance.now();
    const again = planApply(resources, await observeAll(providers, resources));
    noChange.push(performance.now() - t1);
    if (hasChanges(again)) throw new Error(`no-change pass planned changes: ${again.filter((a) => a.op !== 'unchanged').map((a) => a.key).join(', ')}`);
  } finally {
    const owned = ownedResources(d.projectId, rec).filter((r) => r.kind !== 'runtime.release');
    const del = planDestroy(owned, await observeAll(providers, owned), true);
    for (const a of del) if (a.op === 'delete') await providerFor(providers, a).execute(a, { secret, progress: () => {} });
    await closeAll(providers);
    rmSync(dir, { recursive: true, force: true });
  }
}
const fmt = (ms: number) => `${ms.toFixed(1)} ms`;
console.log(`bench:providers — ${rounds} rounds, one project: Postgres role+database (pg_trgm), Redis slot+ACL user, S3 bucket, Caddy route, env file`);
console.log(`  provision from nothing (observe + plan + create)  median ${fmt(median(create))}  (min ${fmt(Math.min(...create))}, max ${fmt(Math.max(...create))})`);
console.log(`  no-change pass (observe + plan only)              median ${fmt(median(noChange))}  (min ${fmt(Math.min(...noChange))}, max ${fmt(Math.max(...noChange))})`);
console.log(`  ratio no-change / provision                       ${(median(noChange) / median(create)).toFixed(3)}`);
