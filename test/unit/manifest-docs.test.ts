/**
 * docs/manifest.md stays true to the schema: every field is documented with its schema default,
 * no documented field is invented, the examples it lists exist, and its full YAML examples validate.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseManifest } from '../../controller/manifest/load.js';
import { bucketName, databaseName } from '../../controller/manifest/names.js';
import { environmentNames, resolveDeployment } from '../../controller/manifest/normalize.js';
import { validateLoaded } from '../../controller/manifest/validate.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const DOC = readFileSync(join(ROOT, 'docs/manifest.md'), 'utf8');
type Node = Record<string, unknown>;
const SCHEMA = JSON.parse(readFileSync(join(ROOT, 'schemas/project-manifest.schema.json'), 'utf8')) as Node;
const DEFS = SCHEMA.$defs as Record<string, Node>;

function deref(n: Node): Node {
  let out = n;
  while (typeof out.$ref === 'string') {
    const { $ref, ...rest } = out;
    out = { ...DEFS[($ref as string).split('/').pop()!]!, ...rest };
  }
  return out;
}

/** Dotted field paths of the schema (`<name>` for map keys, `[]` for list items) with their defaults. */
function fields(node: Node, path = '', out = new Map<string, unknown>()): Map<string, unknown> {
  const n = deref(node);
  for (const [k, v] of Object.entries((n.properties as Record<string, Node> | undefined) ?? {})) {
    const p = path ? `${path}.${k}` : k;
    out.set(p, deref(v).default);
    fields(v, p, out);
  }
  if (n.additionalProperties && typeof n.additionalProperties === 'object') fields(n.additionalProperties as Node, `${path}.<name>`, out);
  if (n.items && typeof n.items === 'object') fields(n.items as Node, `${path}[]`, out);
  return out;
}

const FIELDS = fields(SCHEMA);
const fieldsSection = DOC.slice(DOC.indexOf('\n## Fields'), DOC.indexOf('\n## How an environment is resolved'));
/** First-column field of each table row in the Fields section -> the row's cells. */
const ROWS = new Map(
  fieldsSection
    .split('\n')
    .filter((l) => l.startsWith('| `'))
    .map((l) => {
      const cells = l.split(/(?<!\\)\|/).map((c) => c.trim());
      return [cells[1]!.replace(/^`|`$/g, ''), cells.slice(1, -1)] as const;
    }),
);

function rendered(v: unknown): string {
  return Array.isArray(v) ? `[${v.join(', ')}]` : String(v);
}

describe('docs/manifest.md', () => {
  it('documents every field of the schema', () => {
    expect(FIELDS.size).toBeGreaterThan(100);
    const missing = [...FIELDS.keys()].filter((f) => !ROWS.has(f));
    expect(missing).toEqual([]);
  });

  it('documents no field the schema does not have', () => {
    const invented = [...ROWS.keys()].filter((f) => !FIELDS.has(f));
    expect(invented).toEqual([]);
  });

  it('gives every schema default in the Default column', () => {
    for (const [field, value] of FIELDS) {
      if (value === undefined) continue;
      const defaultCell = ROWS.get(field)![2]!;
      expect(defaultCell, field).toContain('`' + rendered(value) + '`');
    }
  });

  it('has a type and a meaning for every field', () => {
    for (const [field, cells] of ROWS) {
      expect(cells, field).toHaveLength(4);
      expect(cells[1]!.length, `${field} type`).toBeGreaterThan(0);
      expect(cells[3]!.length, `${field} meaning`).toBeGreaterThan(3);
    }
  });

  it('lists every example in manifests/', () => {
    for (const name of readdirSync(join(ROOT, 'manifests')).filter((n) => n.endsWith('.yaml'))) {
      expect(DOC).toContain(`(../manifests/${name})`);
    }
  });

  it('its full YAML examples validate, and the names it claims for them are right', () => {
    const blocks = [...DOC.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!).filter((b) => /^apiVersion:/m.test(b));
    expect(blocks.length).toBeGreaterThanOrEqual(1);
    for (const block of blocks) {
      const { manifest, issues } = validateLoaded(parseManifest(block, 'docs/manifest.md'));
      expect(issues).toEqual([]);
      const m = manifest!;
      for (const env of environmentNames(m)) {
        const d = resolveDeployment(m, env);
        const scope = { projectId: d.projectId, env, multiEnv: d.multiEnv };
        if (d.features.database) expect(DOC).toContain('`' + databaseName(scope) + '`');
        if (d.features.storage) expect(DOC).toContain('`' + bucketName(scope) + '`');
      }
    }
  });

  it('the editor line it shows is the one the examples use', () => {
    expect(DOC).toContain('# yaml-language-server: $schema=../schemas/project-manifest.schema.json');
  });
});
