/**
 * Test instrumentation for crash safety (test/integration/apply-crash.test.ts). With
 * CODEB_TEST_CRASH_AT="start:<step label>" the process kills itself with SIGKILL as that step
 * starts; with "done:<step label>" once the step's effect is done but before anything (journal,
 * registry) records it. The label is the progress line's, without its indentation. So a test
 * crashes the apply at a named point instead of at a guessed fraction of a measured duration.
 * Unset (always, outside that test) the reporter is returned as it is.
 */
import type { Reporter } from './reporter.js';

export function withCrashPoints(reporter: Reporter, env: NodeJS.ProcessEnv = process.env): Reporter {
  const at = env.CODEB_TEST_CRASH_AT;
  if (!at) return reporter;
  // Progress lines go to a pipe or file, written synchronously: the line is out before the kill.
  const reached = (event: 'start' | 'done', label: string): void => {
    if (`${event}:${label.trim()}` === at) process.kill(process.pid, 'SIGKILL');
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
