/**
 * The phases of `npm run bench:server` (run through scripts/bench-server.mjs): each round boots a
 * fresh bare Debian 13 test host (test/helpers/server-host.ts) and times the phases in order on it.
 * A phase is a name and a function returning its milliseconds; add one to PHASES to measure more
 * (e.g. reboot-to-serving after a deploy).
 */
import { codebCli, startServerHost, type ServerHost } from '../../test/helpers/server-host.js';

export interface Phase {
  name: string;
  run: (host: ServerHost) => Promise<number>;
}

async function timedInit(host: ServerHost, expectChange: boolean): Promise<number> {
  const t0 = performance.now();
  const r = await codebCli(host, ['server', 'init', host.target, '--json']);
  const ms = performance.now() - t0;
  if (r.code !== 0) throw new Error(`server init failed (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  const report = JSON.parse(r.stdout) as { changed: boolean };
  if (report.changed !== expectChange) throw new Error(`server init ${expectChange ? 'changed nothing on a bare host' : 'changed something on a ready host'}`);
  return ms;
}

export const PHASES: Phase[] = [
  { name: 'init, bare host', run: (h) => timedInit(h, true) },
  { name: 'init, ready host', run: (h) => timedInit(h, false) },
];

const rounds = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 3);
const slotBase = Number(process.env.CODEB_BENCH_HOST_SLOT ?? 200);
const results = new Map<string, number[]>(PHASES.map((p) => [p.name, []]));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

for (let i = 0; i < rounds; i++) {
  const boot0 = performance.now();
  const host = await startServerHost({ name: `bench-${i}`, slot: slotBase + (i % 50) });
  const boot = performance.now() - boot0;
  try {
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
if (process.argv.includes('--json')) console.log(JSON.stringify({ rounds, phases: out }, null, 2));
else for (const [name, r] of Object.entries(out)) console.log(`${name.padEnd(24)} median ${(r.medianMs / 1000).toFixed(1)} s  (runs: ${r.runsMs.map((m) => (m / 1000).toFixed(1)).join(', ')} s)`);
