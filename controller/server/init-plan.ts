/**
 * `codeb server init`, the decisions: from facts gathered on the server (one POSIX shell script,
 * INIT_FACTS_SCRIPT) and the local bundle's hash, which steps are needed. Pure; unit-tested.
 */
import { CodebError, EXIT } from '../errors.js';
import type { S3Kind } from '../stack/layout.js';
import { allServerPackages, SERVER_PACKAGES } from './packages.js';

/** $@ = the packages to look at. key=value lines; `pkg <name> <installed|missing> <candidate version or none>`. */
export const INIT_FACTS_SCRIPT = [
  '( . /etc/os-release 2>/dev/null; echo "os_id=$ID"; echo "os_version=$VERSION_ID"; echo "os_name=$PRETTY_NAME" )',
  'echo "uid=$(id -u)"',
  'if [ "$(id -u)" != 0 ] && sudo -n true 2>/dev/null; then echo sudo=yes; else echo sudo=no; fi',
  'echo "pid1=$(cat /proc/1/comm 2>/dev/null)"',
  'echo "apt=$(command -v apt-get)"',
  'echo "node=$(node --version 2>/dev/null)"',
  'echo "bundle=$(cat /opt/codeb/.codeb-bundle 2>/dev/null)"',
  'echo "storage=$(cat /opt/codeb/.codeb-storage 2>/dev/null)"',
  'echo "installed_by_init=$(cat /opt/codeb/.codeb-installed 2>/dev/null | tr "\\n" " ")"',
  'for p in "$@"; do',
  '  if [ "$(dpkg-query -W -f=\'${Status}\' "$p" 2>/dev/null)" = "install ok installed" ]; then s=installed; else s=missing; fi',
  '  c=$(apt-cache policy "$p" 2>/dev/null | sed -n "s/^ *Candidate: *//p" | head -n 1)',
  '  echo "pkg $p $s ${c:-none}"',
  'done',
].join('\n');

export interface InitFacts {
  osId: string;
  osVersion: string;
  osName: string;
  uid: number;
  sudo: boolean;
  pid1: string;
  apt: boolean;
  node: string;
  /** Hash of the codeb bundle installed in /opt/codeb ('' when none). */
  bundle: string;
  /** The object storage stand-in an earlier init set up (/opt/codeb/.codeb-storage; '' when none). */
  storage: string;
  /** Packages an earlier init installed (/opt/codeb/.codeb-installed, written by init's apt step). */
  installedByInit: string[];
  packages: Record<string, { installed: boolean; candidate: string | null }>;
}

export function parseInitFacts(text: string): InitFacts {
  const kv: Record<string, string> = {};
  const packages: InitFacts['packages'] = {};
  for (const line of text.split('\n')) {
    const m = /^pkg (\S+) (installed|missing) (\S+)$/.exec(line.trim());
    if (m) {
      packages[m[1]!] = { installed: m[2] === 'installed', candidate: m[3] === 'none' || m[3] === '(none)' ? null : m[3]! };
      continue;
    }
    const eq = line.indexOf('=');
    if (eq > 0) kv[line.slice(0, eq)] = line.slice(eq + 1).trim();
  }
  return {
    osId: kv.os_id ?? '',
    osVersion: kv.os_version ?? '',
    osName: kv.os_name ?? '',
    uid: Number(kv.uid ?? -1),
    sudo: kv.sudo === 'yes',
    pid1: kv.pid1 ?? '',
    apt: Boolean(kv.apt),
    node: kv.node ?? '',
    bundle: kv.bundle ?? '',
    storage: kv.storage ?? '',
    installedByInit: [...new Set((kv.installed_by_init ?? '').split(/\s+/).filter(Boolean))],
    packages,
  };
}

/** What init can make ready (the refusal names these). */
export const SUPPORTED = ['Debian 12 and Ubuntu 24.04 (with Node.js 20+ installed first)', 'Debian 13'];

export type InitStep =
  | { kind: 'apt-update'; why: string }
  | { kind: 'apt-install'; packages: string[]; why: string }
  | { kind: 'upload'; why: string }
  | { kind: 'services'; why: string };

/** Which object storage stand-in the server gets, and why (shown in the plan, the dry run and the report). */
export interface StorageChoice {
  kind: S3Kind;
  why: string;
}

export interface InitPlan {
  /** How commands get root: '' (logged in as root) or 'sudo'. */
  become: '' | 'sudo';
  storage: StorageChoice;
  steps: InitStep[];
  /** Distribution services whose packages this init (or an earlier one) installs (their default units give way to codeb's). */
  disableDistro: string[];
  /** Packages already there: left as they are. */
  present: string[];
}

const DISTRO_SERVICES: Record<string, string> = { postgresql: 'postgresql', 'redis-server': 'redis-server', caddy: 'caddy' };

/** The major version of a Debian version string or a `node --version` ('2:18.2.7+ds-1' → 18; 0: unknown). */
function major(v: string | null): number {
  const m = /^v?(?:\d+:)?(\d+)\./.exec(v ?? '');
  return m ? Number(m[1]) : 0;
}

/** radosgw has its dbstore backend (SQLite files, no Ceph cluster) from 17 (Quincy) on. */
export const RGW_DBSTORE_MAJOR = 17;
const S3RVER_LIMITS = 'one key shared by every project, no bucket policies or lifecycle rules';

/**
 * The object storage stand-in: Ceph's RADOS Gateway where the distribution offers radosgw 17+ (its
 * dbstore backend: users, a key per deployment, policies, lifecycle); s3rver where it offers only
 * an older one (Debian 12: 16.2, which rejects the dbstore flags). A server that has s3rver keeps
 * it: its buckets are there, and init does not move them. Pure.
 */
