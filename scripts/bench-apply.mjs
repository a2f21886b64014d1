#!/usr/bin/env node
// Cost of `codeb apply` against the local stack, through the built CLI (wall time of the process):
//   - the first apply of manifests/minimal.yaml (a fresh project id each round; destroyed after the
//     round, not timed): env file, Caddy route, and a blue-green deploy with its health gate,
//     verification through Caddy and watch window;
//   - the no-change apply of the same manifest (observe everything, plan, print "No changes.");
//   - the same no-change apply with 500 other projects in the registry, each holding ports, names
//     and some history (written with the registry's own functions, so the document validates);
//   - `codeb registry inspect` of the project with and without the 500 others: reading and
//     validating the registry, which is all the 500 others should add to a no-change apply.
// Prints medians (and min/max) per case and the ratio of the 500-project no-change apply to the
// plain one; then the no-change apply of manifests/food-delivery-app.yaml and `validate` against
// bare node, interleaved (medians, difference, ratio; targets node + 150 ms and + 100 ms, see
// scripts/lib/bench-noop.mjs). Measures only; exit code 0 unless a command fails.
//
//   CODEB_HOME=$PWD/.codeb/test-home npm run bench:apply          5 rounds
//   npm run bench:apply -- 7                                      7 rounds
//   npm run bench:apply -- --json                                 machine-readable result
//
// Needs the local stack (`codeb stack up`) and the test images (scripts/build-test-images.sh).
// Without CODEB_HOME it uses .codeb/test-home when that holds a running stack's settings.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { bundleTs } from './lib/bundle-ts.mjs';
import { noopVsNode, printNoop } from './lib/bench-noop.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const asJson = args.includes('--json');
const rounds = Number(args.find((a) => /^\d+$/.test(a)) ?? 5);
const OTHERS = 500;
// Short deploy windows, as in the integration tests; a first apply's time is dominated by them.
const DEPLOY = { healthInterval: '200ms', successes: 3, deadline: '15s', verifyAfterSwitch: 3, watchAfterSwitch: '1s' };
// Outside the default 3000-3999 and the integration test files' slices (a unit test checks:
// test/unit/app-port-slices.test.ts).
const PORT_RANGE = '5090-5139';

if (!existsSync(join(root, 'dist', 'codeb.mjs'))) {
  console.error('bench-apply: the CLI is not built; run `npm run build` first.');
  process.exit(1);
}
if (!process.env.CODEB_HOME && existsSync(join(root, '.codeb', 'test-home', 'settings.json'))) {
  process.env.CODEB_HOME = join(root, '.codeb', 'test-home');
}
const cli = join(root, 'bin', 'codeb.js');
const work = mkdtempSync(join(tmpdir(), 'codeb-bench-apply-'));
const registry = join(work, 'registry', 'projects.json');
mkdirSync(dirname(registry), { recursive: true });
const env = { ...process.env, CODEB_REGISTRY: '', CODEB_PORT_RANGE: PORT_RANGE, CI: 'true', NODE_OPTIONS: '' };

function codeb(argv, expect = 0) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [cli, '--registry', registry, ...argv], { cwd: work, env, encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== expect) {
    throw new Error(`codeb ${argv.join(' ')} exited ${r.status}, expected ${expect}:\n${r.stdout}\n${r.stderr}`);
  }
  return { ms, stdout: r.stdout, stderr: r.stderr };
}

/** The registry's own functions (store, allocation, records, manifest), bundled for plain node. */
async function registryTools() {
  const outfile = join(root, '.codeb', 'bench-build', `registry-tools-${process.pid}.mjs`);
  await bundleTs({
      contents: `
        export { updateRegistry } from './controller/registry/store.ts';
        export { allocate, DEFAULT_POLICY } from './controller/registry/allocate.ts';
        export { allocationRequest, recordAllocation, releaseDeployment } from './controller/registry/records.ts';
        export { parseManifest } from './controller/manifest/load.ts';
        export { validateLoaded } from './controller/manifest/validate.ts';
        export { resolveDeployment } from './controller/manifest/normalize.ts';
      `,
      resolveDir: root,
      loader: 'ts',
    }, outfile);
  const mod = await import(pathToFileURL(outfile).href);
  rmSync(outfile, { force: true });
  return mod;
}

