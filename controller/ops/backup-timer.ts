/**
 * The systemd timer and service that run one deployment's backups on a server, from its cron
 * `backup.schedule`, for a server set up by hand. Pure rendering. A server made by `codeb server
 * init` needs none: its codeb-backups timer runs `backup run --due` for every deployment (timers.ts).
 */
import { envFileName } from '../manifest/names.js';
import { SERVER_CODEB } from '../settings.js';
import { parseCron, toOnCalendar } from './cron.js';

export interface TimerUnits {
  /** codeb-backup-<project>-<env> */
  name: string;
  service: string;
  timer: string;
}

export interface TimerOptions {
  /** The codeb program on the server. */
  codeb?: string;
  /** CODEB_HOME on the server. */
  home?: string;
}

export function backupTimerUnits(project: string, env: string, schedule: string, opts: TimerOptions = {}): TimerUnits {
  envFileName(project, env); // validates both as labels: they go into unit files and a command line
  const name = `codeb-backup-${project}-${env}`;
  const codeb = opts.codeb ?? SERVER_CODEB;
  const home = opts.home ?? '/opt/codeb';
  if (!/^\/[A-Za-z0-9._/-]+$/.test(codeb) || !/^\/[A-Za-z0-9._/-]+$/.test(home)) {
    throw new Error('codeb and home must be absolute paths of letters, digits, ., _, - and /');
  }
  const calendars = toOnCalendar(parseCron(schedule));
  const service = [
    '# Rendered by codeb (`codeb backup timer`); do not edit: re-render after changing backup.schedule.',
    '[Unit]',
    `Description=codeb backup of ${project} (${env})`,
    'Wants=network-online.target',
    'After=network-online.target',
    '',
    '[Service]',
    'Type=oneshot',
    `Environment=CODEB_HOME=${home}`,
    `ExecStart=${codeb} backup run ${project} --env ${env}`,
    // A dump of a large database can take hours; a stuck one is still ended eventually.
    'TimeoutStartSec=6h',
    'Nice=10',
    'IOSchedulingClass=idle',
    '',
  ].join('\n');
  const timer = [
    '# Rendered by codeb (`codeb backup timer`); do not edit: re-render after changing backup.schedule.',
    '[Unit]',
    `Description=codeb backup schedule of ${project} (${env}): ${schedule} (UTC)`,
    '',
    '[Timer]',
    ...calendars.map((c) => `OnCalendar=${c}`),
    // A slot missed while the server was off runs at the next boot.
    'Persistent=true',
    `Unit=${name}.service`,
    '',
    '[Install]',
    'WantedBy=timers.target',
    '',
  ].join('\n');
  return { name, service, timer };
}