export function chooseStorage(f: InitFacts): StorageChoice {
  const version = f.packages.radosgw?.candidate ?? null;
  const m = major(version);
  if (f.storage === 's3rver' && m >= RGW_DBSTORE_MAJOR) {
    return { kind: 's3rver', why: `kept: this server's buckets are in s3rver (radosgw ${version} is offered now, but init does not move buckets)` };
  }
  if (m >= RGW_DBSTORE_MAJOR) return { kind: 'radosgw', why: `radosgw ${version} has the dbstore backend (${RGW_DBSTORE_MAJOR}+): a key per deployment, bucket policies, lifecycle` };
  if (m > 0) return { kind: 's3rver', why: `radosgw ${version} here has no dbstore backend (needs ${RGW_DBSTORE_MAJOR}+), so s3rver: ${S3RVER_LIMITS}` };
  // No candidate known yet (package lists never fetched): what the release ships.
  if (f.osId === 'debian' && f.osVersion === '12') return { kind: 's3rver', why: `Debian 12's radosgw (16.2) has no dbstore backend (needs ${RGW_DBSTORE_MAJOR}+), so s3rver: ${S3RVER_LIMITS}` };
  return { kind: 'radosgw', why: `radosgw of ${f.osName || 'this release'} (${RGW_DBSTORE_MAJOR}+, dbstore backend): a key per deployment, bucket policies, lifecycle` };
}

/** The steps init takes on a server with these facts; throws (exit 1) where init cannot go on. */
export function planInit(f: InitFacts, localBundle: string): InitPlan {
  const where = f.osName || [f.osId, f.osVersion].filter(Boolean).join(' ') || 'an unknown system';
  const supported = (f.osId === 'debian' && (f.osVersion === '12' || f.osVersion === '13')) || (f.osId === 'ubuntu' && f.osVersion === '24.04');
  if (!supported || !f.apt) {
    throw new CodebError(`The server runs ${where}; codeb server init supports ${SUPPORTED.join(', ')}.`, {
      exitCode: EXIT.failure,
      hint: 'Use a supported distribution, or set the server up by hand: `codeb server check` lists what codeb needs (docs/remote.md).',
    });
  }
  if (f.pid1 !== 'systemd') {
    throw new CodebError(`PID 1 on the server is ${f.pid1 ? `"${f.pid1}"` : 'unknown'}, not systemd: init runs every service as a systemd unit.`, { hint: 'Use a machine or VM booted with systemd (not a plain container).' });
  }
  let become: InitPlan['become'];
  if (f.uid === 0) become = '';
  else if (f.sudo) become = 'sudo';
  else {
    throw new CodebError('The SSH user is not root and cannot use sudo without a password: init installs packages and system services.', {
      hint: 'Log in as root, or allow this user passwordless sudo (a line `deploy ALL=(ALL) NOPASSWD:ALL` in /etc/sudoers.d/codeb).',
    });
  }

  const storage = chooseStorage(f);
  // Node 20+: Debian 12 and Ubuntu 24.04 ship 18; codeb cannot run on it. A node 20+ on the PATH is
  // kept however it came (the `nodejs` package of NodeSource, or a release in /usr/local/bin), and
  // the distribution's older `nodejs` is then not installed beside it.
  const nodeOnPath = major(f.node) >= 20;
  const wanted = allServerPackages({ id: f.osId, version: f.osVersion }, storage.kind);
  const missing = wanted.filter((p) => !f.packages[p]?.installed && !(p === 'nodejs' && nodeOnPath));
  const present = wanted.filter((p) => f.packages[p]?.installed);
  const nodeInstalled = f.packages.nodejs?.installed;
  const nodeVersion = nodeInstalled ? f.node : f.packages.nodejs?.candidate ?? null;
  if (nodeVersion && major(nodeVersion) < 20 && !nodeOnPath) {
    throw new CodebError(`${where} ${nodeInstalled ? 'has' : 'offers'} Node.js ${nodeVersion}; codeb needs 20 or later.`, {
      hint: 'Install Node.js 20+ first (https://github.com/nodesource/distributions), then run init again: it keeps that node.',
    });
  }
  const steps: InitStep[] = [];
  const noCandidate = missing.filter((p) => !f.packages[p]?.candidate);
  if (noCandidate.length) steps.push({ kind: 'apt-update', why: `no install candidate yet for ${noCandidate.join(', ')}` });
  if (missing.length) steps.push({ kind: 'apt-install', packages: missing, why: `missing: ${missing.join(', ')}` });
  if (f.bundle !== localBundle) steps.push({ kind: 'upload', why: f.bundle ? `installed codeb ${f.bundle.slice(0, 12)} differs from this one (${localBundle.slice(0, 12)})` : 'codeb is not installed in /opt/codeb' });
  steps.push({ kind: 'services', why: 'shared services as systemd units, settings.json' });
  // Also those an earlier init installed: when it stopped before setup (a lost connection, a
  // service that failed), the distribution's Caddy would otherwise keep port 80 from codeb's for good.
  const disableDistro = wanted
    .filter((p) => p in DISTRO_SERVICES && (missing.includes(p) || f.installedByInit.includes(p)))
    .map((p) => DISTRO_SERVICES[p]!);
  return { become, storage, steps, disableDistro, present };
}

/** For --help and docs: which packages init installs, per service. */
export function packageSummary(): string {
  return Object.entries(SERVER_PACKAGES).map(([k, v]) => `${k}: ${v.join(' ')}`).join('; ');
}
