/**
 * `codeb backup run | list | verify | restore | switch`, and `run --due`: the effects, in order,
 * around the pure parts (backup-layout.ts: keys, retention; backup-schedule.ts: due, missed).
 *
 * A backup is good only when manifest.json exists, and that is written last, after every object
 * was uploaded, read back and matched its sha256. A failure or a kill at any earlier point leaves
 * an unfinished backup that list shows as such, verify and restore refuse, and retention removes.
 * Every failure sends `backup.failed` (missed schedules `backup.missed`) and exits non-zero.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CodebError, EXIT } from '../errors.js';
import { requireManifest } from '../manifest/index.js';
import { BACKUP_BUCKET } from '../manifest/names.js';
import { resolveDeployment } from '../manifest/normalize.js';
import type { Deployment } from '../manifest/types.js';
import { hasStoredManifest, storedManifestPath } from '../reconcile/manifest-store.js';
import { reportStep, silentReporter, type Reporter } from '../reconcile/reporter.js';
import { requireDeployment } from '../registry/records.js';
import { actor, readRegistryFile, withRegistryLock } from '../registry/store.js';
import type { EnvironmentRecord } from '../registry/types.js';
import { loadSettings, registryPath, type Settings } from '../settings.js';
import { describeDelivery, notify, type AlertDelivery, type AlertEventName } from './alerts.js';
import {
  DUMP_FILE,
  MANIFEST_FILE,
  assertBackupId,
  backupId,
  backupPrefix,
  backupsFromListing,
  deploymentPrefix,
  newestGood,
  retention,
  type BackupEntry,
  type BackupManifest,
  type ObjectEntry,
  type TableCount,
  type VerifyRecord,
} from './backup-layout.js';
import { BackupDatabase, assertDatabaseName } from './backup-postgres.js';
import { isDue, missedSlot } from './backup-schedule.js';
import { BackupStore, sha256File } from './backup-store.js';
import { openHostRuntime } from '../runtime/open.js';
import { tarVolume, untarVolume, volumeKey, volumeSource } from './backup-volumes.js';

export interface BackupContext {
  registry?: string;
  settings?: Settings;
  reporter?: Reporter;
  now?: () => Date;
  env?: NodeJS.ProcessEnv;
}

interface Target {
  project: string;
  env: string;
  record: EnvironmentRecord;
  policy: Deployment['backup'];
}

function resolved(ctx: BackupContext) {
  const file = registryPath(ctx.registry, ctx.env);
  return {
    file,
    settings: ctx.settings ?? loadSettings(ctx.env),
    reporter: ctx.reporter ?? silentReporter,
    now: ctx.now ?? (() => new Date()),
  };
}

/** The deployment's record and its backup policy (from the last applied manifest, kept beside the registry). */
function target(file: string, project: string, env: string): Target {
  const record = requireDeployment(readRegistryFile(file), file, project, env);
  if (!hasStoredManifest(file, project, env)) {
    throw new CodebError(`No applied manifest is stored for ${project} (${env}), so its backup policy is unknown.`, {
      hint: 'Apply the manifest once with this version of codeb (`codeb apply`).',
    });
  }
  const d = resolveDeployment(requireManifest(storedManifestPath(file, project, env)), env);
  return { project, env, record, policy: d.backup };
}

