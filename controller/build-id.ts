/**
 * The id of the running codeb build (scripts/build.mjs: a hash of the bundle), which the CLI
 * loader (dist/codeb.mjs) hands over in a global. null when codeb runs from source (tests import
 * the modules directly), where there is no build to compare.
 */
const BUILD = Symbol.for('codeb.build');

export function buildId(): string | null {
  const v = (globalThis as Record<symbol, unknown>)[BUILD];
  return typeof v === 'string' && /^[0-9a-f]{16}$/.test(v) ? v : null;
}
