/**
 * `codeb plan` and `codeb apply`: validate -> lock -> allocate -> desired -> observe -> plan ->
 * execute, recording each completed step in the registry as it happens. Nothing is written and no
 * service is changed before observe has succeeded everywhere and the plan has no blocked action,
 * so bad input, an unreachable service or an exhausted range leave everything as it was.
 */
import { statefulNotes } from '../deploy/stateful.js';
import { isDeepStrictEqual } from 'node:util';
import { CodebError } from '../errors.js';
import { requireManifest } from '../manifest/index.js';
import { resolveDeployment } from '../manifest/normalize.js';
import type { Deployment } from '../manifest/types.js';
import { allocate, FIRST_PROJECT_REDIS_DB, policyFromEnv } from '../registry/allocate.js';
import { RedisProvider } from '../providers/redis.js';
import { extensionsRefusal, PostgresProvider } from '../providers/postgres.js';
import { lazyListeningPorts, listeningPorts } from '../registry/ports-in-use.js';
import { reservedPorts } from '../registry/reserved-ports.js';
import { reasonOf, writeFailureLog } from '../registry/failure-log.js';
import { allocationRequest, recordAllocation } from '../registry/records.js';
import { actor, withRegistryLock, type RegistryTx } from '../registry/store.js';
import type { EnvironmentRecord, HistoryEntry, RegistryDocument } from '../registry/types.js';
import { loadSettings, registryPath, secretsDir, type Settings } from '../settings.js';
import { desired } from './desired.js';
import type { Action, ExecContext } from './model.js';
import { hasChanges, planApply, summarize, type PlanSummary } from './plan.js';
import { closeAll, observeAll, openProviders, providerFor, type ProviderSet } from './providers.js';
import { silentReporter, type Reporter } from './reporter.js';
import { withCrashPoints } from './crash-points.js';
import { generateAccessKey, SecretStore, type SecretValues } from './secrets.js';
import { sharedKeyNote, storageCapabilities, STORAGE_KEY_SECRETS } from '../providers/storage-access.js';
import { ReleaseProvider } from './runtime-provider.js';
import { storeManifest } from './manifest-store.js';
import { deployNotes, deployRelease, outcomeError, type DeployContext, type DeployOutcome } from '../deploy/bluegreen.js';
import { pendingResume, runResume, type PendingResume } from '../deploy/interrupted.js';
import { endPhase } from '../deploy/resume.js';
import { onlyEntriesDiffer, versionOf } from './release.js';
import { portsTakenBeforeDeploy } from './preflight.js';
import { envFileName, networkName } from '../manifest/names.js';
import { LABEL } from '../runtime/types.js';
import { chooseSubnet, keepsSubnet, parseCidr, parsePool, type Cidr } from '../runtime/network.js';
import { NetworkProvider } from '../providers/network.js';
import { ensureAlertSecret } from '../ops/alert-secret.js';
import { authFingerprints, ensureRouteAuth, type GeneratedPassword } from './route-auth-secrets.js';
import { deployAlertEvent, describeDelivery, notify } from '../ops/alerts.js';
import { openRuntime, selectDeploymentRuntime } from '../runtime/open.js';

/** Subnets every other deployment in the registry holds. */
function otherSubnets(doc: RegistryDocument, projectId: string, env: string): string[] {
  return Object.values(doc.projects).flatMap((p) => Object.values(p.environments).filter((e) => !(p.id === projectId && e.env === env) && e.subnet).map((e) => e.subnet!));
}

/**
 * The deployment's subnet: the one it has, or one no other deployment of this registry and no
 * other Podman network has. Podman's networks are listed (`podmanSubnets`) only when a subnet is
 * chosen, never on an apply that keeps its subnet.
 */
export async function subnetFor(pool: Cidr, current: string | undefined, others: string[], podmanSubnets: () => Promise<string[]>, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (keepsSubnet(pool, current)) return current;
  const range = env.CODEB_NETWORK_RANGE ? parseCidr(env.CODEB_NETWORK_RANGE, 'CODEB_NETWORK_RANGE') : undefined;
  return chooseSubnet(pool, current, [...others, ...(await podmanSubnets())], range);
}

