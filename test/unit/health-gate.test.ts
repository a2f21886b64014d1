import { describe, expect, it } from 'vitest';
import { runHealthGate, type Clock, type ProbeResult } from '../../controller/deploy/health.js';

function fakeClock(): Clock & { t: number } {
  const c = { t: 0, now: () => c.t, sleep: async (ms: number) => void (c.t += ms) };
  return c;
}
const probes = (pattern: string) => {
  let i = 0;
  return async (): Promise<ProbeResult> => {
    const ok = pattern[Math.min(i++, pattern.length - 1)] === '+';
    return { ok, at: '', ms: 1, detail: ok ? 'HTTP 200' : 'HTTP 500' };
  };
};

describe('health gate', () => {
  const opts = { successes: 3, intervalMs: 1000, startPeriodMs: 0, deadlineMs: 10_000 };
  const cases: Array<[string, string, boolean, number]> = [
    ['healthy at once', '+++', true, 3],
    ['a failure resets the streak', '++-+++', true, 6],
    ['starts slowly then passes', '----+++', true, 7],
    ['never healthy gives up at the deadline', '-', false, 10],
    ['flaps forever', '++-', false, 10],
  ];
  for (const [name, pattern, healthy, checks] of cases) {
    it(name, async () => {
      const r = await runHealthGate(probes(pattern), opts, fakeClock());
      expect(r.healthy).toBe(healthy);
      expect(r.checks.length).toBe(Math.min(checks, 10));
      if (!healthy) expect(r.reason).toContain('not healthy within 10 s');
    });
  }
  it('stops early when told the container is gone', async () => {
    let calls = 0;
    const r = await runHealthGate(probes('-'), opts, fakeClock(), async () => (++calls >= 2 ? 'container exited with code 1' : null));
    expect(r.healthy).toBe(false);
    expect(r.reason).toBe('container exited with code 1');
    expect(r.checks.length).toBe(2);
  });
});

describe('health gate start period', () => {
  it('extends the deadline by the start period', async () => {
    const r = await runHealthGate(probes('-'), { successes: 1, intervalMs: 1000, startPeriodMs: 5000, deadlineMs: 5000 }, fakeClock());
    expect(r.healthy).toBe(false);
    expect(r.reason).toContain('within 10 s');
    expect(r.checks.length).toBe(10);
  });
});
