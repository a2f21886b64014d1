// The CLI's cost next to bare node, shared by bench:cli and bench:apply (issue 13's targets): a
// no-change `codeb apply` of manifests/food-delivery-app.yaml within node start-up + 150 ms and
// `codeb validate` within + 100 ms (medians). The commands run interleaved, rotating their order
// each round, so all share the same machine noise; each is a fresh process (wall time).
//
// The no-change apply needs the local stack and the test images: it uses a copy of the example
// with a project id of its own, in a scratch registry, applied once first (not timed) and
// destroyed at the end.
//
// The untimed first runs also write the CLI's code caches (scripts/lib/cli-loader.mjs), so the
// timed runs are warm, as every run of a command is after its first one since the build.
//
// Besides wall time, each process's own CPU time (user + system, all its threads) is reported: a
// preload writes process.cpuUsage() at exit. On a machine busy with other work the wall times of
// all commands stretch alike; the CPU times stay close to what the command itself costs.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';

export const TARGETS = { apply: 150, validate: 100 };
// Outside the demo's 3000-3999 and every test file's and bench's slice.
const PORT_RANGE = '4950-4999';

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** Whether the stack of CODEB_HOME (or .codeb/test-home) is up: the no-change apply needs it. */
export function stackEnv(root) {
  const home = process.env.CODEB_HOME ?? (existsSync(join(root, '.codeb', 'test-home', 'settings.json')) ? join(root, '.codeb', 'test-home') : undefined);
  const env = { ...process.env, ...(home ? { CODEB_HOME: home } : {}), CODEB_REGISTRY: '', CODEB_PORT_RANGE: PORT_RANGE, CI: 'true', NODE_OPTIONS: '' };
  const cli = join(root, 'bin', 'codeb.js');
  const up = spawnSync(process.execPath, [cli, 'stack', 'status', '--json'], { env, encoding: 'utf8' });
  return { env, up: up.status === 0, why: up.status === 0 ? '' : (up.stderr || up.stdout).trim().split('\n')[0] };
}

/**
 * Runs `rounds` interleaved rounds of bare node, validate (the one-service food-delivery example
 * and the nine-service stock-analysis one) and, when `apply` is set, the no-change apply.
 * Returns rows { name, median, min, max, overNode, ratio } and the target verdicts.
 */
