/** Printing helpers shared by the commands: plain text for people, JSON for scripts. */
import { CodebError, EXIT } from '../errors.js';
import { redactText } from '../redact.js';

export interface GlobalOptions {
  json?: boolean;
  registry?: string;
}

export function printJson(value: unknown): void {
  process.stdout.write(redactText(JSON.stringify(value, null, 2)) + '\n');
}

export function println(line = ''): void {
  process.stdout.write(redactText(line) + '\n');
}

export function eprintln(line = ''): void {
  process.stderr.write(redactText(line) + '\n');
}

let lastFailure: { message: string; exitCode: number } | undefined;

/** The error the command ended with, if any (for the GitHub step summary). */
export function commandFailure(): { message: string; exitCode: number } | undefined {
  return lastFailure;
}

/** Turn any thrown value into a readable message and the exit code it means. */
export function reportError(err: unknown, json: boolean): number {
  lastFailure = { message: redactText(err instanceof Error ? err.message : String(err)), exitCode: err instanceof CodebError ? err.exitCode : EXIT.failure };
  if (err instanceof CodebError) {
    if (json) {
      printJson({ ok: false, error: { message: err.message, where: err.where, hint: err.hint } });
    } else {
      eprintln(`error: ${err.where ? `${err.where}: ` : ''}${err.message}`);
      if (err.hint) eprintln(`  hint: ${err.hint}`);
    }
    return err.exitCode;
  }
  const message = err instanceof Error ? err.message : String(err);
  if (json) printJson({ ok: false, error: { message, internal: true } });
  else {
    eprintln(`error: codeb failed unexpectedly: ${message}`);
    if (process.env.CODEB_DEBUG && err instanceof Error && err.stack) eprintln(err.stack);
    else eprintln('  hint: run again with CODEB_DEBUG=1 for the stack trace, and report it if it persists.');
  }
  return EXIT.failure;
}

/** Run a command body; never let an exception escape as a Node stack trace. */
export async function runCommand(json: boolean | undefined, body: () => Promise<number | void>): Promise<void> {
  try {
    const code = await body();
    process.exitCode = code ?? EXIT.ok;
  } catch (err) {
    process.exitCode = reportError(err, Boolean(json));
  }
}
