/**
 * When a backup is due and when one was missed, from the schedule, the newest good backup in the
 * bucket and the clock. Pure (table-tested in test/unit/backup-schedule.test.ts).
 */
import { parseCron, previousRun } from './cron.js';

/** How late a backup may be before `backup.missed` is sent (the run itself can take a while). */
export const DEFAULT_MISSED_GRACE_MS = 2 * 3600_000;

export interface ScheduleInput {
  schedule: string;
  /** Start time of the newest good backup, if any. */
  newestGoodAt: Date | null;
  /** When the deployment was created: slots before it are neither due nor missed. */
  since: Date;
  now: Date;
}

/** Due when the schedule fired (after the deployment existed) and no good backup started since. */
export function isDue(i: ScheduleInput): boolean {
  const fired = previousRun(parseCron(i.schedule), i.now);
  if (!fired || fired.getTime() < i.since.getTime() - 60_000) return false;
  return !i.newestGoodAt || i.newestGoodAt.getTime() < fired.getTime();
}

/**
 * The scheduled time whose backup is missing although `graceMs` has passed since it, or null.
 * Each slot is reported once (the caller records that it did, in the bucket).
 */
export function missedSlot(i: ScheduleInput, graceMs = DEFAULT_MISSED_GRACE_MS): Date | null {
  const slot = previousRun(parseCron(i.schedule), new Date(i.now.getTime() - graceMs));
  if (!slot || slot.getTime() < i.since.getTime()) return null;
  if (i.newestGoodAt && i.newestGoodAt.getTime() >= slot.getTime()) return null;
  return slot;
}
