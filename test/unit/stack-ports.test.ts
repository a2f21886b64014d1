/**
 * The test suites' ports and pools (scripts/lib/stack-ports.mjs, used by scripts/test.sh and
 * scripts/demo.sh): the offsets are the stack's; no port of any slot (test stack, second stacks,
 * app slices) is the demo's or another slot's; all stay below the ephemeral range; the choice
 * skips busy, reserved and taken ports.
 */
import { describe, expect, it } from 'vitest';
import { stackNetwork, stackPaths, stackPorts } from '../../controller/stack/layout.js';
import { caddyPart } from '../../controller/stack/caddy.js';
import { forwarderPart } from '../../controller/stack/forwarder.js';
import type { PartContext } from '../../controller/stack/part.js';
import { podmanPart } from '../../controller/stack/podman.js';
import { postgresPart } from '../../controller/stack/postgres.js';
import { redisPart } from '../../controller/stack/redis.js';
import { s3Part } from '../../controller/stack/s3.js';
import { DEFAULT_NETWORK_POOL } from '../../controller/runtime/network.js';
import {
  APP_PORTS,
  APP_SLICES,
  APP_STRIDE,
  DEMO_APP_PORTS,
  DEMO_BASE,
  OFFSETS,
  SECOND_OFFSET,
  SLOTS,
  TEST_CANDIDATES,
  pickBase,
  poolOf,
  portsIn,
  portsOf,
  shiftRange,
  slotOf,
  slotStackPorts,
} from '../../scripts/lib/stack-ports.mjs';

const EPHEMERAL_MIN = 32768;
const demoPorts = Object.values(stackPorts({}, DEMO_BASE));
const slots = Array.from({ length: SLOTS }, (_, k) => k);
/** Slot k's app ports as a [min, max] range. */
const appWindow = (k: number) => shiftRange(`${APP_SLICES.min}-${APP_SLICES.max}`, k).split('-').map(Number) as [number, number];

describe('stack-ports', () => {
  it("portsIn finds every port a running part's address names: demo-check then knows the demo stack's own ports (Caddy's two included)", () => {
    const dir = '/root/.codeb/stack';
    const ctx: PartContext = { ports: stackPorts({}, DEMO_BASE), paths: stackPaths(dir), network: stackNetwork({}, dir), env: {}, isRoot: true };
    const named = [postgresPart, redisPart, s3Part, caddyPart, podmanPart, forwarderPart].flatMap((p) => portsIn(p.address(ctx)));
    expect([...new Set(named)].sort()).toEqual([...portsOf(DEMO_BASE)].sort());
    expect(portsIn(caddyPart.address(ctx))).toEqual([DEMO_BASE + OFFSETS.http, DEMO_BASE + OFFSETS.https]);
  });

  it('uses the stack’s own offsets', () => {
    expect(stackPorts({}, 0)).toEqual(OFFSETS);
    expect(DEMO_BASE).toBe(20000);
  });

  it.each(slots)('slot %i: its stacks take no demo or app port and stay below the ephemeral range', (k) => {
    for (const p of slotStackPorts(TEST_CANDIDATES[k]!)) {
      expect(demoPorts).not.toContain(p);
      expect(p < APP_PORTS.min || p > APP_PORTS.max, `port ${p}`).toBe(true);
      expect(p).toBeLessThan(EPHEMERAL_MIN);
    }
  });

  it('no two slots’ stacks share a port, nor two stacks of one slot', () => {
    const all = slots.flatMap((k) => slotStackPorts(TEST_CANDIDATES[k]!));
    expect(new Set(all).size).toBe(all.length);
  });

  it('the app windows of the slots are disjoint, clear of the demo’s apps and below the ephemeral range', () => {
    const windows = slots.map(appWindow);
    expect(windows[0]).toEqual([APP_SLICES.min, APP_SLICES.max]);
    for (const [k, [min, max]] of windows.entries()) {
      expect(min).toBeGreaterThan(DEMO_APP_PORTS.max);
      expect(max).toBeLessThanOrEqual(APP_PORTS.max);
      expect(max).toBeLessThan(EPHEMERAL_MIN);
      if (k > 0) expect(min).toBeGreaterThan(windows[k - 1]![1]);
    }
  });

  it.each([
    ['4100-4149', 0, '4100-4149'],
    ['4100-4149', 1, `${4100 + APP_STRIDE}-${4149 + APP_STRIDE}`],
    ['5650-5699', SLOTS - 1, `${5650 + (SLOTS - 1) * APP_STRIDE}-${APP_PORTS.max}`],
  ])('shiftRange(%j, %i) is %j', (range, slot, want) => {
    expect(shiftRange(range, slot)).toBe(want);
  });

  it('each slot has its own network pool, never the demo’s', () => {
    const pools = slots.map(poolOf);
    expect(pools[0]).toBe('10.98.0.0/16');
    expect(new Set(pools).size).toBe(SLOTS);
    expect(pools).not.toContain(DEFAULT_NETWORK_POOL);
  });

  it('a slot is known by its test stack’s base only', () => {
    expect(slots.map((k) => slotOf(TEST_CANDIDATES[k]!))).toEqual(slots);
    expect(slotOf(DEMO_BASE)).toBeUndefined();
    expect(slotOf(10000)).toBeUndefined(); // an older checkout's base: that stack moves
    expect(slotOf(TEST_CANDIDATES[0]! + SECOND_OFFSET)).toBeUndefined();
  });

  const [c0, c1] = [TEST_CANDIDATES[0]!, TEST_CANDIDATES[1]!];
  const table: Array<{ name: string; candidates: number[]; busy: number[]; taken?: number[]; portsFor?: (b: number) => number[]; want: number | undefined }> = [
    { name: 'the first when all are free', candidates: [c0, c1], busy: [], want: c0 },
    { name: 'the next when one port of the first is busy', candidates: [c0, c1], busy: [c0 + OFFSETS.postgres], want: c1 },
    { name: 'none when every candidate has a busy port', candidates: [c0, c1], busy: [c0 + OFFSETS.s3, c1 + OFFSETS.http], want: undefined },
    { name: 'never the demo’s base', candidates: [20000, c0], busy: [], want: c0 },
    { name: 'never a base sharing a port with the demo’s stack', candidates: [20947, c0], busy: [], want: c0 },
    { name: 'never a base with a port among the app windows', candidates: [10000, c0], busy: [], want: c0 },
    { name: 'not a base whose ports are taken', candidates: [c0, c1], busy: [], taken: portsOf(c0).slice(0, 1), want: c1 },
    { name: 'a slot whose second stack has a busy port is skipped', candidates: [c0, c1], busy: [c0 + SECOND_OFFSET + OFFSETS.redis], portsFor: slotStackPorts, want: c1 },
  ];
  it.each(table)('$name', async ({ candidates, busy, taken, portsFor, want }) => {
    expect(await pickBase(candidates, async (p: number) => !busy.includes(p), { taken, portsFor })).toBe(want);
  });
});
