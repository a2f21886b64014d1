// Build once (run by `npm ci` through `prepare`): precompile the manifest validator with ajv's
// standalone mode, then bundle the CLI with esbuild so each call starts without compiling anything.
import { build } from 'esbuild';
import { mkdirSync, renameSync, writeFileSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { generateValidators } from './generate-validators.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
generateValidators(root);

// Dependencies are bundled, so a command resolves and reads no package from node_modules file by
// file (the CommonJS loader cost ~50 ms of a no-change apply, see `npm run bench:cli`). Code
// splitting keeps each client library in the chunk of the code that loads it (a dynamic import, or
// lazyModule below), so a command loads only the clients of the systems it touches.
// Left external, resolved from node_modules at run time: dockerode (its gRPC/protobuf and SSH
// stack, loaded only to create, start and exec containers), the SSH client (native optional
// parts), s3rver (the local stack's S3 server) and the drivers' optional native add-ons.
const EXTERNAL = new Set(['dockerode', 'node-ssh', 'ssh2', 's3rver', 'cpu-features', 'pg-native']);
const packageName = (spec) => spec.split('/').slice(0, spec.startsWith('@') ? 2 : 1).join('/');
// The drivers controller/lazy-module.ts loads with createRequire, which a bundler cannot follow: in
// the bundle that module is replaced by one whose loaders are plain require() calls (bundled, run
// on first use). Other names still load from node_modules.
const LAZY = ['pg'];
const lazyModuleSource = `
const LOAD = { ${LAZY.map((n) => `${JSON.stringify(n)}: () => require(${JSON.stringify(n)})`).join(', ')} };
export function lazyModule(name) {
  let mod;
  return () => (mod ??= (LOAD[name] ?? (() => require(name)))());
}
`;
const bundling = {
  name: 'bundling',
  setup(b) {
    // node: builtins and the EXTERNAL packages stay external; every other package is bundled.
    b.onResolve({ filter: /^[^./]/ }, (args) => (args.path.startsWith('node:') || EXTERNAL.has(packageName(args.path)) ? { path: args.path, external: true } : undefined));
    b.onLoad({ filter: /[\\/]controller[\\/]lazy-module\.ts$/ }, () => ({ contents: lazyModuleSource, loader: 'js' }));
    // The generated validators make their own require() for ajv's runtime helpers (they also run
    // unbundled, in tests); in the bundle the plain require() is bundled instead.
    b.onLoad({ filter: /[\\/]controller[\\/]generated[\\/]validators\.js$/ }, async (args) => {
      const text = await readFile(args.path, 'utf8');
      const own = "import { createRequire as __createRequire } from 'node:module';\nconst require = __createRequire(import.meta.url);\n";
      if (!text.includes(own)) throw new Error(`${args.path} changed: update its require patch in scripts/build.mjs`);
      return { contents: text.replace(own, ''), loader: 'js' };
    });
    // pg asks "am I in a Cloudflare Worker?" by touching the global Response, which makes Node load
    // its whole fetch implementation (undici, ~20 ms) at the first connection. codeb runs on Node.
    b.onLoad({ filter: /[\\/]node_modules[\\/]pg[\\/]lib[\\/]stream\.js$/ }, async (args) => {
      const text = await readFile(args.path, 'utf8');
      const patched = text.replace('if (isCloudflareRuntime()) {', 'if (false) {');
      if (patched === text) throw new Error(`${args.path} changed: update the Cloudflare check patch in scripts/build.mjs`);
      return { contents: patched, loader: 'js' };
    });
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
    plugins: [bundling],
    logLevel: 'warning',
    // The bundled CommonJS packages call require() for Node's modules and read __filename and
    // __dirname (write-file-atomic, ioredis): give every ESM chunk all three.
    banner: {
      js: "import { createRequire as __cr } from 'node:module'; import { fileURLToPath as __fup } from 'node:url'; const require = __cr(import.meta.url); const __filename = __fup(import.meta.url); const __dirname = __fup(new URL('.', import.meta.url));",
    },
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
