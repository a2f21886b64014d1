import { describe, expect, it } from 'vitest';
import { decideResume, describeResume, endPhase, interruptedDeploy, remainingWatch, type InterruptionFacts } from '../../controller/deploy/resume.js';
import { validateRegistry } from '../../controller/generated/validators.js';
import { deployLine } from '../../controller/registry/view.js';
import type { DeployPhase, DeployProgress, RegistryDocument } from '../../controller/registry/types.js';
import { placeholderRecord } from '../helpers/records.js';

const progress = (phase: DeployPhase, from: DeployProgress['from'] = 'blue'): DeployProgress => ({
  phase, slot: 'green', from, version: 'v4', images: { web: 'localhost/app:v4' }, by: 'ci@runner', startedAt: '2026-01-01T00:00:00Z', at: '2026-01-01T00:00:05Z',
});

type Row = [phase: DeployPhase, entries: InterruptionFacts['entries'], newRunning: boolean, expected: string];

// expected: kind, live slot, and for finish whether the switch is completed first.
const table: Row[] = [
  // Cut short before the switch: traffic never moved, whatever runs in the new slot.
  ['started', 'blue', false, 'discard blue'],
  ['started', null, false, 'discard blue'],
  ['gating', 'blue', true, 'discard blue'],
  ['gating', 'mixed', true, 'discard blue'],
  ['healthy', 'blue', true, 'discard blue'],
  ['healthy', null, true, 'discard blue'],
  // The switch ran (fully or partly) before the registry recorded it.
  ['healthy', 'green', true, 'finish green'],
  ['healthy', 'mixed', true, 'finish green switch-first'],
  ['healthy', 'green', false, 'roll-back green'],
  // After the switch: verify again and watch what is left; gone new version: straight back.
  ['switched', 'green', true, 'finish green'],
  ['verifying', 'green', true, 'finish green'],
  ['watching', 'green', true, 'finish green'],
  ['watching', 'green', false, 'roll-back green'],
  ['switched', 'mixed', true, 'finish green switch-first'],
  ['verifying', null, true, 'finish green switch-first'],
  ['watching', null, false, 'roll-back green'],
  // Traffic is back on the previous slot although the record says switched: it serves, drop the new one.
  ['verifying', 'blue', true, 'discard blue'],
  // Cut short while rolling back: complete the rollback, never verify again.
  ['rolling-back', 'green', true, 'roll-back green'],
  ['rolling-back', 'blue', false, 'roll-back green'],
];

const show = (a: ReturnType<typeof decideResume>) => `${a.kind} ${a.live}${a.kind === 'finish' && a.switchFirst ? ' switch-first' : ''}`;

describe('decideResume: what the next run does with a deploy cut short', () => {
  it.each(table)('phase %s, entries on %s, new version running %s -> %s', (phase, entries, newRunning, expected) => {
    const a = decideResume(progress(phase), { entries, newRunning });
    expect(show(a)).toBe(expected);
    expect(a.reason.length).toBeGreaterThan(5);
  });

  it('a first deploy (nothing served before) cut short before the switch leaves nothing live', () => {
    expect(show(decideResume(progress('gating', null), { entries: null, newRunning: true }))).toBe('discard null');
    expect(decideResume(progress('gating', null), { entries: null, newRunning: true }).reason).toContain('nothing was serving before');
  });

  it('only phases other than done, rolled-back and failed count as cut short; older records have none', () => {
    const phases: DeployPhase[] = ['started', 'gating', 'healthy', 'switched', 'verifying', 'watching', 'rolling-back', 'done', 'rolled-back', 'failed'];
    expect(phases.filter((ph) => interruptedDeploy({ deploy: progress(ph) }) !== null)).toEqual(['started', 'gating', 'healthy', 'switched', 'verifying', 'watching', 'rolling-back']);
    expect(interruptedDeploy({})).toBeNull();
    expect(interruptedDeploy({ deploy: null })).toBeNull();
    expect([endPhase('deployed'), endPhase('rolled-back'), endPhase('health-failed'), endPhase('release-failed'), endPhase('discarded')]).toEqual(['done', 'rolled-back', 'failed', 'failed', 'failed']);
  });

  it('the watch window still owed is what had not passed before the interruption', () => {
    expect(remainingWatch(10_000, {})).toBe(10_000);
    expect(remainingWatch(10_000, { watchedMs: 3_200 })).toBe(6_800);
    expect(remainingWatch(10_000, { watchedMs: 12_000 })).toBe(0);
  });

  it('says plainly what was cut short, where, and what apply does', () => {
    const p = { ...progress('watching'), watchedMs: 4_000 };
    const text = describeResume(p, decideResume(p, { entries: 'green', newRunning: true }), remainingWatch(10_000, p));
    expect(text).toBe(
      'the deploy of v4 to the green slot (started 2026-01-01T00:00:00Z by ci@runner) was cut short at "watching", traffic is on green, not yet verified; apply verifies it through Caddy, watches the remaining 6 s and rolls back to blue if it fails',
    );
    const before = progress('gating');
    expect(describeResume(before, decideResume(before, { entries: 'blue', newRunning: true }), 10_000)).toMatch(/cut short at "gating", before the switch: blue kept serving; apply removes the half-started green slot$/);
  });
});

describe('the deploy progress in the registry', () => {
  const doc = (deploy?: unknown): RegistryDocument => {
    const rec = { ...placeholderRecord({ now: '2026-01-01T00:00:00Z' }), ...(deploy === undefined ? {} : { deploy }) };
    return { formatVersion: 1, updatedAt: '2026-01-01T00:00:00Z', projects: { shop: { id: 'shop', name: 'Shop', createdAt: '', updatedAt: '', environments: { production: rec as never } } } };
  };

  it('validates with and without it (documents written before it existed stay readable)', () => {
    expect(validateRegistry(doc())).toBe(true);
    expect(validateRegistry(doc(null))).toBe(true);
    expect(validateRegistry(doc({ ...progress('watching'), watchedMs: 1200 }))).toBe(true);
  });

  it('refuses an unknown phase, a missing slot or an unknown field', () => {
    expect(validateRegistry(doc({ ...progress('watching'), phase: 'paused' }))).toBe(false);
    const { slot: _slot, ...noSlot } = progress('switched');
    expect(validateRegistry(doc(noSlot))).toBe(false);
    expect(validateRegistry(doc({ ...progress('switched'), note: 'x' }))).toBe(false);
  });

  it('registry inspect says INTERRUPTED and what comes next, or how the last deploy ended', () => {
    expect(deployLine(progress('verifying'))).toBe(
      'INTERRUPTED: the deploy of v4 to the green slot (started 2026-01-01T00:00:00Z by ci@runner) was cut short at "verifying" (recorded 2026-01-01T00:00:05Z); the next apply or deploy finishes it (`codeb plan` shows how), `codeb rollback` ends it',
    );
    expect(deployLine(progress('done'))).toBe('v4 to green: done (2026-01-01T00:00:05Z)');
  });
});
