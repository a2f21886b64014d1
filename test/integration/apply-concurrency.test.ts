/**
 * Concurrent applies through the built CLI, on one registry: the registry lock is held for the
 * whole apply, so two applies of the same project never interleave (the second waits, then finds
 * nothing to do); a waiter with a short CODEB_LOCK_TIMEOUT_MS gives up naming the holder (host, pid,
 * command); applies of two different projects at once both succeed, one after the other.
 * While the commands run, the registry file and the lock holder file are sampled every few
 * milliseconds to see the order in which journals and statuses really changed.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import type { RegistryDocument } from '../../controller/registry/types.js';
import type { Settings } from '../../controller/settings.js';
import { Sandbox, describeRun, fullManifest, projectContainers, sleep, viaCaddy, type Run } from './helpers/apply.js';
import { appPorts, stackSettings, uniqueId } from './helpers/stack.js';

// Ports 4740-4789 belong to this file. No project here uses Redis, so no slot is needed.
const box = new Sandbox('apply-conc', { CODEB_PORT_RANGE: appPorts('4740-4789') });
let settings: Settings;
const projects: string[] = [];

interface Sample {
  holder: number | null;
  /** project -> status and journal steps */
  state: Record<string, { status: string; journal: string[] }>;
}

/** Samples the registry and the lock holder until stopped; consecutive duplicates are dropped. */
function sampler(): { stop: () => Promise<Sample[]> } {
  const samples: Sample[] = [];
  let last = '';
  let running = true;
  const loop = (async () => {
    while (running) {
      let doc: RegistryDocument | undefined;
      let holder: number | null = null;
      try {
        doc = JSON.parse(readFileSync(box.registry, 'utf8')) as RegistryDocument;
      } catch {
        doc = undefined;
      }
      try {
        holder = (JSON.parse(readFileSync(`${box.registry}.lock-holder.json`, 'utf8')) as { pid: number }).pid;
      } catch {
        holder = null;
      }
      const state: Sample['state'] = {};
      for (const id of projects) {
        const rec = doc?.projects[id]?.environments.production;
        if (rec) state[id] = { status: rec.status, journal: (rec.journal ?? []).map((j) => j.step) };
      }
      const key = JSON.stringify({ holder, state });
      if (key !== last) samples.push({ holder, state });
      last = key;
      await sleep(2);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return samples;
    },
  };
}

function manifest(id: string, watch = '1s'): string {
  projects.push(id);
  return box.write(`${id}.yaml`, fullManifest(id, { cache: false }).replace(/watchAfterSwitch: \S+/, `watchAfterSwitch: ${watch}`));
}

/** Run the commands at once; resolves with each result and the order in which they exited. */
async function together(runs: Array<{ args: string[]; env?: NodeJS.ProcessEnv }>): Promise<{ results: Array<Run & { pid: number }>; exitOrder: number[] }> {
  const exitOrder: number[] = [];
  const started = runs.map((r, i) => {
    const p = box.start(r.args, r.env);
    return box.finish(p, r.args).then((res) => {
      exitOrder.push(i);
      return { ...res, pid: p.pid! };
    });
  });
  return { results: await Promise.all(started), exitOrder };
}

/**
 * The journal of one project over time must only grow while one process holds the lock, and a new
 * apply must start it afresh only after the previous one finished: no step twice, none out of order.
 */
function expectContiguous(samples: Sample[], id: string, applier: number): string[] {
  let prev: string[] = [];
  for (const s of samples) {
    const st = s.state[id];
    if (!st) continue;
    const j = st.journal;
    expect(j.slice(0, prev.length), `journal of ${id} only grows: ${JSON.stringify(prev)} -> ${JSON.stringify(j)}`).toEqual(prev);
    expect(new Set(j).size, `no step twice in ${JSON.stringify(j)}`).toBe(j.length);
    if (j.length > prev.length || st.status === 'provisioning') {
      // Any change of the journal is written under the lock by the applying process.
      if (s.holder !== null) expect(s.holder, `journal of ${id} written by the applying process`).toBe(applier);
    }
    prev = j;
  }
  return prev;
}

beforeAll(async () => {
  settings = stackSettings();
});

afterAll(async () => {
  for (const id of projects) {
    const r = await box.run(['destroy', id, '--yes', '--delete-data']);
    if (r.code !== 0) console.error(`cleanup failed: ${describeRun(r)}`);
  }
  await box.close();
});

/** The state letter of a process (/proc/<pid>/stat): "T" once it is stopped. */
function procState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

describe('concurrent applies', () => {
  it('two applies of the same project at once: one applies, the other waits for the lock and finds No changes', async () => {
    const id = uniqueId('concsame');
    const file = manifest(id);
    const rec = sampler();
    const { results, exitOrder } = await together([{ args: ['apply', file] }, { args: ['apply', file] }]);
    const samples = await rec.stop();
    for (const r of results) expect(r.code, describeRun(r)).toBe(0);

    const applied = results.findIndex((r) => r.stdout.startsWith(`Applied ${id}`));
    expect(applied, results.map(describeRun).join('\n')).toBeGreaterThanOrEqual(0);
    const waiter = 1 - applied;
    expect(results[waiter]!.stdout, describeRun(results[waiter]!)).toMatch(/^No changes\./);
    // The waiter could only decide after the applier released the lock.
    expect(exitOrder).toEqual([applied, waiter]);
    // Only the applier ever held the lock while the record changed, and its journal is one run.
    const journal = expectContiguous(samples, id, results[applied]!.pid);
    const steps = [...results[applied]!.stderr.matchAll(/^ {2}[+~-] (\S+) (\S+) \.\.\./gm)].map((m) => `${m[1]}/${m[2]}`);
    expect(journal).toEqual(steps);
    expect(journal.length).toBeGreaterThanOrEqual(6);
    // The waiter held the lock too (it planned), but only after the applier let go.
    const holders = samples.map((s) => s.holder).filter((h): h is number => h !== null);
    const firstWaiter = holders.indexOf(results[waiter]!.pid);
    if (firstWaiter >= 0) expect(holders.slice(firstWaiter)).not.toContain(results[applied]!.pid);

    const rec2 = box.record(id)!;
    expect(rec2.status).toBe('running');
    expect(rec2.history.filter((h) => h.action === 'apply').map((h) => h.result)).toEqual(['ok']);
    expect((await projectContainers(settings, id)).filter((c) => c.state === 'running')).toHaveLength(1);
  });

  it('with a small CODEB_LOCK_TIMEOUT_MS a waiting apply fails naming the holder: host, pid and command', async () => {
    const id = uniqueId('conclock');
    const file = manifest(id);
    // The first apply stops itself (SIGSTOP) as its first step starts, holding the lock, and goes
    // on once the second has given up (controller/reconcile/crash-points.ts).
    const holder = box.start(['apply', file], { CODEB_TEST_PAUSE_AT: 'start:+ postgres.role *' });
    const holderDone = box.finish(holder, ['apply', file]);
    let holderExited = false;
    void holderDone.then(() => (holderExited = true));
    // Never leave it stopped, whatever fails below.
    onTestFinished(() => void holder.kill('SIGCONT'));
    while (procState(holder.pid!) !== 'T') {
      if (holderExited) throw new Error(`the first apply ended before it stopped at its first step: ${describeRun(await holderDone)}`);
      await sleep(5);
    }
    expect((JSON.parse(readFileSync(`${box.registry}.lock-holder.json`, 'utf8')) as { pid: number }).pid, 'the stopped apply holds the lock').toBe(holder.pid);
    const before = readFileSync(box.registry, 'utf8');
    const waiter = await box.run(['apply', file], { CODEB_LOCK_TIMEOUT_MS: '300' });
    expect(holderExited, 'the first apply still held the lock when the second gave up').toBe(false);
    const during = readFileSync(box.registry, 'utf8');
    expect(waiter.code, describeRun(waiter)).toBe(1);
    expect(waiter.stderr).toContain(`locked by`);
    expect(waiter.stderr).toContain(`@${hostname()} pid ${holder.pid} (codeb apply ${file})`);
    expect(waiter.stderr).toMatch(/since \d{4}-\d\d-\d\dT/);
    expect(waiter.stderr).toContain('CODEB_LOCK_STALE_MS');
    expect(waiter.stdout).toBe('');
    // The waiter wrote nothing: whatever changed meanwhile is the holder's journal growing.
    const a = JSON.parse(before) as RegistryDocument;
    const b = JSON.parse(during) as RegistryDocument;
    const ja = a.projects[id]?.environments.production?.journal ?? [];
    const jb = b.projects[id]?.environments.production?.journal ?? [];
    expect(jb.slice(0, ja.length)).toEqual(ja);

    holder.kill('SIGCONT');
    const first = await holderDone;
    expect(first.code, describeRun(first)).toBe(0);
    expect(first.stdout).toContain(`Applied ${id}`);
    expect(box.record(id)!.history.filter((h) => h.action === 'apply')).toHaveLength(1);
  });

  it('applies of two different projects at once both succeed, one after the other', async () => {
    const ids = [uniqueId('concone'), uniqueId('conctwo')];
    const files = ids.map((id) => manifest(id));
    const rec = sampler();
    const { results } = await together(files.map((f) => ({ args: ['apply', f, '--json'] })));
    const samples = await rec.stop();
    for (const r of results) expect(r.code, describeRun(r)).toBe(0);
    for (const r of results) expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, applied: true });

    // Never both in the middle of an apply at the same sampled moment.
    for (const s of samples) {
      const busy = ids.filter((id) => s.state[id]?.status === 'provisioning');
      expect(busy.length, JSON.stringify(s)).toBeLessThanOrEqual(1);
    }
    const ports = new Set<number>();
    for (const [i, id] of ids.entries()) {
      expectContiguous(samples, id, results[i]!.pid);
      const r = box.record(id)!;
      expect(r.status).toBe('running');
      for (const p of Object.values(r.ports)) for (const port of [p.blue, p.green, p.entry]) ports.add(port);
      expect(await viaCaddy(settings, `${id}.localhost`, '/')).toEqual({ status: 200, body: 'hello from v1\n' });
    }
    expect(ports.size).toBe(6);
    expect((await box.run(['plan', files[0]!])).code).toBe(0);
    expect((await box.run(['plan', files[1]!])).code).toBe(0);
  });
});
