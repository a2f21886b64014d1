/**
 * Deploys cut short, for real: an `apply` of a new version is SIGKILLed in each phase (before the
 * health gate, during it, right after the switch, during the verification through Caddy, during
 * the watch window), reached by a condition — the deploy pauses at a named point
 * (CODEB_TEST_PAUSE_AT) and says so on stderr — never by a guessed sleep. Then:
 * - `plan` shows the interrupted deploy as pending (exit 10) and `registry inspect` says where;
 * - with v4, which fails 8 s after it starts (after the switch): the next `apply` ends with v1
 *   live (exit 4) and a history entry marked resumed and rolled back;
 * - with v2 (good): the next `apply` leaves v2 live and verified, marked resumed;
 * - `rollback` during an interrupted deploy ends it.
 * A bounded load client requests the site through Caddy during the kill and the resumed run: no
 * request may fail except the health answers the broken v4 itself gave before its rollback; the
 * counts are printed.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateRegistry } from '../../controller/generated/validators.js';
import type { DeployPhase, EnvironmentRecord, HistoryEntry, RegistryDocument } from '../../controller/registry/types.js';
import { DeployEnv, manifest, show, uniqueId, until } from './helpers/deploy.js';
import { appPorts } from './helpers/stack.js';

// Ports 5270-5319 belong to this file; a killed holder's lock is taken over after 2 s.
const t = new DeployEnv(appPorts('5270-5319'), { CODEB_LOCK_STALE_MS: '2000' });
const id = uniqueId('resume');
const domain = `${id}.localhost`;
const name = (slot: string) => `${id}--production--web--${slot}`;
const image = (v: string) => `localhost/codeb-testapp:${v}`;
const withImage = (text: string, v: string) => text.replace(image('v1'), image(v));

// No database: the health answer depends on the app alone, so only the version decides it.
const base = t.write('v1.yaml', manifest({ id, database: false }));
const good = t.write('v2.yaml', withImage(manifest({ id, database: false, watch: '4s' }), 'v2'));
// v4 answers its health check 500 from 8 s after it starts: after the gate, the switch and the
// first watch check of the first run; inside the window of the run that resumes it.
const bad = t.write('v4.yaml', withImage(manifest({ id, database: false, env: { FAIL_MODE: 'fail-after', FAIL_AFTER_MS: 8000 }, watch: '10s' }), 'v4'));

interface Point {
  /** Where the deploy pauses (CODEB_TEST_PAUSE_AT) to be killed. */
  pause: string;
  what: string;
  /** The phase the registry must show at that moment. */
  phase: DeployPhase;
  /** What the next apply does about it. */
  action: 'discard' | 'finish';
}

const POINTS: Point[] = [
  { pause: 'gating', what: 'before the health gate', phase: 'gating', action: 'discard' },
  { pause: 'gate-check', what: 'during the health gate', phase: 'gating', action: 'discard' },
  { pause: 'switched', what: 'right after the switch', phase: 'switched', action: 'finish' },
  { pause: 'verify-check', what: 'during the verification through Caddy', phase: 'verifying', action: 'finish' },
  { pause: 'watch-check', what: 'during the watch window', phase: 'watching', action: 'finish' },
];

const lastDeploy = (h: HistoryEntry[]) => h.filter((e) => e.action === 'deploy').at(-1)!;
const readRecord = (): EnvironmentRecord | undefined => {
  try {
    return (JSON.parse(readFileSync(t.registry, 'utf8')) as RegistryDocument).projects[id]?.environments.production;
  } catch {
    return undefined;
  }
};

interface LoadCounts {
  requests: number;
  ok: number;
  /** Non-2xx answers the broken version itself gave (its own health 500s). */
  brokenAnswers: number;
  /** Everything else that was not a 200: must stay empty. */
  failures: string[];
}

/**
 * Two clients on loopback through Caddy, alternating "/" and the health path, until stopped;
 * bounded to 20 000 requests and 150 s, each request to 5 s.
 */
