/**
 * The full text of a failed step (container log tail, health check output) goes to its own file,
 * mode 0600 under CODEB_HOME/logs (folder 0700); the registry's history and journal keep only the
 * reason and this file's path. A release command that prints a secret in some encoding redaction
 * cannot recognise must not put it in the registry, which more people read than the logs.
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { codebHome } from '../settings.js';

/** The first line of an error message, bounded: the reason, without the log that follows it. */
export function reasonOf(message: string, max = 300): string {
  const first = message.split('\n', 1)[0]!.trim();
  return first.length > max ? `${first.slice(0, max - 1)}…` : first;
}

/** Write `text` to a new 0600 file and return its path. File name from validated ids only. */
export function writeFailureLog(projectId: string, env: string, text: string, now = new Date(), env_: NodeJS.ProcessEnv = process.env): string {
  const dir = join(codebHome(env_), 'logs');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const stamp = now.toISOString().replaceAll(':', '').replace('.', '-');
  const file = join(dir, `${projectId}.${env}.${stamp}.${process.pid}.log`);
  writeFileSync(file, text.endsWith('\n') ? text : `${text}\n`, { mode: 0o600, flag: 'wx' });
  return file;
}
