// Bundle TypeScript sources into one .mjs that plain `node` runs, for benches and test helpers
// (the CLI itself is built by scripts/build.mjs). Dependencies stay external and resolve from
// this checkout's node_modules, so the output must live inside the checkout (under .codeb/).
import { build } from 'esbuild';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export const BUNDLE_OPTIONS = {
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  logLevel: 'warning',
  // Generated validators and some drivers call require(); give ESM output one.
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
};

/** entry: a file path, or { stdin } options for esbuild. */
export async function bundleTs(entry, outfile) {
  mkdirSync(dirname(outfile), { recursive: true });
  const input = typeof entry === 'string' ? { entryPoints: [entry] } : { stdin: entry };
  await build({ ...BUNDLE_OPTIONS, ...input, outfile });
  return outfile;
}
