// Which port bases the test suite's stacks use, so `npm test` and `bash scripts/demo.sh` run side
// by side in either order (docs/stack.md, "Ports of the test stacks").
//
//   node scripts/lib/stack-ports.mjs test-bases HOME   prints "BASE TBASE move|keep": the test
//        stack's base (the running test stack's own, else the first candidate whose ports are all
//        free), the base of stack.test.ts's stacks (TBASE and TBASE+200), and "move" when a test
//        stack runs on the demo's ports and must be stopped first. CODEB_STACK_PORT_BASE and
//        CODEB_TEST_STACK_PORT_BASE win when set.
//   node scripts/lib/stack-ports.mjs demo-check HOME TESTHOME   exit 1 with a clear message when
//        a port the demo's stack needs is held by something that is not the demo's stack.
//
// The demo takes the default base 20000 (25432-29000) and app ports from 3000-3999; the test files
// take CODEB_PORT_RANGE slices from 4000-5499. The test candidates stay clear of all of those and
// below Linux's ephemeral range (32768+), where an outgoing connection can hold a port for a while.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The stack's port offsets (controller/stack/layout.ts; a unit test keeps them equal). */
export const OFFSETS = { postgres: 5432, redis: 6379, s3: 9000, http: 8080, https: 8443 };
export const DEMO_BASE = 20000;
/** App ports: the demo's default CODEB_PORT_RANGE and the test files' slices. */
export const APP_PORTS = { min: 3000, max: 5499 };
/** The test stack: bases 10000-13000 (ports 15432-22000). */
export const TEST_CANDIDATES = Array.from({ length: 13 }, (_, i) => 10000 + 250 * i);
/** stack.test.ts's two extra stacks at TBASE and TBASE+200: bases 3500-4500 (ports 8932-13700). */
export const SECOND_CANDIDATES = Array.from({ length: 5 }, (_, i) => 3500 + 250 * i);
export const SECOND_STEP = 200;

export const portsOf = (base) => Object.values(OFFSETS).map((o) => base + o);

const reserved = (port) => (port >= APP_PORTS.min && port <= APP_PORTS.max) || portsOf(DEMO_BASE).includes(port);

/**
 * The first candidate whose ports are free, clear of the demo's ports and app ranges and of
 * `taken`. Pure apart from the injected `isFree`.
 */
export async function pickBase(candidates, isFree, { taken = [], stacks = 1, step = SECOND_STEP } = {}) {
  for (const base of candidates) {
    const ports = Array.from({ length: stacks }, (_, k) => portsOf(base + k * step)).flat();
    if (ports.some((p) => reserved(p) || taken.includes(p))) continue;
    let free = true;
    for (const p of ports) if (!(free = await isFree(p))) break;
    if (free) return base;
  }
  return undefined;
}

/** True when nothing listens on 127.0.0.1:port (a bind succeeds). */
export function portFree(port) {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host: '127.0.0.1', exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/** Live pid records of a stack home: [{ part, pid, address }]. */
export function runningParts(home) {
  const run = join(home, 'stack', 'run');
  if (!existsSync(run)) return [];
  const out = [];
  for (const f of readdirSync(run).filter((n) => n.endsWith('.pid'))) {
    try {
      const rec = JSON.parse(readFileSync(join(run, f), 'utf8'));
      const stat = readFileSync(`/proc/${rec.pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] === 'Z' || (rec.startTime && fields[19] !== rec.startTime)) continue;
      out.push({ part: f.slice(0, -4), pid: rec.pid, address: String(rec.address) });
    } catch {
      // no record, or the process is gone
    }
  }
  return out;
}

const portOf = (address) => Number(/:(\d+)$/.exec(address)?.[1]);

/** The base a running stack of this home uses (from its Postgres address), if it runs. */
export function runningBase(home) {
  const pg = runningParts(home).find((p) => p.part === 'postgres');
  return pg && portOf(pg.address) ? portOf(pg.address) - OFFSETS.postgres : undefined;
}

async function testBases(home) {
  let base = process.env.CODEB_STACK_PORT_BASE ? Number(process.env.CODEB_STACK_PORT_BASE) : runningBase(home);
  // A test stack left running on the demo's ports (by an older checkout) moves to its own.
  const move = !process.env.CODEB_STACK_PORT_BASE && base === DEMO_BASE;
  if (move) base = undefined;
  base ??= await pickBase(TEST_CANDIDATES, portFree);
  if (base === undefined) fail(`no free port base for the test stack among ${TEST_CANDIDATES.join(', ')}`, 'Set CODEB_STACK_PORT_BASE to a base whose ports (base+5432, +6379, +8080, +8443, +9000) are free.');
  let tbase = process.env.CODEB_TEST_STACK_PORT_BASE ? Number(process.env.CODEB_TEST_STACK_PORT_BASE) : undefined;
  tbase ??= await pickBase(SECOND_CANDIDATES, portFree, { taken: portsOf(base), stacks: 3 });
  if (tbase === undefined) fail(`no free port base for stack.test.ts's stacks among ${SECOND_CANDIDATES.join(', ')}`, 'Set CODEB_TEST_STACK_PORT_BASE.');
  console.log(`${base} ${tbase} ${move ? 'move' : 'keep'}`);
}

async function demoCheck(home, testHome) {
  const base = process.env.CODEB_STACK_PORT_BASE ? Number(process.env.CODEB_STACK_PORT_BASE) : DEMO_BASE;
  const own = new Set(runningParts(home).map((p) => portOf(p.address)));
  const testParts = testHome ? runningParts(testHome) : [];
  const busy = [];
  for (const p of portsOf(base)) if (!own.has(p) && !(await portFree(p))) busy.push(p);
  if (busy.length === 0) return;
  const byTest = testParts.filter((t) => busy.includes(portOf(t.address)));
  const who = byTest.length ? `the test suite's stack in ${testHome} (started by \`npm test\`)` : 'another program';
  fail(
    `the demo's stack needs ports ${busy.join(', ')} on 127.0.0.1 (port base ${base}), and ${who} holds them`,
    `Run the demo on other ports (CODEB_STACK_PORT_BASE=30000 bash scripts/demo.sh)${byTest.length ? `, or stop that stack: CODEB_HOME=${testHome} node bin/codeb.js stack down` : ''}.`,
  );
}

function fail(what, hint) {
  process.stderr.write(`error: ${what}.\nhint: ${hint}\n`);
  process.exit(1);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [cmd, ...rest] = process.argv.slice(2);
  if (cmd === 'test-bases') await testBases(rest[0]);
  else if (cmd === 'demo-check') await demoCheck(rest[0], rest[1]);
  else fail(`unknown command ${JSON.stringify(cmd)}`, 'Use test-bases HOME or demo-check HOME TESTHOME.');
}
