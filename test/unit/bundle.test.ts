/**
 * The built CLI (scripts/build.mjs) carries its dependencies: `--help` and `validate` read no
 * package from node_modules (resolving and loading them file by file is what made start-up slow,
 * and a server gets the bundle). Checked by listing, at exit, every CommonJS module the process
 * loaded.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'codeb-bundle-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const out = join(dir, 'loaded.json');
// Every package the bundle leaves external is CommonJS, so the CommonJS cache at exit lists them
// (also when loaded through import()).
const preload = join(dir, 'record.cjs');
writeFileSync(preload, `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(out)}, JSON.stringify(Object.keys(require.cache))));\n`);

function loadedBy(args: string[]): string[] {
  const r = spawnSync(process.execPath, ['-r', preload, join(root, 'bin', 'codeb.js'), ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  expect(r.status, r.stderr).toBe(0);
  const loaded = JSON.parse(readFileSync(out, 'utf8')) as string[];
  expect(loaded).toContain(preload); // the record itself: the preload ran
  return loaded.filter((f) => f.includes('node_modules'));
}

describe('the built CLI', () => {
  it.each([[['--help']], [['validate', 'manifests/food-delivery-app.yaml']], [['validate', 'manifests/stock-analysis.yaml']]])('codeb %j loads nothing from node_modules', (args) => {
    expect(loadedBy(args)).toEqual([]);
  });
});
