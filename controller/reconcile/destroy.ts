/**
 * `codeb destroy`: remove a deployment's route, env file, Redis slot and user, release its ports
 * and Redis slot; keep the database (and its role) and buckets unless data deletion is asked for.
 * Works from the registry record alone: no manifest needed.
 */
import { CodebError, EXIT } from '../errors.js';
import { addTombstone, findTombstone, releaseDeployment, removeTombstone, requireDeployment } from '../registry/records.js';
import { actor, withRegistryLock, type RegistryTx } from '../registry/store.js';
import type { EnvironmentRecord, RegistryDocument, Tombstone } from '../registry/types.js';
import { loadSettings, registryPath, secretsDir, type Settings } from '../settings.js';
import { ownedResources } from './desired.js';
import type { Action } from './model.js';
import { planDestroy, summarize, type PlanSummary } from './plan.js';
import { closeAll, observeAll, openProviders } from './providers.js';
import { execute, stepResult, type StepResult } from './apply.js';
import { silentReporter, type Reporter } from './reporter.js';
import { SecretStore } from './secrets.js';
import { ReleaseProvider } from './runtime-provider.js';

export interface DestroyOptions {
  project: string;
  env: string;
  deleteData: boolean;
  registry?: string;
  reporter?: Reporter;
  settings?: Settings;
  /** Called with the plan before anything is changed; return false to cancel. */
  confirm?: (actions: Action[]) => Promise<boolean>;
}

export interface DestroyResult {
  project: string;
  env: string;
  steps: StepResult[];
  summary: PlanSummary;
  kept: string[];
  deleted: string[];
  cancelled: boolean;
}

export async function destroyDeployment(opts: DestroyOptions): Promise<DestroyResult> {
  const reporter = opts.reporter ?? silentReporter;
  const settings = opts.settings ?? loadSettings();
  const file = registryPath(opts.registry);
  const secrets = new SecretStore(secretsDir(file));
  const command = `codeb destroy ${opts.project} --env ${opts.env}${opts.deleteData ? ' --delete-data' : ''}`;
  return withRegistryLock(file, { command }, async (tx) => {
    const doc = tx.read();
    const tomb = findTombstone(doc, opts.project, opts.env);
    if (!doc.projects[opts.project]?.environments[opts.env] && tomb) return destroyKeptData(opts, tomb, tx, doc, settings, secrets, reporter, file);
    const rec = requireDeployment(doc, file, opts.project, opts.env);
    const values = secrets.load(opts.project, opts.env);
    const providers = openProviders(settings, secretsDir(file), (n) => values[n] ?? '');
    const draft = structuredClone(doc);
    const draftRec = draft.projects[opts.project]!.environments[opts.env]!;
    providers.set('runtime', new ReleaseProvider({ settings, rec: draftRec, projectId: opts.project }));
    try {
      const owned = ownedResources(opts.project, rec);
      const observed = await observeAll(providers, owned);
      const actions = planDestroy(owned, observed, opts.deleteData);
      const blocked = actions.filter((a) => a.op === 'blocked');
      if (blocked.length) {
        throw new CodebError(`Cannot destroy ${opts.project} (${opts.env}): ${blocked.map((a) => `${a.kind} ${a.name}: ${a.reason}`).join('; ')}.`, { hint: 'Nothing was changed.' });
      }
      const base = { project: opts.project, env: opts.env, summary: summarize(actions) };
      if (opts.confirm && !(await opts.confirm(actions))) {
        return { ...base, steps: actions.map((a) => stepResult(a)), kept: [], deleted: [], cancelled: true };
      }
      draftRec.journal = [];
      const steps = await execute(actions, providers, tx, draft, draftRec, (n) => values[n] ?? '', reporter, opts.project);
      releaseDeployment(draft, opts.project, opts.env);
      const keptData = actions.filter((a) => a.op === 'keep');
      if (keptData.length) {
        // The kept data stays claimed by this project and environment (registry list --all shows it).
        const kept = (kind: string) => keptData.filter((a) => a.kind === kind).map((a) => a.name);
        addTombstone(draft, {
          project: opts.project,
          env: opts.env,
          destroyedAt: new Date().toISOString(),
          by: actor(),
          database: kept('postgres.database')[0] ?? null,
          databaseRole: kept('postgres.role')[0] ?? null,
          buckets: kept('storage.bucket'),
          ...(kept('volume.data').length ? { volumes: kept('volume.data') } : {}),
        });
      }
      await tx.write(draft);
      if (opts.deleteData) secrets.remove(opts.project, opts.env);
      return {
        ...base,
        steps,
        kept: keptData.map((a) => `${a.kind} ${a.name}`),
        deleted: actions.filter((a) => a.op === 'delete').map((a) => `${a.kind} ${a.name}`),
        cancelled: false,
      };
    } finally {
      await closeAll(providers);
    }
  });
}

