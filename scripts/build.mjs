// Build once (run by `npm ci` through `prepare`): precompile the manifest validator with ajv's
// standalone mode, then bundle the CLI with esbuild so each call starts without compiling anything.
import { build } from 'esbuild';
import { mkdirSync, renameSync, writeFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { generateValidators } from './generate-validators.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
generateValidators(root);

// Pure-JS packages on every command's start-up path are bundled: resolving and loading their many
// CommonJS files from node_modules one by one costs ~30 ms per call (see `npm run bench:cli`).
// Everything else (drivers, native or optional-dependency-heavy packages) stays external.
const BUNDLED = new Set(['commander', 'yaml']);
const packageName = (spec) => spec.split('/').slice(0, spec.startsWith('@') ? 2 : 1).join('/');
const externalPackages = {
  name: 'external-packages',
  setup(b) {
    // Bare specifiers (packages, node: builtins) stay external unless listed in BUNDLED.
    b.onResolve({ filter: /^[^./]/ }, (args) => (BUNDLED.has(packageName(args.path)) ? undefined : { path: args.path, external: true }));
  },
};

// Build beside dist/ and swap it in at the end, so a codeb started while this runs (another
// terminal, a test) never finds dist/ empty.
const out = join(root, `dist.tmp-${process.pid}`);
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
try {
  await build({
    entryPoints: { codeb: join(root, 'controller/cli/main.ts') },
    outdir: out,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    sourcemap: true,
    outExtension: { '.js': '.mjs' },
    plugins: [externalPackages],
    logLevel: 'warning',
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  });
} catch (err) {
  rmSync(out, { recursive: true, force: true });
  throw err;
}
writeFileSync(join(out, 'BUILT'), new Date().toISOString() + '\n');
const old = join(root, `dist.old-${process.pid}`);
try {
  renameSync(join(root, 'dist'), old);
} catch (err) {
  if (err.code !== 'ENOENT') throw err;
}
renameSync(out, join(root, 'dist'));
rmSync(old, { recursive: true, force: true });
