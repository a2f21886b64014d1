/**
 * dist/codeb.mjs (scripts/lib/cli-loader.mjs) keeps a V8 code cache per command next to the
 * nearest node_modules: written by a command's first successful run, used as it is afterwards,
 * written again when V8 rejects it, never written by a failed run. Run on a private copy of the
 * built CLI whose node_modules holds nothing but the cache.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'codeb-loader-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
if (!existsSync(join(root, 'dist', 'codeb.mjs'))) throw new Error('the CLI is not built: run `npm run build` first');
cpSync(join(root, 'dist'), join(dir, 'dist'), { recursive: true });
mkdirSync(join(dir, 'node_modules'));
const caches = join(dir, 'node_modules', '.cache', 'codeb');

function codeb(...args: string[]): number | null {
  return spawnSync(process.execPath, [join(dir, 'dist', 'codeb.mjs'), ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } }).status;
}

function cacheFiles(): string[] {
  if (!existsSync(caches)) return [];
  const builds = readdirSync(caches);
  expect(builds).toHaveLength(1); // one build, named by its id
  return readdirSync(join(caches, builds[0]!)).sort();
}

const cacheFile = (name: string) => join(caches, readdirSync(caches)[0]!, name);

describe('the code cache of the built CLI', () => {
  it('is not written by a command that fails', () => {
    expect(codeb('registry', 'inspect', 'no-such-project', '--registry', join(dir, 'none.json'))).not.toBe(0);
    expect(cacheFiles()).toEqual([]);
  });

  it("is written by a command's first successful run, and only then", () => {
    expect(codeb('validate', 'manifests/food-delivery-app.yaml')).toBe(0);
    expect(cacheFiles()).toEqual(['validate.bin']);
    const first = statSync(cacheFile('validate.bin'));
    expect(codeb('validate', 'manifests/stock-analysis.yaml')).toBe(0);
    expect(statSync(cacheFile('validate.bin')).mtimeMs).toBe(first.mtimeMs);
    expect(codeb('--help')).toBe(0);
    expect(cacheFiles()).toEqual(['help.bin', 'validate.bin']);
  });

  it('is compiled afresh and written again when V8 rejects it', () => {
    writeFileSync(cacheFile('validate.bin'), 'not a code cache');
    expect(codeb('validate', 'manifests/food-delivery-app.yaml')).toBe(0);
    const bytes = readFileSync(cacheFile('validate.bin'));
    expect(bytes.toString('latin1')).not.toBe('not a code cache');
    expect(bytes.length).toBeGreaterThan(10_000);
  });
});