export interface ApplyOptions {
  manifestFile: string;
  env?: string;
  registry?: string;
  reporter?: Reporter;
  /** Stop after planning (codeb plan). */
  planOnly?: boolean;
  /** Injected in tests; default: loadSettings(). */
  settings?: Settings;
  /** `codeb deploy --image`: `ref` or `service=ref`. */
  images?: string[];
  /** Redeploy the containers even when nothing differs (e.g. `codeb secrets rotate`), with this reason. */
  redeployReason?: string;
}

export interface StepResult {
  op: Action['op'];
  key: string;
  kind: string;
  name: string;
  reason: string;
  changes: Action['changes'];
  ms?: number;
}

export interface ApplyResult {
  project: string;
  env: string;
  planned: StepResult[];
  summary: PlanSummary;
  changed: boolean;
  applied: boolean;
  durationMs: number;
  record: EnvironmentRecord;
  url: string | null;
  envFile: string;
  notes: string[];
  deploy?: DeployOutcome;
  /** Basic-auth passwords this apply generated: shown once by the command, kept nowhere. */
  generatedPasswords?: GeneratedPassword[];
  /** A deploy cut short by an earlier run, and what this run does (plan) or did (apply) about it. */
  interrupted?: { phase: string; slot: string; from: string | null; version: string; action: PendingResume['action']['kind']; text: string };
}

const HISTORY_LIMIT = 50;

/** Passwords this process generated and has not handed out yet (route-auth-secrets.ts). */
const generated: GeneratedPassword[] = [];

/** The passwords generated by applies of this process since the last call: each is returned once. */
export function takeGeneratedPasswords(): GeneratedPassword[] {
  return generated.splice(0, generated.length);
}

/** plan only, or a release that only re-points entries (no container is started). */
function planOnlyOrUnchanged(opts: ApplyOptions, actions: Action[]): boolean {
  if (opts.planOnly) return true;
  const release = actions.find((a) => a.kind === 'runtime.release');
  return !release || (release.op === 'update' && onlyEntriesDiffer(release.changes));
}

/** Secrets a deployment needs, by feature; its own S3 key pair only where the server makes users. */
function secretNames(d: Deployment, settings: Settings): string[] {
  const ownKey = d.features.storage && storageCapabilities(settings).perProjectKeys;
  return [
    ...(d.features.database ? ['postgres'] : []),
    ...(d.features.cache ? ['redis'] : []),
    ...(ownKey ? [STORAGE_KEY_SECRETS.accessKey, STORAGE_KEY_SECRETS.secretKey] : []),
  ];
}

function secretResolver(values: SecretValues, settings: Settings): (name: string) => string {
  return (name) => {
    // A server without users (s3rver): every project gets the server's key (apply notes it).
    // With users the key must come from the store: never fall back to the admin key.
    if (!storageCapabilities(settings).perProjectKeys) {
      if (name === STORAGE_KEY_SECRETS.accessKey) return settings.storage.accessKey;
      if (name === STORAGE_KEY_SECRETS.secretKey) return settings.storage.secretKey;
    }
    const v = values[name];
    if (v === undefined) throw new CodebError(`Secret "${name}" has not been generated yet.`);
    return v;
  };
}

export function stepResult(a: Action, ms?: number): StepResult {
  return { op: a.op, key: a.key, kind: a.kind, name: a.name, reason: a.reason, changes: a.changes, ...(ms === undefined ? {} : { ms }) };
}

export function deploymentUrl(d: Pick<Deployment, 'domain' | 'tls'>, settings: Settings): string {
  const https = d.tls !== 'off';
  const port = https ? settings.caddy.httpsPort : settings.caddy.httpPort;
  const standard = (https && port === 443) || (!https && port === 80);
  return `${https ? 'https' : 'http'}://${d.domain}${standard ? '' : `:${port}`}/`;
}

function sameRecord(a: EnvironmentRecord | undefined, b: EnvironmentRecord): boolean {
  if (!a) return false;
  const strip = (r: EnvironmentRecord) => ({ ...r, updatedAt: '' });
  return isDeepStrictEqual(strip(a), strip(b));
}

