/** A problem found in a manifest, located precisely enough for an editor or a CI annotation. */
export interface ManifestIssue {
  file: string;
  line: number;
  col: number;
  /** JSON pointer into the document, e.g. /services/web/port ('' for the whole file). */
  path: string;
  /** Machine-readable kind: yaml, unknown-key, type, enum, pattern, range, required, conflict, ... */
  code: string;
  message: string;
  /** What is allowed instead (values, pattern description, range). */
  allowed?: string;
  /** "did you mean" for a misspelled key or value. */
  suggestion?: string;
}

/** "path: message (did you mean ...?)": the part every rendering of an issue shares. */
export function issueText(i: ManifestIssue): string {
  return `${i.path || '(document)'}: ${i.message}${i.suggestion ? ` (did you mean "${i.suggestion}"?)` : ''}`;
}

export function formatIssue(i: ManifestIssue): string {
  let out = `${i.file}:${i.line}:${i.col}: ${issueText(i)}`;
  if (i.allowed) out += `\n    allowed: ${i.allowed}`;
  return out;
}

/** Levenshtein distance, for "did you mean". Small inputs only (keys, enum values). */
export function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!;
      prev[j] = Math.min(up + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length]!;
}

export function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}
