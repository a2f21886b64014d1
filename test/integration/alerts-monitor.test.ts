/**
 * Alerts, `codeb monitor` and scheduled jobs on the real stack: a project with
 * monitoring.alerts.webhook pointing at a receiver on loopback. The first apply prints the signing
 * secret once; a deploy stopped by the health gate sends deploy.gate_failed, signed; monitor records
 * health in the registry and alerts once when the live version turns unhealthy (however many passes
 * see it) and once when it recovers; jobs run as one-off containers in the app's image, their exit
 * code and log tail are recorded and a failure sends job.failed.
 */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeployEnv, manifest, show, uniqueId, type Run } from './helpers/deploy.js';
import { appPorts } from './helpers/stack.js';
import { WebhookReceiver } from './helpers/webhook-receiver.js';

const t = new DeployEnv(appPorts('5400-5449'));
const id = uniqueId('alrt');
const domain = `${id}.localhost`;
const receiver = new WebhookReceiver();
let base = '';
// report: every minute (so --due finds it due); broken: once a year (so --due leaves it alone).
const JOBS = `jobs:
  report:
    command: ["/usr/bin/node", "-e", "console.log('report for ' + process.env.VERSION)"]
    schedule: "* * * * *"
  broken:
    command: ["/usr/bin/node", "-e", "console.log('starting'); console.error('boom: no such table'); process.exit(3)"]
    schedule: "0 0 1 1 *"
    timeout: 1m
`;
let secret = '';

interface MonitorJson {
  deployments: Array<{ project: string; env: string; health: string; previous: string | null; alert: { event: string; webhook: { result: string } } | null }>;
}
async function monitor(): Promise<{ run: Run; row: MonitorJson['deployments'][number] }> {
  const run = await t.codeb('monitor', '--project', id, '--json');
  const doc = JSON.parse(run.stdout) as MonitorJson;
  return { run, row: doc.deployments.find((d) => d.project === id)! };
}

