/**
 * The codeb that `server init` installs on a server: this install's built CLI (bin/, dist/ from
 * scripts/build.mjs), the files it reads at run time (package.json, schemas/, templates/,
 * scripts/stack-s3rver.mjs, which marks the install folder) and the production dependencies the
 * bundle leaves external (node_modules entries package-lock.json does not mark dev), as one
 * .tar.gz. Nothing is built or fetched on the server. Its hash (of the code and the lock file)
 * names the version: init uploads only when the server's differs.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CodebError } from '../errors.js';

const run = promisify(execFile);

const CODE = ['bin', 'dist', 'package.json', 'schemas', 'templates', join('scripts', 'stack-s3rver.mjs')];

function filesUnder(root: string, rel: string): string[] {
  const abs = join(root, rel);
  if (!existsSync(abs)) return [];
  if (!statSync(abs).isDirectory()) return [rel];
  return readdirSync(abs, { withFileTypes: true })
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((e) => filesUnder(root, join(rel, e.name)));
}

/** The production packages to ship, as top-level paths (nested ones travel inside their parent). Pure. */
export function productionModules(lock: { packages?: Record<string, { dev?: boolean; optional?: boolean }> }): string[] {
  const out: string[] = [];
  for (const [path, meta] of Object.entries(lock.packages ?? {})) {
    if (!path.startsWith('node_modules/') || meta.dev) continue;
    // node_modules/a/node_modules/b ships inside node_modules/a unless a itself is not shipped.
    const parts = path.split('/node_modules/');
    const parent = parts.length > 1 ? parts[0]! : null;
    if (parent && !lock.packages?.[parent]?.dev) continue;
    out.push(path);
  }
  return out.sort();
}

export interface Bundle {
  hash: string;
  /** Relative paths (to the install root) that go into the archive. */
  paths: string[];
}

export function describeBundle(root: string): Bundle {
  if (!existsSync(join(root, 'dist', 'codeb.mjs'))) {
    throw new CodebError(`This codeb (${root}) is not built: there is no dist/codeb.mjs to install on the server.`, { hint: `Run \`npm ci\` (or \`npm run build\`) in ${root}.` });
  }
  const lockFile = join(root, 'package-lock.json');
  const lock = existsSync(lockFile) ? (JSON.parse(readFileSync(lockFile, 'utf8')) as Parameters<typeof productionModules>[0]) : {};
  const modules = productionModules(lock).filter((p) => existsSync(join(root, p)));
  const hash = createHash('sha256');
  for (const rel of [...CODE.flatMap((c) => filesUnder(root, c)), ...(existsSync(lockFile) ? ['package-lock.json'] : [])]) {
    // dist/BUILT holds the build time: the same code built twice is the same bundle.
    if (rel === join('dist', 'BUILT')) continue;
    hash.update(rel).update('\0').update(readFileSync(join(root, rel))).update('\0');
  }
  return { hash: hash.digest('hex').slice(0, 32), paths: [...CODE.filter((c) => existsSync(join(root, c))), ...modules] };
}

/** Write the archive to a temp file; returns its path and size. */
export async function packBundle(root: string, b: Bundle): Promise<{ file: string; bytes: number; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'codeb-bundle-'));
  const file = join(dir, 'codeb.tar.gz');
  try {
    await run('tar', ['-czf', file, '-C', root, '--owner=0', '--group=0', '--', ...b.paths], { maxBuffer: 16 * 1024 * 1024 });
  } catch (err) {
    throw new CodebError(`Could not pack codeb for the server: ${(err as Error).message}`, { hint: 'tar (GNU) must be installed here.' });
  }
  return { file, bytes: statSync(file).size, dir };
}
