/**
 * The phases of `npm run bench:server` (run through scripts/bench-server.mjs): each round boots a
 * fresh bare test host (test/helpers/server-host.ts: Debian 13, or with `--suite bookworm` Debian
 * 12 with Podman 4.3 and the s3rver stand-in) and times the phases in order on it.
 * A phase is a name and a function returning its milliseconds; add one to PHASES to measure more
 * (e.g. reboot-to-serving after a deploy).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { codebCli, startServerHost, type HostSuite, type ServerHost } from '../../test/helpers/server-host.js';

const suiteArg = process.argv.indexOf('--suite');
const SUITE: HostSuite = suiteArg > 0 ? (process.argv[suiteArg + 1] as HostSuite) : 'trixie';
if (SUITE !== 'trixie' && SUITE !== 'bookworm') {
  console.error(`--suite takes trixie (Debian 13, the default) or bookworm (Debian 12), not ${JSON.stringify(SUITE)}`);
  process.exit(2);
}

export interface Phase {
  name: string;
  run: (host: ServerHost) => Promise<number>;
}

async function timedInit(host: ServerHost, expectChange: boolean): Promise<number> {
  const t0 = performance.now();
  const r = await codebCli(host, ['server', 'init', host.target, '--json']);
  const ms = performance.now() - t0;
  if (r.code !== 0) throw new Error(`server init failed (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  const report = JSON.parse(r.stdout) as { changed: boolean; steps: Array<{ step: string; ms?: number }> };
  // Where the time goes (apt-get install and the upload carry their own figures).
  for (const s of report.steps) if (s.ms !== undefined) console.error(`  ${s.step.slice(0, 60)}: ${(s.ms / 1000).toFixed(1)}s`);
  if (report.changed !== expectChange) throw new Error(`server init ${expectChange ? 'changed nothing on a bare host' : 'changed something on a ready host'}`);
  return ms;
}

const BENCH_DOMAIN = 'bench.test';

/** GET /api/health through the server's Caddy, on the server (it has node, no curl); status or 0. */
async function healthThroughCaddy(host: ServerHost): Promise<number> {
  const script = `require('node:http').get({ host: '127.0.0.1', port: 80, path: '/api/health', headers: { host: '${BENCH_DOMAIN}' }, timeout: 2000 }, (r) => { r.resume(); console.log(r.statusCode); }).on('timeout', function () { this.destroy(); }).on('error', () => console.log(0))`;
  const r = await host.exec(['node', '-e', script]);
  return Number(r.stdout.trim()) || 0;
}

/**
 * Reboot to serving: a one-service project applied with the host's default runtime (quadlet on
 * Debian 13, plain systemd units on Debian 12's Podman 4.3; not timed), then from the
 * restart of the host container (systemd shuts down and boots again) until the app answers 200
 * through Caddy again, with no codeb command run.
 */
async function rebootToServing(host: ServerHost): Promise<number> {
  const root = resolve(import.meta.dirname, '..', '..');
  // The test image, in this machine's own Podman storage (idempotent: "up to date" when built).
  execFileSync('bash', [join(root, 'scripts', 'build-test-images.sh'), '--local'], { stdio: 'ignore' });
  await host.loadImage('localhost/codeb-testapp:v1');
  const dir = mkdtempSync(join(tmpdir(), 'codeb-bench-server-'));
  try {
    const manifest = join(dir, 'bench.yaml');
    writeFileSync(
      manifest,
      `apiVersion: codeb/v1\nproject:\n  id: bench\nenvironment:\n  domain: ${BENCH_DOMAIN}\nservices:\n  web:\n    type: web\n    image: localhost/codeb-testapp:v1\n    port: 8080\n    healthCheck:\n      http:\n        path: /api/health\n        interval: 200ms\nfeatures:\n  database: false\nservers:\n  - name: bench\n    host: ${host.target}\n`,
    );
    const r = await codebCli(host, ['apply', manifest]);
    if (r.code !== 0) throw new Error(`apply failed (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
    if ((await healthThroughCaddy(host)) !== 200) throw new Error('the project does not answer through Caddy before the reboot');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const t0 = performance.now();
  await host.restart();
  const deadline = Date.now() + 180_000;
  while ((await healthThroughCaddy(host)) !== 200) {
    if (Date.now() > deadline) throw new Error('the project did not answer through Caddy within 180 s of the reboot');
    await new Promise((r) => setTimeout(r, 100));
  }
  return performance.now() - t0;
}

export const PHASES: Phase[] = [
  { name: 'init, bare host', run: (h) => timedInit(h, true) },
  { name: 'init, ready host', run: (h) => timedInit(h, false) },
  { name: 'reboot to serving', run: rebootToServing },
];

const rounds = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 3);
// Names carry the pid: two benches at once (or a leftover of one) never take each other's host.
const slotBase = Number(process.env.CODEB_BENCH_HOST_SLOT ?? 200);
const results = new Map<string, number[]>(PHASES.map((p) => [p.name, []]));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

for (let i = 0; i < rounds; i++) {
  const boot0 = performance.now();
  const host = await startServerHost({ name: `bench-${process.pid}-${i}`, slot: slotBase + (i % 50), suite: SUITE });
  const boot = performance.now() - boot0;
  try {
    // Debian 12 ships Node 18: its operator installs a Node 20 first (not timed), as in server-podman43.test.ts.
    if (SUITE === 'bookworm') {
      const put = await host.exec(['sh', '-c', 'mkdir -p /usr/local/bin && cat > /usr/local/bin/node && chmod 755 /usr/local/bin/node'], { input: readFileSync(process.execPath) });
      if (put.code !== 0) throw new Error(`copying node to the host failed: ${put.stderr}`);
    }
    const line = [`round ${i + 1}/${rounds}: boot ${(boot / 1000).toFixed(1)}s`];
    for (const p of PHASES) {
      const ms = await p.run(host);
      results.get(p.name)!.push(ms);
      line.push(`${p.name} ${(ms / 1000).toFixed(1)}s`);
    }
    console.error(line.join(', '));
  } finally {
    await host.remove();
  }
}
const out = Object.fromEntries([...results].map(([name, xs]) => [name, { medianMs: Math.round(median(xs)), runsMs: xs.map(Math.round) }]));
if (process.argv.includes('--json')) console.log(JSON.stringify({ suite: SUITE, rounds, phases: out }, null, 2));
else for (const [name, r] of Object.entries(out)) console.log(`${name.padEnd(24)} median ${(r.medianMs / 1000).toFixed(1)} s  (runs: ${r.runsMs.map((m) => (m / 1000).toFixed(1)).join(', ')} s)`);