function startLoad(brokenVersion: string | null): { stop: () => Promise<LoadCounts> } {
  const c: LoadCounts = { requests: 0, ok: 0, brokenAnswers: 0, failures: [] };
  let stop = false;
  const end = Date.now() + 150_000;
  const client = async (offset: number) => {
    for (let i = offset; !stop && c.requests < 20_000 && Date.now() < end; i++) {
      c.requests++;
      const path = i % 2 === 0 ? '/' : '/api/health';
      try {
        const r = await t.viaCaddy(domain, path);
        if (r.status === 200) c.ok++;
        else if (brokenVersion && r.body.includes(`"version":"${brokenVersion}"`)) c.brokenAnswers++;
        else c.failures.push(`${path}: HTTP ${r.status} ${r.body.slice(0, 120)}`);
      } catch (err) {
        c.failures.push(`${path}: ${(err as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  const running = Promise.all([client(0), client(1)]);
  return {
    stop: async () => {
      stop = true;
      await running;
      return c;
    },
  };
}

const summary: string[] = [];

/** Start `apply file` paused at `point`, check where it is, SIGKILL it; returns what it printed. */
async function killAt(file: string, point: Point, label: string): Promise<string> {
  const run = t.start(['apply', file], { CODEB_TEST_PAUSE_AT: point.pause });
  let exited = false;
  void run.done.then(() => (exited = true));
  await until(() => exited || run.stderr().includes(`paused at ${point.pause} `), 90_000, `${label}: the deploy to pause at ${point.pause}`);
  if (exited) throw new Error(`${label}: the deploy ended before it reached ${point.pause}\n${show(await run.done)}`);
  // While it is paused, the registry already says where it is.
  const at = readRecord();
  expect(at?.deploy, `${label}: phase recorded before the kill`).toMatchObject({ phase: point.phase, slot: 'green', from: 'blue' });
  expect(validateRegistry(JSON.parse(readFileSync(t.registry, 'utf8'))), `${label}: the registry validates`).toBe(true);
  run.child.kill('SIGKILL');
  const killed = await run.done;
  expect(killed.signal, `${label}: killed, not finished\n${show(killed)}`).toBe('SIGKILL');
  return killed.stderr;
}

/** plan and registry inspect say that the deploy was cut short, where, and what apply will do. */
async function expectReported(file: string, point: Point, version: string, label: string): Promise<void> {
  const plan = await t.codeb('plan', file, '--json');
  expect(plan.code, `${label}: plan shows a pending action\n${show(plan)}`).toBe(10);
  const p = JSON.parse(plan.stdout) as { changed: boolean; interrupted: { phase: string; version: string; action: string; text: string } };
  expect(p.interrupted).toMatchObject({ phase: point.phase, version, action: point.action });
  const text = await t.codeb('plan', file);
  expect(text.code).toBe(10);
  expect(text.stdout).toContain(`> resume    interrupted deploy of ${version}`);
  expect(text.stdout).toContain(`was cut short at "${point.phase}"`);
  expect(text.stdout).toContain(point.action === 'discard' ? 'apply removes the half-started green slot' : 'apply verifies it through Caddy');
  const inspect = await t.codeb('registry', 'inspect', id);
  expect(inspect.stdout).toMatch(new RegExp(`last deploy INTERRUPTED: the deploy of ${version} to the green slot .* was cut short at "${point.phase}"`));
}

function report(label: string, c: LoadCounts, brokenVersion: string | null): string {
  const line = `${label}: ${c.requests} requests through Caddy, ${c.ok} ok, ${c.brokenAnswers} failed answers from the broken ${brokenVersion ?? '-'} itself, ${c.failures.length} other failures`;
  summary.push(line);
  console.log(line);
  return line;
}

describe('a deploy cut short in each phase is finished by the next apply (real containers, SIGKILL)', () => {
  beforeAll(async () => {
    await t.up(base);
    expect((await t.viaCaddy(domain, '/')).body).toBe('hello from v1\n');
  }, 120_000);
  afterAll(async () => {
    console.log(['load through Caddy during the kills and the resumed runs:', ...summary.map((l) => `  ${l}`)].join('\n'));
    await t.down(id);
  }, 120_000);

  it.each(POINTS)('v4 (fails after the switch) killed $what: the next apply rolls back to v1, exit 4, history resumed', async (point) => {
    const label = `v4 killed ${point.what}`;
    const load = startLoad('v4');
    let counts: LoadCounts | undefined;
    try {
      await killAt(bad, point, label);
      await expectReported(bad, point, 'v4', label);
      const again = await t.codeb('apply', bad);
      counts = await load.stop();
      expect(again.code, `${label}: ${show(again)}`).toBe(4);
      expect(again.stderr).toContain(`interrupted deploy: the deploy of v4 to the green slot`);
      if (point.action === 'discard') {
        expect(again.stderr).toMatch(/remove the half-started green slot of v4 \.\.\. 1 container removed/);
        expect(again.stderr).toMatch(/switch traffic blue -> green \.\.\. switched/); // deployed again from scratch
      } else {
        expect(again.stderr).not.toContain('switch traffic blue -> green');
      }
      expect(again.stderr).toContain('roll back traffic green -> blue');
      expect(again.stderr).toMatch(/rolled back after the switch: .*(fail-after|verification through Caddy failed)/);
    } finally {
      counts ??= await load.stop();
    }
    report(label, counts, 'v4');
    expect(counts.failures, `${label}: requests that failed other than v4's own answers`).toEqual([]);
    expect(counts.ok).toBeGreaterThan(0);

    expect((await t.viaCaddy(domain, '/')).body).toBe('hello from v1\n');
    expect(await t.runtime.inspect(name('green'))).toBeNull();
    const rec = await t.record(id);
    expect(rec.liveSlot).toBe('blue');
    expect(rec.deploy).toMatchObject({ phase: 'rolled-back', version: 'v4', slot: 'green' });
    const h = lastDeploy(rec.history);
    expect(h).toMatchObject({ result: 'rolled-back', detail: { version: 'v4', outcome: 'rolled-back', from: 'blue', to: 'green', resumed: { phase: point.phase } } });
    if (point.action === 'discard') {
      // The interrupted deploy itself is recorded too: its half-started slot was removed.
      const cut = rec.history.filter((e) => e.action === 'deploy').at(-2)!;
      expect(cut).toMatchObject({ result: 'failed', detail: { outcome: 'interrupted', version: 'v4', resumed: { phase: point.phase } } });
    }
    const hist = await t.codeb('history', id);
    expect(hist.stdout).toMatch(new RegExp(`deploy\\s+rolled-back.*version v4.*resumed \\(cut short at "${point.phase}"\\)`));
    const plan = await t.codeb('plan', base);
    expect(plan.code, show(plan)).toBe(0);
  }, 150_000);

  it.each(POINTS)('v2 (good) killed $what: the next apply leaves v2 live and verified, history resumed', async (point) => {
    const label = `v2 killed ${point.what}`;
    const load = startLoad(null);
    let counts: LoadCounts | undefined;
    try {
      await killAt(good, point, label);
      await expectReported(good, point, 'v2', label);
      const again = await t.codeb('apply', good);
      counts = await load.stop();
      expect(again.code, `${label}: ${show(again)}`).toBe(0);
      expect(again.stderr).toMatch(/verify through Caddy \(2 checks\) \.\.\. ok/);
      expect(again.stderr).toMatch(/watch the new version for \d+ s \.\.\. ok/);
    } finally {
      counts ??= await load.stop();
    }
    report(label, counts, null);
    expect(counts.failures, `${label}: failed requests`).toEqual([]);

    expect((await t.viaCaddy(domain, '/')).body).toBe('hello from v2\n');
    const rec = await t.record(id);
    expect(rec.liveSlot).toBe('green');
    expect(rec.status).toBe('running');
    expect(rec.deploy).toMatchObject({ phase: 'done', version: 'v2' });
    expect(rec.retained).toMatchObject({ slot: 'blue', images: { web: image('v1') } });
    expect(lastDeploy(rec.history)).toMatchObject({ result: 'ok', detail: { version: 'v2', outcome: 'deployed', resumed: { phase: point.phase } } });
    const plan = await t.codeb('plan', good);
    expect(plan.code, show(plan)).toBe(0);

    // Back to v1 for the next case (one switch to the retained slot).
    const back = await t.codeb('rollback', id);
    expect(back.code, show(back)).toBe(0);
    expect((await t.viaCaddy(domain, '/')).body).toBe('hello from v1\n');
  }, 150_000);

  it('rollback during a deploy cut short after the switch: traffic back on v1, the new slot removed, the deploy ended', async () => {
    const point = POINTS.find((p) => p.pause === 'switched')!;
    await killAt(good, point, 'rollback after the switch');
    expect((await t.viaCaddy(domain, '/')).body).toBe('hello from v2\n'); // the unverified version serves
    const r = await t.codeb('rollback', id);
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toMatch(/Rolled back .*cut short at "switched"; traffic green -> blue in [\d.]+ ms, 1 container\(s\) of v2 removed from the green slot; the deploy is ended\./);
    expect((await t.viaCaddy(domain, '/')).body).toBe('hello from v1\n');
    expect(await t.runtime.inspect(name('green'))).toBeNull();
    const rec = await t.record(id);
    expect(rec.liveSlot).toBe('blue');
    expect(rec.deploy).toMatchObject({ phase: 'rolled-back', version: 'v2' });
    expect(rec.history.at(-1)).toMatchObject({ action: 'rollback', result: 'ok', detail: { from: 'green', to: 'blue', interrupted: { phase: 'switched', version: 'v2', removed: 1 } } });
    // Nothing of the deploy is pending any more; only the killed apply's own record is left to complete.
    const plan = await t.codeb('plan', base, '--json');
    const p = JSON.parse(plan.stdout) as { interrupted: unknown; summary: { create: number; update: number; delete: number }; notes: string[] };
    expect(p.interrupted).toBeNull();
    expect(p.summary).toMatchObject({ create: 0, update: 0, delete: 0 });
    expect(p.notes).toContain('the last apply was cut short (status provisioning); applying completes its record');
    const done = await t.codeb('apply', base);
    expect(done.code, show(done)).toBe(0);
    expect((await t.record(id)).status).toBe('running');
  }, 120_000);

  it('rollback during a deploy cut short before the switch: v1 kept serving, the half-started slot removed', async () => {
    const point = POINTS.find((p) => p.pause === 'gating')!;
    await killAt(good, point, 'rollback before the switch');
    const r = await t.codeb('rollback', id, '--json');
    expect(r.code, show(r)).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, mode: 'end-interrupted', from: 'green', to: 'blue', interrupted: { phase: 'gating', version: 'v2', removed: 1, trafficMoved: false } });
    expect((await t.viaCaddy(domain, '/')).body).toBe('hello from v1\n');
    expect(await t.runtime.inspect(name('green'))).toBeNull();
    expect((await t.record(id)).deploy).toMatchObject({ phase: 'failed' });
  }, 120_000);
});
