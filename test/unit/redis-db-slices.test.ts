/**
 * The integration test files' Redis DBs (docs/stack.md, "Ports of the test stacks"): no two files
 * share one, all lie in the stack's project DBs (2-15), and only the file that never claims one
 * uses 2 and 3, which stay free for commands that only look.
 */
import { describe, expect, it } from 'vitest';
import { REDIS_DBS } from '../integration/helpers/apply.js';

describe('Redis DBs of the integration test files', () => {
  const all = Object.entries(REDIS_DBS).flatMap(([file, dbs]) => dbs.map((db) => ({ file, db })));

  it('no DB belongs to two files, and each is a project DB of the stack (2-15)', () => {
    const twice = all.filter((a, i) => all.findIndex((b) => b.db === a.db) !== i);
    expect(twice).toEqual([]);
    expect(all.filter((a) => a.db < 2 || a.db > 15)).toEqual([]);
  });

  it('DBs 2 and 3 are left to apply-bad-input, which claims none', () => {
    expect(all.filter((a) => a.db <= 3).map((a) => a.file)).toEqual(['apply-bad-input', 'apply-bad-input']);
  });
});