/** A record standing in for a destroyed deployment while its kept data is deleted (journal only). */
function tombstoneRecord(t: Tombstone): EnvironmentRecord {
  return {
    env: t.env, status: 'provisioned', createdAt: t.destroyedAt, updatedAt: t.destroyedAt, domain: null, aliases: [], ports: {}, redisDb: null, redisUser: null,
    database: t.database, databaseRole: t.databaseRole, bucket: t.buckets[0] ?? null, buckets: t.buckets, liveSlot: null, containers: [], ...(t.volumes ? { volumes: t.volumes } : {}),
    health: { status: 'unknown', lastCheck: null }, history: [],
  };
}

/**
 * `destroy <project> --delete-data` after a destroy that kept data: delete exactly what the
 * tombstone names (database, role, buckets, volumes), then drop the tombstone and the secrets file.
 */
async function destroyKeptData(
  opts: DestroyOptions,
  tomb: Tombstone,
  tx: RegistryTx,
  doc: RegistryDocument,
  settings: Settings,
  secrets: SecretStore,
  reporter: Reporter,
  file: string,
): Promise<DestroyResult> {
  if (!opts.deleteData) {
    throw new CodebError(`${opts.project} (${opts.env}) was destroyed on ${tomb.destroyedAt}; only its kept data is left (${keptList(tomb).join(', ')}).`, {
      exitCode: EXIT.invalid,
      hint: `Pass --delete-data to delete it, or apply the project's manifest again to take it back. \`codeb registry list --all\` lists kept data.`,
    });
  }
  const rec = tombstoneRecord(tomb);
  const owned = ownedResources(opts.project, rec).filter((r) => r.holdsData);
  const values = secrets.load(opts.project, opts.env);
  const providers = openProviders(settings, secretsDir(file), (n) => values[n] ?? '');
  try {
    const observed = await observeAll(providers, owned);
    const actions = planDestroy(owned, observed, true);
    const blocked = actions.filter((a) => a.op === 'blocked');
    if (blocked.length) {
      throw new CodebError(`Cannot delete the kept data of ${opts.project} (${opts.env}): ${blocked.map((a) => `${a.kind} ${a.name}: ${a.reason}`).join('; ')}.`, { hint: 'Nothing was changed.' });
    }
    const base = { project: opts.project, env: opts.env, summary: summarize(actions) };
    if (opts.confirm && !(await opts.confirm(actions))) {
      return { ...base, steps: actions.map((a) => stepResult(a)), kept: [], deleted: [], cancelled: true };
    }
    const draft = structuredClone(doc);
    const steps = await execute(actions, providers, tx, draft, rec, (n) => values[n] ?? '', reporter, opts.project);
    removeTombstone(draft, opts.project, opts.env);
    await tx.write(draft);
    secrets.remove(opts.project, opts.env);
    return { ...base, steps, kept: [], deleted: actions.filter((a) => a.op === 'delete').map((a) => `${a.kind} ${a.name}`), cancelled: false };
  } finally {
    await closeAll(providers);
  }
}

function keptList(t: Tombstone): string[] {
  return [...(t.database ? [`database ${t.database}`] : []), ...(t.databaseRole ? [`role ${t.databaseRole}`] : []), ...t.buckets.map((b) => `bucket ${b}`), ...(t.volumes ?? []).map((v) => `volume ${v}`)];
}
