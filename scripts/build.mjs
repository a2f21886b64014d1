// Build once (run by `npm ci` through `prepare`): precompile the manifest validator with ajv's
// standalone mode, then bundle the CLI with esbuild so each call starts without compiling anything.
import { build } from 'esbuild';
import { mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { generateValidators } from './generate-validators.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
generateValidators(root);

rmSync(join(root, 'dist'), { recursive: true, force: true });
mkdirSync(join(root, 'dist'), { recursive: true });
await build({
  entryPoints: { codeb: join(root, 'controller/cli/main.ts') },
  outdir: join(root, 'dist'),
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  outExtension: { '.js': '.mjs' },
  // Native or optional-dependency-heavy drivers stay external and load from node_modules.
  packages: 'external',
  logLevel: 'warning',
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
});
writeFileSync(join(root, 'dist', 'BUILT'), new Date().toISOString() + '\n');
