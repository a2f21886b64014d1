/**
 * The corpus of invalid manifests in test/fixtures/invalid/. Each fixture starts with comment lines
 * that state what must be reported (line numbers count those comment lines too):
 *
 *   # expect: LINE:COL PATH CODE "message fragment" [did-you-mean=WORD]
 *   # count: N            (optional: exactly N issues)
 *
 * PATH is the JSON pointer of the issue, or (document) for the whole file. Every fixture must be
 * rejected with at least the expected issue(s), and must never reach the registry: the CLI's
 * `registry allocate` exits 2 and leaves the registry byte-identical (or absent).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkManifest } from '../../controller/manifest/index.js';
import { formatIssue } from '../../controller/manifest/issues.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const DIR = join(ROOT, 'test/fixtures/invalid');
const CLI = join(ROOT, 'bin/codeb.js');

interface Expectation {
  line: number;
  col: number;
  path: string;
  code: string;
  fragment: string;
  suggestion?: string;
}
interface Case {
  name: string;
  file: string;
  expects: Expectation[];
  count?: number;
}

/** Fixtures that cannot carry a comment header (a truly empty file). */
const HEADERLESS: Record<string, Omit<Case, 'name' | 'file'>> = {
  'empty.yaml': { expects: [{ line: 1, col: 1, path: '', code: 'type', fragment: 'must be a YAML mapping' }], count: 1 },
};

const EXPECT_LINE = /^# expect: (\d+):(\d+) (.+?) ([a-z][a-z-]*) "(.*)"(?: did-you-mean=(\S+))?$/;

function parseCase(name: string): Case {
  const file = join(DIR, name);
  if (HEADERLESS[name]) return { name, file, ...HEADERLESS[name]! };
  const expects: Expectation[] = [];
  let count: number | undefined;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.startsWith('#')) break;
    if (line.startsWith('# expect:')) {
      const m = EXPECT_LINE.exec(line);
      if (!m) throw new Error(`${name}: cannot parse ${JSON.stringify(line)}`);
      expects.push({
        line: Number(m[1]),
        col: Number(m[2]),
        path: m[3] === '(document)' ? '' : m[3]!,
        code: m[4]!,
        fragment: JSON.parse(`"${m[5]!}"`) as string,
        ...(m[6] ? { suggestion: m[6] } : {}),
      });
    } else if (line.startsWith('# count:')) {
      count = Number(line.slice('# count:'.length));
    }
  }
  return { name, file, expects, ...(count === undefined ? {} : { count }) };
}

const CASES = readdirSync(DIR)
  .filter((n) => n.endsWith('.yaml'))
  .sort()
  .map(parseCase);

function matcher(e: Expectation) {
  return expect.objectContaining({
    line: e.line,
    col: e.col,
    path: e.path,
    code: e.code,
    message: expect.stringContaining(e.fragment),
    ...(e.suggestion ? { suggestion: e.suggestion } : {}),
  });
}

describe('the invalid corpus', () => {
  it('has at least 35 fixtures, each with a stated expectation', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(35);
    for (const c of CASES) expect(c.expects.length, `${c.name} has no "# expect:" line`).toBeGreaterThan(0);
  });

  it('covers the hostile inputs the brief names', () => {
    const names = CASES.map((c) => c.name);
    for (const must of [
      'yaml-bad-indent.yaml',
      'yaml-unclosed-flow-map.yaml',
      'yaml-tab-indent.yaml',
      'yaml-alias-bomb.yaml',
      'yaml-duplicate-key.yaml',
      'yaml-multiple-documents.yaml',
      'yaml-tag-js-function.yaml',
      'yaml-tag-binary.yaml',
      'empty.yaml',
      'id-sql-injection.yaml',
      'id-shell-substitution.yaml',
      'id-path-traversal.yaml',
      'id-cyrillic.yaml',
      'id-fullwidth.yaml',
      'id-too-long.yaml',
      'domain-label-64.yaml',
      'domain-too-long.yaml',
      'worker-with-port.yaml',
      'two-catch-all-web.yaml',
    ]) {
      expect(names).toContain(must);
    }
  });

  it('the over-long fixtures are exactly one past the limit', () => {
    const value = (name: string, key: string) => new RegExp(`^\\s*${key}: (\\S+)$`, 'm').exec(readFileSync(join(DIR, name), 'utf8'))![1]!;
    expect(value('id-too-long.yaml', 'id')).toHaveLength(41);
    expect(value('domain-too-long.yaml', 'domain')).toHaveLength(254);
    expect(value('domain-too-long.yaml', 'domain').split('.').every((l) => l.length <= 63)).toBe(true);
    expect(value('domain-label-64.yaml', 'domain').split('.')[0]).toHaveLength(64);
    expect(readFileSync(join(DIR, 'empty.yaml'))).toHaveLength(0);
  });
});

