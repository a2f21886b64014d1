import { describe, expect, it } from 'vitest';
import { subnetFor } from '../../controller/reconcile/apply.js';
import { bridgeName, chooseSubnet, formatCidr, gatewayOf, inCidr, parseCidr, parsePool, parseIpAddresses, projectSubnets, servicesAddress, servicesInterfaceName } from '../../controller/runtime/network.js';
import { hbaConf } from '../../controller/stack/postgres.js';

describe('network pool arithmetic', () => {
  it.each([
    ['10.99.0.0/16', 16],
    ['10.231.0.0/17', 17],
    ['172.30.4.0/25', 25],
  ])('parses %s', (text, prefix) => {
    expect(parsePool(text).prefix).toBe(prefix);
    expect(formatCidr(parsePool(text))).toBe(text);
  });

  it.each([
    ['10.99.0.1/16', /host bits are set \(did you mean 10\.99\.0\.0\/16\?\)/],
    ['10.99.0.0', /expected an IPv4 CIDR/],
    ['10.299.0.0/16', /expected an IPv4 CIDR/],
    ['10.0.0.0/7', /between a \/8 and a \/25/],
    ['10.0.0.0/26', /between a \/8 and a \/25/],
    ['fd00::/64', /expected an IPv4 CIDR/],
  ])('refuses %s', (text, message) => {
    expect(() => parsePool(text)).toThrow(message);
  });

  it('services address, subnets, gateway and bridge names derive from the pool', () => {
    const pool = parsePool('10.99.0.0/24');
    expect(servicesAddress(pool)).toBe('10.99.0.1');
    // The first /26 holds the services address and is never handed out.
    expect(projectSubnets(pool)).toEqual(['10.99.0.64/26', '10.99.0.128/26', '10.99.0.192/26']);
    expect(gatewayOf('10.99.0.64/26')).toBe('10.99.0.65');
    expect(bridgeName('10.99.0.64/26')).toBe('cb0a630040');
    expect(bridgeName('10.99.0.64/26').length).toBeLessThanOrEqual(15);
    expect(servicesInterfaceName('/a/stack')).toMatch(/^cbs[0-9a-f]{8}$/);
    expect(servicesInterfaceName('/a/stack')).not.toBe(servicesInterfaceName('/b/stack'));
  });

  it('inCidr: IPv4 and IPv4-mapped IPv6 sources, nothing else', () => {
    const c = parseCidr('10.99.0.64/26');
    expect(inCidr('10.99.0.66', c)).toBe(true);
    expect(inCidr('::ffff:10.99.0.127', c)).toBe(true);
    expect(inCidr('10.99.0.128', c)).toBe(false);
    expect(inCidr('10.99.0.63', c)).toBe(false);
    expect(inCidr('::1', c)).toBe(false);
    expect(inCidr('', c)).toBe(false);
  });
});

