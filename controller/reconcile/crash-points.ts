/**
 * Test instrumentation for crash safety and locking (test/integration/apply-crash.test.ts,
 * apply-concurrency.test.ts). A point is "<event>:<step label>": "start:" as the step starts,
 * "done:" once its effect is done but before anything (journal, registry) records it; the label is
 * the progress line's without its indentation, and a trailing `*` matches any rest. With
 * CODEB_TEST_CRASH_AT=<point> the process kills itself with SIGKILL there; with
 * CODEB_TEST_PAUSE_AT=<point> it stops itself (SIGSTOP) until the test sends SIGCONT. So a test
 * reaches a named point of the run instead of a guessed fraction of a measured duration.
 * Unset (always, outside those tests) the reporter is returned as it is.
 */
import type { Reporter } from './reporter.js';

/** Whether `point` ("start:+ postgres.role x") is the one `want` names (exact, or a prefix ending in `*`). */
export function pointMatches(want: string, point: string): boolean {
  return want.endsWith('*') ? point.startsWith(want.slice(0, -1)) : point === want;
}

export function withCrashPoints(reporter: Reporter, env: NodeJS.ProcessEnv = process.env): Reporter {
  const crashAt = env.CODEB_TEST_CRASH_AT;
  const pauseAt = env.CODEB_TEST_PAUSE_AT;
  if (!crashAt && !pauseAt) return reporter;
  // Progress lines go to a pipe or file, written synchronously: the line is out before the signal.
  const reached = (event: 'start' | 'done', label: string): void => {
    const point = `${event}:${label.trim()}`;
    if (crashAt && pointMatches(crashAt, point)) process.kill(process.pid, 'SIGKILL');
    if (pauseAt && pointMatches(pauseAt, point)) process.kill(process.pid, 'SIGSTOP');
  };
  return {
    ...reporter,
    start: (label) => {
      reporter.start(label);
      reached('start', label);
    },
    done: (label, result, ms) => {
      reporter.done(label, result, ms);
      reached('done', label);
    },
  };
}
