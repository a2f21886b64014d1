/**
 * Bundle a TypeScript helper script into one .mjs that plain `node` can run as a child process.
 * The output goes under .codeb/ (git-ignored) inside the repository so that bare imports
 * (proper-lockfile, write-file-atomic, ajv runtime) resolve from the repository's node_modules.
 */
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
// @ts-expect-error plain .mjs script without types
import { bundleTs } from '../../scripts/lib/bundle-ts.mjs';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export async function bundleChild(entry: string): Promise<string> {
  const outfile = join(repoRoot, '.codeb', 'test-build', `${basename(entry, '.ts')}-${process.pid}-${Date.now()}.mjs`);
  return (await bundleTs(entry, outfile)) as string;
}