describe('chooseSubnet', () => {
  const pool = parsePool('10.99.0.0/24');
  it('keeps a subnet the deployment has, else the first free one', () => {
    expect(chooseSubnet(pool, '10.99.0.192/26', ['10.99.0.192/26'])).toBe('10.99.0.192/26');
    expect(chooseSubnet(pool, null, [])).toBe('10.99.0.64/26');
    expect(chooseSubnet(pool, null, ['10.99.0.64/26'])).toBe('10.99.0.128/26');
    // A subnet outside the (new) pool is replaced.
    expect(chooseSubnet(pool, '10.1.0.0/26', [])).toBe('10.99.0.64/26');
    // So is the services address's /26, a subnet of another size or spelling, and garbage.
    for (const bad of ['10.99.0.0/26', '10.99.0.64/27', '10.99.0.064/26', 'nonsense']) expect(chooseSubnet(pool, bad, [])).toBe('10.99.0.64/26');
  });
  it('a /8 pool: keeps a subnet deep inside it, finds the first free one', () => {
    const big = parsePool('10.0.0.0/8');
    expect(chooseSubnet(big, '10.255.255.192/26', [])).toBe('10.255.255.192/26');
    expect(chooseSubnet(big, null, ['10.0.0.64/26', '10.0.0.128/26'])).toBe('10.0.0.192/26');
    expect(projectSubnets(big)).toHaveLength(2 ** 18 - 1);
  });
  it('a range narrows the choice and must lie inside the pool', () => {
    expect(chooseSubnet(pool, null, [], parseCidr('10.99.0.128/25'))).toBe('10.99.0.128/26');
    expect(chooseSubnet(pool, null, [], parseCidr('10.99.0.0/25'))).toBe('10.99.0.64/26'); // never the services /26
    expect(() => chooseSubnet(pool, null, [], parseCidr('10.98.0.0/24'))).toThrow(/not inside the pool/);
  });
  it('a subnet of another size that overlaps a /26 holds it (a host route: a /24 bridge, a /25)', () => {
    expect(chooseSubnet(pool, null, ['10.99.0.0/25'])).toBe('10.99.0.128/26');
    expect(chooseSubnet(parsePool('10.99.0.0/16'), null, ['10.99.0.0/24', '10.99.1.32/27'])).toBe('10.99.1.64/26');
    // A route around the whole pool (a /8 on some interface) leaves nothing.
    expect(() => chooseSubnet(pool, null, ['10.0.0.0/8'])).toThrow(/No free project network left/);
  });
  it('an exhausted pool says so and what to do', () => {
    expect(() => chooseSubnet(pool, null, projectSubnets(pool))).toThrow(/No free project network left in 10\.99\.0\.0\/24/);
  });
});

describe("parseIpAddresses: the host's addresses from `ip -4 -o addr show`", () => {
  it('reads each address as its subnet, up or down, of any size', () => {
    const text = [
      '1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever',
      '4: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\\       valid_lft forever preferred_lft forever',
      '6510: cbs75e3a5d9    inet 10.98.0.1/32 scope global cbs75e3a5d9\\       valid_lft forever preferred_lft forever',
      '7090: cb0a605c00    inet 10.96.92.1/26 brd 10.96.92.63 scope global cb0a605c00\\       valid_lft forever preferred_lft forever',
      '12: veth1@if2    inet 10.89.0.7/16 scope global veth1\\       valid_lft forever preferred_lft forever',
      'garbage line',
      '',
    ].join('\n');
    expect(parseIpAddresses(text)).toEqual([
      { iface: 'lo', subnet: '127.0.0.0/8' },
      { iface: 'eth0', subnet: '192.0.2.0/24' },
      { iface: 'cbs75e3a5d9', subnet: '10.98.0.1/32' },
      { iface: 'cb0a605c00', subnet: '10.96.92.0/26' },
      { iface: 'veth1', subnet: '10.89.0.0/16' },
    ]);
    expect(parseIpAddresses('')).toEqual([]);
  });
});

describe('subnetFor (apply)', () => {
  const pool = parsePool('10.99.0.0/24');
  it('a deployment that keeps its subnet never lists Podman\'s networks', async () => {
    let listed = 0;
    const list = async () => (listed++, ['10.99.0.64/26']);
    expect(await subnetFor(pool, '10.99.0.192/26', [], list, {})).toBe('10.99.0.192/26');
    expect(listed).toBe(0);
    // A new one, or one outside the pool, is chosen past Podman's and the registry's.
    expect(await subnetFor(pool, undefined, ['10.99.0.128/26'], list, {})).toBe('10.99.0.192/26');
    expect(await subnetFor(pool, '10.1.0.0/26', [], list, { CODEB_NETWORK_RANGE: '10.99.0.128/25' })).toBe('10.99.0.128/26');
    expect(listed).toBe(2);
  });
});

describe('Postgres access rules', () => {
  it('the superuser is rejected from the container pool before any password rule', () => {
    const lines = hbaConf('10.99.0.0/16').split('\n').filter((l) => l.includes('10.99.0.0/16'));
    expect(lines[0]).toMatch(/^host\s+all\s+codeb\s+10\.99\.0\.0\/16\s+reject$/);
    expect(lines[1]).toMatch(/^host\s+all\s+all\s+10\.99\.0\.0\/16\s+scram-sha-256$/);
  });
});
