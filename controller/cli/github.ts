/** GitHub Actions workflow commands: annotations that point at a manifest line. */
import { issueText, type ManifestIssue } from '../manifest/issues.js';

/** Escape per the workflow-command rules: % CR LF in data; also : and , in properties. */
function escapeData(s: string): string {
  return s.replaceAll('%', '%25').replaceAll('\r', '%0D').replaceAll('\n', '%0A');
}
function escapeProperty(s: string): string {
  return escapeData(s).replaceAll(':', '%3A').replaceAll(',', '%2C');
}

export function annotation(i: ManifestIssue): string {
  const msg = `${issueText(i)}${i.allowed ? ` — allowed: ${i.allowed}` : ''}`;
  return `::error file=${escapeProperty(i.file)},line=${i.line},col=${i.col},title=codeb manifest::${escapeData(msg)}`;
}
