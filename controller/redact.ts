/**
 * Last line of defence for "secrets never appear in output": every secret value codeb loads or
 * generates is registered here, and everything printed passes through redactText().
 */
const known = new Set<string>();

export function registerSecret(value: string | undefined): void {
  // Very short values would redact ordinary words; generated secrets are long.
  if (value && value.length >= 8) known.add(value);
}

export function redactText(text: string): string {
  let out = text;
  for (const s of known) if (out.includes(s)) out = out.split(s).join('[redacted]');
  // Credentials inside URLs, whatever their origin.
  return out.replace(/([a-z][a-z0-9+.-]*:\/\/[^:/@\s]+:)[^@\s]+@/gi, '$1[redacted]@');
}
