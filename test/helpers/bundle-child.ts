/**
 * Bundle a TypeScript helper script into one .mjs that plain `node` can run as a child process.
 * The output goes under .codeb/ (git-ignored) inside the repository so that bare imports
 * (proper-lockfile, write-file-atomic, ajv runtime) resolve from the repository's node_modules.
 */
import { build } from 'esbuild';
import { mkdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export async function bundleChild(entry: string): Promise<string> {
  const outDir = join(repoRoot, '.codeb', 'test-build');
  mkdirSync(outDir, { recursive: true });
  const outfile = join(outDir, `${basename(entry, '.ts')}-${process.pid}-${Date.now()}.mjs`);
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    packages: 'external',
    logLevel: 'warning',
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  });
  return outfile;
}
