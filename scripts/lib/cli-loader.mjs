// dist/codeb.mjs, written by scripts/build.mjs from this file: runs the CLI bundle (dist/codeb.cjs)
// with a V8 code cache. Node 20 compiles every module from source on each start and has no compile
// cache for ES modules (module.enableCompileCache came in Node 22); compiling is most of what a
// command costs beyond Node's own start-up. A vm.Script takes V8's cached code instead: one cache
// per top-level command (what `apply` runs is not what `validate` runs), written when the command
// first succeeds, kept in <nearest node_modules>/.cache/codeb/<build id>/ (a new build starts
// afresh; scripts/build.mjs removes the old ones). A cache V8 rejects (another Node, other V8
// flags) is compiled from source and written again. Nothing here is required for codeb to work:
// without a writable cache folder every start compiles, as before.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';

const BUILD_ID = '@@BUILD_ID@@';
/** main.ts names the running top-level command here (from commander, never from user text). */
const COMMAND = Symbol.for('codeb.command');
const COMMAND_NAME = /^[a-z][a-z-]{0,40}$/;
/** The cache of a start that ran no command: --help, --version, a usage error. */
const HELP = 'help';

const here = dirname(fileURLToPath(import.meta.url));
const bundle = join(here, 'codeb.cjs');
// All ASCII (scripts/build.mjs checks), so Latin-1 reads it exactly, without UTF-8 decoding.
const source = readFileSync(bundle, 'latin1');

/** <nearest node_modules>/.cache/codeb/<build id>, or undefined without a node_modules folder. */
function cacheFolder() {
  for (let dir = here; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'node_modules'))) return join(dir, 'node_modules', '.cache', 'codeb', BUILD_ID);
    if (dirname(dir) === dir) return undefined;
  }
}

const folder = cacheFolder();
let cached = [];
try {
  if (folder) cached = readdirSync(folder).filter((f) => f.endsWith('.bin')).map((f) => f.slice(0, -4));
} catch {
  // no cache yet
}
// The first argument that names a command with a cache (only names this loader wrote are read);
// else the one of `--help`, which every command's start-up shares.
const key = process.argv.slice(2).find((a) => cached.includes(a)) ?? (cached.includes(HELP) ? HELP : undefined);
let cachedData;
try {
  if (key) cachedData = readFileSync(join(folder, `${key}.bin`));
} catch {
  cachedData = undefined;
}
const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, { filename: bundle, cachedData });

process.once('exit', (code) => {
  const command = globalThis[COMMAND] ?? HELP;
  if (!folder || typeof command !== 'string' || !COMMAND_NAME.test(command)) return;
  if (cachedData && !script.cachedDataRejected && command === key) return;
  // A run that succeeded (or found changes to plan) compiled the command's usual path.
  if (code !== 0 && code !== 10) return;
  try {
    mkdirSync(folder, { recursive: true });
    const tmp = join(folder, `${command}.bin.${process.pid}`);
    writeFileSync(tmp, script.createCachedData());
    renameSync(tmp, join(folder, `${command}.bin`));
  } catch {
    // A read-only install: the next start compiles again.
  }
});

// controller/build-id.ts reads it: a running forwarder of another build is restarted by `stack up`.
globalThis[Symbol.for('codeb.build')] = BUILD_ID;
const module = { exports: {} };
script.runInThisContext()(module.exports, createRequire(bundle), module, bundle, here);
