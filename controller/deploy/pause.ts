/**
 * Test hook: CODEB_TEST_PAUSE_AT=<point> stops a deploy at that point and waits there to be killed,
 * so the interrupted-deploy tests reach each phase by a condition (this line on stderr), never by
 * a guessed sleep. Points: a phase name (paused right after it is recorded) or gate-check,
 * verify-check, watch-check (right after the first check of that step). Unset, it does nothing.
 */
export const PAUSE_ENV = 'CODEB_TEST_PAUSE_AT';

/** A paused process that nobody killed gives up after this long (the lock is then taken over as after a crash). */
const GIVE_UP_MS = 120_000;

export async function pauseAt(point: string, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  if (env[PAUSE_ENV] !== point) return;
  process.stderr.write(`codeb: paused at ${point} (${PAUSE_ENV}), waiting to be killed\n`);
  await new Promise<never>(() => {
    setTimeout(() => {
      process.stderr.write(`codeb: nobody killed the process paused at ${point} within ${GIVE_UP_MS / 1000} s; exiting\n`);
      process.exit(1);
    }, GIVE_UP_MS);
  });
}
