/**
 * shellQuote is the one function that turns an argument array into a command line for the remote
 * shell. Hostile values must reach the program byte for byte: each case is run through real
 * shells here (`sh -c <line>`, as sshd does with the login shell) and the argv printed back with
 * printf '%s\0' is compared exactly. The nested form runRemote uses (sh -c RUN ... env ... cmd)
 * is checked the same way.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { quoteArg, shellQuote } from '../../controller/transport/shell-quote.js';

const HOSTILE: string[] = [
  '',
  ' ',
  'two words',
  "it's",
  "'",
  "''",
  '"',
  '"double" and \'single\'',
  '$(id)',
  '${HOME}',
  '$HOME',
  '`id`',
  'a;rm -rf /tmp/nothing-here',
  'a|b',
  'a&&b',
  'a||b',
  'a&',
  '>out',
  '<in',
  '2>&1',
  '<(id)',
  'line1\nline2',
  '\n',
  'tab\there',
  'cr\rhere',
  '\\',
  '\\n',
  'back\\slash\\',
  '*',
  '?',
  '[a-z]*',
  '~',
  '~root',
  '{a,b}',
  '!',
  '!!',
  '#comment',
  'a #b',
  '-n',
  '-e',
  '--',
  '--host=x',
  '-',
  'A=1',
  'PATH=/nowhere',
  '%s%n',
  'ünïcödé ✓ 日本語 🚀',
  '\u00a0nbsp',
  '\x01\x02\x1b[31mred',
  '$\'\\x41\'',
  'x'.repeat(5000),
  "a'b\"c$d`e\\f\ng h;i|j&k(l)m{n}o<p>q*r?s[t]u~v!w#x",
];

const SHELLS = ['/bin/sh', '/bin/dash', '/bin/bash', '/usr/bin/zsh', '/bin/ksh'].filter((s) => existsSync(s));

/** Run a command line in a shell and get back the arguments printf received. */
function argvThrough(shell: string, line: string): string[] {
  const out = execFileSync(shell, ['-c', line], { encoding: 'utf8', maxBuffer: 1 << 24 });
  const parts = out.split('\0');
  expect(parts.pop()).toBe('');
  return parts;
}

describe('shellQuote', () => {
  it.each(SHELLS)('every hostile value reaches the program unchanged through %s', (shell) => {
    const line = shellQuote(['printf', '%s\\0', ...HOSTILE]);
    expect(argvThrough(shell, line)).toEqual(HOSTILE);
  });

  it.each(HOSTILE.map((v) => [JSON.stringify(v).slice(0, 60), v] as const))('round-trips alone: %s', (_name, value) => {
    expect(argvThrough('/bin/sh', shellQuote(['printf', '%s\\0', value]))).toEqual([value]);
  });

  it('an assignment-looking first word stays a word, a command substitution stays text', () => {
    // `A=1 printf ...` unquoted would be an environment assignment; quoted it is the command name.
    expect(quoteArg('A=1')).toBe("'A=1'");
    const out = execFileSync('/bin/sh', ['-c', shellQuote(['env', 'X=$(echo pwned)`echo pwned`', 'printenv', 'X'])], { encoding: 'utf8' });
    expect(out).toBe('$(echo pwned)`echo pwned`\n');
  });

  it('survives the nested form runRemote uses: sh -c <script> with the command as positional parameters', () => {
    const script = 'd=$1; shift; "$@"; rc=$?; exit $rc';
    const inner = ['env', 'K=$(id);`id`', 'printf', '%s\\0', ...HOSTILE];
    const line = shellQuote(['sh', '-c', script, 'codeb-run', '/tmp/dir with space', ...inner]);
    expect(argvThrough('/bin/sh', line)).toEqual(HOSTILE);
  });

  it('leaves plain words readable and quotes everything else', () => {
    expect(shellQuote(['node', '/opt/codeb/bin/codeb.js', 'deploy', '--image=ghcr.io/org/app:1f2e', 'root@host:22'])).toBe(
      "node /opt/codeb/bin/codeb.js deploy '--image=ghcr.io/org/app:1f2e' root@host:22",
    );
    expect(shellQuote(['a b', '', "it's"])).toBe(`'a b' '' 'it'\\''s'`);
  });

  it('refuses what no argv can hold', () => {
    expect(() => shellQuote([])).toThrow(/empty command/);
    expect(() => shellQuote(['a\0b'])).toThrow(/NUL/);
  });
});
