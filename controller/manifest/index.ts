/** Load and validate manifest files: the entry point the commands use. */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { CodebError, EXIT } from '../errors.js';
import { issueText, type ManifestIssue } from './issues.js';
import { loadManifestFile, MAX_MANIFEST_BYTES, parseManifest } from './load.js';
import type { Manifest } from './types.js';
import { validateLoaded } from './validate.js';

export interface CheckedManifest {
  file: string;
  manifest?: Manifest;
  issues: ManifestIssue[];
}

/**
 * Results by file name, with the text they were made from. One command reads its manifest up to
 * three times (where it runs, the apply itself, the alert secret it prints); parsing and
 * validating costs ~10 ms each, reading again costs nothing, so a file whose text is unchanged is
 * not parsed again. Callers get their own copy: none can change another's.
 */
const checkedTexts = new Map<string, { text: string; checked: CheckedManifest }>();

export function checkManifest(file: string): CheckedManifest {
  if (!existsSync(file)) {
    return { file, issues: [{ file, line: 0, col: 0, path: '', code: 'not-found', message: 'no such file' }] };
  }
  const stat = statSync(file);
  if (!stat.isFile()) {
    return { file, issues: [{ file, line: 0, col: 0, path: '', code: 'not-found', message: 'not a regular file' }] };
  }
  if (stat.size > MAX_MANIFEST_BYTES) return check(loadManifestFile(file));
  const text = readFileSync(file, 'utf8');
  const seen = checkedTexts.get(file);
  if (seen?.text === text) return structuredClone(seen.checked);
  const checked = check(parseManifest(text, file));
  checkedTexts.set(file, { text, checked: structuredClone(checked) });
  return checked;
}

function check(loaded: ReturnType<typeof loadManifestFile>): CheckedManifest {
  const { manifest, issues } = validateLoaded(loaded);
  return manifest ? { file: loaded.file, manifest, issues } : { file: loaded.file, issues };
}

/** For commands that need a valid manifest: throw one error listing every problem. */
export function requireManifest(file: string): Manifest {
  const checked = checkManifest(file);
  if (!checked.manifest) {
    const lines = checked.issues.map((i) => `  ${i.file}:${i.line}:${i.col}: ${issueText(i)}`);
    throw new CodebError(`${file} is not a valid manifest (${checked.issues.length} problem${checked.issues.length === 1 ? '' : 's'}):\n${lines.join('\n')}`, {
      exitCode: EXIT.invalid,
      hint: `Run \`codeb validate ${file}\` for details; docs/manifest.md describes every field.`,
    });
  }
  return checked.manifest;
}
