/** Open one provider per system from the settings; nothing connects until observe is called. */
import type { Settings } from '../settings.js';
import { FilesProvider } from '../providers/files.js';
import { PostgresProvider } from '../providers/postgres.js';
import { RedisProvider } from '../providers/redis.js';
import { StorageProvider } from '../providers/storage.js';
import { ProxyProvider } from '../providers/proxy.js';
import { NetworkProvider } from '../providers/network.js';
import { VolumeProvider } from '../providers/volume.js';
import { CodebError } from '../errors.js';
import { systemOf, type Observed, type Provider, type Resource, type System } from './model.js';

export type ProviderSet = Map<System, Provider>;

export function openProviders(settings: Settings, secretsDir: string, secret: (name: string) => string): ProviderSet {
  return new Map<System, Provider>([
    ['postgres', new PostgresProvider(settings.postgres)],
    ['redis', new RedisProvider(settings.redis)],
    ['storage', new StorageProvider(settings.storage, { secret })],
    ['files', new FilesProvider(secretsDir, secret)],
    ['proxy', new ProxyProvider(settings.caddy, settings.forwarder)],
    ['network', new NetworkProvider(settings.podman.socketPath)],
    ['volume', new VolumeProvider(settings.podman.socketPath)],
  ]);
}

export function providerFor(set: ProviderSet, r: Pick<Resource, 'kind'>): Provider {
  const p = set.get(systemOf(r.kind));
  if (!p) throw new CodebError(`No provider for ${r.kind} resources in this version of codeb.`);
  return p;
}

/** Observe every resource, each system in parallel; only the systems that have resources are touched. */
export async function observeAll(set: ProviderSet, resources: Resource[]): Promise<Observed[]> {
  const bySystem = new Map<System, Resource[]>();
  for (const r of resources) {
    const list = bySystem.get(systemOf(r.kind)) ?? [];
    list.push(r);
    bySystem.set(systemOf(r.kind), list);
  }
  // Wait for every system even when one fails: a provider still observing when closeAll runs
  // would open its connection again afterwards (a Postgres pool kept the process alive for its
  // 10 s idle timeout after another service was found unreachable).
  const settled = await Promise.allSettled([...bySystem].map(([, rs]) => providerFor(set, rs[0]!).observe(rs)));
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.flatMap((s) => (s.status === 'fulfilled' ? s.value : []));
}

export async function closeAll(set: ProviderSet): Promise<void> {
  await Promise.allSettled([...set.values()].map((p) => p.close()));
}
