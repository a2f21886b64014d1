/**
 * The test suite's stack ports (scripts/lib/stack-ports.mjs, used by scripts/test.sh and
 * scripts/demo.sh): the offsets are the stack's, every candidate stays clear of the demo's stack
 * and of the app port ranges, and the choice skips busy, reserved and taken ports.
 */
import { describe, expect, it } from 'vitest';
import { stackPorts } from '../../controller/stack/layout.js';
import { APP_PORTS, DEMO_BASE, OFFSETS, SECOND_CANDIDATES, SECOND_STEP, TEST_CANDIDATES, pickBase, portsOf } from '../../scripts/lib/stack-ports.mjs';

const EPHEMERAL_MIN = 32768;
const demoPorts = Object.values(stackPorts({}, DEMO_BASE));

describe('stack-ports', () => {
  it('uses the stack’s own offsets', () => {
    expect(stackPorts({}, 0)).toEqual(OFFSETS);
    expect(DEMO_BASE).toBe(20000);
  });

  it.each([...TEST_CANDIDATES, ...SECOND_CANDIDATES.flatMap((b) => [b, b + SECOND_STEP])])('candidate base %i never takes a demo or app port', (base) => {
    for (const p of portsOf(base)) {
      expect(demoPorts).not.toContain(p);
      expect(p < APP_PORTS.min || p > APP_PORTS.max, `port ${p}`).toBe(true);
      expect(p).toBeLessThan(EPHEMERAL_MIN);
    }
  });

  const table: Array<{ name: string; candidates: number[]; busy: number[]; taken?: number[]; stacks?: number; want: number | undefined }> = [
    { name: 'the first when all are free', candidates: [10000, 10250], busy: [], want: 10000 },
    { name: 'the next when one port of the first is busy', candidates: [10000, 10250], busy: [15432], want: 10250 },
    { name: 'none when every candidate has a busy port', candidates: [10000, 10250], busy: [19000, 18330], want: undefined },
    { name: 'never the demo’s base', candidates: [20000, 10000], busy: [], want: 10000 },
    { name: 'never a base sharing a port with the demo’s stack', candidates: [20947, 10000], busy: [], want: 10000 },
    { name: 'not a base whose ports are taken by the other test stack', candidates: [3500, 3750], busy: [], taken: portsOf(3500 + SECOND_STEP).slice(0, 1), stacks: 2, want: 3750 },
    { name: 'the second stack of a pair is checked too', candidates: [3500, 3750], busy: [3700 + OFFSETS.redis], stacks: 2, want: 3750 },
  ];
  it.each(table)('$name', async ({ candidates, busy, taken, stacks, want }) => {
    expect(await pickBase(candidates, async (p: number) => !busy.includes(p), { taken, stacks })).toBe(want);
  });
});