export async function applyManifest(opts: ApplyOptions): Promise<ApplyResult> {
  const started = Date.now();
  const reporter = withCrashPoints(opts.reporter ?? silentReporter);
  const manifest = requireManifest(opts.manifestFile);
  const d = overrideImages(resolveDeployment(manifest, opts.env), opts.images ?? []);
  // Decided on this machine (the server itself over SSH) before anything is read or written.
  const runtimeKind = await selectDeploymentRuntime(d.server, `${opts.manifestFile}: servers[${Math.max(0, manifest.servers?.indexOf(d.server) ?? 0)}].runtime`);
  const settings = opts.settings ?? loadSettings();
  const file = registryPath(opts.registry);
  const secrets = new SecretStore(secretsDir(file));
  // Read only when a new port is allocated: a no-change apply never pays for the kernel's table.
  const busy = d.server.host === 'local' ? lazyListeningPorts() : new Set<number>();
  // The stack's and server's own ports are refused before anything is written (no half-made route).
  const policy = policyFromEnv(process.env, busy, reservedPorts(settings));
  if (d.server.host !== 'local') {
    throw new CodebError(`Environment ${d.env} targets server ${d.server.name} (${d.server.host}); remote servers are not supported by this version yet.`, {
      hint: 'Use host: local for now.',
    });
  }

  const command = `codeb ${opts.planOnly ? 'plan' : 'apply'} ${opts.manifestFile}${opts.env ? ` --env ${opts.env}` : ''}`;
  // Failed deploys' alerts, sent once the registry lock is released: a receiver that does not answer
  // (4 attempts with backoff, up to about 23 s) must not hold every other apply on this server.
  const alertsDue: DeployOutcome[] = [];
  try {
    return await withRegistryLock(file, { command }, (tx) => applyLocked(tx));
  } finally {
    for (const outcome of alertsDue) await alertDeploy(outcome, d, settings, file, reporter);
  }

  async function applyLocked(tx: RegistryTx): Promise<ApplyResult> {
    const doc = tx.read();
    const existing = doc.projects[d.projectId]?.environments[d.env];
    // A new Redis slot must not be one another owner already uses on the server (observe only).
    if (d.features.cache && existing?.redisDb == null) {
      const redis = new RedisProvider(settings.redis);
      try {
        policy.busyRedisDbs = await redis.occupiedDbs(`${d.projectId}/${d.env}`, FIRST_PROJECT_REDIS_DB, policy.redisDatabases);
      } finally {
        await redis.close();
      }
    }
    const allocation = allocate(doc, allocationRequest(d), policy);
    const draft: RegistryDocument = structuredClone(doc);
    const now = new Date().toISOString();
    const rec = recordAllocation(draft, d, allocation, now);
    rec.subnet = await subnetFor(parsePool(settings.network.pool), rec.subnet, otherSubnets(draft, d.projectId, d.env), () =>
      new NetworkProvider(settings.podman.socketPath).subnetsInUse(networkName(d.projectId, d.env)),
    );

    let values = secrets.load(d.projectId, d.env);
    // Reads `values` at call time: the same resolver serves observe (loaded) and execute (ensured).
    const secret = (name: string) => secretResolver(values, settings)(name);
    const providers = openProviders(settings, secretsDir(file), secret);
    const envFilePath = `${secretsDir(file)}/${envFileName(d.projectId, d.env)}`;
    let lastDeploy: DeployOutcome | null = null;
    // Set when this run removed the half-started slot of a deploy cut short: the deploy it then runs finishes that one.
    let resumedFrom: DeployOutcome['resumed'];
    const deployContext = (runtime: DeployContext['runtime'], forwarder: DeployContext['forwarder']): DeployContext => ({
      d, rec, runtime, forwarder, envFile: envFilePath, servicesAddress: settings.network.servicesAddress, caddyHttpPort: settings.caddy.httpPort, reporter: indented(reporter), persist: () => tx.write(draft),
    });
    providers.set(
      'runtime',
      new ReleaseProvider({
        settings,
        rec,
        projectId: d.projectId,
        d,
        runtime: openRuntime(runtimeKind, settings),
        deploy: async (_a, runtime, forwarder) => {
          const outcome = await deployRelease(deployContext(runtime, forwarder), versionOf(d));
          outcome.resumed ??= resumedFrom;
          lastDeploy = outcome;
          recordDeploy(rec, d, outcome);
          await tx.write(draft);
          const err = outcomeError(outcome, d.projectId, d.env);
          if (err) {
            alertsDue.push(outcome);
            throw err;
          }
          return `${outcome.fromSlot ?? 'none'} -> ${outcome.toSlot}, switched in ${outcome.switchMs?.toFixed(1)} ms`;
        },
      }),
    );
    const release = providers.get('runtime') as ReleaseProvider;
    try {
      // A deploy cut short by an earlier run: the record says where, the forwarder and the
      // containers say what serves now, and planning starts from the slot that serves.
      const pending = rec.deploy ? await pendingResume(d, rec, release.runtime, release.forwarder) : null;
      if (pending) rec.liveSlot = pending.action.live;
      const resources = desired(d, rec, settings, authFingerprints(d, values));
      const observed = await observeAll(providers, resources);
      // Extensions the server lacks are refused before anything is changed (asked on the
      // connection observe opened, so that observe's connections all start at once).
      if (d.features.database?.extensions.length) {
        const available = await (providers.get('postgres') as PostgresProvider).availableExtensions();
        const refusal = extensionsRefusal(`${opts.manifestFile}: features.database.extensions`, d.features.database.extensions, available);
        if (refusal) throw refusal;
      }
      const actions = planApply(resources, observed).map((a) =>
        // After a secret rotation the containers must restart with the new env file even though
        // the manifest is unchanged: a blue-green redeploy of the same images.
        opts.redeployReason && a.kind === 'runtime.release' && a.op === 'unchanged' ? { ...a, op: 'update' as const, reason: opts.redeployReason } : a,
      );
      const blocked = actions.filter((a) => a.op === 'blocked');
      if (blocked.length) {
        throw new CodebError(`Cannot apply ${d.projectId} (${d.env}): ${blocked.map((a) => `${a.kind} ${a.name}: ${a.reason}`).join('; ')}.`, {
          hint: 'Nothing was changed. Free or rename the resource named above, or choose another one, then apply again.',
        });
      }
      // The release is observed only while a slot is live, so before a first deploy nothing has
      // talked to Podman or the forwarder yet: check both now, before the first effect.
      if (actions.some((a) => a.kind === 'runtime.release' && (a.op === 'create' || a.op === 'update'))) {
        const mine = await release.runtime.list({ [LABEL.project]: d.projectId, [LABEL.env]: d.env });
        const entries = await release.forwarder.list();
        // A port another process holds would stop the deploy after the route is written: refuse now.
        if (d.server.host === 'local' && !planOnlyOrUnchanged(opts, actions)) {
          const ownSlots = new Set(mine.map((c) => c.labels[LABEL.slot] ?? ''));
          const taken = portsTakenBeforeDeploy(d, rec, listeningPorts(), new Set(entries.map((e) => e.entryPort)), ownSlots);
          if (taken.length) {
            throw new CodebError(`Cannot apply ${d.projectId} (${d.env}): port${taken.length > 1 ? 's' : ''} ${taken.join(', ')} ${taken.length > 1 ? 'are' : 'is'} in use by another process on this machine.`, {
              hint: 'Nothing was changed. Stop that process, or give the service other hostPorts in the manifest (`codeb registry release` + apply re-allocates free ones).',
            });
          }
        }
      }
      // An apply cut short (killed, crashed) leaves status provisioning: even when every resource
      // already exists, this run completes it (status, history) instead of reporting No changes.
      const changed = hasChanges(actions) || !sameRecord(existing, rec) || existing?.status === 'provisioning' || pending !== null;
      const notes: string[] = [];
      const shared = d.features.storage ? sharedKeyNote(settings.storage) : null;
      if (shared) notes.push(shared);
      notes.push(...statefulNotes(d.services, actions.find((a) => a.kind === 'runtime.release')));
      if (pending) notes.push(pending.text);
      if (actions.some((a) => a.kind === 'runtime.release' && (a.op === 'create' || a.op === 'update'))) notes.push(...deployNotes(d, rec.liveSlot));
      else if (existing?.status === 'provisioning' && !hasChanges(actions)) notes.push('the last apply was cut short (status provisioning); applying completes its record');
      const envFile = envFilePath;
      const base = {
        project: d.projectId,
        env: d.env,
        summary: summarize(actions),
        changed,
        url: d.services.some((s) => s.type === 'web') ? deploymentUrl(d, settings) : null,
        envFile,
        notes,
        ...(pending
          ? { interrupted: { phase: pending.progress.phase, slot: pending.progress.slot, from: pending.progress.from, version: pending.progress.version, action: pending.action.kind, text: pending.text } }
          : {}),
      };
      if (opts.planOnly) {
        return { ...base, planned: actions.map((a) => stepResult(a)), applied: false, durationMs: Date.now() - started, record: existing ?? rec };
      }
      if (!changed) {
        return { ...base, planned: actions.map((a) => stepResult(a)), applied: false, durationMs: Date.now() - started, record: rec };
      }

      // First effect: the allocation is recorded, so a crash from here on keeps it (no leak, no double).
      rec.status = 'provisioning';
      rec.journal = [];
      await tx.write(draft);
      values = await secrets.ensure(d.projectId, d.env, secretNames(d, settings), { [STORAGE_KEY_SECRETS.accessKey]: generateAccessKey });
      // Made before the deploy so even a first deploy's failure alert is signed; printed once by the CLI.
      if (d.monitoring.alerts.webhook) await ensureAlertSecret(file, d.projectId);
      // Basic-auth hashes before the route that needs them; a generated password is held for the
      // command to show once (ApplyResult, or takeGeneratedPasswords() when the apply fails later).
      generated.push(...(await ensureRouteAuth(secrets, d)));
      values = secrets.load(d.projectId, d.env);
      if (pending) resumedFrom = await finishInterrupted(pending, deployContext(release.runtime, release.forwarder), tx, draft, rec, d, reporter, (o) => (lastDeploy = o), (o) => alertsDue.push(o));

      const done = await execute(actions, providers, tx, draft, rec, secret, reporter, d.projectId);
      rec.status = rec.liveSlot ? 'running' : 'provisioned';
      pushHistory(rec, { at: new Date().toISOString(), by: actor(), action: 'apply', result: 'ok', detail: { ...summaryDetail(actions), durationMs: Date.now() - started } });
      await tx.write(draft);
      storeManifest(file, d.projectId, d.env, opts.manifestFile);
      return { ...base, planned: done, applied: true, durationMs: Date.now() - started, record: rec, deploy: lastDeploy ?? undefined, generatedPasswords: takeGeneratedPasswords() };
    } finally {
      await closeAll(providers);
    }
  }
}

