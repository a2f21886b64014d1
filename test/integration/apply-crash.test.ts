/**
 * Crash safety of `codeb apply`: a small project (database, cache, storage, web) is applied and the
 * apply is killed with SIGKILL at 20 points spread over the run, between steps (as soon as the
 * journal in the registry shows k completed steps) and during them (a schedule of delays measured
 * from an uninterrupted run). Each kill is followed by a normal apply, which must converge to the
 * end state of the uninterrupted run: every resource exists, one container runs and answers through
 * Caddy, `plan` has nothing left to do, the registry validates, and the project holds the same
 * ports and Redis DB as before — nothing leaked or doubled, no other deployment's allocation changed.
 */
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateRegistry } from '../../controller/generated/validators.js';
import { listeningPorts } from '../../controller/registry/ports-in-use.js';
import type { EnvironmentRecord, RegistryDocument } from '../../controller/registry/types.js';
import type { Settings } from '../../controller/settings.js';
import {
  Sandbox,
  proxyRoute,
  databaseFacts,
  describeRun,
  fullManifest,
  holdings,
  projectContainers,
  redisUserExists,
  reserveRedisDbs,
  roleExists,
  s3,
  slotOwner,
  sleep,
  viaCaddy,
} from './helpers/apply.js';
import { stackSettings, uniqueId } from './helpers/stack.js';

// Ports 4690-4739 belong to this file; a killed holder's lock is taken over after 2 s.
const box = new Sandbox('apply-crash', { CODEB_PORT_RANGE: '4690-4739', CODEB_LOCK_STALE_MS: '2000' });
const id = uniqueId('crash');
const domain = `${id}.localhost`;
let settings: Settings;
let file: string;
let baseline: RegistryDocument;

interface Reference {
  record: EnvironmentRecord;
  /** ms from spawn until the registry first shows the apply (allocation recorded, status provisioning). */
  firstWrite: number;
  /** ms from spawn until the registry shows the traffic switched to the new containers (liveSlot set). */
  switched: number;
  /** ms from spawn until the process exited. */
  end: number;
  steps: string[];
}
let ref: Reference | undefined;

/** Journal-based points: kill as soon as k steps are recorded (k = 0: allocation recorded, no step yet). */
const JOURNAL_POINTS = [0, 1, 2, 3, 4, 5, 6, 7];
/**
 * Time-based points, from the reference run's timings: 8 spread between the first registry write
 * and the traffic switch (the steps, image check, container start, health gate), and 4 between the
 * switch and the end (verification through Caddy, the watch window, the final record), measured
 * from the moment this run's switch shows in the registry; the last at 80 % so a run a little
 * faster than the reference is still killed rather than finishing first.
 */
const TIME_POINTS: Array<{ window: 'to-switch' | 'after-switch'; fraction: number }> = [
  ...Array.from({ length: 8 }, (_, i) => ({ window: 'to-switch' as const, fraction: (i + 0.5) / 8 })),
  ...Array.from({ length: 4 }, (_, i) => ({ window: 'after-switch' as const, fraction: ((i + 0.5) / 4) * 0.8 })),
];
type Point = { kind: 'journal'; k: number } | { kind: 'time'; window: 'to-switch' | 'after-switch'; fraction: number };
const POINTS: Point[] = [...JOURNAL_POINTS.map((k): Point => ({ kind: 'journal', k })), ...TIME_POINTS.map((t): Point => ({ kind: 'time', ...t }))];

function pointName(p: Point): string {
  if (p.kind === 'journal') return p.k === 0 ? 'once the allocation is recorded' : `after ${p.k} journaled step(s)`;
  const pct = Math.round(p.fraction * 100);
  return p.window === 'to-switch' ? `${pct}% of the way to the switch` : `${pct}% of the way from the switch to the end`;
}

/** Delay at which a time point kills: after this run's first write, or after its switch. */
function delayOf(p: Extract<Point, { kind: 'time' }>, r: Reference): number {
  return p.window === 'to-switch' ? p.fraction * (r.switched - r.firstWrite) : p.fraction * (r.end - r.switched);
}

/** What each kill hit, printed at the end (and useful when a point fails). */
const log: string[] = [];

function readDoc(): RegistryDocument | undefined {
  try {
    return JSON.parse(readFileSync(box.registry, 'utf8')) as RegistryDocument;
  } catch {
    return undefined; // between a writer's rename and our read there is never a torn file; absent is fine
  }
}

function current(): EnvironmentRecord | undefined {
  return readDoc()?.projects[id]?.environments.production;
}

