/**
 * Blue-green deploys for real, on the local stack with the test images: v1 (apply), v2 (deploy
 * --image: traffic moves through Caddy, v1 retained), rollback, a v3 that never turns healthy, a
 * v4 turned unhealthy after the switch (automatic rollback), a failing release command, `gc --now` and
 * a rollback once nothing is retained (a redeploy of the earlier image). A poller requests the site through Caddy during every deploy
 * and must never see anything but a 200 from a version that is supposed to be serving.
 */
import { readFileSync, statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HistoryEntry } from '../../controller/registry/types.js';
import { DeployEnv, get, manifest, show, uniqueId } from './helpers/deploy.js';
import { appPorts } from './helpers/stack.js';

const t = new DeployEnv(appPorts('4100-4149'));
const id = uniqueId('bg');
const domain = `${id}.localhost`;
const name = (slot: string) => `${id}--production--web--${slot}`;
const image = (v: string) => `localhost/codeb-testapp:${v}`;

const base = t.write('project.yaml', manifest({ id }));
// v3: never healthy (health answers 500); a short deadline so the test does not wait 120 s.
const unhealthy = t.write('unhealthy.yaml', manifest({ id, env: { FAIL_MODE: 'unhealthy' }, deadline: '5s' }));
// v4: healthy until the test turns it unhealthy (/api/chaos) once the deploy reports the switch
// verified, while the watch window is still open (a long one: it ends at the first failed probe).
const watched = t.write('watched.yaml', manifest({ id, watch: '60s' }));
const migrateFails = t.write('migrate-fails.yaml', manifest({ id, env: { MIGRATE_FAIL: 1 }, release: true }));
const withRelease = t.write('release.yaml', manifest({ id, release: true }));

