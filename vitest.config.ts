import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Integration suites share one local stack and real ports; files run in parallel processes,
    // each test file must use its own registry file and project ids.
    pool: 'forks',
    maxWorkers: 2,
    // Guards against a hang, not waits: generous, so a loaded machine (`npm run test:busy`, other
    // work beside it) only makes the suite slower, never red. A passing test never waits for them.
    testTimeout: 300_000,
    hookTimeout: 600_000,
    reporters: process.env.CI ? ['default'] : ['default'],
  },
});