/** Wait for the first registry write of this apply (the record appears with status provisioning). */
async function untilWritten(exited: () => boolean): Promise<boolean> {
  while (!exited()) {
    const rec = current();
    if (rec && rec.status === 'provisioning') return true;
    await sleep(2);
  }
  return false;
}

function others(doc: RegistryDocument): RegistryDocument['projects'] {
  const { [id]: _mine, ...rest } = doc.projects;
  return rest;
}

/** Everything the uninterrupted run produced, checked for real in every system. */
async function expectConverged(label: string): Promise<void> {
  const doc = box.readRegistry();
  const ok = validateRegistry(doc);
  expect(validateRegistry.errors ?? [], `${label}: registry validates`).toEqual([]);
  expect(ok).toBe(true);

  const rec = doc.projects[id]!.environments.production!;
  const want = ref!.record;
  expect(rec.status, label).toBe('running');
  expect(rec.ports, `${label}: same ports as the uninterrupted run`).toEqual(want.ports);
  expect(rec.redisDb, `${label}: same Redis DB`).toBe(want.redisDb);
  expect({ db: rec.database, role: rec.databaseRole, buckets: rec.buckets, user: rec.redisUser }).toEqual({
    db: want.database,
    role: want.databaseRole,
    buckets: want.buckets,
    user: want.redisUser,
  });
  expect(rec.liveSlot, label).not.toBeNull();
  // No other deployment's allocation appeared or changed; nothing is held twice.
  expect(others(doc), `${label}: other deployments untouched`).toEqual(baseline.projects);
  const held = holdings(doc);
  expect(new Set(held.ports.map(([p]) => p)).size, `${label}: no port held twice`).toBe(held.ports.length);
  expect(new Set(held.redis.map(([d]) => d)).size, `${label}: no Redis DB held twice`).toBe(held.redis.length);

  // The systems.
  const facts = await databaseFacts(settings, rec.database!);
  expect(facts, label).toMatchObject({ exists: true, owner: rec.databaseRole, publicConnect: false });
  expect(facts.extensions).toContain('pg_trgm');
  expect(await roleExists(settings, rec.databaseRole!)).toBe(true);
  expect(await slotOwner(settings, rec.redisDb!)).toBe(`${id}/production`);
  expect(await redisUserExists(settings, rec.redisUser!)).toBe(true);
  expect(await s3(settings).bucketExists(rec.buckets[0]!)).toBe(true);
  expect((await proxyRoute(settings, `codeb-${id}-production`)).status).toBe(200);
  const containers = await projectContainers(settings, id);
  expect(
    containers.filter((c) => c.state === 'running').map((c) => c.name),
    `${label}: one container running (all: ${JSON.stringify(containers)})`,
  ).toEqual([`${id}-production-web-${rec.liveSlot}`]);
  expect(await viaCaddy(settings, domain, '/')).toEqual({ status: 200, body: 'hello from v1\n' });
  const health = await viaCaddy(settings, domain, '/api/health');
  expect(health.status, health.body).toBe(200);
  expect(JSON.parse(health.body)).toMatchObject({ database: 'ok', redis: 'ok' });

  // Nothing is left to do.
  const plan = await box.run(['plan', file, '--json']);
  expect(plan.code, `${label}: plan after convergence\n${describeRun(plan)}`).toBe(0);
}

async function destroyAll(label: string): Promise<void> {
  const r = await box.run(['destroy', id, '--yes', '--delete-data']);
  expect(r.code, `${label}: ${describeRun(r)}`).toBe(0);
  expect(box.readRegistry().projects, `${label}: registry back to the other deployments only`).toEqual(baseline.projects);
  expect(await projectContainers(settings, id)).toEqual([]);
}

beforeAll(async () => {
  settings = stackSettings();
  await reserveRedisDbs(settings, box.registry, [10, 8, 6]);
  baseline = box.readRegistry();
  file = box.write('crash.yaml', fullManifest(id, { extensions: ['pg_trgm'] }));
});

afterAll(async () => {
  if (existsSync(box.registry) && box.record(id)) {
    const r = await box.run(['destroy', id, '--yes', '--delete-data']);
    if (r.code !== 0) console.error(`cleanup failed: ${describeRun(r)}`);
  }
  await box.close();
  if (log.length) console.log(`apply-crash: what each kill hit\n${log.join('\n')}`);
});

