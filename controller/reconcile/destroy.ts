/**
 * `codeb destroy`: remove a deployment's route, env file, Redis slot and user, release its ports
 * and Redis slot; keep the database (and its role) and buckets unless data deletion is asked for.
 * Works from the registry record alone: no manifest needed.
 */
import { CodebError } from '../errors.js';
import { releaseDeployment, requireDeployment } from '../registry/records.js';
import { withRegistryLock } from '../registry/store.js';
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
      await tx.write(draft);
      if (opts.deleteData) secrets.remove(opts.project, opts.env);
      return {
        ...base,
        steps,
        kept: actions.filter((a) => a.op === 'keep').map((a) => `${a.kind} ${a.name}`),
        deleted: actions.filter((a) => a.op === 'delete').map((a) => `${a.kind} ${a.name}`),
        cancelled: false,
      };
    } finally {
      await closeAll(providers);
    }
  });
}