const fakeIds = Array.from({ length: OTHERS }, (_, i) => `bench-other-${String(i + 1).padStart(3, '0')}`);

/**
 * Add the 500 other projects: each a web and an api service with ports allocated by the real
 * allocator (from 10000 up, away from the bench project's range), a database, a bucket, a domain,
 * a Redis DB for the first 14 (the stack's Redis has 16), and a few history and journal entries.
 */
async function addOthers(t) {
  const policy = { ...t.DEFAULT_POLICY, portRange: { min: 10000, max: 19999 }, redisDatabases: 1024, busyPorts: new Set() };
  await t.updateRegistry(registry, { command: 'bench-apply: add 500 projects' }, (doc) => {
    const now = new Date().toISOString();
    for (const [i, id] of fakeIds.entries()) {
      const text = `apiVersion: codeb/v1
project: { id: ${id}, name: Other project ${i + 1} }
environment: { domain: ${id}.example.com }
services:
  web: { image: ghcr.io/example/${id}-web:1.0.${i}, port: 3000 }
  api: { image: ghcr.io/example/${id}-api:1.0.${i}, port: 4000, type: internal }
features:
  database: true
  cache: ${i < 14}
  storage: true
`;
      const { manifest, issues } = t.validateLoaded(t.parseManifest(text, `${id}.yaml`));
      if (!manifest) throw new Error(`fake manifest ${id}: ${JSON.stringify(issues)}`);
      const d = t.resolveDeployment(manifest);
      const rec = t.recordAllocation(doc, d, t.allocate(doc, t.allocationRequest(d), policy), now);
      rec.status = 'running';
      rec.liveSlot = 'blue';
      rec.history = Array.from({ length: 5 }, (_, k) => ({ at: now, by: 'bench@host', action: k % 2 ? 'deploy' : 'apply', result: 'ok', detail: { version: `1.0.${k}`, durationMs: 1000 + k } }));
      rec.journal = ['postgres.role', 'postgres.database', 'storage.bucket', 'files.envfile', 'proxy.route', 'runtime.release'].map((s) => ({ step: `${s}/${id}`, at: now, status: 'done' }));
    }
  });
}

async function removeOthers(t) {
  await t.updateRegistry(registry, { command: 'bench-apply: remove 500 projects' }, (doc) => {
    for (const id of fakeIds) t.releaseDeployment(doc, id, 'production');
  });
}