const mb = (n: number) => (n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KB` : `${(n / 1048576).toFixed(1)} MB`);

/** Progress lines at most every 2 s while bytes move. */
function byteProgress(reporter: Reporter, label: string, total: number): (n: number) => void {
  let last = Date.now();
  return (n) => {
    if (Date.now() - last < 2000) return;
    last = Date.now();
    reporter.info(`    ${label}: ${mb(n)} of ${mb(total)}`);
  };
}

/** A mistake in the command line is the caller's to fix, not an event for on-call. */
function isInvalidInput(err: unknown): boolean {
  return err instanceof CodebError && err.exitCode === EXIT.invalid;
}

async function alert(file: string, t: { project: string; env: string }, event: AlertEventName, reason: string, reporter: Reporter, env?: NodeJS.ProcessEnv): Promise<AlertDelivery> {
  const d = await notify({ project: t.project, env: t.env, event, reason }, { registry: file, env });
  reporter.info(`  ${describeDelivery(d)}`);
  return d;
}

// ---------------------------------------------------------------- run

export interface RunResult {
  project: string;
  env: string;
  id: string;
  bucket: string;
  prefix: string;
  manifest: BackupManifest;
  retention: { deleted: string[]; error?: string };
}

export interface Timings {
  dumpMs: number;
  uploadMs: number;
}

/** One backup of one deployment; on failure the alert is sent and the error rethrown (`.alert` set). */
export async function runBackup(project: string, env: string, ctx: BackupContext = {}, timings?: Timings): Promise<RunResult> {
  const r = resolved(ctx);
  const t = target(r.file, project, env);
  try {
    return await backupOnce(t, r, timings);
  } catch (err) {
    if (isInvalidInput(err)) throw err;
    const reason = `backup of ${project} (${env}) failed: ${(err as Error).message}`;
    const delivery = await alert(r.file, t, 'backup.failed', reason, r.reporter, ctx.env);
    throw Object.assign(err as Error, { alert: delivery });
  }
}

async function backupOnce(t: Target, r: ReturnType<typeof resolved>, timings?: Timings): Promise<RunResult> {
  const { reporter } = r;
  const volumes = t.record.volumes ?? [];
  const include = t.policy.include.filter((what) => (what === 'database' ? Boolean(t.record.database) : what === 'volumes' ? volumes.length > 0 : t.record.buckets.length > 0));
  if (include.length === 0) {
    throw new CodebError(`${t.project} (${t.env}) has nothing to back up: backup.include is [${t.policy.include.join(', ')}], and it has ${t.record.database ? 'a database' : 'no database'}, ${t.record.buckets.length} bucket(s) and ${volumes.length} volume(s).`, {
      exitCode: EXIT.invalid,
      hint: 'Set backup.include to [database], [storage] and/or [volumes] for what the project has.',
    });
  }
  const started = r.now();
  const id = backupId(started);
  const prefix = backupPrefix(t.project, t.env, id);
  const store = new BackupStore(r.settings.storage);
  const db = new BackupDatabase(r.settings.postgres);
  const tmp = mkdtempSync(join(tmpdir(), 'codeb-backup-'));
  const objects: ObjectEntry[] = [];
  let database: BackupManifest['database'] = null;
  try {
    await reportStep(reporter, `backup bucket ${BACKUP_BUCKET}`, () => store.ensureBucket(BACKUP_BUCKET), () => 'ready');
    if (include.includes('database')) {
      const name = t.record.database!;
      const server = await db.serverVersion();
      const tool = await db.tool('pg_dump', server.major);
      const dumpFile = join(tmp, DUMP_FILE);
      const t0 = performance.now();
      const tables = await reportStep(
        reporter,
        `pg_dump ${name} (Postgres ${server.text}, ${tool.path})`,
        () => db.dump(name, dumpFile, tool, (table) => reporter.info(`    dumping ${table}`)),
        (tables) => `${tables.length} tables, ${tables.reduce((n, x) => n + x.rows, 0)} rows, ${mb(statSync(dumpFile).size)}`,
      );
      if (timings) timings.dumpMs = performance.now() - t0;
      const local = await sha256File(dumpFile);
      const t1 = performance.now();
      await reportStep(
        reporter,
        `upload ${BACKUP_BUCKET}/${prefix}${DUMP_FILE}`,
        async () => {
          const sent = await store.putFile(BACKUP_BUCKET, prefix + DUMP_FILE, dumpFile, local.size, byteProgress(reporter, 'uploaded', local.size));
          if (sent !== local.sha256) throw new CodebError(`The dump ${DUMP_FILE} changed on disk while it was uploaded to ${prefix}.`, { hint: 'Nothing was marked good. Run `codeb backup run` again; check that nothing else writes to the temporary folder.' });
          const back = await store.readBack(BACKUP_BUCKET, prefix + DUMP_FILE, undefined, byteProgress(reporter, 'read back', local.size));
          if (back.sha256 !== local.sha256 || back.size !== local.size) {
            throw new CodebError(`Read-back of ${prefix}${DUMP_FILE} does not match what was uploaded (sha256 ${back.sha256.slice(0, 12)}… vs ${local.sha256.slice(0, 12)}…, ${back.size} vs ${local.size} bytes).`, {
              hint: 'The object storage lost or changed data: check it before trusting any backup on it.',
            });
          }
        },
        () => `${mb(local.size)}, read back, sha256 ${local.sha256.slice(0, 12)}…`,
      );
      if (timings) timings.uploadMs = performance.now() - t1;
      objects.push({ key: DUMP_FILE, size: local.size, sha256: local.sha256 });
      database = { name, serverVersion: server.text, pgDumpVersion: tool.version, tables };
    }
    if (include.includes('storage')) {
      for (const bucket of t.record.buckets) {
        await reportStep(
          reporter,
          `copy bucket ${bucket}`,
          async () => {
            const listed = await store.list(bucket, '');
            let i = 0;
            for (const o of listed) {
              const key = `storage/${bucket}/${o.key}`;
              const sent = await store.copyObject(bucket, o.key, BACKUP_BUCKET, prefix + key);
              const back = await store.readBack(BACKUP_BUCKET, prefix + key);
              if (back.sha256 !== sent.sha256) throw new CodebError(`Read-back of ${prefix}${key} does not match what was uploaded (sha256 ${back.sha256.slice(0, 12)}… vs ${sent.sha256.slice(0, 12)}…).`, { hint: 'The object storage lost or changed data: check it before trusting any backup on it.' });
              objects.push({ key, size: sent.size, sha256: sent.sha256 });
              if (++i % 100 === 0) reporter.info(`    ${bucket}: ${i} of ${listed.length} objects`);
            }
            return listed.length;
          },
          (n) => `${n} objects, read back`,
        );
      }
    }
    if (include.includes('volumes')) {
      for (const volume of volumes) {
        const key = volumeKey(volume);
        const file = join(tmp, `${volume}.tar`);
        const src = await volumeSource(r.settings.podman.socketPath, t.project, t.env, volume);
        await reportStep(reporter, `tar volume ${volume}`, () => tarVolume(r.settings.podman.socketPath, src, file), (ms) => `${mb(statSync(file).size)}${ms ? `, ${src.container} paused for ${ms} ms` : ''}`);
        const local = await sha256File(file);
        await reportStep(
          reporter,
          `upload ${BACKUP_BUCKET}/${prefix}${key}`,
          async () => {
            const sent = await store.putFile(BACKUP_BUCKET, prefix + key, file, local.size, byteProgress(reporter, 'uploaded', local.size));
            const back = await store.readBack(BACKUP_BUCKET, prefix + key);
            if (sent !== local.sha256 || back.sha256 !== local.sha256 || back.size !== local.size) {
              throw new CodebError(`Read-back of ${prefix}${key} does not match what was uploaded (sha256 ${back.sha256.slice(0, 12)}… vs ${local.sha256.slice(0, 12)}…).`, { hint: 'The object storage lost or changed data: check it before trusting any backup on it.' });
            }
          },
          () => `read back, sha256 ${local.sha256.slice(0, 12)}…`,
        );
        objects.push({ key, size: local.size, sha256: local.sha256 });
      }
    }
    const finished = r.now();
    const manifest: BackupManifest = {
      formatVersion: 1,
      id,
      project: t.project,
      env: t.env,
      startedAt: started.toISOString(),
      finishedAt: finished.toISOString(),
      durationMs: finished.getTime() - started.getTime(),
      include,
      database,
      objects,
      totalBytes: objects.reduce((n, o) => n + o.size, 0),
    };
    // Last: from here on the backup counts as good.
    await reportStep(reporter, `manifest ${prefix}${MANIFEST_FILE}`, () => store.putJson(BACKUP_BUCKET, prefix + MANIFEST_FILE, manifest), () => 'written (backup is good)');
    const deleted: string[] = [];
    let retentionError: string | undefined;
    try {
      deleted.push(...(await enforceRetention(store, t, r.now(), reporter)));
    } catch (err) {
      retentionError = (err as Error).message;
      reporter.info(`  retention: FAILED (${retentionError}); the backup itself is good`);
    }
    return { project: t.project, env: t.env, id, bucket: BACKUP_BUCKET, prefix, manifest, retention: { deleted, ...(retentionError ? { error: retentionError } : {}) } };
  } catch (err) {
    // Best effort: leave no unfinished objects behind (retention removes them later if this fails too).
    await store.deletePrefix(BACKUP_BUCKET, prefix).catch(() => {});
    throw err;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

async function listBackupsOf(store: BackupStore, project: string, env: string): Promise<BackupEntry[]> {
  if (!(await store.bucketExists(BACKUP_BUCKET))) return [];
  const prefix = deploymentPrefix(project, env);
  return backupsFromListing(prefix, await store.list(BACKUP_BUCKET, prefix));
}

async function enforceRetention(store: BackupStore, t: Target, now: Date, reporter: Reporter): Promise<string[]> {
  const decision = retention(await listBackupsOf(store, t.project, t.env), now, t.policy.retentionDays);
  for (const d of decision.delete) {
    const prefix = backupPrefix(t.project, t.env, d.id);
    await store.deletePrefix(BACKUP_BUCKET, prefix, prefix + MANIFEST_FILE);
    reporter.info(`  retention: deleted ${d.id} (${d.why})`);
  }
  return decision.delete.map((d) => d.id);
}

/** `codeb backup prune`: retention alone (run also does it after every good backup). */
export async function pruneBackups(project: string, env: string, ctx: BackupContext = {}): Promise<string[]> {
  const r = resolved(ctx);
  const t = target(r.file, project, env);
  return enforceRetention(new BackupStore(r.settings.storage), t, r.now(), r.reporter);
}

// ---------------------------------------------------------------- list

export interface ListedBackup {
  id: string;
  time: string;
  status: 'good' | 'unfinished';
  bytes: number;
  tables: number | null;
  rows: number | null;
  durationMs: number | null;
  lastVerify: VerifyRecord | null;
}

export async function listBackups(project: string, env: string, ctx: BackupContext = {}): Promise<ListedBackup[]> {
  const r = resolved(ctx);
  requireDeployment(readRegistryFile(r.file), r.file, project, env);
  const store = new BackupStore(r.settings.storage);
  if (!(await store.bucketExists(BACKUP_BUCKET))) return [];
  const prefix = deploymentPrefix(project, env);
  const listing = await store.list(BACKUP_BUCKET, prefix);
  const out: ListedBackup[] = [];
  for (const b of backupsFromListing(prefix, listing)) {
    let m: BackupManifest | null = null;
    if (b.good) m = await store.getJson<BackupManifest>(BACKUP_BUCKET, backupPrefix(project, env, b.id) + MANIFEST_FILE).catch(() => null);
    const verifyKeys = listing.map((o) => o.key).filter((k) => k.startsWith(backupPrefix(project, env, b.id) + 'verify/')).sort();
    const lastVerify = verifyKeys.length ? await store.getJson<VerifyRecord>(BACKUP_BUCKET, verifyKeys.at(-1)!).catch(() => null) : null;
    out.push({
      id: b.id,
      time: b.time.toISOString(),
      status: b.good ? 'good' : 'unfinished',
      bytes: b.bytes,
      tables: m?.database?.tables.length ?? null,
      rows: m?.database ? m.database.tables.reduce((n, x) => n + x.rows, 0) : null,
      durationMs: m?.durationMs ?? null,
      lastVerify,
    });
  }
  return out;
}

// ---------------------------------------------------------------- verify

export interface VerifyResult extends VerifyRecord {
  project: string;
  env: string;
  id: string;
}

/** Pick the backup: the given id (which must be good), or the newest good one. */
async function chooseBackup(store: BackupStore, t: { project: string; env: string }, id: string | undefined): Promise<BackupManifest> {
  const backups = await listBackupsOf(store, t.project, t.env);
  const chosen = id ? backups.find((b) => b.id === assertBackupId(id)) : newestGood(backups);
  if (!chosen) {
    throw new CodebError(id ? `No backup ${id} of ${t.project} (${t.env}).` : `${t.project} (${t.env}) has no good backup.`, {
      hint: id ? '`codeb backup list` shows the backups there are.' : 'Make one: `codeb backup run`.',
    });
  }
  if (!chosen.good) {
    throw new CodebError(`Backup ${chosen.id} of ${t.project} (${t.env}) is unfinished (no manifest: the run failed or was killed); it cannot be trusted.`, {
      hint: 'Use a good one (`codeb backup list`).',
    });
  }
  return store.getJson<BackupManifest>(BACKUP_BUCKET, backupPrefix(t.project, t.env, chosen.id) + MANIFEST_FILE);
}

function compareTables(want: TableCount[], got: TableCount[]): string[] {
  const problems: string[] = [];
  const key = (x: TableCount) => `${x.schema}.${x.table}`;
  const have = new Map(got.map((x) => [key(x), x.rows]));
  for (const w of want) {
    const n = have.get(key(w));
    if (n === undefined) problems.push(`table ${key(w)} is missing after restore`);
    else if (n !== w.rows) problems.push(`table ${key(w)} has ${n} rows after restore, the backup recorded ${w.rows}`);
  }
  const wanted = new Set(want.map(key));
  for (const g of got) if (!wanted.has(key(g))) problems.push(`table ${key(g)} appeared after restore but is not in the backup's manifest`);
  return problems;
}

