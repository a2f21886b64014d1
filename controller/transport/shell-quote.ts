/**
 * The one place a command for a remote POSIX shell is built: an argument array in, one command
 * line out, in which every argument reaches the program exactly as given. sshd runs a command
 * through the remote user's login shell (`$SHELL -c <line>`), so that shell must be POSIX-like
 * (sh, dash, bash, zsh, ksh); csh and fish quote differently (docs/remote.md).
 */

/** Words no POSIX shell changes: no quoting needed (no `=`: a first word `A=b` would be an assignment; no `~`). */
const SAFE = /^[A-Za-z0-9_./:@%+,-]+$/;

/** Quote one argument: single quotes keep everything literal; a single quote itself becomes '\''. */
export function quoteArg(arg: string): string {
  if (arg.includes('\0')) throw new Error('a command argument cannot contain a NUL byte');
  if (arg !== '' && SAFE.test(arg)) return arg;
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}

/** An argument array as one command line for a POSIX shell: `sh -c "$line"` runs exactly argv. */
export function shellQuote(argv: readonly string[]): string {
  if (argv.length === 0) throw new Error('an empty command');
  return argv.map(quoteArg).join(' ');
}
