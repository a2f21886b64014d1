import { describe, expect, it } from 'vitest';
import { backupId, backupsFromListing, retention, type BackupEntry } from '../../controller/ops/backup-layout.js';
import { isDue, missedSlot } from '../../controller/ops/backup-schedule.js';

const NOW = new Date('2026-11-29T12:00:00Z');
const daysAgo = (d: number, h = 0) => new Date(NOW.getTime() - d * 86400_000 - h * 3600_000);
const b = (d: number, good = true, h = 0): BackupEntry => {
  const time = daysAgo(d, h);
  return { id: backupId(time), time, good, bytes: 1 };
};

describe('retention (fixed clock)', () => {
  const cases: Array<{ name: string; backups: BackupEntry[]; days: number; deleted: number[] }> = [
    { name: 'nothing old: all kept', backups: [b(1), b(2), b(3)], days: 30, deleted: [] },
    { name: 'older than retentionDays: deleted', backups: [b(40), b(31), b(29), b(1)], days: 30, deleted: [0, 1] },
    { name: 'every backup old: the newest good one is kept', backups: [b(90), b(60), b(45)], days: 30, deleted: [0, 1] },
    { name: 'newest is unfinished: the newest GOOD one is kept', backups: [b(60), b(50), b(45, false)], days: 30, deleted: [0, 2] },
    { name: 'unfinished younger than a day: may still run, kept', backups: [b(1), b(0, false, 2)], days: 30, deleted: [] },
    { name: 'unfinished older than a day: a killed run, deleted', backups: [b(3, false), b(1)], days: 30, deleted: [0] },
    { name: 'only unfinished ones: none is protected', backups: [b(40, false), b(2, false)], days: 30, deleted: [0, 1] },
    { name: 'retention of one day', backups: [b(3), b(2), b(0, true, 1)], days: 1, deleted: [0, 1] },
    { name: 'empty', backups: [], days: 30, deleted: [] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const r = retention(c.backups, NOW, c.days);
      expect(r.delete.map((d) => d.id).sort()).toEqual(c.deleted.map((i) => c.backups[i]!.id).sort());
      expect([...r.keep, ...r.delete.map((d) => d.id)].sort()).toEqual(c.backups.map((x) => x.id).sort());
      const goods = c.backups.filter((x) => x.good).sort((x, y) => y.id.localeCompare(x.id));
      if (goods[0]) expect(r.keep).toContain(goods[0].id);
    });
  }
});

describe('backups from a bucket listing', () => {
  it('groups objects by id; manifest.json makes one good; other keys are ignored', () => {
    const listing = [
      { key: 'shop/production/20261128T030000.000Z/database.dump', size: 100 },
      { key: 'shop/production/20261128T030000.000Z/manifest.json', size: 10 },
      { key: 'shop/production/20261129T030000.000Z/database.dump', size: 50 },
      { key: 'shop/production/missed/20261127T030000.000Z.json', size: 5 },
      { key: 'shop/production/notanid/x', size: 5 },
      { key: 'other/production/20261129T030000.000Z/manifest.json', size: 5 },
    ];
    expect(backupsFromListing('shop/production/', listing).map((x) => [x.id, x.good, x.bytes])).toEqual([
      ['20261128T030000.000Z', true, 110],
      ['20261129T030000.000Z', false, 50],
    ]);
  });
});

describe('due and missed (fixed clock)', () => {
  const since = new Date('2026-01-01T00:00:00Z');
  const at = (s: string) => new Date(s);
  const cases: Array<{ name: string; schedule: string; good: string | null; now: string; due: boolean; missed: string | null; since?: string }> = [
    { name: 'fired, no backup since', schedule: '0 3 * * *', good: '2026-11-28T03:00:01Z', now: '2026-11-29T03:05:00Z', due: true, missed: null },
    { name: 'fired and backed up', schedule: '0 3 * * *', good: '2026-11-29T03:00:02Z', now: '2026-11-29T06:00:00Z', due: false, missed: null },
    { name: 'late beyond the 2 h grace: missed', schedule: '0 3 * * *', good: '2026-11-28T03:00:01Z', now: '2026-11-29T05:30:00Z', due: true, missed: '2026-11-29T03:00:00.000Z' },
    { name: 'never backed up', schedule: '0 3 * * *', good: null, now: '2026-11-29T12:00:00Z', due: true, missed: '2026-11-29T03:00:00.000Z' },
    { name: 'deployment created after the slot: neither', schedule: '0 3 * * *', good: null, now: '2026-11-29T12:00:00Z', due: false, missed: null, since: '2026-11-29T10:00:00Z' },
    { name: 'before today\'s slot, yesterday\'s done', schedule: '0 3 * * *', good: '2026-11-28T03:01:00Z', now: '2026-11-29T02:00:00Z', due: false, missed: null },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const input = { schedule: c.schedule, newestGoodAt: c.good ? at(c.good) : null, since: c.since ? at(c.since) : since, now: at(c.now) };
      expect(isDue(input)).toBe(c.due);
      expect(missedSlot(input)?.toISOString() ?? null).toBe(c.missed);
    });
  }
});
