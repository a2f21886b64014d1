// Build once (run by `npm ci` through `prepare`): precompile the manifest validator with ajv's
// standalone mode, then bundle the CLI with esbuild into one CommonJS file (dist/codeb.cjs) that
// dist/codeb.mjs (scripts/lib/cli-loader.mjs) runs with a V8 code cache, so a start compiles
// almost nothing.
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { generateValidators } from './generate-validators.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
generateValidators(root);

// Dependencies are bundled, so a command resolves and reads no package from node_modules file by
// file (the CommonJS loader cost ~50 ms of a no-change apply, see `npm run bench:cli`). One file,
// not code-split chunks: with the code cache V8 reads only the compiled code of what a command
// ran, and the rest of the file (the S3 client, ioredis, nodemailer) is neither parsed nor run
// until a dynamic import or lazyModule below first needs it. (Split ES modules were compiled from
// source on every start: Node 20 has no compile cache for them.)
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
    // proper-lockfile takes its fs from graceful-fs, which patches Node's fs for the whole process
    // when loaded (~4 ms of every start that takes the registry lock) to queue opens past EMFILE;
    // the lock opens a handful of files, so plain fs does.
    b.onLoad({ filter: /[\\/]node_modules[\\/]proper-lockfile[\\/]lib[\\/](lockfile|adapter)\.js$/ }, async (args) => {
      const text = await readFile(args.path, 'utf8');
      const patched = text.replace("const fs = require('graceful-fs');", "const fs = require('fs');");
      if (patched === text) throw new Error(`${args.path} changed: update the graceful-fs patch in scripts/build.mjs`);
      return { contents: patched, loader: 'js' };
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
    entryPoints: [join(root, 'controller/cli/main.ts')],
    outfile: join(out, 'codeb.cjs'),
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    sourcemap: true,
    // Comments and indentation out: a smaller file to read at every start, and all ASCII (see
    // below). Names are kept, so stack traces (CODEB_DEBUG=1) still name functions.
    minifyWhitespace: true,
    charset: 'ascii',
    // import() of what stays outside the bundle (node: modules, dockerode) becomes require(): a
    // vm.Script (cli-loader.mjs) has no module loader for import().
    supported: { 'dynamic-import': false },
    plugins: [bundling],
    logLevel: 'warning',
    // The modules that find files next to them (templates/, the install root) ask import.meta.url:
    // in the bundle that is the bundle's own URL (dist/, where the chunks used to be).
    define: { 'import.meta.url': '__codebModuleUrl' },
    banner: { js: "const __codebModuleUrl = require('node:url').pathToFileURL(__filename).href;" },
  });
} catch (err) {
  rmSync(out, { recursive: true, force: true });
  throw err;
}
const bundled = readFileSync(join(out, 'codeb.cjs'));
// cli-loader.mjs reads the bundle as Latin-1, the cheapest decoding, which is exact for ASCII only.
if (bundled.some((byte) => byte > 0x7f)) throw new Error('dist/codeb.cjs is not all ASCII: check the charset option in scripts/build.mjs');
// The build id names this build's code caches (cli-loader.mjs): a cache is only ever used with the
// bundle it was made from.
const buildId = createHash('sha256').update(bundled).digest('hex').slice(0, 16);
const loader = readFileSync(join(root, 'scripts/lib/cli-loader.mjs'), 'utf8');
if (!loader.includes("'@@BUILD_ID@@'")) throw new Error('scripts/lib/cli-loader.mjs lost its build id placeholder');
writeFileSync(join(out, 'codeb.mjs'), loader.replace("'@@BUILD_ID@@'", JSON.stringify(buildId)));
writeFileSync(join(out, 'BUILT'), new Date().toISOString() + '\n');
const old = join(root, `dist.old-${process.pid}`);
try {
  renameSync(join(root, 'dist'), old);
} catch (err) {
  if (err.code !== 'ENOENT') throw err;
}
renameSync(out, join(root, 'dist'));
rmSync(old, { recursive: true, force: true });
// The code caches of earlier builds are of no use any more.
const caches = join(root, 'node_modules', '.cache', 'codeb');
if (existsSync(caches)) for (const id of readdirSync(caches)) if (id !== buildId) rmSync(join(caches, id), { recursive: true, force: true });