function manifestFor(id) {
  // manifests/minimal.yaml with this round's id and domain and the short deploy windows.
  const minimal = readFileSync(join(root, 'manifests', 'minimal.yaml'), 'utf8');
  const text = minimal
    .replace(/^ {2}id: hello$/m, `  id: ${id}`)
    .concat(
      `environment:\n  domain: ${id}.localhost\n`,
      `deploy:\n  healthGate:\n    deadline: ${DEPLOY.deadline}\n    verifyAfterSwitch: ${DEPLOY.verifyAfterSwitch}\n    watchAfterSwitch: ${DEPLOY.watchAfterSwitch}\n`,
    )
    .replace(/^( {4}port: 8080)$/m, `$1\n    healthCheck:\n      http:\n        interval: ${DEPLOY.healthInterval}\n        successes: ${DEPLOY.successes}`);
  if (!text.includes(`id: ${id}`)) throw new Error('manifests/minimal.yaml changed shape: update bench-apply.mjs');
  const file = join(work, `${id}.yaml`);
  writeFileSync(file, text);
  return file;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const cases = {
  first: { name: 'first apply (minimal example)', samples: [] },
  noop: { name: 'no-change apply', samples: [] },
  noop500: { name: `no-change apply, ${OTHERS} other projects`, samples: [] },
  inspect: { name: 'registry inspect (read + validate)', samples: [] },
  inspect500: { name: `registry inspect, ${OTHERS} other projects`, samples: [] },
};
let registryBytes = { plain: 0, big: 0 };
let created = null;

try {
  const t = await registryTools();
  codeb(['stack', 'status']);
  for (let round = 0; round < rounds; round++) {
    const id = `bench-${process.pid.toString(36)}-${round + 1}`;
    const file = manifestFor(id);
    created = id;
    const first = codeb(['apply', file]);
    if (!first.stdout.startsWith(`Applied ${id}`)) throw new Error(`first apply did not apply:\n${first.stdout}`);
    cases.first.samples.push(first.ms);

    const noop = codeb(['apply', file]);
    if (!noop.stdout.startsWith('No changes.')) throw new Error(`second apply was not a no-op:\n${noop.stdout}`);
    cases.noop.samples.push(noop.ms);
    cases.inspect.samples.push(codeb(['registry', 'inspect', id, '--json']).ms);
    registryBytes.plain = statSync(registry).size;

    await addOthers(t);
    registryBytes.big = statSync(registry).size;
    const noop500 = codeb(['apply', file]);
    if (!noop500.stdout.startsWith('No changes.')) throw new Error(`no-change apply with ${OTHERS} others was not a no-op:\n${noop500.stdout}`);
    cases.noop500.samples.push(noop500.ms);
    cases.inspect500.samples.push(codeb(['registry', 'inspect', id, '--json']).ms);
    await removeOthers(t);

    codeb(['destroy', id, '--yes', '--delete-data']);
    created = null;
  }
} finally {
  if (created) spawnSync(process.execPath, [cli, '--registry', registry, 'destroy', created, '--yes', '--delete-data'], { env, stdio: 'ignore' });
  rmSync(work, { recursive: true, force: true });
}

const vsNode = noopVsNode(root, { rounds: Math.max(rounds * 3, 9), apply: true });

const rows = Object.entries(cases).map(([key, c]) => ({ key, name: c.name, median: median(c.samples), min: Math.min(...c.samples), max: Math.max(...c.samples), samples: c.samples.map((x) => Math.round(x)) }));
const by = Object.fromEntries(rows.map((r) => [r.key, r]));
const ratio = by.noop500.median / by.noop.median;
const applyExtra = by.noop500.median - by.noop.median;
const readExtra = by.inspect500.median - by.inspect.median;
const settingsNote = `healthCheck.http.interval ${DEPLOY.healthInterval}, successes ${DEPLOY.successes}; deploy.healthGate.deadline ${DEPLOY.deadline}, verifyAfterSwitch ${DEPLOY.verifyAfterSwitch}, watchAfterSwitch ${DEPLOY.watchAfterSwitch}`;

if (asJson) {
  console.log(JSON.stringify({ rounds, node: process.version, others: OTHERS, registryBytes, manifest: 'manifests/minimal.yaml', deploySettings: DEPLOY, ratio, applyExtraMs: applyExtra, readExtraMs: readExtra, results: rows, againstNode: vsNode }, null, 2));
} else {
  const f = (ms) => ms.toFixed(0).padStart(7);
  const w = Math.max(...rows.map((r) => r.name.length));
  console.log(`bench:apply: ${rounds} rounds, ${process.version}, wall time of each codeb process in ms (CODEB_HOME=${process.env.CODEB_HOME ?? '~/.codeb'})`);
  console.log(`manifest: manifests/minimal.yaml with a fresh project id per round and the test deploy windows:`);
  console.log(`  ${settingsNote}`);
  console.log(`  so a first apply includes the health gate (${DEPLOY.successes} passing probes), ${DEPLOY.verifyAfterSwitch} checks through Caddy and the ${DEPLOY.watchAfterSwitch} watch window.`);
  console.log(`registry: ${(registryBytes.plain / 1024).toFixed(1)} KiB alone, ${(registryBytes.big / 1024).toFixed(1)} KiB with ${OTHERS} other projects`);
  console.log('');
  console.log(`${'case'.padEnd(w)}   median      min      max`);
  for (const r of rows) console.log(`${r.name.padEnd(w)}  ${f(r.median)}  ${f(r.min)}  ${f(r.max)}`);
  console.log('');
  console.log(`no-change apply with ${OTHERS} other projects / plain: ${ratio.toFixed(2)}x (${applyExtra >= 0 ? '+' : ''}${applyExtra.toFixed(0)} ms;`);
  console.log(`  reading and validating that registry costs ${readExtra >= 0 ? '+' : ''}${readExtra.toFixed(0)} ms in registry inspect)`);
  console.log('');
  console.log('against bare node (food-delivery example, no-change apply and validate):');
  printNoop(vsNode, Math.max(rounds * 3, 9));
}
