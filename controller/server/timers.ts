/**
 * The periodic work of a server, as systemd timers that `codeb server init` installs: each runs a
 * codeb command that decides for itself what is due, for every deployment on the server, so one
 * timer per kind of work serves all projects and a new project needs no new unit.
 *   - codeb-monitor: `codeb monitor` every minute (health recorded, an alert on each change);
 *   - codeb-jobs: `codeb jobs run --due` every minute (the manifests' `jobs:` schedules);
 *   - codeb-backups: `codeb backup run --due` every 5 minutes (each `backup.schedule`; a missed
 *     slot is sent as `backup.missed`).
 * A oneshot service is not started again while it still runs, so a slow backup never overlaps
 * itself. Pure: text in, text out.
 */
import { SERVER_CODEB } from '../settings.js';
import { plainPath } from './units.js';

export interface ServerTimer {
  /** codeb-monitor, codeb-jobs, codeb-backups: <name>.service and <name>.timer */
  name: string;
  service: string;
  timer: string;
}

interface TimerKind {
  name: string;
  what: string;
  args: string[];
  /** systemd OnCalendar= (UTC, like the manifests' schedules). */
  calendar: string;
  /** Longest run before systemd ends it. */
  timeout: string;
  /** Runs at low CPU and I/O priority (backups: the apps come first). */
  background?: boolean;
  /** Exit statuses that are a finished run, not a failed unit. */
  success?: string;
  /** How long it waits for the registry lock (a deploy holds it for its whole run). */
  lockWait: string;
}

const KINDS: TimerKind[] = [
  { name: 'codeb-monitor', what: 'health of every deployment through Caddy (codeb monitor)', args: ['monitor'], calendar: '*-*-* *:*:00 UTC', timeout: '10min', success: '1', lockWait: '300000' },
  { name: 'codeb-jobs', what: 'scheduled jobs that are due (codeb jobs run --due)', args: ['jobs', 'run', '--due'], calendar: '*-*-* *:*:00 UTC', timeout: '6h', lockWait: '1800000' },
  { name: 'codeb-backups', what: 'backups that are due (codeb backup run --due)', args: ['backup', 'run', '--due'], calendar: '*-*-* *:00/5:00 UTC', timeout: '6h', background: true, lockWait: '1800000' },
];

export const SERVER_TIMER_NAMES = KINDS.map((k) => k.name);

export function serverTimers(opts: { codeb?: string; home?: string } = {}): ServerTimer[] {
  const codeb = plainPath(opts.codeb ?? SERVER_CODEB);
  const home = plainPath(opts.home ?? '/opt/codeb');
  const header = '# Written by codeb server init; edits are overwritten by the next init.';
  return KINDS.map((k) => ({
    name: k.name,
    service: [
      header,
      '[Unit]',
      `Description=codeb: ${k.what}`,
      'Wants=network-online.target',
      'After=network-online.target codeb-forwarder.service codeb-caddy.service',
      '',
      '[Service]',
      'Type=oneshot',
      `Environment=CODEB_HOME=${home}`,
      // A pass that meets a deploy (it holds the registry lock throughout) waits for it instead of
      // failing after the default 60 s and leaving a failed unit until the next pass.
      `Environment=CODEB_LOCK_TIMEOUT_MS=${k.lockWait}`,
      // CODEB_SMTP_URL / CODEB_SMTP_FROM for mailed alerts: the operator's file, optional ('-').
      'EnvironmentFile=-/etc/codeb/alerts.env',
      `ExecStart=${[codeb, ...k.args].join(' ')}`,
      `TimeoutStartSec=${k.timeout}`,
      // monitor exits 1 while an app is unhealthy: that is what it records and alerts, not a failure of its unit.
      ...(k.success ? [`SuccessExitStatus=${k.success}`] : []),
      ...(k.background ? ['Nice=10', 'IOSchedulingClass=idle'] : []),
      '',
    ].join('\n'),
    timer: [
      header,
      '[Unit]',
      `Description=codeb: ${k.what}, on ${k.calendar}`,
      '',
      '[Timer]',
      `OnCalendar=${k.calendar}`,
      // A slot missed while the server was off fires once at boot (the command itself sees what is due).
      'Persistent=true',
      `Unit=${k.name}.service`,
      '',
      '[Install]',
      'WantedBy=timers.target',
      '',
    ].join('\n'),
  }));
}

export interface TimerObservation {
  /** The .service and .timer files as they are (null: absent). */
  service: string | null;
  timer: string | null;
  /** The .timer unit is active and enabled. */
  active: boolean;
  enabled: boolean;
}

export interface TimerStep {
  target: string;
  action: 'write-and-start' | 'rewrite-and-restart' | 'start';
  why: string;
}

/** What to do for the timers, from what is there (pure): nothing when every one is written, enabled and active. */
export function planTimers(seen: Record<string, TimerObservation>, desired: ServerTimer[]): TimerStep[] {
  const steps: TimerStep[] = [];
  for (const t of desired) {
    const o = seen[t.name];
    const target = `${t.name}.timer`;
    if (!o || (o.service === null && o.timer === null)) steps.push({ target, action: 'write-and-start', why: 'not installed' });
    else if (o.service !== t.service || o.timer !== t.timer) steps.push({ target, action: 'rewrite-and-restart', why: 'its unit files differ from what this codeb writes' });
    else if (!o.active || !o.enabled) steps.push({ target, action: 'start', why: o.active ? 'not enabled at boot' : 'not running' });
  }
  return steps;
}
