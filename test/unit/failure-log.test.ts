/** History keeps the reason and a pointer to a 0600 log, never log text (issue 9, finding 6). */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { reasonOf, writeFailureLog } from '../../controller/registry/failure-log.js';

const home = mkdtempSync(join(tmpdir(), 'codeb-faillog-'));
afterAll(() => rmSync(home, { recursive: true, force: true }));

describe('reasonOf', () => {
  it.each([
    ['one line', 'one line'],
    ['Deploy stopped: health failed\n  container log (tail):\n    c2VjcmV0', 'Deploy stopped: health failed'],
    ['  padded  \nrest', 'padded'],
    ['', ''],
  ])('%j -> %j', (message, reason) => expect(reasonOf(message)).toBe(reason));

  it('bounds a long first line', () => {
    const r = reasonOf('x'.repeat(1000), 300);
    expect(r).toHaveLength(300);
    expect(r.endsWith('…')).toBe(true);
  });
});

describe('writeFailureLog', () => {
  it('writes the whole text to a new 0600 file in a 0700 folder under CODEB_HOME/logs', () => {
    const env = { CODEB_HOME: home };
    const a = writeFailureLog('shop', 'production', 'first line\nlog: c2VjcmV0', new Date('2026-01-01T00:00:00.000Z'), env);
    const b = writeFailureLog('shop', 'production', 'again', new Date('2026-01-01T00:00:01.000Z'), env);
    expect(dirname(a)).toBe(join(home, 'logs'));
    expect(a).not.toBe(b);
    expect(readFileSync(a, 'utf8')).toBe('first line\nlog: c2VjcmV0\n');
    expect(statSync(a).mode & 0o777).toBe(0o600);
    expect(statSync(dirname(a)).mode & 0o777).toBe(0o700);
  });
});
