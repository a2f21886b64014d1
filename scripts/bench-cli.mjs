#!/usr/bin/env node
// Start-up cost of the CLI: wall time of `node -e 0` (bare node), `codeb --help` and
// `codeb validate manifests/stock-analysis.yaml`, interleaved in one loop so all three share the
// same machine noise. Prints median and p90 per command and the difference from bare node.
//
//   npm run bench:cli                 30 rounds
//   node scripts/bench-cli.mjs 50     50 rounds
//   node scripts/bench-cli.mjs --json machine-readable result
//
// Target: validate within 100 ms of bare node (median). Exit code 0 either way: this measures,
// it does not gate (timings depend on the machine).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const asJson = args.includes('--json');
const rounds = Number(args.find((a) => /^\d+$/.test(a)) ?? 30);
const TARGET_MS = 100;

if (!existsSync(join(root, 'dist', 'codeb.mjs'))) {
  console.error('bench-cli: the CLI is not built; run `npm run build` first.');
  process.exit(1);
}

const cli = join(root, 'bin', 'codeb.js');
const cases = [
  { name: 'node -e 0', argv: ['-e', '0'], expect: 0 },
  { name: 'codeb --help', argv: [cli, '--help'], expect: 0 },
  { name: 'codeb validate stock-analysis.yaml', argv: [cli, 'validate', join(root, 'manifests', 'stock-analysis.yaml')], expect: 0 },
];

function once(c) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, c.argv, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== c.expect) {
    console.error(`bench-cli: "${c.name}" exited ${r.status}, expected ${c.expect}:\n${r.stderr}`);
    process.exit(1);
  }
  return ms;
}

function quantile(sorted, q) {
  // Nearest-rank on the sorted sample.
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

// Warm the file cache once so the first round is not an outlier.
for (const c of cases) once(c);

const samples = cases.map(() => []);
for (let i = 0; i < rounds; i++) {
  // Rotate the order each round so no command always runs first.
  for (let k = 0; k < cases.length; k++) {
    const j = (i + k) % cases.length;
    samples[j].push(once(cases[j]));
  }
}

const stats = cases.map((c, j) => {
  const s = [...samples[j]].sort((a, b) => a - b);
  return { name: c.name, median: quantile(s, 0.5), p90: quantile(s, 0.9), min: s[0] };
});
const base = stats[0];
for (const s of stats) {
  s.overNodeMedian = s.median - base.median;
  s.overNodeP90 = s.p90 - base.p90;
}
const validate = stats[2];
const withinTarget = validate.overNodeMedian <= TARGET_MS;

if (asJson) {
  console.log(JSON.stringify({ rounds, node: process.version, targetMs: TARGET_MS, withinTarget, results: stats }, null, 2));
} else {
  const f = (ms) => ms.toFixed(1).padStart(7);
  const d = (ms) => `${ms >= 0 ? '+' : ''}${ms.toFixed(1)}`.padStart(8);
  const w = Math.max(...stats.map((s) => s.name.length));
  console.log(`${rounds} rounds, interleaved, ${process.version}, wall time in ms`);
  console.log(`${'command'.padEnd(w)}   median      p90      min   median-node  p90-node`);
  for (const s of stats) console.log(`${s.name.padEnd(w)}  ${f(s.median)}  ${f(s.p90)}  ${f(s.min)}     ${d(s.overNodeMedian)}  ${d(s.overNodeP90)}`);
  console.log(`validate is ${validate.overNodeMedian.toFixed(1)} ms over bare node (median); target <= ${TARGET_MS} ms: ${withinTarget ? 'met' : 'NOT met'}`);
}
