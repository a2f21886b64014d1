/**
 * Crash safety of `codeb apply`: a small project (database, cache, storage, web) is applied and the
 * apply is killed with SIGKILL at 20 named points of the run, reached by instrumentation
 * (CODEB_TEST_CRASH_AT, controller/reconcile/crash-points.ts), never by a guessed delay: as each
 * provider step starts (the steps before it journaled) and once its effect is done but before the
 * journal records it, and inside the blue-green deploy (container started but not recorded,
 * healthy but not switched, switched but not recorded, verified but not watched). Each kill is
 * followed by a normal apply, which must converge to the end state of an uninterrupted run: every
 * resource exists, one container runs and answers through Caddy, `plan` has nothing left to do, the
 * registry validates, and the project holds the same ports and Redis DB as before — nothing leaked
 * or doubled, no other deployment's allocation changed.
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
  viaCaddy,
} from './helpers/apply.js';
import { appPorts, stackSettings, uniqueId } from './helpers/stack.js';

// Ports 4690-4739 belong to this file; a killed holder's lock is taken over after 2 s.
const box = new Sandbox('apply-crash', { CODEB_PORT_RANGE: appPorts('4690-4739'), CODEB_LOCK_STALE_MS: '2000' });
const id = uniqueId('crash');
const domain = `${id}.localhost`;
let settings: Settings;
let file: string;
let baseline: RegistryDocument;

interface Reference {
  record: EnvironmentRecord;
  steps: string[];
  /** The progress labels of the uninterrupted run, without indentation. */
  labels: string[];
}
let ref: Reference | undefined;

/** The steps a crash point names: the progress label of the reference run that matches. */
const PROVIDER_STEPS: Array<{ name: string; label: RegExp }> = [
  { name: 'postgres.role', label: /^\+ postgres\.role / },
  { name: 'postgres.database', label: /^\+ postgres\.database / },
  { name: 'redis.slot', label: /^\+ redis\.slot / },
  { name: 'redis.user', label: /^\+ redis\.user / },
  // The project's bucket; the shared backup bucket is created once per stack, not on every run.
  { name: 'storage.bucket', label: /^\+ storage\.bucket (?!backup )/ },
  { name: 'files.envfile', label: /^\+ files\.envfile / },
  { name: 'proxy.route', label: /^\+ proxy\.route / },
  { name: 'runtime.release', label: /^\+ runtime\.release / },
];
type Point = { event: 'start' | 'done'; label: RegExp; name: string };
const POINTS: Point[] = [
  ...PROVIDER_STEPS.flatMap((st): Point[] => [
    { event: 'start', label: st.label, name: `as ${st.name} starts` },
    { event: 'done', label: st.label, name: `once ${st.name} is done, before the journal records it` },
  ]),
  { event: 'done', label: /^start \S+--web--blue$/, name: 'once the container started, before it is recorded' },
  { event: 'done', label: /^health gate /, name: 'once healthy, before the switch' },
  { event: 'done', label: /^switch traffic /, name: 'once switched, before the record says so' },
  { event: 'done', label: /^verify through Caddy /, name: 'once verified through Caddy, before the watch' },
];

/** The progress labels in plain (CI) output: "  <label> ... <result> (<time>)". */
function progressLabels(stderr: string): string[] {
  return [...stderr.matchAll(/^ +(.+?) \.\.\. /gm)].map((m) => m[1]!);
}

/** The exact label a point names, from the reference run. */
function labelOf(p: Point): string {
  const found = ref!.labels.filter((l) => p.label.test(l));
  if (found.length !== 1) throw new Error(`crash point ${p.name}: ${found.length} progress labels match ${p.label} in the reference run (${ref!.labels.join(' | ')})`);
  return found[0]!;
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
  expect((await proxyRoute(settings, `codeb-${id}--production`)).status).toBe(200);
  const containers = await projectContainers(settings, id);
  expect(
    containers.filter((c) => c.state === 'running').map((c) => c.name),
    `${label}: one container running (all: ${JSON.stringify(containers)})`,
  ).toEqual([`${id}--production--web--${rec.liveSlot}`]);
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
  await reserveRedisDbs(settings, box.registry, 'apply-crash');
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

describe('apply killed with SIGKILL at 20 named points', () => {
  it('an uninterrupted apply gives the reference end state', async () => {
    // Plain output: its progress labels name the crash points.
    const r = await box.run(['apply', file]);
    expect(r.code, describeRun(r)).toBe(0);
    const record = box.record(id)!;
    const steps = record.journal!.map((j) => j.step);
    // role, database, Redis slot and user, bucket, env file, route, containers (+ the shared backup bucket once).
    expect(steps.length).toBeGreaterThanOrEqual(8);
    const labels = progressLabels(r.stderr);
    log.push(`reference: steps ${steps.join(', ')}; progress ${labels.join(' | ')}`);
    try {
      ref = { record, steps, labels };
      for (const p of POINTS) labelOf(p); // every point names exactly one step of the run
      await expectConverged('reference');
    } catch (err) {
      ref = undefined;
      await box.run(['destroy', id, '--yes', '--delete-data']);
      throw err;
    }
    await destroyAll('reference');
  });

  it.each(POINTS.map((p, i) => ({ ...p, n: i + 1 })))(
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
    300_000,
  );
});

async function killAndConverge(point: Point, label: string): Promise<void> {
  // This file's ports are its own; one held by some other process would change the allocation
  // for a reason that has nothing to do with crashes, so say so plainly.
  const busy = listeningPorts();
  const mine = Object.values(ref!.record.ports).flatMap((p) => [p.blue, p.green, p.entry]);
  expect(mine.filter((p) => busy.has(p)), `${label}: ports of the reference allocation already in use by another process`).toEqual([]);
  // Plain output: the progress lines (one per finished step, CI style) show what the kill cut short.
  // The apply kills itself with SIGKILL when it reaches the point (controller/reconcile/crash-points.ts).
  const crashAt = `${point.event}:${labelOf(point)}`;
  const done = box.run(['apply', file], { CODEB_TEST_CRASH_AT: crashAt });
  const killed = await done;
  expect(killed.signal, `${label}: the apply was killed at ${crashAt}, not finished\n${describeRun(killed)}`).toBe('SIGKILL');
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
