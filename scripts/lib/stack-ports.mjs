// Which ports and network pool a test suite uses, so `npm test` and `bash scripts/demo.sh` run side
// by side in either order, and so do several suites of different checkouts on one machine (docs/stack.md,
// "Ports of the test stacks").
//
//   node scripts/lib/stack-ports.mjs test-bases HOME   prints "BASE TBASE SLOT POOL move|keep": the
//        test stack's base (the running test stack's own, else the first slot's whose ports, its
//        second stacks' included, are all free), the base of stack.test.ts's stacks (TBASE, TBASE+50,
//        TBASE+100), the suite's slot k (its app port slices are the slot-0 slices + k*APP_STRIDE),
//        its default network pool, and "move" when a test stack runs on ports that are not a slot's
//        (the demo's, an older checkout's) and must be stopped first. CODEB_STACK_PORT_BASE,
//        CODEB_TEST_STACK_PORT_BASE and CODEB_TEST_SLOT win when set.
//   node scripts/lib/stack-ports.mjs demo-check HOME TESTHOME   exit 1 with a clear message when
//        a port the demo's stack needs is held by something that is not the demo's stack.
//
// A suite's slot k owns: the test stack at base 13000 + 250k, its three second stacks 50, 100 and 150
// above it (the five offsets differ modulo 250 from the base's and from each other, so no two
// stacks of any slots share a port), the app ports 4000-5699 shifted by 1700k, and the network pool
// 10.(98-k).0.0/16. The demo takes base 20000 (25432-29000), app ports 3000-3999 and 10.99.0.0/16.
// Everything stays below Linux's ephemeral range (32768+), where an outgoing connection can hold a
// port for a while: app ports 4000-17599, stack ports 18432-23900.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The stack's port offsets (controller/stack/layout.ts; a unit test keeps them equal). */
export const OFFSETS = { postgres: 5432, redis: 6379, s3: 9000, http: 8080, https: 8443 };
export const DEMO_BASE = 20000;
export const DEMO_APP_PORTS = { min: 3000, max: 3999 };
/** How many suites run side by side, each in its own slot. */
export const SLOTS = 8;
/** Slot 0's app ports: the test files' CODEB_PORT_RANGE slices; slot k's are these + k*APP_STRIDE. */
export const APP_SLICES = { min: 4000, max: 5699 };
export const APP_STRIDE = 1700;
/** Every app port a demo or any slot's test files take. */
export const APP_PORTS = { min: DEMO_APP_PORTS.min, max: APP_SLICES.max + (SLOTS - 1) * APP_STRIDE };
/** The test stack's base per slot: 13000-14750 (ports 18432-23750). */
export const TEST_CANDIDATES = Array.from({ length: SLOTS }, (_, k) => 13000 + 250 * k);
/** stack.test.ts's two stacks and storage-keys.test.ts's gateway: TBASE = base + 50, then +50 each. */
export const SECOND_OFFSET = 50;
export const SECOND_STEP = 50;
export const SECOND_STACKS = 3;

export const portsOf = (base) => Object.values(OFFSETS).map((o) => base + o);
/** The ports of a slot's test stack and its second stacks. */
export const slotStackPorts = (base) => [base, ...Array.from({ length: SECOND_STACKS }, (_, i) => base + SECOND_OFFSET + i * SECOND_STEP)].flatMap(portsOf);
/** The slot whose test stack sits at this base, if any. */
export const slotOf = (base) => (TEST_CANDIDATES.includes(base) ? TEST_CANDIDATES.indexOf(base) : undefined);
/** A slot's app port range, from a slot-0 slice ("4100-4149" in slot 2 is "7500-7549"). */
export const shiftRange = (range, slot) => range.split('-').map((p) => Number(p) + slot * APP_STRIDE).join('-');
/** A slot's default container network pool: 10.98.0.0/16 for slot 0, down to 10.91.0.0/16. */
export const poolOf = (slot) => `10.${98 - slot}.0.0/16`;

const reserved = (port) => (port >= APP_PORTS.min && port <= APP_PORTS.max) || portsOf(DEMO_BASE).includes(port);

/**
 * The first candidate whose ports (`portsFor(base)`) are free, clear of the demo's ports and app
 * ranges and of `taken`. Pure apart from the injected `isFree`.
 */
export async function pickBase(candidates, isFree, { taken = [], portsFor = portsOf } = {}) {
  for (const base of candidates) {
    const ports = portsFor(base);
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

/**
 * Every TCP port a part's address text names: "127.0.0.1:25432, 10.99.0.1:25432" (Postgres),
 * "127.0.0.1:28080 and :28443, admin unix:///..." (Caddy: two ports, neither at the end).
 */
export const portsIn = (address) => [...String(address).matchAll(/:(\d{1,5})(?![\d/])/g)].map((m) => Number(m[1]));
const portOf = (address) => portsIn(address)[0];

/** The base a running stack of this home uses (from its Postgres address), if it runs. */
export function runningBase(home) {
  const pg = runningParts(home).find((p) => p.part === 'postgres');
  return pg && portOf(pg.address) ? portOf(pg.address) - OFFSETS.postgres : undefined;
}

async function testBases(home) {
  const env = process.env;
  let base = env.CODEB_STACK_PORT_BASE ? Number(env.CODEB_STACK_PORT_BASE) : runningBase(home);
  // A test stack left running on ports that are no slot's (the demo's, an older checkout's) moves.
  const move = !env.CODEB_STACK_PORT_BASE && base !== undefined && slotOf(base) === undefined;
  if (move) base = undefined;
  base ??= await pickBase(TEST_CANDIDATES, portFree, { portsFor: slotStackPorts });
  if (base === undefined) fail(`no free slot for the test stack: every base of ${TEST_CANDIDATES.join(', ')} (and the three 50, 100 and 150 above it) has a port in use, so ${SLOTS} suites run already`, 'Stop a test stack you no longer need (CODEB_HOME=<its checkout>/.codeb/test-home node bin/codeb.js stack down), or set CODEB_STACK_PORT_BASE and CODEB_TEST_SLOT yourself (docs/stack.md).');
  const tbase = env.CODEB_TEST_STACK_PORT_BASE ? Number(env.CODEB_TEST_STACK_PORT_BASE) : base + SECOND_OFFSET;
  const slot = env.CODEB_TEST_SLOT ? Number(env.CODEB_TEST_SLOT) : (slotOf(base) ?? 0);
  if (!Number.isInteger(slot) || slot < 0 || slot >= SLOTS) fail(`CODEB_TEST_SLOT=${JSON.stringify(env.CODEB_TEST_SLOT)} is not a slot`, `Use a whole number from 0 to ${SLOTS - 1}.`);
  console.log(`${base} ${tbase} ${slot} ${poolOf(slot)} ${move ? 'move' : 'keep'}`);
}

async function demoCheck(home, testHome) {
  const base = process.env.CODEB_STACK_PORT_BASE ? Number(process.env.CODEB_STACK_PORT_BASE) : DEMO_BASE;
  const own = new Set(runningParts(home).flatMap((p) => portsIn(p.address)));
  const testParts = testHome ? runningParts(testHome) : [];
  const busy = [];
  for (const p of portsOf(base)) if (!own.has(p) && !(await portFree(p))) busy.push(p);
  if (busy.length === 0) return;
  const byTest = testParts.filter((t) => portsIn(t.address).some((p) => busy.includes(p)));
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
