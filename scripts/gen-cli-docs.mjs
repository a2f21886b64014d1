#!/usr/bin/env node
// Write docs/cli.md from the CLI's own --help, so the reference cannot drift from the code
// (test/unit/cli-docs.test.ts fails when it is stale: run `node scripts/gen-cli-docs.mjs`).
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const help = (args) =>
  execFileSync(process.execPath, [join(root, 'bin', 'codeb.js'), ...args, '--help'], { encoding: 'utf8', env: { ...process.env, COLUMNS: '100' } });

function subcommands(text) {
  const section = text.split(/^Commands:$/m)[1];
  if (!section) return [];
  return section
    .split('\n')
    .map((l) => /^  ([a-z][a-z-]*)/.exec(l)?.[1])
    .filter((c) => c && c !== 'help');
}

export function generate() {
  const out = ['# codeb command reference', '', 'Generated from `codeb <command> --help` by `scripts/gen-cli-docs.mjs`; do not edit by hand.', ''];
  const walk = (path) => {
    const text = help(path);
    out.push(`## codeb${path.length ? ' ' + path.join(' ') : ''}`, '', '```', text.trimEnd(), '```', '');
    for (const c of subcommands(text)) walk([...path, c]);
  };
  walk([]);
  return out.join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(join(root, 'docs', 'cli.md'), generate());
  console.log('wrote docs/cli.md');
}
