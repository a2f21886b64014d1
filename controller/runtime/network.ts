/**
 * The container network model (docs/runtime.md, "Networks"), as pure functions of one address
 * pool (an IPv4 CIDR, e.g. 10.99.0.0/16):
 *   - the pool's first address + 1 is the *services address*: a host address on an interface the
 *     stack (or `server init`) makes, not loopback and not routed anywhere, where containers reach
 *     Postgres, Redis, S3 and their own project's service entries;
 *   - every project+environment gets one /26 of the pool (its Podman bridge network), recorded in
 *     the registry; the pool's first /26 is never handed out (it holds the services address).
 * Interface names are derived from addresses, so two stacks with different pools never share a
 * bridge (Linux interface names are global on a machine, Podman's network configs are not).
 */
import { createHash } from 'node:crypto';
import { CodebError, EXIT } from '../errors.js';

/** Default pool when neither the settings nor CODEB_NETWORK_POOL name one. */
export const DEFAULT_NETWORK_POOL = '10.99.0.0/16';
/** Size of one project network: 62 addresses (blue + green of every service, release containers). */
export const PROJECT_SUBNET_PREFIX = 26;

export interface Cidr {
  /** Network address as an unsigned 32-bit number. */
  base: number;
  prefix: number;
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

export function parseIpv4(text: string): number | null {
  const m = IPV4.exec(text.trim());
  if (!m) return null;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return null;
  return ((parts[0]! << 24) >>> 0) + (parts[1]! << 16) + (parts[2]! << 8) + parts[3]!;
}

export function formatIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

const mask = (prefix: number): number => (prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);

export function parseCidr(text: string, what = 'address range'): Cidr {
  const [addr, len, ...rest] = text.trim().split('/');
  const base = parseIpv4(addr ?? '');
  const prefix = Number(len);
  if (base === null || rest.length || !/^\d{1,2}$/.test(len ?? '') || prefix > 32) {
    throw new CodebError(`Invalid ${what} ${JSON.stringify(text)}: expected an IPv4 CIDR such as 10.99.0.0/16.`, { exitCode: EXIT.invalid });
  }
  if ((base & ~mask(prefix)) >>> 0 !== 0) {
    throw new CodebError(`Invalid ${what} ${text}: host bits are set (did you mean ${formatIpv4((base & mask(prefix)) >>> 0)}/${prefix}?).`, { exitCode: EXIT.invalid });
  }
  return { base, prefix };
}

export function formatCidr(c: Cidr): string {
  return `${formatIpv4(c.base)}/${c.prefix}`;
}

/** Is the address (IPv4, or IPv4-mapped IPv6 as Node reports it: ::ffff:10.0.0.1) inside the range? */
export function inCidr(address: string, cidr: Cidr): boolean {
  const ip = parseIpv4(address.startsWith('::ffff:') ? address.slice(7) : address);
  return ip !== null && ((ip & mask(cidr.prefix)) >>> 0) === cidr.base;
}

/** The pool codeb hands project networks out of: at least two /26 (services + one project), at most a /8. */
export function parsePool(text: string): Cidr {
  const c = parseCidr(text, 'network pool');
  if (c.prefix < 8 || c.prefix > PROJECT_SUBNET_PREFIX - 1) {
    throw new CodebError(`Network pool ${text} must be between a /8 and a /${PROJECT_SUBNET_PREFIX - 1} (each project network is a /${PROJECT_SUBNET_PREFIX}).`, {
      exitCode: EXIT.invalid,
      hint: 'Set CODEB_NETWORK_POOL to a private range no other network on this machine uses, e.g. 10.99.0.0/16.',
    });
  }
  return c;
}

/** Where containers reach the shared services: the pool's first host address. */
export function servicesAddress(pool: Cidr): string {
  return formatIpv4(pool.base + 1);
}

/** The subnets a pool holds, in order; the first (the services address's) is never handed out. */
export function projectSubnets(pool: Cidr): string[] {
  return allSubnets(pool).slice(1);
}

/**
 * A deployment keeps the subnet it has while it lies in the pool (chooseSubnet looks no further).
 * Checked by arithmetic: every apply comes here, and a /8 pool holds 262,144 subnets.
 */
export function keepsSubnet(pool: Cidr, current: string | null | undefined): current is string {
  return !!current && isProjectSubnet(pool, current);
}

/**
 * The subnet of a deployment: the one it has if it still lies in the pool, else the first /26 of
 * `range` (default: the whole pool) that holds no services address and that no other deployment
 * or network holds. Pure; `taken` are every other deployment's and Podman network's subnets and
 * the host's own link routes (any size: a /26 that overlaps one is held).
 */
export function chooseSubnet(pool: Cidr, current: string | null | undefined, taken: Iterable<string>, range: Cidr = pool): string {
  if (keepsSubnet(pool, current)) return current;
  if (range.prefix < pool.prefix || !inCidr(formatIpv4(range.base), pool)) {
    throw new CodebError(`The network range ${formatCidr(range)} is not inside the pool ${formatCidr(pool)}.`, { exitCode: EXIT.invalid, hint: 'CODEB_NETWORK_RANGE must name a part of the network pool of the settings.' });
  }
  const used = [...taken].flatMap((t) => {
    try {
      const c = parseCidr(t, 'subnet');
      return [{ first: c.base, last: c.base + 2 ** (32 - c.prefix) - 1 }];
    } catch {
      return []; // not a canonical CIDR (a hand-made network's odd entry): it cannot be one of ours
    }
  });
  let candidates = 0;
  for (const s of subnetsOf(range)) {
    if (s.base === pool.base) continue; // the services address's /26
    candidates++;
    const last = s.base + 2 ** (32 - PROJECT_SUBNET_PREFIX) - 1;
    if (!used.some((u) => u.first <= last && s.base <= u.last)) return formatCidr(s);
  }
  throw new CodebError(`No free project network left in ${formatCidr(range)} (${candidates} networks of /${PROJECT_SUBNET_PREFIX}, all held).`, {
    hint: 'Destroy unused deployments, or give codeb a larger pool (CODEB_NETWORK_POOL, then `codeb stack up`).',
  });
}

/** Is `text` exactly one of projectSubnets(pool) (canonical form), without listing them. */
function isProjectSubnet(pool: Cidr, text: string): boolean {
  let c: Cidr;
  try {
    c = parseCidr(text, 'subnet');
  } catch {
    return false;
  }
  return c.prefix === PROJECT_SUBNET_PREFIX && formatCidr(c) === text && inCidr(formatIpv4(c.base), pool) && c.base !== pool.base;
}

/** The /26 subnets of c, in order, one at a time. */
function* subnetsOf(c: Cidr): Generator<Cidr> {
  const size = 2 ** (32 - PROJECT_SUBNET_PREFIX);
  const count = 2 ** (PROJECT_SUBNET_PREFIX - Math.min(c.prefix, PROJECT_SUBNET_PREFIX));
  for (let i = 0; i < count; i++) yield { base: c.base + i * size, prefix: PROJECT_SUBNET_PREFIX };
}

function allSubnets(c: Cidr): string[] {
  return [...subnetsOf(c)].map(formatCidr);
}

/** The bridge's gateway: the subnet's first host address. */
export function gatewayOf(subnet: string): string {
  return formatIpv4(parseCidr(subnet, 'subnet').base + 1);
}

/** Linux bridge name of a project network (at most 15 characters): cb + the subnet's address in hex. */
export function bridgeName(subnet: string): string {
  return `cb${parseCidr(subnet, 'subnet').base.toString(16).padStart(8, '0')}`;
}

/** Name of the interface that holds a stack's services address: cbs + 8 hex of its folder's hash. */
export function servicesInterfaceName(stackDir: string): string {
  return `cbs${createHash('sha256').update(stackDir).digest('hex').slice(0, 8)}`;
}

/**
 * The subnets of the host's IPv4 addresses, from `ip -4 -o addr show`: every address on every
 * interface, up or down, that another program holds (another stack's bridge, a bridge left
 * behind) and that `podman network create` would refuse to overlap. Pure.
 */
export function parseIpAddresses(text: string): Array<{ iface: string; subnet: string }> {
  const out: Array<{ iface: string; subnet: string }> = [];
  for (const line of text.split('\n')) {
    const m = /^\d+:\s+(\S+)\s+inet\s+(\d+\.\d+\.\d+\.\d+)\/(\d{1,2})\b/.exec(line);
    const ip = m ? parseIpv4(m[2]!) : null;
    if (!m || ip === null || Number(m[3]) > 32) continue;
    const prefix = Number(m[3]);
    out.push({ iface: m[1]!.replace(/@.*$/, ''), subnet: formatCidr({ base: (ip & mask(prefix)) >>> 0, prefix }) });
  }
  return out;
}