/** Download every object of a backup and check its sha256; the dump is kept in `dir` for the caller. */
async function checkObjects(store: BackupStore, m: BackupManifest, dir: string, reporter: Reporter): Promise<string[]> {
  const problems: string[] = [];
  const prefix = backupPrefix(m.project, m.env, m.id);
  for (const o of m.objects) {
    const toFile = o.key === DUMP_FILE ? join(dir, DUMP_FILE) : undefined;
    let got: { sha256: string; size: number };
    try {
      got = await store.readBack(BACKUP_BUCKET, prefix + o.key, toFile, o.key === DUMP_FILE ? byteProgress(reporter, 'downloaded', o.size) : undefined);
    } catch (err) {
      if (err instanceof CodebError && /not reachable/.test(err.message)) throw err;
      problems.push(`${o.key}: ${(err as Error).message}`);
      continue;
    }
    if (got.sha256 !== o.sha256 || got.size !== o.size) problems.push(`${o.key}: sha256 or size differs from the manifest (${got.size} bytes, sha256 ${got.sha256.slice(0, 12)}…; recorded ${o.size} bytes, ${o.sha256.slice(0, 12)}…): the object was changed or damaged in the bucket`);
  }
  return problems;
}

/**
 * Restore a backup into a scratch database, compare tables and row counts with its manifest, drop
 * the scratch database, and record the result beside the backup (verify/<time>.json). A failed
 * verification alerts and throws (exit 1) after recording.
 */