const IMAGE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?::[0-9]{1,5})?(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/;

function repository(image: string): string {
  const bare = image.split('@')[0]!;
  const slash = bare.lastIndexOf('/');
  const colon = bare.lastIndexOf(':');
  return colon > slash ? bare.slice(0, colon) : bare;
}

/** `codeb deploy --image`: replace images by repository, or by service name with `service=ref`. Pure. */
export function overrideImages(d: Deployment, images: string[]): Deployment {
  if (!images.length) return d;
  const services = d.services.map((s) => ({ ...s }));
  for (const arg of images) {
    const eq = arg.indexOf('=');
    const [svc, ref] = eq > 0 ? [arg.slice(0, eq), arg.slice(eq + 1)] : [null, arg];
    if (!IMAGE.test(ref) || ref.length > 255) {
      throw new CodebError(`--image ${JSON.stringify(arg)} is not a valid image reference.`, { exitCode: 2, hint: 'Use [registry/]name[:tag][@sha256:digest] in lowercase, e.g. ghcr.io/org/app:1f2e3d4, or service=ref.' });
    }
    const targets = svc ? services.filter((s) => s.name === svc) : services.filter((s) => repository(s.image) === repository(ref));
    if (!targets.length) {
      throw new CodebError(svc ? `--image ${arg}: no service named "${svc}".` : `--image ${ref}: no service uses the repository ${repository(ref)}.`, {
        exitCode: 2,
        hint: `Services: ${d.services.map((s) => `${s.name} (${s.image})`).join(', ')}. Name one with --image <service>=<ref>.`,
      });
    }
    for (const t of targets) t.image = ref;
  }
  return { ...d, services };
}

/** Deploy steps are printed one level deeper than the apply step that runs them. */
function indented(r: Reporter): Reporter {
  return { start: (l) => r.start(`  ${l}`), done: (l, res, ms) => r.done(`  ${l}`, res, ms), fail: (l, m, ms) => r.fail(`  ${l}`, m, ms), info: (l) => r.info(`  ${l}`) };
}

/**
 * Before anything else in this run: finish the deploy an earlier run left cut short (its outcome
 * recorded like a deploy's, marked resumed; a rollback ends the apply with exit 4), or remove its
 * half-started slot (recorded; the deploy this apply then runs is marked as resuming it).
 */
async function finishInterrupted(
  pending: PendingResume,
  ctx: DeployContext,
  tx: RegistryTx,
  draft: RegistryDocument,
  rec: EnvironmentRecord,
  d: Deployment,
  reporter: Reporter,
  deployed: (o: DeployOutcome) => void,
  /** Queues the alert for a deploy that failed (sent after the lock is released). */
  alert: (o: DeployOutcome) => void,
): Promise<DeployOutcome['resumed']> {
  const p = pending.progress;
  const resumed = { phase: p.phase, startedAt: p.startedAt, by: p.by };
  reporter.info(`  interrupted deploy: ${pending.text}`);
  const r = await runResume(ctx, pending);
  if (r.outcome) {
    deployed(r.outcome);
    recordDeploy(rec, d, r.outcome);
    await tx.write(draft);
    const err = outcomeError(r.outcome, d.projectId, d.env);
    if (err) {
      // A resumed deploy that rolls back alerts like any other (deploy.rolled_back).
      alert(r.outcome);
      throw err;
    }
    return undefined;
  }
  const at = new Date().toISOString();
  pushHistory(rec, {
    at,
    by: actor(),
    action: 'deploy',
    result: 'failed',
    detail: { version: p.version, images: p.images, from: p.from, to: p.slot, outcome: 'interrupted', resumed, reason: `cut short at "${p.phase}" before the switch; its half-started ${p.slot} slot was removed (${r.removed} container(s))` },
  });
  rec.deploy = { ...p, phase: 'failed', at };
  await tx.write(draft);
  return resumed;
}

/** The alert for a deploy the health gate stopped or that rolled back (none for other outcomes). */
async function alertDeploy(outcome: DeployOutcome, d: Deployment, settings: Settings, registry: string, reporter: Reporter): Promise<void> {
  const event = deployAlertEvent(outcome.result);
  if (!event) return;
  const url = d.services.some((s) => s.type === 'web') ? deploymentUrl(d, settings) : null;
  const sent = await notify({ project: d.projectId, env: d.env, event, reason: outcome.reason, version: outcome.version, url }, { registry, alerts: d.monitoring.alerts });
  reporter.info(`  ${describeDelivery(sent)}`);
}

/** The deploy's entry in history (the audit trail) and the record's live state. */
export function recordDeploy(rec: EnvironmentRecord, d: Deployment, o: DeployOutcome): void {
  const now = new Date();
  const result = o.result === 'deployed' ? 'ok' : o.result === 'rolled-back' ? 'rolled-back' : 'failed';
  pushHistory(rec, {
    at: now.toISOString(),
    by: actor(),
    action: 'deploy',
    result,
    detail: {
      version: o.version,
      images: o.images,
      from: o.fromSlot,
      to: o.toSlot,
      outcome: o.result,
      reason: o.reason,
      switchMs: o.switchMs === null ? null : Math.round(o.switchMs * 10) / 10,
      health: o.health.map((h) => ({ service: h.service, healthy: h.healthy, ms: h.elapsedMs, firstOkMs: h.firstOkMs })),
      ...(o.resumed ? { resumed: o.resumed } : {}),
    },
  });
  if (rec.deploy) rec.deploy = { ...rec.deploy, phase: endPhase(o.result), at: now.toISOString() };
  rec.health = { status: o.result === 'deployed' ? 'healthy' : rec.liveSlot ? 'healthy' : 'unhealthy', lastCheck: now.toISOString(), detail: o.result === 'deployed' ? undefined : o.reason.slice(0, 300) };
  if (o.result === 'deployed' && o.fromSlot && !o.previousStopped) {
    // What really runs in the previous slot (after a rollback it is not the deploy before last).
    const previous = Object.fromEntries(rec.containers.filter((c) => c.slot === o.fromSlot).map((c) => [c.service, c.image]));
    rec.retained = { slot: o.fromSlot, until: new Date(now.getTime() + d.deploy.keepPreviousMs).toISOString(), images: previous };
  } else if (o.result === 'deployed') {
    rec.retained = null;
  }
  rec.status = rec.liveSlot ? (o.result === 'deployed' ? 'running' : 'degraded') : 'failed';
}

function summaryDetail(actions: Action[]): Record<string, number> {
  const s = summarize(actions);
  return { created: s.create, updated: s.update, deleted: s.delete };
}

export function pushHistory(rec: EnvironmentRecord, entry: HistoryEntry): void {
  rec.history.push(entry);
  if (rec.history.length > HISTORY_LIMIT) rec.history.splice(0, rec.history.length - HISTORY_LIMIT);
}

/** Carry out the actions in order, journaling each completed step; stop at the first failure. */
export async function execute(
  actions: Action[],
  providers: ProviderSet,
  tx: RegistryTx,
  draft: RegistryDocument,
  rec: EnvironmentRecord,
  secret: (name: string) => string,
  reporter: Reporter,
  projectId: string,
): Promise<StepResult[]> {
  const results: StepResult[] = [];
  const symbol: Record<string, string> = { create: '+', update: '~', delete: '-' };
  const verb: Record<string, string> = { create: 'created', update: 'updated', delete: 'deleted' };
  for (const a of actions) {
    if (a.op !== 'create' && a.op !== 'update' && a.op !== 'delete') {
      results.push(stepResult(a));
      continue;
    }
    const label = `${symbol[a.op]} ${a.kind} ${a.name}`;
    const t0 = Date.now();
    reporter.start(label);
    const notes: string[] = [];
    const ctx: ExecContext = { secret, progress: (m) => notes.push(m) };
    try {
      await providerFor(providers, a).execute(a, ctx);
    } catch (err) {
      const ms = Date.now() - t0;
      const message = err instanceof Error ? err.message : String(err);
      reporter.fail(label, message, ms);
      // The registry keeps the reason and where the whole text is, never the text (log tails can hold secrets).
      const reason = reasonOf(message);
      const log = writeFailureLog(projectId, rec.env, `${a.kind} ${a.name}: ${a.op} failed\n${message}`);
      (rec.journal ??= []).push({ step: a.key, at: new Date().toISOString(), status: 'failed', detail: reason });
      // The previous version may still be serving (a failed deploy never moves traffic, or moves it back).
      rec.status = rec.liveSlot ? 'degraded' : 'failed';
      pushHistory(rec, { at: new Date().toISOString(), by: actor(), action: 'apply', result: 'failed', detail: { step: a.key, error: reason, log } });
      await tx.write(draft);
      if (err instanceof CodebError) throw err;
      throw new CodebError(`${a.kind} ${a.name}: ${a.op} failed: ${message}`, {
        cause: err,
        hint: 'The steps before it are recorded in the registry (registry inspect shows the journal); fix the cause and apply again: it resumes from what exists.',
      });
    }
    const ms = Date.now() - t0;
    reporter.done(label, verb[a.op]! + (notes.length ? `, ${notes.join(', ')}` : ''), ms);
    (rec.journal ??= []).push({ step: a.key, at: new Date().toISOString(), status: 'done' });
    await tx.write(draft);
    results.push(stepResult(a, ms));
  }
  return results;
}

