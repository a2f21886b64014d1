/**
 * The per-project alert signing secret: made once, by the first apply of the project that has a
 * `monitoring.alerts.webhook`, which prints it that one time so it can be put into the receiver.
 * It is kept beside the other secrets (mode 0600) and never printed again; every environment of the
 * project signs with it, so one receiver serves them all.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import writeFileAtomic from 'write-file-atomic';
import { CodebError } from '../errors.js';
import { envFileName } from '../manifest/names.js';
import { registerSecret } from '../redact.js';
import { generateSecret } from '../reconcile/secrets.js';
import { secretsDir } from '../settings.js';

/** "alert-signing" is longer than an environment name may be, so it never meets a deployment's files. */
export function alertSecretFile(registryFile: string, project: string): string {
  envFileName(project, 'production'); // validates the project id before it becomes part of a path
  return join(secretsDir(registryFile), `${project}.alert-signing.json`);
}

export function loadAlertSecret(registryFile: string, project: string): string | null {
  const f = alertSecretFile(registryFile, project);
  if (!existsSync(f)) return null;
  let secret: unknown;
  try {
    secret = (JSON.parse(readFileSync(f, 'utf8')) as { webhookSecret?: unknown }).webhookSecret;
  } catch (err) {
    throw new CodebError(`The alert secret file ${f} is not valid JSON: ${(err as Error).message}`, { hint: 'Delete it; the next apply makes a new secret and prints it once.' });
  }
  if (typeof secret !== 'string' || secret.length < 16) return null;
  registerSecret(secret);
  return secret;
}

/** The project's secret, made now if there is none. `created` says the caller must show it (once). */
export async function ensureAlertSecret(registryFile: string, project: string): Promise<{ secret: string; created: boolean }> {
  const existing = loadAlertSecret(registryFile, project);
  if (existing) return { secret: existing, created: false };
  const secret = generateSecret();
  registerSecret(secret);
  const dir = secretsDir(registryFile);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  await writeFileAtomic(alertSecretFile(registryFile, project), JSON.stringify({ webhookSecret: secret }) + '\n', { mode: 0o600, fsync: true });
  return { secret, created: true };
}

