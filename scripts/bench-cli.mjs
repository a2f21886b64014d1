#!/usr/bin/env node
// Start-up cost of the CLI against bare node, in one run: `node -e 0`, `codeb validate` (the
// food-delivery example and the nine-service stock-analysis one) and, when the local stack is up,
// a no-change `codeb apply` of the food-delivery example — interleaved, medians, the difference
// from bare node and the ratio to it (scripts/lib/bench-noop.mjs).
//
//   npm run bench:cli                 15 rounds
//   node scripts/bench-cli.mjs 31     31 rounds
//   node scripts/bench-cli.mjs --json machine-readable result
//
// Targets (issue 13): validate within node + 100 ms, the no-change apply within node + 150 ms.
// Exit code 0 either way: this measures, it does not gate (timings depend on the machine).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { noopVsNode, printNoop, stackEnv, TARGETS } from './lib/bench-noop.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const asJson = args.includes('--json');
const rounds = Number(args.find((a) => /^\d+$/.test(a)) ?? 15);

if (!existsSync(join(root, 'dist', 'codeb.mjs'))) {
  console.error('bench-cli: the CLI is not built; run `npm run build` first.');
  process.exit(1);
}
const stack = stackEnv(root);
const result = noopVsNode(root, { rounds, apply: stack.up });
if (asJson) {
  console.log(JSON.stringify({ rounds, node: process.version, targetsMs: TARGETS, ...result, applySkipped: stack.up ? null : stack.why }, null, 2));
} else {
  printNoop(result, rounds);
  if (!stack.up) console.log(`no-change apply skipped: the local stack is not up (${stack.why}); \`codeb stack up\` or CODEB_HOME=.codeb/test-home`);
}