describe.each(CASES)('$name', (c) => {
  it('is rejected with the expected issue(s) at the stated line:col and path', () => {
    const checked = checkManifest(c.file);
    expect(checked.manifest).toBeUndefined();
    expect(checked.issues.length).toBeGreaterThan(0);
    for (const e of c.expects) expect(checked.issues).toContainEqual(matcher(e));
    if (c.count !== undefined) expect(checked.issues).toHaveLength(c.count);
    for (const i of checked.issues) {
      expect(i.file).toBe(c.file);
      expect(i.line).toBeGreaterThanOrEqual(1);
      expect(i.col).toBeGreaterThanOrEqual(1);
      expect(i.path === '' || i.path.startsWith('/')).toBe(true);
      expect(i.message.length).toBeGreaterThan(0);
      // Issues are printed one per line after file:line:col, so the message itself must not break lines.
      expect(formatIssue(i).split('\n')[0]).toContain(`${c.file}:${i.line}:${i.col}: `);
    }
  });
});

describe('generated hostile inputs (too big to keep as fixtures)', () => {
  let tmp: string;
  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'codeb-invalid-gen-'));
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('a file over 512 KiB is refused before it is parsed', () => {
    const file = join(tmp, 'huge.yaml');
    writeFileSync(file, 'apiVersion: codeb/v1\n' + '# padding\n'.repeat(60_000));
    const checked = checkManifest(file);
    expect(checked.manifest).toBeUndefined();
    expect(checked.issues).toEqual([expect.objectContaining({ line: 1, col: 1, path: '', code: 'too-large' })]);
  });

  it('deeply nested flow collections are a YAML error, not a crash', () => {
    const file = join(tmp, 'deep.yaml');
    writeFileSync(file, 'apiVersion: codeb/v1\nproject: ' + '['.repeat(100_000) + ']'.repeat(100_000) + '\n');
    const checked = checkManifest(file);
    expect(checked.manifest).toBeUndefined();
    expect(checked.issues[0]).toMatchObject({ line: 2, path: '', code: 'yaml' });
  });

  it('a missing file and a folder are reported, not thrown', () => {
    expect(checkManifest(join(tmp, 'nope.yaml')).issues).toEqual([expect.objectContaining({ code: 'not-found', message: 'no such file' })]);
    expect(checkManifest(tmp).issues).toEqual([expect.objectContaining({ code: 'not-found', message: 'not a regular file' })]);
  });
});

// ---------------------------------------------------------------------------------------------
// Nothing invalid ever reaches the registry.

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolvePromise) => {
    execFile(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...process.env, GITHUB_ACTIONS: '' } }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolvePromise({ code, stdout, stderr });
    });
  });
}

describe('invalid manifests never reach the registry', () => {
  let tmp: string;
  let registry: string;
  let before: Buffer;
  let listing: string[];

  beforeAll(async () => {
    if (!existsSync(join(ROOT, 'dist/codeb.mjs'))) throw new Error('the CLI is not built: run `npm run build` first');
    tmp = mkdtempSync(join(tmpdir(), 'codeb-invalid-'));
    registry = join(tmp, 'registry', 'projects.json');
    const first = await run(['--registry', registry, 'registry', 'allocate', join(ROOT, 'manifests/minimal.yaml')]);
    expect(first.code, first.stderr).toBe(0);
    before = readFileSync(registry);
    listing = readdirSync(dirname(registry)).sort();
  });

  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('the prior valid allocation is in the registry', () => {
    expect(JSON.parse(before.toString('utf8')).projects.hello.environments.production.ports.web).toBeDefined();
  });

  it.concurrent.each(CASES)('allocate $name: exit 2, registry untouched', async (c) => {
    const rel = relative(ROOT, c.file);
    const main = c.expects[0]!;

    // Into a registry that already holds a project: byte-identical afterwards, no lock left behind.
    const r = await run(['--registry', registry, 'registry', 'allocate', rel]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`${rel} is not a valid manifest`);
    expect(r.stderr).toContain(`${rel}:${main.line}:${main.col}: ${main.path || '(document)'}: `);
    expect(readFileSync(registry).equals(before)).toBe(true);
    expect(readdirSync(dirname(registry)).sort()).toEqual(listing);

    // Into a registry that does not exist yet: it is not created, nor its folder.
    const freshDir = join(tmp, `fresh-${c.name}`);
    const fresh = await run(['--registry', join(freshDir, 'projects.json'), 'registry', 'allocate', rel, '--json']);
    expect(fresh.code, fresh.stdout).toBe(2);
    expect(JSON.parse(fresh.stdout)).toMatchObject({ ok: false, error: { message: expect.stringContaining('is not a valid manifest') } });
    expect(existsSync(freshDir)).toBe(false);
  });

  it('the registry is byte-identical after every invalid allocation', () => {
    expect(readFileSync(registry).equals(before)).toBe(true);
  });
});
