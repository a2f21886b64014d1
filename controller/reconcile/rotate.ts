/**
 * `codeb secrets rotate`: a new database or Redis password, set on the server, written to the env
 * file, and picked up by the containers through a blue-green redeploy of the same images (using
 * the last applied manifest kept beside the registry). Never a side effect of apply.
 */
import { CodebError } from '../errors.js';
import { PostgresProvider } from '../providers/postgres.js';
import { RedisProvider } from '../providers/redis.js';
import { withRegistryLock } from '../registry/store.js';
import { requireDeployment } from '../registry/records.js';
import { loadSettings, registryPath, secretsDir, type Settings } from '../settings.js';
import { applyManifest, type ApplyResult } from './apply.js';
import { hasStoredManifest, storedManifestPath } from './manifest-store.js';
import type { Reporter } from './reporter.js';
import { SecretStore } from './secrets.js';

export const ROTATABLE = ['postgres', 'redis'] as const;
export type Rotatable = (typeof ROTATABLE)[number];

export async function rotateSecret(opts: { project: string; env: string; secret: Rotatable; registry?: string; settings?: Settings; reporter?: Reporter }): Promise<ApplyResult> {
  const settings = opts.settings ?? loadSettings();
  const file = registryPath(opts.registry);
  if (!hasStoredManifest(file, opts.project, opts.env)) {
    throw new CodebError(`No applied manifest is stored for ${opts.project} (${opts.env}), so its containers could not be restarted with the new secret.`, {
      hint: 'Apply the manifest once with this version of codeb (`codeb apply`), then rotate.',
    });
  }
  await withRegistryLock(file, { command: `codeb secrets rotate ${opts.project} --env ${opts.env} ${opts.secret}` }, async (tx) => {
    const rec = requireDeployment(tx.read(), file, opts.project, opts.env);
    const store = new SecretStore(secretsDir(file));
    if (opts.secret === 'postgres') {
      if (!rec.databaseRole) throw new CodebError(`${opts.project} (${opts.env}) has no database.`);
      await store.rotate(opts.project, opts.env, 'postgres');
      const pg = new PostgresProvider(settings.postgres);
      try {
        await pg.setPassword(rec.databaseRole, store.load(opts.project, opts.env).postgres!);
      } finally {
        await pg.close();
      }
    } else {
      if (!rec.redisUser) throw new CodebError(`${opts.project} (${opts.env}) has no Redis user.`);
      await store.rotate(opts.project, opts.env, 'redis');
      const redis = new RedisProvider(settings.redis);
      try {
        await redis.setPassword(rec.redisUser, store.load(opts.project, opts.env).redis!);
      } finally {
        await redis.close();
      }
    }
  });
  // The env file and the containers follow: the same manifest and images, redeployed.
  const images = await currentImages(file, opts.project, opts.env);
  return applyManifest({
    manifestFile: storedManifestPath(file, opts.project, opts.env),
    env: opts.env,
    registry: opts.registry,
    settings,
    images,
    reporter: opts.reporter,
    redeployReason: `${opts.secret} secret rotated`,
  });
}

async function currentImages(file: string, project: string, env: string): Promise<string[]> {
  const { readRegistryFile } = await import('../registry/store.js');
  const rec = readRegistryFile(file).projects[project]?.environments[env];
  return (rec?.containers ?? []).filter((c) => c.slot === rec?.liveSlot).map((c) => `${c.service}=${c.image}`);
}
