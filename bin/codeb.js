#!/usr/bin/env node
// Thin launcher: the CLI is bundled once by `npm ci` (prepare -> scripts/build.mjs) so no TypeScript is compiled per call.
import { existsSync } from 'node:fs';
const bundle = new URL('../dist/codeb.mjs', import.meta.url);
if (!existsSync(bundle)) {
  process.stderr.write('codeb: the CLI is not built yet. Run `npm ci` (or `npm run build`) in the codeb folder.\n');
  process.exit(1);
}
await import(bundle.href);
