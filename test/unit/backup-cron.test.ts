import { describe, expect, it } from 'vitest';
import { parseCron, previousRun, toOnCalendar } from '../../controller/ops/cron.js';
import { backupTimerUnits } from '../../controller/ops/backup-timer.js';

describe('cron -> systemd OnCalendar', () => {
  const cases: Array<[string, string[]]> = [
    ['0 3 * * *', ['*-*-* 03:00:00 UTC']],
    ['*/15 * * * *', ['*-*-* *:00,15,30,45:00 UTC']],
    ['30 2 * * 0', ['Sun *-*-* 02:30:00 UTC']],
    ['30 2 * * 7', ['Sun *-*-* 02:30:00 UTC']],
    ['0 4 * * 1-5', ['Mon..Fri *-*-* 04:00:00 UTC']],
    ['0 4 * * 0-2', ['Mon,Tue,Sun *-*-* 04:00:00 UTC']],
    ['0 4 * * 5-7', ['Fri..Sun *-*-* 04:00:00 UTC']],
    ['0 0 1 * *', ['*-*-01 00:00:00 UTC']],
    ['0 0 1,15 1-3 *', ['*-01..03-01,15 00:00:00 UTC']],
    ['5 0-23/6 * * *', ['*-*-* 00,06,12,18:05:00 UTC']],
    ['0 9-17 * * *', ['*-*-* 09..17:00:00 UTC']],
    // Both day fields restricted: cron fires on either, systemd ANDs them, so two expressions.
    ['0 3 1 * 1', ['*-*-01 03:00:00 UTC', 'Mon *-*-* 03:00:00 UTC']],
    // A stepped star in a day field keeps cron's AND.
    ['0 3 */2 * 1', ['Mon *-*-01,03,05,07,09,11,13,15,17,19,21,23,25,27,29,31 03:00:00 UTC']],
    ['* * * * *', ['*-*-* *:*:00 UTC']],
  ];
  for (const [cron, want] of cases) {
    it(`${cron} -> ${want.join(' | ')}`, () => expect(toOnCalendar(parseCron(cron))).toEqual(want));
  }

  const bad: Array<[string, RegExp]> = [
    ['0 3 * *', /4 fields, expected 5/],
    ['60 3 * * *', /minute field "60" is outside 0-59/],
    ['0 24 * * *', /hour field/],
    ['0 3 0 * *', /day of month field "0"/],
    ['0 3 * 13 *', /month field/],
    ['0 3 * * 8', /day of week field/],
    ['0 5-3 * * *', /runs backwards/],
    ['*/0 * * * *', /step of 0/],
    ['a 3 * * *', /expected \*, N, A-B/],
  ];
  for (const [cron, msg] of bad) {
    it(`rejects ${JSON.stringify(cron)} with exit 2`, () => {
      let err: unknown;
      try {
        parseCron(cron);
      } catch (e) {
        err = e;
      }
      expect((err as Error).message).toMatch(msg);
      expect((err as { exitCode: number }).exitCode).toBe(2);
    });
  }
});

describe('previousRun (UTC)', () => {
  const cases: Array<[string, string, string | null]> = [
    ['0 3 * * *', '2026-11-29T03:00:00Z', '2026-11-29T03:00:00.000Z'],
    ['0 3 * * *', '2026-11-29T02:59:59Z', '2026-11-28T03:00:00.000Z'],
    ['0 3 * * *', '2026-11-29T22:10:00Z', '2026-11-29T03:00:00.000Z'],
    ['*/15 * * * *', '2026-11-29T22:14:59Z', '2026-11-29T22:00:00.000Z'],
    ['30 2 * * 0', '2026-11-29T12:00:00Z', '2026-11-29T02:30:00.000Z'], // 2026-11-29 is a Sunday
    ['30 2 * * 1', '2026-11-29T12:00:00Z', '2026-11-23T02:30:00.000Z'],
    ['0 0 1 * *', '2026-03-15T00:00:00Z', '2026-03-01T00:00:00.000Z'],
    ['0 0 1 * 1', '2026-03-04T00:00:00Z', '2026-03-02T00:00:00.000Z'], // Monday 2 March beats the 1st
    ['0 0 29 2 *', '2026-03-01T00:00:00Z', '2024-02-29T00:00:00.000Z'],
    ['0 0 31 2 *', '2026-03-01T00:00:00Z', null],
  ];
  for (const [cron, now, want] of cases) {
    it(`${cron} at ${now} -> ${want}`, () => expect(previousRun(parseCron(cron), new Date(now))?.toISOString() ?? null).toBe(want));
  }
});

describe('backup timer units', () => {
  it('renders a oneshot service and a persistent UTC timer', () => {
    const u = backupTimerUnits('shop', 'production', '0 3 1 * 1');
    expect(u.name).toBe('codeb-backup-shop-production');
    expect(u.service).toContain('ExecStart=/opt/codeb/bin/codeb.js backup run shop --env production\n');
    expect(u.service).toContain('Type=oneshot\n');
    expect(u.service).toContain('Environment=CODEB_HOME=/opt/codeb\n');
    expect(u.timer).toContain('OnCalendar=*-*-01 03:00:00 UTC\nOnCalendar=Mon *-*-* 03:00:00 UTC\n');
    expect(u.timer).toContain('Persistent=true\n');
    expect(u.timer).toContain('Unit=codeb-backup-shop-production.service\n');
  });
  it('refuses names and paths that would break the unit files', () => {
    expect(() => backupTimerUnits('Shop;rm', 'production', '0 3 * * *')).toThrow(/Invalid project id/);
    expect(() => backupTimerUnits('shop', 'production', '0 3 * * *', { codeb: 'codeb backup' })).toThrow(/absolute paths/);
  });
});
