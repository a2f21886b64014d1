/**
 * How backups sit in the shared backup bucket, and the decisions made from a listing of it. Pure.
 *
 *   <project>/<env>/<id>/database.dump            pg_dump custom format
 *   <project>/<env>/<id>/storage/<bucket>/<key>   copies of the project's bucket objects (include: storage)
 *   <project>/<env>/<id>/manifest.json            written LAST, only after every object above was read
 *                                                 back and matched its sha256: its presence is what
 *                                                 makes a backup "good"
 *   <project>/<env>/<id>/verify/<time>.json       one result per `codeb backup verify`
 *   <project>/<env>/missed/<id>.json              a backup.missed alert was sent for that slot (sent once)
 *
 * <id> is the UTC start time, `20261129T030000.123Z`, so ids sort by time as strings.
 */
import { CodebError, EXIT } from '../errors.js';
import type { BackupPart } from '../manifest/types.js';

export const DUMP_FILE = 'database.dump';
export const MANIFEST_FILE = 'manifest.json';

const ID = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})\.(\d{3})Z$/;

export function backupId(t: Date): string {
  return t.toISOString().replace(/[-:]/g, '');
}

export function idTime(id: string): Date | null {
  const m = ID.exec(id);
  if (!m) return null;
  const t = new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}.${m[7]}Z`);
  return Number.isNaN(t.getTime()) ? null : t;
}

export function assertBackupId(id: string): string {
  if (!idTime(id)) {
    throw new CodebError(`Invalid backup id ${JSON.stringify(id)}.`, {
      exitCode: EXIT.invalid,
      hint: 'Backup ids look like 20261129T030000.123Z; `codeb backup list <project>` shows them.',
    });
  }
  return id;
}

export function deploymentPrefix(project: string, env: string): string {
  return `${project}/${env}/`;
}

export function backupPrefix(project: string, env: string, id: string): string {
  return `${deploymentPrefix(project, env)}${id}/`;
}

export interface ObjectEntry {
  /** Key inside the bucket, relative to the backup's prefix (database.dump, storage/b/k). */
  key: string;
  size: number;
  sha256: string;
}

export interface TableCount {
  schema: string;
  table: string;
  rows: number;
}

/** manifest.json: what was backed up, checked on read-back and by verify. */
export interface BackupManifest {
  formatVersion: 1;
  id: string;
  project: string;
  env: string;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  include: BackupPart[];
  database: {
    name: string;
    serverVersion: string;
    pgDumpVersion: string;
    tables: TableCount[];
  } | null;
  objects: ObjectEntry[];
  totalBytes: number;
}

export interface VerifyRecord {
  at: string;
  ok: boolean;
  durationMs: number;
  problems: string[];
  tables: number;
  rows: number;
}

/** One backup as seen in a listing of the bucket. */
export interface BackupEntry {
  id: string;
  time: Date;
  /** manifest.json exists: every object was uploaded and read back intact. */
  good: boolean;
  bytes: number;
}

/** Group a listing of `<project>/<env>/` into backups (keys that are not backups are ignored). */
export function backupsFromListing(prefix: string, objects: Array<{ key: string; size: number }>): BackupEntry[] {
  const byId = new Map<string, BackupEntry>();
  for (const o of objects) {
    if (!o.key.startsWith(prefix)) continue;
    const rest = o.key.slice(prefix.length);
    const slash = rest.indexOf('/');
    if (slash < 0) continue;
    const id = rest.slice(0, slash);
    const time = idTime(id);
    if (!time) continue;
    const e = byId.get(id) ?? { id, time, good: false, bytes: 0 };
    if (rest.slice(slash + 1) === MANIFEST_FILE) e.good = true;
    e.bytes += o.size;
    byId.set(id, e);
  }
  return [...byId.values()].sort((a, b) => a.id.localeCompare(b.id));
}

/** An unfinished backup younger than this may still be running; older ones are a crashed run's leftovers. */
export const INCOMPLETE_GRACE_MS = 24 * 3600_000;

export interface RetentionDecision {
  keep: string[];
  delete: Array<{ id: string; why: string }>;
}

/**
 * Which backups retention removes: good ones older than retentionDays (never the newest good one,
 * whatever its age), and unfinished ones older than retentionDays or than a day. Computed from what
 * is in the bucket and the clock, nothing else.
 */
export function retention(backups: BackupEntry[], now: Date, retentionDays: number): RetentionDecision {
  const cutoff = now.getTime() - retentionDays * 24 * 3600_000;
  const newestGood = [...backups].filter((b) => b.good).sort((a, b) => b.id.localeCompare(a.id))[0]?.id;
  const out: RetentionDecision = { keep: [], delete: [] };
  for (const b of [...backups].sort((x, y) => x.id.localeCompare(y.id))) {
    const t = b.time.getTime();
    if (b.id === newestGood) out.keep.push(b.id);
    else if (b.good && t < cutoff) out.delete.push({ id: b.id, why: `older than ${retentionDays} days` });
    else if (!b.good && (t < cutoff || t < now.getTime() - INCOMPLETE_GRACE_MS)) out.delete.push({ id: b.id, why: 'unfinished (no manifest), left by a failed or killed run' });
    else out.keep.push(b.id);
  }
  return out;
}

export function newestGood(backups: BackupEntry[]): BackupEntry | undefined {
  return [...backups].filter((b) => b.good).sort((a, b) => b.id.localeCompare(a.id))[0];
}