describe('alerts and monitor (real stack)', () => {
  beforeAll(async () => {
    await t.privateProxy();
    await receiver.start();
    const alerts = `monitoring:\n  alerts:\n    webhook: ${receiver.url}\n` + JOBS;
    base = t.write('project.yaml', manifest({ id, database: false, extra: alerts }));
    t.write('unhealthy.yaml', manifest({ id, database: false, env: { FAIL_MODE: 'unhealthy' }, deadline: '4s', extra: alerts }));
    // Healthy for 4 s from its start (gate and switch pass), then 500 while the 10 s watch runs.
    t.write('fail-after.yaml', manifest({ id, database: false, env: { FAIL_MODE: 'fail-after', FAIL_AFTER_MS: 4000 }, watch: '10s', extra: alerts }));
  });
  afterAll(async () => {
    const r = await t.codeb('destroy', id, '--delete-data', '--yes');
    await receiver.close();
    await t.close();
    expect(r.code, show(r)).toBe(0);
  });

  it('the first apply with a webhook prints the signing secret once; later commands never show it', async () => {
    const first = await t.codeb('apply', base);
    expect(first.code, show(first)).toBe(0);
    const m = /Alert signing secret for (\S+) \(shown only this once[^)]*\): (\S+)/.exec(first.stdout);
    expect(m, show(first)).not.toBeNull();
    expect(m![1]).toBe(id);
    secret = m![2]!;
    expect(secret.length).toBeGreaterThanOrEqual(32);
    receiver.secret = secret;

    const again = await t.codeb('apply', base, '--json');
    expect(again.code, show(again)).toBe(0);
    expect(again.stdout + again.stderr).not.toContain(secret);
    expect(JSON.parse(again.stdout).alertSigningSecret).toBeUndefined();
  });

  it('a deploy stopped by the health gate sends deploy.gate_failed, signed, once the registry lock is released', async () => {
    // A slow or dead receiver must not hold every other apply: the alert goes out after the lock.
    receiver.atArrival = () => existsSync(`${t.registry}.lock`);
    const r = await t.codeb('apply', `${t.dir}/unhealthy.yaml`);
    receiver.atArrival = null;
    expect(r.code, show(r)).toBe(3);
    expect(r.stderr).toContain('alert deploy.gate_failed: sent to the webhook');
    expect(r.stdout + r.stderr).not.toContain(secret);
    const [e] = await receiver.waitFor('deploy.gate_failed');
    expect(receiver.requests.filter((q) => 'seen' in q).map((q) => q.seen)).toEqual([false]);
    expect(e!.signatureOk).toBe(true);
    expect(e!.payload).toMatchObject({ event: 'deploy.gate_failed', project: id, env: 'production', version: 'v1', url: expect.stringContaining(domain) });
    expect(String(e!.payload.reason)).toMatch(/web: .*HTTP 500/);
    // The old version keeps serving.
    expect((await t.viaCaddy(domain, '/api/health')).status).toBe(200);
  });

  it('a deploy rolled back after the switch sends deploy.rolled_back', async () => {
    const r = await t.codeb('apply', `${t.dir}/fail-after.yaml`);
    expect(r.code, show(r)).toBe(4);
    expect(r.stderr).toContain('alert deploy.rolled_back: sent to the webhook');
    const [e] = await receiver.waitFor('deploy.rolled_back');
    expect(e!.signatureOk).toBe(true);
    expect(e!.payload).toMatchObject({ event: 'deploy.rolled_back', project: id, env: 'production', version: 'v1' });
    expect(String(e!.payload.reason)).toContain('after the switch');
    expect((await t.viaCaddy(domain, '/api/health')).status).toBe(200);
  });

  it('monitor records health and alerts once on a change to unhealthy and once on recovery', async () => {
    const ok = await monitor();
    expect(ok.run.code, show(ok.run)).toBe(0);
    expect(ok.row).toMatchObject({ health: 'healthy', alert: null });
    const rec = await t.record(id);
    expect(rec.health.status).toBe('healthy');
    const firstCheck = rec.health.lastCheck!;
    expect(Date.parse(firstCheck)).not.toBeNaN();

    // The live version starts answering 500 on its health path.
    expect((await t.viaCaddy(domain, '/api/chaos?mode=unhealthy')).status).toBe(200);
    const down = await monitor();
    expect(down.run.code, show(down.run)).toBe(1);
    expect(down.row).toMatchObject({ health: 'unhealthy', previous: 'healthy', alert: { event: 'service.unhealthy', webhook: { result: 'sent' } } });
    const downRec = await t.record(id);
    expect(downRec.health.status).toBe('unhealthy');
    expect(downRec.health.lastCheck! > firstCheck).toBe(true);
    expect(downRec.health.detail).toContain('HTTP 500');

    // Still down: recorded again, not alerted again.
    const still = await monitor();
    expect(still.row).toMatchObject({ health: 'unhealthy', previous: 'unhealthy', alert: null });
    expect(receiver.of('service.unhealthy')).toHaveLength(1);
    const list = await t.codeb('registry', 'list');
    expect(list.stdout).toMatch(new RegExp(`${id}\\s.*unhealthy`));

    expect((await t.viaCaddy(domain, '/api/chaos?mode=ok')).status).toBe(200);
    const up = await monitor();
    expect(up.run.code, show(up.run)).toBe(0);
    expect(up.row).toMatchObject({ health: 'healthy', previous: 'unhealthy', alert: { event: 'service.recovered' } });
    const [unhealthy] = receiver.of('service.unhealthy');
    const [recovered] = await receiver.waitFor('service.recovered');
    expect(unhealthy!.signatureOk && recovered!.signatureOk).toBe(true);
    expect(unhealthy!.payload).toMatchObject({ project: id, env: 'production', version: 'v1' });
    expect(String(unhealthy!.payload.reason)).toContain('/api/health through Caddy: HTTP 500');
    expect(receiver.of('service.recovered')).toHaveLength(1);
    expect(receiver.requests.every((r) => r.signatureOk)).toBe(true);
  });

  it('monitor --project with an unknown project is invalid input', async () => {
    const r = await t.codeb('monitor', '--project', 'no-such-project');
    expect(r.code, show(r)).toBe(2);
    expect(r.stderr).toContain('No project "no-such-project"');
  });

  it('jobs run --due runs the job whose schedule fired, in the app image, and records it', async () => {
    const r = await t.codeb('jobs', 'run', id, '--due', '--json');
    expect(r.code, show(r)).toBe(0);
    const doc = JSON.parse(r.stdout) as { jobs: Array<{ job: string; exitCode: number; result: string; logTail: string; image: string; scheduledFor: string | null }> };
    expect(doc.jobs.map((j) => j.job)).toEqual(['report']);
    expect(doc.jobs[0]).toMatchObject({ exitCode: 0, result: 'ok', image: 'localhost/codeb-testapp:v1' });
    expect(doc.jobs[0]!.logTail).toContain('report for v1');
    expect(Date.parse(doc.jobs[0]!.scheduledFor!)).not.toBeNaN();
    const rec = await t.record(id);
    expect(rec.jobs?.report).toMatchObject({ exitCode: 0, result: 'ok' });
    expect(rec.jobs?.broken).toBeUndefined();
    // The one-off container is gone.
    const left = await t.runtime.list({ 'codeb.project': id, 'codeb.job': 'report' });
    expect(left).toEqual([]);
  });

  it('a failing job records its exit code and log tail and sends job.failed', async () => {
    const r = await t.codeb('jobs', 'run', id, '--job', 'broken');
    expect(r.code, show(r)).toBe(1);
    expect(r.stdout).toContain('job broken: FAILED (exit 3');
    expect(r.stdout).toContain('boom: no such table');
    expect(r.stdout).toContain('alert job.failed: sent to the webhook');
    const [e] = await receiver.waitFor('job.failed');
    expect(e!.signatureOk).toBe(true);
    expect(e!.payload).toMatchObject({ event: 'job.failed', project: id, env: 'production', version: 'v1' });
    expect(String(e!.payload.reason)).toBe('job broken exited with code 3: boom: no such table');

    const list = await t.codeb('jobs', 'list', id, '--json');
    expect(list.code, show(list)).toBe(0);
    const rows = (JSON.parse(list.stdout) as { jobs: Array<{ job: string; last: { exitCode: number; result: string } | null; logTail: string | null }> }).jobs;
    const broken = rows.find((x) => x.job === 'broken')!;
    expect(broken.last).toMatchObject({ exitCode: 3, result: 'failed' });
    expect(broken.logTail).toContain('starting');
    expect(broken.logTail).toContain('boom: no such table');
    expect(rows.find((x) => x.job === 'report')!.last).toMatchObject({ exitCode: 0 });
  });

  it('jobs run names unknown jobs and missing selections as invalid input', async () => {
    const none = await t.codeb('jobs', 'run', id);
    expect(none.code, show(none)).toBe(2);
    expect(none.stderr).toContain('--job <name>');
    const unknown = await t.codeb('jobs', 'run', id, '--job', 'nope');
    expect(unknown.code, show(unknown)).toBe(2);
    expect(unknown.stderr).toContain('Jobs: report, broken');
  });
});