/** Requests "/" through Caddy every 25 ms while `during` runs; returns the bodies seen and failures. */
async function polling<T>(during: () => Promise<T>): Promise<{ result: T; seen: string[]; failures: string[]; requests: number }> {
  const seen: string[] = [];
  const failures: string[] = [];
  let requests = 0;
  let stop = false;
  const loop = (async () => {
    while (!stop) {
      requests++;
      try {
        const r = await t.viaCaddy(domain, '/');
        if (r.status !== 200) failures.push(`HTTP ${r.status} ${r.body.slice(0, 100)}`);
        else if (seen.at(-1) !== r.body.trim()) seen.push(r.body.trim());
      } catch (err) {
        failures.push((err as Error).message);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  })();
  try {
    const result = await during();
    return { result, seen, failures, requests };
  } finally {
    stop = true;
    await loop;
  }
}

const lastDeploy = (h: HistoryEntry[]) => h.filter((e) => e.action === 'deploy').at(-1)!;

describe('blue-green deploys with the health gate (real containers)', () => {
  beforeAll(() => t.up(base));
  afterAll(() => t.down(id));

  it('v1: apply starts the blue slot and Caddy serves it', async () => {
    expect((await t.viaCaddy(domain, '/')).body).toBe('hello from v1\n');
    const health = await t.viaCaddy(domain, '/api/health');
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body)).toMatchObject({ ok: true, version: 'v1', database: 'ok' });
    const rec = await t.record(id);
    expect(rec.liveSlot).toBe('blue');
    expect(rec.status).toBe('running');
    expect(rec.containers.map((c) => `${c.slot} ${c.image}`)).toEqual(['blue localhost/codeb-testapp:v1']);
  });

  it('v2: deploy --image moves traffic without a failed request and retains v1', async () => {
    const since = Date.now();
    const { result: r, seen, failures, requests } = await polling(() => t.codeb('deploy', base, '--image', image('v2'), '--json'));
    expect(r.code, show(r)).toBe(0);
    expect(failures, `${failures.length} of ${requests} requests failed`).toEqual([]);
    expect(seen).toEqual(['hello from v1', 'hello from v2']);
    const out = JSON.parse(r.stdout) as { deploy: { result: string; fromSlot: string; toSlot: string; switchMs: number } };
    expect(out.deploy).toMatchObject({ result: 'deployed', fromSlot: 'blue', toSlot: 'green' });
    // How fast the switch is (goal < 100 ms) is measured by `npm run bench:switch`, not asserted here.
    expect(out.deploy.switchMs).toEqual(expect.any(Number));

    expect((await t.viaCaddy(domain, '/')).body).toBe('hello from v2\n');
    expect(await t.running(name('blue'))).toBe(true); // retained for an instant rollback
    expect(await t.running(name('green'))).toBe(true);

    const rec = await t.record(id);
    expect(rec.liveSlot).toBe('green');
    expect(rec.retained).toMatchObject({ slot: 'blue', images: { web: image('v1') } });
    expect(Date.parse(rec.retained!.until) - Date.now()).toBeGreaterThan(55 * 60_000); // keepPrevious 1h
    expect(rec.containers.map((c) => `${c.slot} ${c.image}`).sort()).toEqual([`blue ${image('v1')}`, `green ${image('v2')}`]);
    const h = lastDeploy(rec.history);
    expect(h).toMatchObject({ action: 'deploy', result: 'ok', detail: { version: 'v2', images: { web: image('v2') }, from: 'blue', to: 'green', outcome: 'deployed' } });
    expect(h.by).toMatch(/^.+@.+$/);
    expect(Date.parse(h.at)).toBeGreaterThanOrEqual(since); // this deploy's entry, not an older one
    expect(Date.parse(h.at)).toBeLessThanOrEqual(Date.now());
    expect(typeof h.detail!.switchMs).toBe('number');
    expect(h.detail!.health).toEqual([{ service: 'web', healthy: true, ms: expect.any(Number), firstOkMs: expect.any(Number) }]);

    const hist = await t.codeb('history', id, '--json');
    expect(hist.code, show(hist)).toBe(0);
    const listed = JSON.parse(hist.stdout) as { project: string; history: HistoryEntry[] };
    expect(listed.project).toBe(id);
    expect(lastDeploy(listed.history)).toEqual(h);
    const text = await t.codeb('history', id);
    expect(text.stdout).toMatch(/deploy\s+ok\s+by \S+@\S+\s+version v2\s+blue -> green\s+switch [\d.]+ ms\s+health web \d+ ms/);
  });

  it('rollback switches back to v1 in one step', async () => {
    const r = await t.codeb('rollback', id);
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toMatch(/traffic green -> blue in [\d.]+ ms/);
    expect((await t.viaCaddy(domain, '/')).body).toBe('hello from v1\n');
    const rec = await t.record(id);
    expect(rec.liveSlot).toBe('blue');
    expect(rec.retained).toMatchObject({ slot: 'green', images: { web: image('v2') } });
    expect(rec.history.at(-1)).toMatchObject({ action: 'rollback', result: 'ok', detail: { from: 'green', to: 'blue' } });
    expect(rec.history.at(-1)!.detail!.switchMs).toEqual(expect.any(Number));
  });

  it('v3 never turns healthy: exit 3, health answers and log tail printed, v1 keeps serving, v3 removed', async () => {
    const { result: r, seen, failures } = await polling(() => t.codeb('deploy', unhealthy, '--image', image('v3')));
    expect(r.code, show(r)).toBe(3);
    expect(failures).toEqual([]);
    expect(seen).toEqual(['hello from v1']);
    expect(r.stderr).toContain('traffic was not moved');
    expect(r.stderr).toMatch(/last health checks:\n(\s+web .*HTTP 500 .*FAIL_MODE=unhealthy.*\n){3}/);
    expect(r.stderr).toMatch(/container log \(tail\):\n\s+.*codeb-testapp v3: listening on http:\/\/0\.0\.0\.0:\d+ \(mode unhealthy\)/);
    expect(await t.runtime.inspect(name('green'))).toBeNull();
    expect(await t.running(name('blue'))).toBe(true);
    expect((await t.viaCaddy(domain, '/')).body).toBe('hello from v1\n');
    const rec = await t.record(id);
    expect(rec.liveSlot).toBe('blue');
    // v2 was retained in the green slot; v3 replaced it there, so nothing is retained any more.
    expect(rec.retained ?? null).toBeNull();
    expect(rec.containers.map((c) => c.name)).toEqual([name('blue')]);
    expect(lastDeploy(rec.history)).toMatchObject({ result: 'failed', detail: { version: 'v3', outcome: 'health-failed', switchMs: null } });
  });

  it('v4 fails after the switch: exit 4, traffic back on v1 by itself, recorded as rolled back', async () => {
    const greenPort = (await t.record(id)).ports.web!.green;
    let turned: Promise<unknown> | undefined;
    const { result: r, seen, failures } = await polling(() =>
      t.codebWatching(['deploy', watched, '--image', image('v4')], (stderr) => {
        if (!turned && /verify through Caddy .*\.\.\. ok/.test(stderr)) turned = get(greenPort, '/api/chaos?mode=unhealthy');
      }),
    );
    expect(turned, 'the deploy reported the switch verified').toBeDefined();
    expect(await turned).toMatchObject({ status: 200 });
    expect(r.code, show(r)).toBe(4);
    expect(failures).toEqual([]);
    expect(seen[0]).toBe('hello from v1');
    expect(seen.at(-1)).toBe('hello from v1');
    expect(seen.every((b) => b === 'hello from v1' || b === 'hello from v4')).toBe(true);
    expect(r.stderr).toContain('roll back traffic green -> blue');
    expect(r.stderr).toMatch(/rolled back after the switch: web failed its health check after the switch: HTTP 500 .*FAIL_MODE=unhealthy/);
    expect((await t.viaCaddy(domain, '/')).body).toBe('hello from v1\n');
    expect(await t.runtime.inspect(name('green'))).toBeNull();
    const rec = await t.record(id);
    expect(rec.liveSlot).toBe('blue');
    const h = lastDeploy(rec.history);
    expect(h).toMatchObject({ result: 'rolled-back', detail: { version: 'v4', outcome: 'rolled-back', from: 'blue', to: 'green' } });
    expect(String(h.detail!.reason)).toMatch(/failed its health check after the switch/);
    expect(typeof h.detail!.switchMs).toBe('number');
  });

  it('a failing release command stops the deploy before anything starts (exit 3)', async () => {
    const r = await t.codeb('deploy', migrateFails, '--image', image('v3'));
    expect(r.code, show(r)).toBe(3);
    expect(r.stderr).toMatch(/release command for web \.\.\. exit 1/);
    expect(r.stderr).toContain('the release command of web exited with code 1; nothing was started');
    expect(r.stderr).toContain('migration failed (MIGRATE_FAIL=1)');
    expect(r.stderr).not.toMatch(/start \S+--web--green/);
    expect(await t.runtime.inspect(name('green'))).toBeNull();
    expect(await t.runtime.list({ 'codeb.project': id })).toHaveLength(1); // the one-off container is gone too
    expect((await t.viaCaddy(domain, '/')).body).toBe('hello from v1\n');
    const rec = await t.record(id);
    expect(lastDeploy(rec.history)).toMatchObject({ result: 'failed', detail: { outcome: 'release-failed' } });
    // The registry keeps the reason and a pointer to a 0600 log file, never the log text (issue 9, finding 6).
    expect(JSON.stringify(rec)).not.toContain('MIGRATE_FAIL');
    const failed = rec.history.at(-1)!;
    expect(failed).toMatchObject({ action: 'apply', result: 'failed', detail: { error: expect.stringContaining('the release command of web exited with code 1') } });
    const log = String(failed.detail!.log);
    expect(statSync(log).mode & 0o777).toBe(0o600);
    expect(readFileSync(log, 'utf8')).toContain('migration failed (MIGRATE_FAIL=1)');
    expect(statSync(t.registry).mode & 0o777).toBe(0o600);
  });

  it('gc --now retires the retained slot; a rollback then redeploys the earlier image; --to picks a version', async () => {
    const d = await t.codeb('deploy', withRelease, '--image', image('v2'));
    expect(d.code, show(d)).toBe(0);
    expect(d.stderr).toMatch(/release command for web \.\.\. exit 0/);
    expect((await t.viaCaddy(domain, '/')).body).toBe('hello from v2\n');
    expect((await t.record(id)).retained).toMatchObject({ slot: 'blue', images: { web: image('v1') } });

    const g = await t.codeb('gc', '--now', '--json');
    expect(g.code, show(g)).toBe(0);
    const out = JSON.parse(g.stdout) as { retired: Array<{ project: string; slot: string; containers: number }> };
    expect(out.retired.filter((x) => x.project === id)).toEqual([expect.objectContaining({ project: id, env: 'production', slot: 'blue', containers: 1 })]);
    expect(await t.runtime.inspect(name('blue'))).toBeNull();
    expect((await t.viaCaddy(domain, '/')).body).toBe('hello from v2\n');
    const rec = await t.record(id);
    expect(rec.retained ?? null).toBeNull();
    expect(rec.containers.map((c) => c.name)).toEqual([name('green')]);
    expect(rec.history.at(-1)).toMatchObject({ action: 'gc', result: 'ok', detail: { slot: 'blue', containers: 1 } });

    const again = await t.codeb('gc', '--now');
    expect(again.stdout).not.toContain(id);

    // Nothing retained: rollback redeploys the previous image (v1) with the last applied manifest.
    const rb = await t.codeb('rollback', id);
    expect(rb.code, show(rb)).toBe(0);
    expect(rb.stderr).toContain(`No previous version of ${id} (production) is running to switch back to`);
    expect(rb.stderr).toContain('Redeploying');
    expect((await t.viaCaddy(domain, '/')).body).toBe('hello from v1\n');
    expect(lastDeploy((await t.record(id)).history)).toMatchObject({ result: 'ok', detail: { version: 'v1' } });

    // --to a version never deployed successfully: a clear error, traffic untouched.
    const bad = await t.codeb('rollback', id, '--to', 'v3');
    expect(bad.code, show(bad)).toBe(1);
    expect(bad.stderr).toContain('No successful deploy of version "v3"');
    expect((await t.viaCaddy(domain, '/')).body).toBe('hello from v1\n');

    // --to v2 goes forward again.
    const fwd = await t.codeb('rollback', id, '--to', 'v2');
    expect(fwd.code, show(fwd)).toBe(0);
    expect((await t.viaCaddy(domain, '/')).body).toBe('hello from v2\n');
  });
});
