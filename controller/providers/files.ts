/**
 * The per-deployment env file (DATABASE_URL, REDIS_URL, S3_*): written next to the registry in the
 * secrets folder with mode 0600, injected into the containers, never printed. Specs carry
 * `${secret:NAME}` placeholders; this provider fills them in only when it writes or compares.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import writeFileAtomic from 'write-file-atomic';
import { CodebError } from '../errors.js';
import type { Action, ExecContext, Observed, Provider, Resource } from '../reconcile/model.js';

const PLACEHOLDER = /\$\{secret:([A-Za-z0-9_]+)\}/g;

export function renderEnvFile(variables: Record<string, string>, secret: (name: string) => string): string {
  const lines = ['# Written by codeb. Connection details and secrets for this deployment; do not edit or commit.'];
  for (const key of Object.keys(variables).sort()) {
    const value = renderValue(variables[key]!, secret);
    if (/[\n\r]/.test(value)) throw new CodebError(`Env value for ${key} contains a line break.`);
    lines.push(`${key}=${value}`);
  }
  return lines.join('\n') + '\n';
}

export function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}

export class FilesProvider implements Provider {
  readonly system = 'files' as const;

  constructor(
    private readonly dir: string,
    /** Resolves secrets for comparing; the same function the executor hands out as ctx.secret. */
    private readonly secret: (name: string) => string,
  ) {}

  path(name: string): string {
    // `name` comes from names.envFileName (a validated file name, never a path).
    if (name.includes('/') || name.startsWith('.')) throw new CodebError(`Refusing env file name ${JSON.stringify(name)}.`);
    return join(this.dir, name);
  }

  async observe(resources: Resource[]): Promise<Observed[]> {
    return resources
      .filter((r) => r.kind === 'files.envfile')
      .map((r) => {
        const file = this.path(r.name);
        if (!existsSync(file)) return { key: r.key, exists: false };
        const found = parseEnvFile(readFileSync(file, 'utf8'));
        const want = (r.spec.variables ?? {}) as Record<string, string>;
        // Report the desired template for each variable whose rendered value matches, and a
        // marker otherwise, so a plan can say which variables differ without showing values.
        const variables: Record<string, string> = {};
        for (const [k, v] of Object.entries(found)) {
          const tmpl = want[k];
          variables[k] = tmpl !== undefined && renderValue(tmpl, this.secret) === v ? tmpl : '(differs)';
        }
        // A file others can read is drift too: it is rewritten with mode 0600.
        const privateMode = (statSync(file).mode & 0o077) === 0;
        return { key: r.key, exists: true, spec: { variables: privateMode ? variables : { ...variables, '(mode)': 'readable by others' } } };
      });
  }

  async execute(action: Action, ctx: ExecContext): Promise<void> {
    const file = this.path(action.name);
    if (action.op === 'delete') {
      rmSync(file, { force: true });
      return;
    }
    if (action.op !== 'create' && action.op !== 'update') return;
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const variables = (action.resource.spec.variables ?? {}) as Record<string, string>;
    await writeFileAtomic(file, renderEnvFile(variables, ctx.secret), { mode: 0o600, fsync: true });
    ctx.progress(`wrote ${Object.keys(variables).length} variables`);
  }

  async close(): Promise<void> {}
}

function renderValue(template: string, secret: (name: string) => string): string {
  return template.replace(PLACEHOLDER, (_, name: string) => secret(name));
}
