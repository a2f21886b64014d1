/**
 * The integration test files' app port slices (docs/stack.md, "Ports of the test stacks"): every
 * slice goes through appPorts()/appPort() so it moves with the suite's slot (a bare literal would
 * collide with another suite running the same file), no two files' slices overlap, and all lie in
 * slot 0's window, below the next slot's. The benchmarks' ranges (they use the test stack) are
 * kept clear of the slices too.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { APP_SLICES, DEMO_APP_PORTS } from '../../scripts/lib/stack-ports.mjs';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'integration');
const files = readdirSync(dir).filter((f) => f.endsWith('.test.ts'));
const source = (f: string) => readFileSync(join(dir, f), 'utf8');

/** The slot-0 slices a file names: appPorts('a-b') and { min: appPort(a), max: appPort(b) }. */
function slicesOf(text: string): Array<[number, number]> {
  const out = new Map<string, [number, number]>();
  for (const m of text.matchAll(/appPorts\('(\d+)-(\d+)'\)/g)) out.set(`${m[1]}-${m[2]}`, [Number(m[1]), Number(m[2])]);
  for (const m of text.matchAll(/min: appPort\((\d+)\), max: appPort\((\d+)\)/g)) out.set(`${m[1]}-${m[2]}`, [Number(m[1]), Number(m[2])]);
  return [...out.values()];
}

describe('app port slices of the integration test files', () => {
  it.each(files)('%s names no app port range that stays put when the slot moves', (f) => {
    const text = source(f);
    expect(text).not.toMatch(/new DeployEnv\('/);
    expect(text).not.toMatch(/CODEB_PORT_RANGE: '[4-9]\d{3}-/);
    expect(text).not.toMatch(/PORT_RANGE = '/);
  });

  const benches = ['bench-apply.mjs', 'bench-switch.mjs', 'lib/bench-noop.mjs'].map((f) => {
    const m = /(?:PORT_RANGE = |CODEB_PORT_RANGE \?\? )'(\d+)-(\d+)'/.exec(readFileSync(join(dir, '..', '..', 'scripts', f), 'utf8'));
    return { f: `scripts/${f}`, min: Number(m?.[1]), max: Number(m?.[2]) };
  });
  const all = [...files.flatMap((f) => slicesOf(source(f)).map(([min, max]) => ({ f, min, max }))), ...benches];

  it('finds the benchmarks\' ranges', () => {
    expect(benches.filter((b) => !b.min)).toEqual([]);
  });

  it('finds the slices (the patterns above still match the files)', () => {
    expect(all.length).toBeGreaterThan(15);
  });

  it('every slice lies in slot 0’s window and no two files’ slices overlap', () => {
    for (const s of all) {
      expect(s.min, `${s.f} ${s.min}-${s.max}`).toBeGreaterThanOrEqual(DEMO_APP_PORTS.min);
      expect(s.max, `${s.f} ${s.min}-${s.max}`).toBeLessThanOrEqual(APP_SLICES.max);
      expect(s.min).toBeLessThanOrEqual(s.max);
    }
    const overlaps = all.flatMap((a, i) => all.slice(i + 1).filter((b) => a.min <= b.max && b.min <= a.max).map((b) => `${a.f} ${a.min}-${a.max} and ${b.f} ${b.min}-${b.max}`));
    expect(overlaps).toEqual([]);
  });
});
