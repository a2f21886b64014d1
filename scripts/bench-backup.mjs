#!/usr/bin/env node
// npm run bench:backup [rounds] [rows]: pg_dump, upload (with read-back) and verify (download,
// sha256, restore into a scratch database, row counts) of a database of 100k rows, medians.
// Needs the local stack (`codeb stack up`, same CODEB_HOME).
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleTs } from './lib/bundle-ts.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = await bundleTs(join(root, 'scripts', 'bench', 'backup-entry.ts'), join(root, '.codeb', 'bench-build', 'backup.mjs'));
const r = spawnSync(process.execPath, [out, ...process.argv.slice(2)], { stdio: 'inherit', cwd: root });
process.exit(r.status ?? 1);
