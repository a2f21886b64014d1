/**
 * How apply and destroy show progress: one line per step with its elapsed time. On a terminal the
 * line appears when the step starts and is completed when it ends; in CI (no TTY) each step is
 * printed once, finished, so logs stay readable. --json prints nothing until the final document.
 */
import { redactText } from '../redact.js';

export interface Reporter {
  start(label: string): void;
  done(label: string, result: string, ms: number): void;
  fail(label: string, message: string, ms: number): void;
  info(line: string): void;
}

export function formatMs(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

export function consoleReporter(stream: NodeJS.WriteStream = process.stderr): Reporter {
  const tty = Boolean(stream.isTTY) && process.env.CI !== 'true';
  const write = (s: string) => stream.write(redactText(s));
  return {
    start: (label) => {
      if (tty) write(`  ${label} ...`);
    },
    done: (label, result, ms) => {
      write(tty ? ` ${result} (${formatMs(ms)})\n` : `  ${label} ... ${result} (${formatMs(ms)})\n`);
    },
    fail: (label, message, ms) => {
      // The full error (with details) is printed once at the end; the step line gets its headline.
      message = message.split('\n')[0] ?? message;
      write(tty ? ` FAILED (${formatMs(ms)})\n    ${message}\n` : `  ${label} ... FAILED (${formatMs(ms)})\n    ${message}\n`);
    },
    info: (line) => write(line + '\n'),
  };
}

/** Run one step under a reporter: its line starts, then ends with `describe(result)` or the error, with the time taken. */
export async function reportStep<T>(reporter: Reporter, label: string, fn: () => Promise<T>, describe: (v: T) => string = () => 'done'): Promise<T> {
  const t0 = performance.now();
  reporter.start(label);
  try {
    const v = await fn();
    reporter.done(label, describe(v), performance.now() - t0);
    return v;
  } catch (err) {
    reporter.fail(label, (err as Error).message, performance.now() - t0);
    throw err;
  }
}

export const silentReporter: Reporter = { start() {}, done() {}, fail() {}, info() {} };
