#!/usr/bin/env node
// npm run bench:providers [rounds]: time to provision one project's shared resources from nothing
// and the no-change pass, medians. Needs the local stack (`codeb stack up`, same CODEB_HOME).
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleTs } from './lib/bundle-ts.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = await bundleTs(join(root, 'scripts', 'bench', 'providers-entry.ts'), join(root, '.codeb', 'bench-build', 'providers.mjs'));
const r = spawnSync(process.execPath, [out, ...process.argv.slice(2)], { stdio: 'inherit', cwd: root });
process.exit(r.status ?? 1);
