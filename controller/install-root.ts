/** The folder codeb is installed in (holds package.json, schemas/, templates/), from source or bundle. */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

export function installRoot(): string {
  if (cached) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'schemas', 'project-manifest.schema.json'))) return (cached = dir);
    dir = dirname(dir);
  }
  throw new Error('cannot find the codeb install folder (schemas/ missing)');
}