export async function verifyBackup(project: string, env: string, id: string | undefined, ctx: BackupContext = {}): Promise<VerifyResult> {
  const r = resolved(ctx);
  const t = target(r.file, project, env);
  if (id !== undefined) assertBackupId(id);
  const store = new BackupStore(r.settings.storage);
  const db = new BackupDatabase(r.settings.postgres);
  const started = r.now();
  const t0 = performance.now();
  const tmp = mkdtempSync(join(tmpdir(), 'codeb-verify-'));
  let m: BackupManifest | undefined;
  try {
    m = await chooseBackup(store, t, id);
    const manifest = m;
    const problems = await reportStep(r.reporter, `download and check ${manifest.objects.length} object(s) of ${manifest.id}`, () => checkObjects(store, manifest, tmp, r.reporter), (p) => (p.length ? `${p.length} problem(s)` : 'sha256 match'));
    let tables = 0;
    let rows = 0;
    if (manifest.database && problems.length === 0) {
      const server = await db.serverVersion();
      const tool = await db.tool('pg_restore', server.major);
      const scratch = `codeb_verify_${randomBytes(5).toString('hex')}`;
      await db.create(scratch, null);
      try {
        await reportStep(r.reporter, `pg_restore into scratch database ${scratch}`, () => db.restore(join(tmp, DUMP_FILE), scratch, tool, { keepOwners: false }), () => 'done');
        const got = await db.counts(scratch);
        tables = got.length;
        rows = got.reduce((n, x) => n + x.rows, 0);
        problems.push(...compareTables(manifest.database.tables, got));
      } catch (err) {
        problems.push(`restore failed: ${(err as Error).message}`);
      } finally {
        await db.drop(scratch).catch((err: unknown) => r.reporter.info(`  could not drop scratch database ${scratch}: ${(err as Error).message}; drop it by hand`));
      }
    }
    const record: VerifyRecord = { at: started.toISOString(), ok: problems.length === 0, durationMs: Math.round(performance.now() - t0), problems, tables, rows };
    await store.putJson(BACKUP_BUCKET, `${backupPrefix(project, env, manifest.id)}verify/${backupId(started)}.json`, record).catch((err: unknown) => {
      r.reporter.info(`  could not record the result in the bucket: ${(err as Error).message}`);
    });
    if (!record.ok) {
      throw new CodebError(`Backup ${manifest.id} of ${project} (${env}) failed verification: ${problems.join('; ')}`, {
        hint: 'Do not rely on this backup. Run `codeb backup run` for a fresh one and verify that.',
      });
    }
    return { ...record, project, env, id: manifest.id };
  } catch (err) {
    if (isInvalidInput(err)) throw err;
    const reason = `verify of ${m?.id ?? id ?? 'the newest backup'} of ${project} (${env}) failed: ${(err as Error).message}`;
    const delivery = await alert(r.file, t, 'backup.failed', reason, r.reporter, ctx.env);
    throw Object.assign(err as Error, { alert: delivery });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- restore and switch

/** `<db>_r<YYYYMMDDHHMMSS>` (cut to Postgres' 63 characters). */
export function restoredDatabaseName(current: string, at: Date): string {
  const stamp = at.toISOString().replace(/[-:T]/g, '').slice(0, 14);
  return assertDatabaseName(`${current.slice(0, 63 - 16)}_r${stamp}`);
}

export interface RestoreResult {
  project: string;
  env: string;
  id: string;
  database: string;
  previousDatabase: string;
  inPlace: boolean;
  switched: boolean;
  safetyBackup?: string;
}

/**
 * Restore a backup's database. Default: into a NEW database owned by the project's role, checked
 * against the manifest's row counts; the project keeps using its current database until
 * switchDatabase (restore --switch does it at once). In place (`--in-place --yes`): a fresh backup
 * of the current state is taken first, then the live database is overwritten.
 */
export async function restoreBackup(project: string, env: string, id: string, opts: { inPlace?: boolean }, ctx: BackupContext = {}): Promise<RestoreResult> {
  const r = resolved(ctx);
  const t = target(r.file, project, env);
  if (!t.record.database || !t.record.databaseRole) throw new CodebError(`${project} (${env}) has no database to restore into.`, { exitCode: EXIT.invalid });
  const store = new BackupStore(r.settings.storage);
  const db = new BackupDatabase(r.settings.postgres);
  const m = await chooseBackup(store, t, id);
  if (!m.database) throw new CodebError(`Backup ${m.id} holds no database dump (include: ${m.include.join(', ')}).`, { exitCode: EXIT.invalid });
  const tmp = mkdtempSync(join(tmpdir(), 'codeb-restore-'));
  try {
    const problems = await reportStep(r.reporter, `download and check ${m.id}`, () => checkObjects(store, { ...m, objects: m.objects.filter((o) => o.key === DUMP_FILE) }, tmp, r.reporter), (p) => (p.length ? 'FAILED' : 'sha256 match'));
    if (problems.length) throw new CodebError(`Backup ${m.id} is damaged: ${problems.join('; ')}`, { hint: 'Restore another backup (`codeb backup list`).' });
    const server = await db.serverVersion();
    const tool = await db.tool('pg_restore', server.major);
    const current = t.record.database;
    if (opts.inPlace) {
      const safety = await runBackup(project, env, ctx);
      r.reporter.info(`  safety backup of the current state: ${safety.id}`);
      await reportStep(r.reporter, `pg_restore --clean into the live database ${current}`, () => db.restore(join(tmp, DUMP_FILE), current, tool, { keepOwners: true, clean: true }), () => 'done');
      const problemsAfter = compareTables(m.database.tables, await db.counts(current)).filter((p) => !p.includes('appeared after restore'));
      if (problemsAfter.length) throw new CodebError(`The restored database ${current} does not match backup ${m.id}: ${problemsAfter.join('; ')}`, { hint: `The state before the restore is backup ${safety.id}.` });
      await recordHistory(r.file, project, env, 'backup-restore', { id: m.id, database: current, inPlace: true, safetyBackup: safety.id });
      return { project, env, id: m.id, database: current, previousDatabase: current, inPlace: true, switched: false, safetyBackup: safety.id };
    }
    const target_ = restoredDatabaseName(current, r.now());
    if (await db.exists(target_)) throw new CodebError(`Database ${target_} already exists.`, { hint: 'Wait a second and run the restore again (names carry the time).' });
    await reportStep(r.reporter, `create database ${target_} (owner ${t.record.databaseRole})`, () => db.create(target_, t.record.databaseRole), () => 'created');
    try {
      await reportStep(r.reporter, `pg_restore ${m.id} into ${target_}`, () => db.restore(join(tmp, DUMP_FILE), target_, tool, { keepOwners: true }), () => 'done');
      const bad = compareTables(m.database.tables, await db.counts(target_));
      if (bad.length) throw new CodebError(`The restored database ${target_} does not match backup ${m.id}: ${bad.join('; ')}`, { hint: `${target_} was dropped and the project still uses its current database. Check the backup with \`codeb backup verify --id ${m.id}\`, or restore another one (\`codeb backup list\`).` });
    } catch (err) {
      await db.drop(target_).catch(() => {});
      throw err;
    }
    await recordHistory(r.file, project, env, 'backup-restore', { id: m.id, database: target_, previousDatabase: current });
    return { project, env, id: m.id, database: target_, previousDatabase: current, inPlace: false, switched: false };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

export interface VolumeRestoreResult {
  project: string;
  env: string;
  id: string;
  volumes: string[];
}

/**
 * Restore the volumes of a backup (include: volumes) in place: each volume's writer is stopped,
 * the volume emptied and filled from the backup's tar, and the writer started again. Every tar is
 * downloaded and checked against the manifest's sha256 before any volume is touched.
 */
export async function restoreVolumes(project: string, env: string, id: string, ctx: BackupContext = {}): Promise<VolumeRestoreResult> {
  const r = resolved(ctx);
  const t = target(r.file, project, env);
  const store = new BackupStore(r.settings.storage);
  const m = await chooseBackup(store, t, id);
  const tars = m.objects.filter((o) => o.key.startsWith('volumes/'));
  if (tars.length === 0) throw new CodebError(`Backup ${m.id} holds no volumes (include: ${m.include.join(', ')}).`, { exitCode: EXIT.invalid, hint: 'Back up volumes with backup.include: [volumes].' });
  const names = tars.map((o) => o.key.slice('volumes/'.length, -'.tar'.length));
  const unknown = names.filter((v) => !(t.record.volumes ?? []).includes(v));
  if (unknown.length) throw new CodebError(`Backup ${m.id} holds volume(s) ${unknown.join(', ')} that ${project} (${env}) does not have.`, { exitCode: EXIT.invalid });
  const tmp = mkdtempSync(join(tmpdir(), 'codeb-restore-'));
  try {
    const problems: string[] = [];
    for (const o of tars) {
      const got = await store.readBack(BACKUP_BUCKET, backupPrefix(project, env, m.id) + o.key, join(tmp, o.key.slice('volumes/'.length)));
      if (got.sha256 !== o.sha256 || got.size !== o.size) problems.push(`${o.key}: sha256 or size differs from the manifest`);
    }
    if (problems.length) throw new CodebError(`Backup ${m.id} is damaged: ${problems.join('; ')}`, { hint: 'Nothing was restored. Restore another backup (`codeb backup list`).' });
    const runtime = await openHostRuntime(r.settings);
    try {
      for (const volume of names) {
        const src = await volumeSource(r.settings.podman.socketPath, project, env, volume);
        await reportStep(r.reporter, `restore volume ${volume} (${src.container} stopped meanwhile)`, () => untarVolume(runtime, src, join(tmp, `${volume}.tar`)), () => 'done');
      }
    } finally {
      await runtime.close();
    }
    await recordHistory(r.file, project, env, 'backup-restore', { id: m.id, volumes: names });
    return { project, env, id: m.id, volumes: names };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

async function recordHistory(file: string, project: string, env: string, action: string, detail: Record<string, unknown>, result: 'ok' | 'failed' = 'ok'): Promise<void> {
  await withRegistryLock(file, { command: `codeb backup ${action} ${project} --env ${env}` }, async (tx) => {
    const doc = tx.read();
    const rec = requireDeployment(doc, file, project, env);
    rec.history = [...rec.history, { at: new Date().toISOString(), by: actor(), action, result, detail }].slice(-50);
    await tx.write(doc);
  });
}

/**
 * Point the deployment at another of its databases (a restored one, or back to the previous one):
 * the registry records it, then the stored manifest is re-applied with the same images, which
 * rewrites the env file (DATABASE_URL) and redeploys blue-green behind the health gate, as
 * `codeb secrets rotate` does. The database left behind is kept.
 */
export async function switchDatabase(project: string, env: string, database: string, ctx: BackupContext = {}) {
  const r = resolved(ctx);
  const t = target(r.file, project, env);
  assertDatabaseName(database);
  if (!t.record.databaseRole || !t.record.database) throw new CodebError(`${project} (${env}) has no database.`, { exitCode: EXIT.invalid });
  const previous = t.record.database;
  if (previous === database) throw new CodebError(`${project} (${env}) already uses ${database}.`, { exitCode: EXIT.invalid });
  const owner = await new BackupDatabase(r.settings.postgres).ownerOf(database);
  if (owner === null) throw new CodebError(`Database ${database} does not exist.`, { exitCode: EXIT.invalid, hint: '`codeb backup restore` prints the name of the database it made.' });
  if (owner !== t.record.databaseRole) {
    throw new CodebError(`Database ${database} is owned by ${owner}, not by ${project}'s role ${t.record.databaseRole}; refusing to switch to it.`, { exitCode: EXIT.invalid });
  }
  await withRegistryLock(r.file, { command: `codeb backup switch ${project} --env ${env} --database ${database}` }, async (tx) => {
    const doc = tx.read();
    const rec = requireDeployment(doc, r.file, project, env);
    rec.database = database;
    rec.history = [...rec.history, { at: new Date().toISOString(), by: actor(), action: 'backup-switch', result: 'ok' as const, detail: { database, previousDatabase: previous } }].slice(-50);
    await tx.write(doc);
  });
  const { applyManifest } = await import('../reconcile/apply.js');
  const rec = readRegistryFile(r.file).projects[project]!.environments[env]!;
  const images = rec.containers.filter((c) => c.slot === rec.liveSlot).map((c) => `${c.service}=${c.image}`);
  const applied = await applyManifest({
    manifestFile: storedManifestPath(r.file, project, env),
    env,
    registry: r.file,
    settings: r.settings,
    images,
    reporter: r.reporter,
    redeployReason: `database switched to ${database} (was ${previous})`,
  });
  return { project, env, database, previousDatabase: previous, apply: applied };
}

// ---------------------------------------------------------------- due

export interface DueOutcome {
  project: string;
  env: string;
  action: 'backed-up' | 'failed' | 'not-due' | 'disabled';
  id?: string;
  error?: string;
  missed?: string;
}

/**
 * `codeb backup run --due`: for every deployment with backups enabled, alert `backup.missed` once
 * per missed slot (no good backup within the schedule plus grace), then run the backup if its
 * schedule fired since the newest good one. State comes from the bucket only.
 */
export async function runDue(ctx: BackupContext & { graceMs?: number } = {}): Promise<DueOutcome[]> {
  const r = resolved(ctx);
  const doc = readRegistryFile(r.file);
  const store = new BackupStore(r.settings.storage);
  const out: DueOutcome[] = [];
  for (const p of Object.values(doc.projects).sort((a, b) => a.id.localeCompare(b.id))) {
    for (const e of Object.values(p.environments).sort((a, b) => a.env.localeCompare(b.env))) {
      if (!hasStoredManifest(r.file, p.id, e.env)) continue;
      let t: Target;
      try {
        t = target(r.file, p.id, e.env);
      } catch (err) {
        out.push({ project: p.id, env: e.env, action: 'failed', error: (err as Error).message });
        continue;
      }
      if (!t.policy.enabled || t.policy.include.length === 0) {
        out.push({ project: p.id, env: e.env, action: 'disabled' });
        continue;
      }
      const o: DueOutcome = { project: p.id, env: e.env, action: 'not-due' };
      try {
        const now = r.now();
        const good = newestGood(await listBackupsOf(store, p.id, e.env));
        const input = { schedule: t.policy.schedule, newestGoodAt: good?.time ?? null, since: new Date(e.createdAt), now };
        const missed = missedSlot(input, ctx.graceMs);
        if (missed) {
          const marker = `${deploymentPrefix(p.id, e.env)}missed/${backupId(missed)}.json`;
          if (!(await store.exists(BACKUP_BUCKET, marker))) {
            const reason = `no good backup of ${p.id} (${e.env}) since the one scheduled at ${missed.toISOString()} ("${t.policy.schedule}" UTC)${good ? `; the newest good one is ${good.id}` : '; there is none'}`;
            await alert(r.file, t, 'backup.missed', reason, r.reporter, ctx.env);
            await store.ensureBucket(BACKUP_BUCKET);
            await store.putJson(BACKUP_BUCKET, marker, { at: now.toISOString(), slot: missed.toISOString(), reason });
          }
          o.missed = missed.toISOString();
        }
        if (isDue(input)) {
          r.reporter.info(`${p.id} (${e.env}): due ("${t.policy.schedule}" UTC)`);
          const res = await runBackup(p.id, e.env, ctx);
          o.action = 'backed-up';
          o.id = res.id;
        }
      } catch (err) {
        o.action = 'failed';
        o.error = (err as Error).message;
        // runBackup alerts for itself; a failure before it (the bucket unreachable) alerts here.
        if (!(err as { alert?: unknown }).alert) await alert(r.file, t, 'backup.failed', `backup --due of ${p.id} (${e.env}) failed: ${o.error}`, r.reporter, ctx.env);
      }
      out.push(o);
    }
  }
  return out;
}

/** The backup policy of a deployment (from its last applied manifest). */
export function backupPolicy(project: string, env: string, ctx: Pick<BackupContext, 'registry' | 'env'> = {}): Deployment['backup'] {
  const file = registryPath(ctx.registry, ctx.env);
  return target(file, project, env).policy;
}

/** Drop a database the deployment left behind (restore/switch): owned by its role, never the live one. */
export async function dropOldDatabase(project: string, env: string, database: string, ctx: BackupContext = {}): Promise<void> {
  const r = resolved(ctx);
  const t = target(r.file, project, env);
  assertDatabaseName(database);
  if (database === t.record.database) {
    throw new CodebError(`${database} is the database ${project} (${env}) uses now; refusing to drop it.`, { exitCode: EXIT.invalid, hint: 'Switch to another one first (`codeb backup switch`), or destroy the project.' });
  }
  const db = new BackupDatabase(r.settings.postgres);
  const owner = await db.ownerOf(database);
  if (owner === null) throw new CodebError(`Database ${database} does not exist.`, { exitCode: EXIT.invalid, hint: '`codeb backup restore` prints the name of each database it made; nothing to drop here.' });
  if (owner !== t.record.databaseRole) {
    throw new CodebError(`Database ${database} is owned by ${owner}, not by ${project}'s role ${t.record.databaseRole ?? '(none)'}; refusing to drop it.`, { exitCode: EXIT.invalid });
  }
  await db.drop(database);
  await recordHistory(r.file, project, env, 'backup-drop-database', { database });
}