describe('apply killed with SIGKILL at 20 points', () => {
  it('an uninterrupted apply gives the reference end state', async () => {
    const t0 = Date.now();
    const p = box.start(['apply', file, '--json']);
    let exited = false;
    const done = box.finish(p, ['apply', file, '--json']).then((r) => ((exited = true), r));
    const written = await untilWritten(() => exited);
    const firstWrite = Date.now() - t0;
    while (!exited && !current()?.liveSlot) await sleep(2);
    const switched = Date.now() - t0;
    const r = await done;
    const end = Date.now() - t0;
    expect(r.code, describeRun(r)).toBe(0);
    expect(written).toBe(true);
    const record = box.record(id)!;
    const steps = record.journal!.map((j) => j.step);
    // role, database, Redis slot and user, bucket, env file, route, containers (+ the shared backup bucket once).
    expect(steps.length).toBeGreaterThanOrEqual(8);
    log.push(`reference: first registry write after ${firstWrite} ms, switch after ${switched} ms, done after ${end} ms; steps ${steps.join(', ')}`);
    expect(firstWrite < switched && switched < end).toBe(true);
    try {
      ref = { record, firstWrite, switched, end, steps };
      await expectConverged('reference');
    } catch (err) {
      ref = undefined;
      await box.run(['destroy', id, '--yes', '--delete-data']);
      throw err;
    }
    await destroyAll('reference');
  });

  it.each(POINTS.map((p, i) => ({ ...p, n: i + 1, name: pointName(p) })))(
    'kill $n $name, then apply converges',
    async (point) => {
      expect(ref, 'the reference run passed').toBeDefined();
      const label = `kill ${point.n} (${point.name})`;
      let passed = false;
      try {
        await killAndConverge(point, label);
        passed = true;
      } finally {
        // Start the next point from scratch; after a failure just clean up (keep the first error).
        if (passed) await destroyAll(label);
        else await box.run(['destroy', id, '--yes', '--delete-data']);
      }
    },
    90_000,
  );
});

async function killAndConverge(point: Point, label: string): Promise<void> {
  // This file's ports are its own; one held by some other process would change the allocation
  // for a reason that has nothing to do with crashes, so say so plainly.
  const busy = listeningPorts();
  const mine = Object.values(ref!.record.ports).flatMap((p) => [p.blue, p.green, p.entry]);
  expect(mine.filter((p) => busy.has(p)), `${label}: ports of the reference allocation already in use by another process`).toEqual([]);
  // Plain output: the progress lines (one per finished step, CI style) show what the kill cut short.
  const p = box.start(['apply', file]);
  let exited = false;
  const done = box.finish(p, ['apply', file]).then((r) => ((exited = true), r));

  // Reach the point, then SIGKILL.
  if (!(await untilWritten(() => exited))) throw new Error(`${label}: the apply ended before its first write: ${describeRun(await done)}`);
  if (point.kind === 'journal') {
    while (!exited && (current()?.journal?.length ?? 0) < point.k) await sleep(2);
  } else {
    if (point.window === 'after-switch') while (!exited && !current()?.liveSlot) await sleep(2);
    await sleep(delayOf(point, ref!));
  }
  p.kill('SIGKILL');
  const killed = await done;
  expect(killed.signal, `${label}: the apply was killed, not finished\n${describeRun(killed)}`).toBe('SIGKILL');
  // What the crash left is a true, valid record: the allocation is already recorded.
  const left = readDoc();
  expect(validateRegistry(left), `${label}: the registry left by the killed apply validates: ${JSON.stringify(validateRegistry.errors)}`).toBe(true);
  const at = left?.projects[id]?.environments.production;
  expect(at?.ports, `${label}: allocation recorded before the kill`).toEqual(ref!.record.ports);
  const lastLine = killed.stderr.split('\n').filter((l) => / \.\.\. /.test(l)).at(-1)?.trim().replace(/ \(\d+(\.\d+)? m?s\)$/, '') ?? '(no step finished)';
  const hit = `journal ${at?.journal?.length ?? 0}/${ref!.steps.length}, status ${at?.status}, live ${at?.liveSlot ?? '-'}, last progress "${lastLine}"`;

  // A normal apply takes the dead holder's lock over and converges.
  const again = await box.run(['apply', file]);
  expect(again.code, `${label} (${hit}): ${describeRun(again)}`).toBe(0);
  const redone = [...again.stderr.matchAll(/^ {2}[+~-] (\S+) \S+ \.\.\./gm)].map((m) => m[1]);
  log.push(`${label}: killed at ${hit}; the next apply did: ${redone.join(', ') || 'nothing but completing the record'}`);
  await expectConverged(`${label} (${hit})`);
}
