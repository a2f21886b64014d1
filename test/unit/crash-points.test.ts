/** Which named points CODEB_TEST_CRASH_AT / CODEB_TEST_PAUSE_AT select (controller/reconcile/crash-points.ts). */
import { describe, expect, it } from 'vitest';
import { pointMatches, withCrashPoints } from '../../controller/reconcile/crash-points.js';
import { silentReporter } from '../../controller/reconcile/reporter.js';

describe('crash points', () => {
  it.each([
    { want: 'start:+ postgres.role a_db_owner', point: 'start:+ postgres.role a_db_owner', match: true },
    { want: 'start:+ postgres.role a_db_owner', point: 'done:+ postgres.role a_db_owner', match: false },
    { want: 'start:+ postgres.role a', point: 'start:+ postgres.role a_db_owner', match: false },
    { want: 'start:+ postgres.role *', point: 'start:+ postgres.role a_db_owner', match: true },
    { want: 'done:health gate*', point: 'done:health gate (1 container)', match: true },
    { want: 'done:health gate*', point: 'start:health gate (1 container)', match: false },
  ])('$want selects $point: $match', ({ want, point, match }) => {
    expect(pointMatches(want, point)).toBe(match);
  });

  it('leaves the reporter as it is when neither variable is set', () => {
    expect(withCrashPoints(silentReporter, {})).toBe(silentReporter);
    expect(withCrashPoints(silentReporter, { CODEB_TEST_CRASH_AT: 'start:x' })).not.toBe(silentReporter);
  });
});
