/**
 * Per-deployment secrets (database and Redis passwords): generated once, kept in
 * <secrets dir>/<project>.<env>.secrets.json with mode 0600, reused on every apply, changed only
 * by `codeb secrets rotate`. Values are registered for redaction the moment they are loaded.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import writeFileAtomic from 'write-file-atomic';
import { CodebError } from '../errors.js';
import { envFileName } from '../manifest/names.js';
import { registerSecret } from '../redact.js';

export type SecretValues = Record<string, string>;

export function generateSecret(): string {
  // 32 URL-safe characters: no quoting needed in URLs, env files or Redis ACL rules.
  return randomBytes(24).toString('base64url');
}

/** An S3 access key id: 20 upper-case characters like AWS's (CB + 18 hex digits). */
export function generateAccessKey(): string {
  return 'CB' + randomBytes(9).toString('hex').toUpperCase();
}

export class SecretStore {
  constructor(readonly dir: string) {}

  file(projectId: string, env: string): string {
    return join(this.dir, envFileName(projectId, env).replace(/\.env$/, '.secrets.json'));
  }

  load(projectId: string, env: string): SecretValues {
    const f = this.file(projectId, env);
    if (!existsSync(f)) return {};
    let values: SecretValues;
    try {
      values = JSON.parse(readFileSync(f, 'utf8')) as SecretValues;
    } catch (err) {
      throw new CodebError(`The secrets file ${f} is not valid JSON: ${(err as Error).message}`, { hint: 'Restore it from a backup, or delete it and run `codeb secrets rotate` for every secret.' });
    }
    for (const v of Object.values(values)) registerSecret(v);
    return values;
  }

  /** Make sure every named secret exists; generate the missing ones (generateSecret unless named in `generators`). */
  async ensure(projectId: string, env: string, names: string[], generators: Record<string, () => string> = {}): Promise<SecretValues> {
    const values = this.load(projectId, env);
    const missing = names.filter((n) => !values[n]);
    if (missing.length) {
      for (const n of missing) values[n] = (generators[n] ?? generateSecret)();
      await this.save(projectId, env, values);
    }
    for (const v of Object.values(values)) registerSecret(v);
    return values;
  }

  /** Set (string) or remove (null) some values, leaving the others; written only when something changes. */
  async update(projectId: string, env: string, changes: Record<string, string | null>): Promise<SecretValues> {
    const values = this.load(projectId, env);
    let changed = false;
    for (const [k, v] of Object.entries(changes)) {
      if (v === null ? !(k in values) : values[k] === v) continue;
      if (v === null) delete values[k];
      else {
        values[k] = v;
        registerSecret(v);
      }
      changed = true;
    }
    if (changed) await this.save(projectId, env, values);
    return values;
  }

  async rotate(projectId: string, env: string, name: string): Promise<void> {
    const values = this.load(projectId, env);
    values[name] = generateSecret();
    registerSecret(values[name]);
    await this.save(projectId, env, values);
  }

  remove(projectId: string, env: string): void {
    rmSync(this.file(projectId, env), { force: true });
  }

  private async save(projectId: string, env: string, values: SecretValues): Promise<void> {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    chmodSync(this.dir, 0o700);
    await writeFileAtomic(this.file(projectId, env), JSON.stringify(values, null, 2) + '\n', { mode: 0o600, fsync: true });
  }
}
