/**
 * Integration tests talk to the real services of the local stack that scripts/test.sh starts
 * (`codeb stack up` with CODEB_HOME set). This hands them its settings, or fails with what to do.
 */
import { createServer } from 'node:net';
import { loadSettings, type Settings } from '../../../controller/settings.js';
import { DEFAULT_NETWORK_POOL, formatCidr, parsePool } from '../../../controller/runtime/network.js';
import { APP_STRIDE, SLOTS, shiftRange } from '../../../scripts/lib/stack-ports.mjs';

/**
 * A network pool for a test's own extra stack: the i-th block of the same size after the
 * suite's pool (CODEB_NETWORK_POOL), so two stacks never share a services address or a subnet.
 */
export function siblingPool(i: number): string {
  // A /25 (the smallest pool) counted back from the end of the suite's pool, far from the
  // project networks that networkRangeFor hands the test files from its start.
  const pool = parsePool(process.env.CODEB_NETWORK_POOL || DEFAULT_NETWORK_POOL);
  return formatCidr({ base: pool.base + 2 ** (32 - pool.prefix) - i * 128, prefix: 25 });
}

/**
 * This suite's slot (CODEB_TEST_SLOT, which scripts/test.sh sets from the test stack's base; 0 when
 * unset): suites of several checkouts run at once on one machine, each in its own slot, and every
 * test file's app ports move with it (docs/stack.md, "Ports of the test stacks").
 */
export function testSlot(): number {
  const text = process.env.CODEB_TEST_SLOT ?? '0';
  const slot = Number(text);
  if (!/^\d+$/.test(text) || slot >= SLOTS) throw new Error(`CODEB_TEST_SLOT=${JSON.stringify(text)} is not a slot: use a whole number from 0 to ${SLOTS - 1} (or let scripts/test.sh set it).`);
  return slot;
}

/** An app port of this file's slot-0 slice (4000-5699), moved to this suite's slot. */
export function appPort(port: number): number {
  return port + testSlot() * APP_STRIDE;
}

/** A CODEB_PORT_RANGE from this file's slot-0 slice ("4100-4149"), moved to this suite's slot. */
export function appPorts(slice: string): string {
  return shiftRange(slice, testSlot());
}

/**
 * CODEB_NETWORK_RANGE for a test file, from its CODEB_PORT_RANGE (as appPorts gives it): separate
 * registries do not know each other's subnets (as with ports), so each file allocates project
 * networks from a /23 of its own (8 networks) inside the stack's pool (its own per slot): block
 * 1 + (first port of the slot-0 slice - 3000) / 50.
 */
export function networkRangeFor(portRange: string): string {
  const pool = parsePool(stackSettings().network.pool);
  const start = Number(portRange.split('-')[0]) - testSlot() * APP_STRIDE;
  const block = 1 + Math.floor((start - 3000) / 50);
  const base = pool.base + block * 512;
  if (block < 1 || base + 512 > pool.base + 2 ** (32 - pool.prefix) - 256) throw new Error(`The stack's network pool ${stackSettings().network.pool} is too small for the test files' ranges (${portRange} in slot ${testSlot()}): use a /17 or larger (CODEB_NETWORK_POOL).`);
  return formatCidr({ base, prefix: 23 });
}

export function stackSettings(): Settings {
  try {
    return loadSettings();
  } catch (err) {
    throw new Error(
      `The local stack is not running for these tests (${(err as Error).message}). ` +
        'Run the suite with `npm test`, or start it yourself: `CODEB_HOME=$PWD/.codeb/test-home node bin/codeb.js stack up` and run vitest with the same CODEB_HOME.',
    );
  }
}

/** A project id unique to this test run, so parallel test files never share resources. */
export function uniqueId(prefix: string): string {
  return `${prefix}-${process.pid.toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`.slice(0, 40);
}

/** A TCP port on 127.0.0.1 that nothing listened on a moment ago (the kernel picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/**
 * A Caddy and a codeb forwarder of a test's own, started by the stack's own code (`upStack` with
 * only those two parts, in `dir`, on free HTTP/HTTPS ports): the same static front, admin socket
 * and host router as `codeb stack up`, running this build's code. Returns the settings to use
 * (the shared stack's Postgres, Redis, S3 and Podman with this pair's Caddy and forwarder).
 */
export async function privateProxyPair(dir: string, base: Settings): Promise<{ settings: Settings; stop: () => Promise<void> }> {
  const { upStack, stopStack } = await import('../../../controller/stack/index.js');
  const { join } = await import('node:path');
  const env = { ...process.env, CODEB_STACK_HTTP_PORT: String(await freePort()), CODEB_STACK_HTTPS_PORT: String(await freePort()) };
  const opts = { env, dir: join(dir, 'proxy'), settingsFile: join(dir, 'proxy', 'settings.json') };
  const res = await upStack({ ...opts, parts: ['caddy', 'forwarder'] });
  return { settings: { ...base, caddy: res.settings.caddy, forwarder: res.settings.forwarder }, stop: async () => void (await stopStack(opts)) };
}
