/**
 * systemd units for a server's shared services (`codeb server init`), rendered from the same launch
 * specs the local stack starts as detached processes (controller/stack/*: command, arguments,
 * environment, user, umask). On a server systemd supervises: restarts on failure, starts at boot,
 * in order after the services interface. Pure: text in, text out.
 */
import { systemdQuote as quoteWord } from '../runtime/units.js';
import type { LaunchSpec } from '../stack/part.js';
import type { StackNetwork } from '../stack/layout.js';

/** The unit names codeb owns on a server, by stack part. */
export const UNIT_NAMES = {
  network: 'codeb-network.service',
  postgres: 'codeb-postgres.service',
  redis: 'codeb-redis.service',
  s3: 'codeb-s3.service',
  caddy: 'codeb-caddy.service',
  forwarder: 'codeb-forwarder.service',
} as const;

export type ServerUnit = keyof typeof UNIT_NAMES;

/** One word of an Exec line or an Environment assignment: runtime/units.ts's quoting, always in double quotes. */
export const systemdQuote = (word: string): string => quoteWord(word, 'word of a codeb service unit', true);

/** A path setting (WorkingDirectory=) takes no quotes: only plain absolute paths are written. */
export function plainPath(path: string): string {
  if (!/^\/[A-Za-z0-9._/@+-]*$/.test(path)) throw new Error(`not a plain absolute path for a systemd unit: ${JSON.stringify(path)}`);
  return path;
}

export interface ServiceUnitOptions {
  description: string;
  spec: LaunchSpec;
  stopSignal: NodeJS.Signals;
  /** Units this one needs started first (and restarted with). */
  after?: string[];
  /** Extra [Service] lines (e.g. RuntimeDirectory=). */
  extra?: string[];
}

export function serviceUnit(o: ServiceUnitOptions): string {
  const s = o.spec;
  const after = ['network-online.target', UNIT_NAMES.network, ...(o.after ?? [])];
  const env = Object.entries(s.env)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `Environment=${systemdQuote(`${k}=${v}`)}`);
  return [
    '# Written by codeb server init; edits are overwritten by the next init.',
    '[Unit]',
    `Description=${o.description}`,
    `After=${after.join(' ')}`,
    `Wants=network-online.target`,
    `Requires=${[UNIT_NAMES.network, ...(o.after ?? [])].join(' ')}`,
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${[s.command, ...s.args].map(systemdQuote).join(' ')}`,
    `WorkingDirectory=${plainPath(s.cwd)}`,
    ...env,
    ...(s.uid !== undefined ? [`User=${s.uid}`] : []),
    ...(s.gid !== undefined ? [`Group=${s.gid}`] : []),
    ...(s.umask !== undefined ? [`UMask=${s.umask.toString(8).padStart(4, '0')}`] : []),
    `KillSignal=${o.stopSignal}`,
    'TimeoutStopSec=60',
    'Restart=on-failure',
    'RestartSec=2',
    ...(o.extra ?? []),
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

/**
 * The services interface (docs/runtime.md, "Networks"): a dummy interface (an empty bridge where
 * the kernel has no dummy driver) holding the services address, made at every boot before the
 * services that listen on it. Addresses and names come from parsePool/servicesInterfaceName.
 */
export function networkUnit(net: StackNetwork, ipPath = '/usr/sbin/ip'): string {
  const ip = (...args: string[]) => `ExecStart=${[ipPath, ...args].map(systemdQuote).join(' ')}`;
  const make = `${ipPath} link show ${net.interface} >/dev/null 2>&1 || ${ipPath} link add ${net.interface} type dummy 2>/dev/null || ${ipPath} link add ${net.interface} type bridge`;
  return [
    '# Written by codeb server init; edits are overwritten by the next init.',
    '[Unit]',
    `Description=codeb services address ${net.servicesAddress} on ${net.interface} (containers reach Postgres, Redis, S3 there)`,
    'DefaultDependencies=no',
    'After=systemd-networkd.service networking.service',
    'Before=network-online.target',
    '',
    '[Service]',
    'Type=oneshot',
    'RemainAfterExit=yes',
    `ExecStart=/bin/sh -c ${systemdQuote(make)}`,
    ip('addr', 'replace', `${net.servicesAddress}/32`, 'dev', net.interface),
    ip('link', 'set', net.interface, 'up'),
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}
