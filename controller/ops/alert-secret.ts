/**
 * The per-project alert signing secret: made once, by the first apply of the project that has a
 * `monitoring.alerts.webhook`. The command that ran that apply prints it once when it ends (even when
 * the deploy failed: its alert was signed with it) and records that it did, so no later output or
 * log shows it again. It is kept beside the other secrets (mode 0600); every environment of the
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
  const secret = readFile(f).webhookSecret;
  if (typeof secret !== 'string' || secret.length < 16) return null;
  registerSecret(secret);
  return secret;
}

interface SecretFile {
  webhookSecret?: unknown;
  /** True once a command has printed it. */
  shown?: unknown;
}

function readFile(f: string): SecretFile {
  try {
    return JSON.parse(readFileSync(f, 'utf8')) as SecretFile;
  } catch (err) {
    throw new CodebError(`The alert secret file ${f} is not valid JSON: ${(err as Error).message}`, { hint: 'Delete it; the next apply makes a new secret and prints it once.' });
  }
}

async function write(registryFile: string, project: string, content: { webhookSecret: string; shown: boolean }): Promise<void> {
  const dir = secretsDir(registryFile);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  await writeFileAtomic(alertSecretFile(registryFile, project), JSON.stringify(content) + '\n', { mode: 0o600, fsync: true });
}

/**
 * The secret if it has never been shown, marked as shown from now on; otherwise null. The caller
 * prints it (the one place codeb prints a secret, because the receiver cannot work without it).
 */
export async function takeUnshownAlertSecret(registryFile: string, project: string): Promise<string | null> {
  const f = alertSecretFile(registryFile, project);
  if (!existsSync(f)) return null;
  const content = readFile(f);
  if (content.shown === true || typeof content.webhookSecret !== 'string') return null;
  await write(registryFile, project, { webhookSecret: content.webhookSecret, shown: true });
  return content.webhookSecret;
}

/** The project's secret, made now if there is none. `created` says the caller must show it (once). */
export async function ensureAlertSecret(registryFile: string, project: string): Promise<{ secret: string; created: boolean }> {
  const existing = loadAlertSecret(registryFile, project);
  if (existing) return { secret: existing, created: false };
  const secret = generateSecret();
  registerSecret(secret);
  await write(registryFile, project, { webhookSecret: secret, shown: false });
  return { secret, created: true };
}

