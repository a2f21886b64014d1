/**
 * Read a manifest file into a YAML document that remembers where every node came from, so each
 * problem can be reported as file:line:column. Guards against hostile YAML: duplicate keys,
 * alias bombs (billion laughs), several documents in one file, custom tags and oversized files.
 */
import { readFileSync, statSync } from 'node:fs';
import { Document, isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, type Node } from 'yaml';
import type { ManifestIssue } from './issues.js';

export const MAX_MANIFEST_BYTES = 512 * 1024;
/** Real manifests need a handful of aliases at most; bombs need thousands. */
export const MAX_ALIAS_COUNT = 50;

export interface LoadedManifest {
  file: string;
  doc: Document.Parsed;
  lines: LineCounter;
  /** Plain data (aliases expanded), or undefined when the YAML itself is broken. */
  data: unknown;
  issues: ManifestIssue[];
}

export function loadManifestFile(file: string): LoadedManifest {
  const size = statSync(file).size;
  if (size > MAX_MANIFEST_BYTES) {
    const lines = new LineCounter();
    return {
      file,
      doc: parseDocument('', { lineCounter: lines }),
      lines,
      data: undefined,
      issues: [{ file, line: 1, col: 1, path: '', code: 'too-large', message: `file is ${size} bytes; a manifest may be at most ${MAX_MANIFEST_BYTES} bytes` }],
    };
  }
  return parseManifest(readFileSync(file, 'utf8'), file);
}

export function parseManifest(source: string, file: string): LoadedManifest {
  const lines = new LineCounter();
  const doc = parseDocument(source, {
    lineCounter: lines,
    prettyErrors: false,
    uniqueKeys: true,
    strict: true,
    version: '1.2',
    schema: 'core',
    customTags: [],
    // Without this, explicit YAML 1.1 tags (!!binary, !!set, !!omap, !!pairs, !!timestamp) still
    // resolve to Buffers, Sets, Maps and Dates even under the core schema; report them instead.
    resolveKnownTags: false,
  });
  const issues: ManifestIssue[] = [];
  for (const e of [...doc.errors, ...doc.warnings]) {
    const at = lines.linePos(e.pos[0]);
    issues.push({ file, line: at.line, col: at.col, path: '', code: 'yaml', message: yamlMessage(e.code, e.message) });
  }
  let data: unknown;
  if (doc.errors.length === 0) {
    try {
      data = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (err) {
      issues.push({ file, line: 1, col: 1, path: '', code: 'yaml', message: `YAML aliases expand too far (${(err as Error).message}); write the values out instead of nesting aliases` });
    }
  }
  return { file, doc, lines, data, issues };
}

function yamlMessage(code: string, message: string): string {
  const first = message.split('\n')[0] ?? message;
  switch (code) {
    case 'DUPLICATE_KEY':
      return 'duplicate key: each key may appear once in a mapping';
    case 'MULTIPLE_DOCS':
      return 'several YAML documents in one file: a manifest is one document (remove the extra ---)';
    case 'TAG_RESOLVE_FAILED':
      return `unsupported YAML tag (${first}); manifests use plain YAML values only`;
    default:
      return `malformed YAML: ${first.replace(/ at line \d+, column \d+:?$/, '')}`;
  }
}

export type PathSegment = string | number;

/** Position of the node at `path` (or of its key, which is where an unknown key should point). */
export function locate(loaded: LoadedManifest, path: PathSegment[], at: 'key' | 'value' = 'value'): { line: number; col: number } {
  let node: unknown = loaded.doc.contents;
  let best: { line: number; col: number } = { line: 1, col: 1 };
  const pos = (n: unknown) => {
    const range = (n as Node | null)?.range;
    return range ? loaded.lines.linePos(range[0]) : undefined;
  };
  best = pos(node) ?? best;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i];
    const last = i === path.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair) return best;
      if (last && at === 'key') return pos(pair.key) ?? best;
      node = pair.value;
      best = pos(node) ?? pos(pair.key) ?? best;
    } else if (isSeq(node) && typeof seg === 'number') {
      node = node.items[seg];
      best = pos(node) ?? best;
    } else {
      return best;
    }
  }
  return best;
}
