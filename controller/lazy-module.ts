/**
 * Client libraries (pg, ioredis, the S3 client, dockerode) load when their system is first
 * touched, not when the CLI starts: together they cost ~0.5 s of start-up, which `validate`,
 * `--help` and every command that never reaches that system would pay (`npm run bench:cli`).
 * Synchronous on purpose, for the drivers' pure helpers (pg's escapeIdentifier) used in plain code.
 * The CLI bundle (scripts/build.mjs) replaces this module with one whose loaders are plain
 * require() calls of the bundled packages (its LAZY list names them); this one serves tests and
 * other unbundled runs.
 */
import { createRequire } from 'node:module';

const load = createRequire(import.meta.url);

/** A getter for a CommonJS package that requires it on its first call. */
export function lazyModule<T>(name: string): () => T {
  let mod: T | undefined;
  return () => (mod ??= load(name) as T);
}
