/**
 * Five-field cron schedules (`backup.schedule`): parsing, "when did it last fire", and the
 * translation into systemd OnCalendar= expressions for the timers on a server. Pure.
 *
 * Schedules are read in UTC everywhere (the `--due` check and the rendered timers, which carry
 * an explicit ` UTC`), so a server's local time zone never shifts a backup.
 *
 * Semantics follow Vixie cron: fields minute hour day-of-month month day-of-week, each a list of
 * `*`, `N`, `A-B`, with an optional `/STEP`; day-of-week 0 and 7 are Sunday. When both day fields
 * are restricted (neither starts with `*`), a day matches if EITHER matches.
 */
import { CodebError, EXIT } from '../errors.js';

export interface CronSchedule {
  source: string;
  minutes: number[];
  hours: number[];
  daysOfMonth: number[];
  months: number[];
  /** 0 = Sunday ... 6 = Saturday. */
  daysOfWeek: number[];
  domStar: boolean;
  dowStar: boolean;
}

const FIELDS = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12 },
  { name: 'day of week', min: 0, max: 7 },
] as const;

function invalid(source: string, why: string): CodebError {
  return new CodebError(`Invalid cron schedule ${JSON.stringify(source)}: ${why}.`, {
    exitCode: EXIT.invalid,
    where: 'backup.schedule',
    hint: 'Use five fields: minute hour day-of-month month day-of-week, e.g. "0 3 * * *" (03:00 UTC daily) or "*/30 * * * 1-5".',
  });
}

function parseField(source: string, text: string, f: (typeof FIELDS)[number]): number[] {
  const out = new Set<number>();
  for (const part of text.split(',')) {
    const m = /^(\*|(\d+)(?:-(\d+))?)(?:\/(\d+))?$/.exec(part);
    if (!m) throw invalid(source, `the ${f.name} field has "${part}", expected *, N, A-B, optionally /STEP`);
    let lo: number = f.min;
    let hi: number = f.max;
    if (m[1] !== '*') {
      lo = Number(m[2]);
      hi = m[3] !== undefined ? Number(m[3]) : m[4] !== undefined ? f.max : lo;
    }
    const step = m[4] !== undefined ? Number(m[4]) : 1;
    if (lo < f.min || hi > f.max || lo > hi) throw invalid(source, `the ${f.name} field "${part}" is outside ${f.min}-${f.max} or runs backwards`);
    if (step < 1) throw invalid(source, `the ${f.name} field "${part}" has a step of 0`);
    for (let v = lo; v <= hi; v += step) out.add(v);
  }
  return [...out].sort((a, b) => a - b);
}

export function parseCron(source: string): CronSchedule {
  const fields = source.trim().split(/\s+/);
  if (fields.length !== 5) throw invalid(source, `${fields.length} fields, expected 5`);
  const [mi, ho, dom, mo, dow] = fields.map((t, i) => parseField(source, t, FIELDS[i]!)) as [number[], number[], number[], number[], number[]];
  return {
    source,
    minutes: mi,
    hours: ho,
    daysOfMonth: dom,
    months: mo,
    daysOfWeek: [...new Set(dow.map((d) => d % 7))].sort((a, b) => a - b),
    domStar: fields[2]!.startsWith('*'),
    dowStar: fields[4]!.startsWith('*'),
  };
}

function dayMatches(s: CronSchedule, d: Date): boolean {
  if (!s.months.includes(d.getUTCMonth() + 1)) return false;
  const dom = s.daysOfMonth.includes(d.getUTCDate());
  const dow = s.daysOfWeek.includes(d.getUTCDay());
  if (!s.domStar && !s.dowStar) return dom || dow;
  return dom && dow;
}

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;

/**
 * The latest time at or before `now` (to the minute, UTC) at which the schedule fires; null when
 * it never fired within the last 5 years (e.g. "0 0 31 2 *").
 */
export function previousRun(s: CronSchedule, now: Date): Date | null {
  const dayStart = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  const nowMinute = Math.floor((now.getTime() - dayStart) / MINUTE);
  for (let i = 0; i < 366 * 5; i++) {
    const day = new Date(dayStart - i * DAY);
    if (!dayMatches(s, day)) continue;
    const limit = i === 0 ? nowMinute : 24 * 60 - 1;
    for (let h = s.hours.length - 1; h >= 0; h--) {
      for (let m = s.minutes.length - 1; m >= 0; m--) {
        const minuteOfDay = s.hours[h]! * 60 + s.minutes[m]!;
        if (minuteOfDay <= limit) return new Date(day.getTime() + minuteOfDay * MINUTE);
      }
    }
  }
  return null;
}

const WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];

/** 1,2,3,5 -> ["1..3", "5"] (with a formatter for each value). */
function ranges(values: number[], fmt: (v: number) => string): string {
  const out: string[] = [];
  for (let i = 0; i < values.length; ) {
    let j = i;
    while (j + 1 < values.length && values[j + 1] === values[j]! + 1) j++;
    if (j - i >= 2) out.push(`${fmt(values[i]!)}..${fmt(values[j]!)}`);
    else for (let k = i; k <= j; k++) out.push(fmt(values[k]!));
    i = j + 1;
  }
  return out.join(',');
}

function component(values: number[], min: number, max: number): string {
  if (values.length === max - min + 1) return '*';
  return ranges(values, (v) => String(v).padStart(2, '0'));
}

function weekdays(days: number[]): string {
  // systemd orders the week Monday..Sunday.
  const order = [...days].sort((a, b) => ((a + 6) % 7) - ((b + 6) % 7)).map((d) => (d + 6) % 7);
  return ranges(order, (v) => WEEKDAYS[(v + 1) % 7]!);
}

/**
 * systemd OnCalendar= values (one timer may carry several) firing at the same minutes as the
 * schedule, in UTC. Cron's "day of month OR day of week" becomes two expressions, because systemd
 * ANDs the weekday with the date.
 */
export function toOnCalendar(s: CronSchedule): string[] {
  const time = `${component(s.hours, 0, 23)}:${component(s.minutes, 0, 59)}:00 UTC`;
  const month = component(s.months, 1, 12);
  const dom = component(s.daysOfMonth, 1, 31);
  const allWeek = s.daysOfWeek.length === 7;
  const date = (d: string) => `*-${month}-${d}`;
  if (!s.domStar && !s.dowStar) {
    return [`${date(dom)} ${time}`, `${weekdays(s.daysOfWeek)} ${date('*')} ${time}`];
  }
  const dow = allWeek ? '' : `${weekdays(s.daysOfWeek)} `;
  return [`${dow}${date(dom)} ${time}`];
}
