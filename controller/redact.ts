/**
 * Last line of defence for "secrets never appear in output": every secret value codeb loads or
 * generates is registered here, and everything printed passes through redactText().
 */
const known = new Set<string>();

export function registerSecret(value: string | undefined): void {
  // Very short values would redact ordinary words; generated secrets are long.
  if (!value || value.length < 8 || known.has(value)) return;
  known.add(value);
  // Under GitHub Actions the runner masks it in the job log too (it hides the command line itself).
  // A mask covers one line, so a multi-line value (a key) is masked line by line.
  if (process.env.GITHUB_ACTIONS === 'true') {
    for (const line of value.split(/\r?\n/)) if (line.trim().length >= 8) process.stdout.write(`::add-mask::${line.trim()}\n`);
  }
}

export function redactText(text: string): string {
  let out = text;
  for (const s of known) if (out.includes(s)) out = out.split(s).join('[redacted]');
  // Credentials inside URLs, whatever their origin.
  return out.replace(/([a-z][a-z0-9+.-]*:\/\/[^:/@\s]+:)[^@\s]+@/gi, '$1[redacted]@');
}
