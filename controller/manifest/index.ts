/** Load and validate manifest files: the entry point the commands use. */
import { existsSync, statSync } from 'node:fs';
import { CodebError, EXIT } from '../errors.js';
import { issueText, type ManifestIssue } from './issues.js';
import { loadManifestFile } from './load.js';
import type { Manifest } from './types.js';
import { validateLoaded } from './validate.js';

export interface CheckedManifest {
  file: string;
  manifest?: Manifest;
  issues: ManifestIssue[];
}

export function checkManifest(file: string): CheckedManifest {
  if (!existsSync(file)) {
    return { file, issues: [{ file, line: 0, col: 0, path: '', code: 'not-found', message: 'no such file' }] };
  }
  if (!statSync(file).isFile()) {
    return { file, issues: [{ file, line: 0, col: 0, path: '', code: 'not-found', message: 'not a regular file' }] };
  }
  const loaded = loadManifestFile(file);
  const { manifest, issues } = validateLoaded(loaded);
  return manifest ? { file, manifest, issues } : { file, issues };
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