export function noopVsNode(root, { rounds, apply }) {
  const cli = join(root, 'bin', 'codeb.js');
  const work = mkdtempSync(join(tmpdir(), 'codeb-bench-noop-'));
  const registry = join(work, 'registry', 'projects.json');
  mkdirSync(join(work, 'registry'), { recursive: true });
  const id = `bench-noop-${process.pid.toString(36)}`;
  const manifest = join(work, `${id}.yaml`);
  const text = readFileSync(join(root, 'manifests', 'food-delivery-app.yaml'), 'utf8')
    .replace(/^ {2}id: food-delivery-app$/m, `  id: ${id}`)
    .replace(/^ {2}domain: food-delivery\.localhost$/m, `  domain: ${id}.localhost`)
    .replace(/^( {4}watchAfterSwitch:) .*$/m, '$1 1s');
  if (!text.includes(`id: ${id}`) || !text.includes(`domain: ${id}.localhost`)) throw new Error('manifests/food-delivery-app.yaml changed shape: update scripts/lib/bench-noop.mjs');
  writeFileSync(manifest, text);
  const { env } = apply ? stackEnv(root) : { env: { ...process.env, NODE_OPTIONS: '' } };

  const cases = [
    { key: 'node', name: 'node -e 0 (bare node)', argv: ['-e', '0'] },
    { key: 'validate', name: 'codeb validate food-delivery-app.yaml', argv: [cli, 'validate', join(root, 'manifests', 'food-delivery-app.yaml')] },
    { key: 'validate9', name: 'codeb validate stock-analysis.yaml (9 services)', argv: [cli, 'validate', join(root, 'manifests', 'stock-analysis.yaml')] },
    ...(apply ? [{ key: 'apply', name: 'codeb apply food-delivery (no change)', argv: [cli, '--registry', registry, 'apply', manifest], stdout: /^No changes\./ }] : []),
  ];
  const cpuFile = join(work, 'cpu.json');
  const preload = join(work, 'cpu-at-exit.cjs');
  writeFileSync(preload, `process.on('exit', () => { const u = process.cpuUsage(); require('node:fs').writeFileSync(${JSON.stringify(cpuFile)}, String((u.user + u.system) / 1000)); });\n`);
  const once = (c) => {
    const t0 = process.hrtime.bigint();
    const r = spawnSync(process.execPath, ['-r', preload, ...c.argv], { cwd: work, env, encoding: 'utf8' });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (r.status !== 0 || (c.stdout && !c.stdout.test(r.stdout))) throw new Error(`"${c.name}" exited ${r.status}:\n${r.stdout}\n${r.stderr}`);
    return { ms, cpu: Number(readFileSync(cpuFile, 'utf8')) };
  };
  try {
    if (apply) {
      const first = spawnSync(process.execPath, [cli, '--registry', registry, 'apply', manifest], { cwd: work, env, encoding: 'utf8' });
      if (first.status !== 0) throw new Error(`the first apply (not timed) failed:\n${first.stdout}\n${first.stderr}`);
    }
    for (const c of cases) once(c); // warm the file cache
    const samples = cases.map(() => []);
    const cpu = cases.map(() => []);
    for (let i = 0; i < rounds; i++) {
      for (let k = 0; k < cases.length; k++) {
        const j = (i + k) % cases.length;
        const { ms, cpu: used } = once(cases[j]);
        samples[j].push(ms);
        cpu[j].push(used);
      }
    }
    const rows = cases.map((c, j) => ({ key: c.key, name: c.name, median: median(samples[j]), min: Math.min(...samples[j]), max: Math.max(...samples[j]), cpu: median(cpu[j]) }));
    const node = rows[0];
    for (const r of rows) {
      r.overNode = r.median - node.median;
      r.ratio = r.median / node.median;
      r.cpuOverNode = r.cpu - node.cpu;
    }
    const by = Object.fromEntries(rows.map((r) => [r.key, r]));
    const verdicts = {
      validate: by.validate.overNode <= TARGETS.validate && by.validate9.overNode <= TARGETS.validate,
      ...(apply ? { apply: by.apply.overNode <= TARGETS.apply } : {}),
    };
    return { rows, verdicts };
  } finally {
    if (apply) spawnSync(process.execPath, [cli, '--registry', registry, 'destroy', id, '--yes', '--delete-data'], { cwd: work, env, stdio: 'ignore' });
    rmSync(work, { recursive: true, force: true });
  }
}

/** The rows as a table: wall median, min, max, median over bare node, the ratio to it, and CPU. */
export function printNoop({ rows, verdicts }, rounds) {
  const f = (ms) => ms.toFixed(0).padStart(6);
  const signed = (ms) => `${ms >= 0 ? '+' : ''}${ms.toFixed(0)}`;
  const w = Math.max(...rows.map((r) => r.name.length));
  console.log(`${rounds} rounds, interleaved, ${process.version}, load average ${loadavg()[0].toFixed(1)}: wall time of each process in ms, and its CPU time (user + system)`);
  console.log(`${'command'.padEnd(w)}  median    min    max  over node  ratio     cpu  cpu over node`);
  for (const r of rows) console.log(`${r.name.padEnd(w)}  ${f(r.median)} ${f(r.min)} ${f(r.max)}  ${signed(r.overNode).padStart(9)}  ${r.ratio.toFixed(2)}x  ${f(r.cpu)}  ${signed(r.cpuOverNode).padStart(13)}`);
  console.log(`validate: within node + ${TARGETS.validate} ms: ${verdicts.validate ? 'met' : 'NOT met'}`);
  if ('apply' in verdicts) console.log(`no-change apply: within node + ${TARGETS.apply} ms: ${verdicts.apply ? 'met' : 'NOT met'}`);
}
