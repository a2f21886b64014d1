import { describe, expect, it } from 'vitest';
import { resolveDeployment } from '../../controller/manifest/normalize.js';
import type { Manifest } from '../../controller/manifest/types.js';
import { jobSpec, pickJobs, renderJobList } from '../../controller/ops/jobs.js';
import type { EnvironmentRecord, JobRunRecord } from '../../controller/registry/types.js';

const m = {
  apiVersion: 'codeb/v1',
  project: { id: 'shop' },
  services: { web: { image: 'localhost/shop:v1', port: 8080 }, worker: { type: 'worker', image: 'localhost/shop-worker:v1' } },
  jobs: {
    hourly: { command: ['node', 'hourly.js'], schedule: '0 * * * *' },
    nightly: { service: 'worker', command: ['node', 'nightly.js'], schedule: '30 3 * * *', timeout: '5m' },
  },
} as unknown as Manifest;
const d = resolveDeployment(m);
const run = (lastStartedAt: string): JobRunRecord => ({ lastStartedAt, scheduledFor: null, lastFinishedAt: lastStartedAt, exitCode: 0, result: 'ok', durationMs: 10, image: 'x' });
const rec = (jobs: Record<string, JobRunRecord> = {}, createdAt = '2026-01-01T00:00:00Z') =>
  ({ env: 'production', createdAt, liveSlot: 'green', ports: { web: { blue: 4001, green: 4002, entry: 4000 } }, containers: [{ service: 'web', slot: 'green', name: 'shop--production--web--green', image: 'localhost/shop:v2' }], jobs }) as unknown as EnvironmentRecord;
const pick = (r: EnvironmentRecord, now: string, sel: { job?: string; due?: boolean } = { due: true }) =>
  pickJobs([{ project: 'shop', env: 'production', rec: r, d }], { due: Boolean(sel.due), job: sel.job, now: new Date(now) }).map((p) => `${p.job.name}@${p.scheduledFor ?? 'now'}`);

describe('resolved jobs', () => {
  it('default to the first service and 30 minutes', () => {
    expect(d.jobs).toEqual([
      { name: 'hourly', service: 'web', command: ['node', 'hourly.js'], schedule: '0 * * * *', timeoutMs: 1_800_000 },
      { name: 'nightly', service: 'worker', command: ['node', 'nightly.js'], schedule: '30 3 * * *', timeoutMs: 300_000 },
    ]);
  });
});

describe('pickJobs', () => {
  it.each([
    ['never ran: due at its first slot after the deployment existed', rec(), '2026-01-02T03:40:00Z', ['hourly@2026-01-02T03:00:00.000Z', 'nightly@2026-01-02T03:30:00.000Z']],
    ['started after the last slot: not due', rec({ hourly: run('2026-01-02T03:00:05Z'), nightly: run('2026-01-02T03:30:02Z') }), '2026-01-02T03:59:00Z', []],
    ['the next slot fired since: due again', rec({ hourly: run('2026-01-02T03:00:05Z'), nightly: run('2026-01-02T03:30:02Z') }), '2026-01-02T04:00:00Z', ['hourly@2026-01-02T04:00:00.000Z']],
    ['missed slots run once, for the latest', rec({ hourly: run('2026-01-01T10:00:00Z'), nightly: run('2026-01-01T03:30:00Z') }), '2026-01-05T12:10:00Z', ['hourly@2026-01-05T12:00:00.000Z', 'nightly@2026-01-05T03:30:00.000Z']],
    ['slots before the deployment existed are not due', rec({}, '2026-01-02T03:45:00Z'), '2026-01-02T03:50:00Z', []],
  ])('%s', (_what, r, now, want) => {
    expect(pick(r, now)).toEqual(want);
  });

  it('by name: that job now, whatever its schedule', () => {
    expect(pick(rec({ nightly: run('2026-01-02T03:30:02Z') }), '2026-01-02T03:31:00Z', { job: 'nightly' })).toEqual(['nightly@now']);
    expect(pick(rec(), '2026-01-02T03:31:00Z', { job: 'nope' })).toEqual([]);
  });
});

describe('jobSpec', () => {
  it("runs the job's command in the live image of its service, with no port, never restarted, under a name no service can have", () => {
    const s = jobSpec(d, rec(), d.jobs[0]!, '/secrets/shop.production.env', '10.99.0.1');
    expect(s).toMatchObject({ name: 'shop--production--web--green.job-hourly', image: 'localhost/shop:v2', command: ['node', 'hourly.js'], port: null, restart: 'no', envFile: '/secrets/shop.production.env' });
    expect(s.labels).toMatchObject({ 'codeb.project': 'shop', 'codeb.env': 'production', 'codeb.job': 'hourly' });
    const w = jobSpec(d, rec(), d.jobs[1]!, null, '10.99.0.1');
    expect(w).toMatchObject({ name: 'shop--production--worker--green.job-nightly', image: 'localhost/shop-worker:v1', port: null });
  });
});

describe('renderJobList', () => {
  it('says when a job never ran or has no result', () => {
    const text = renderJobList([
      { env: 'production', job: 'hourly', service: 'web', schedule: '0 * * * *', command: [], last: run('2026-01-02T03:00:05Z'), logTail: '' },
      { env: 'production', job: 'nightly', service: 'worker', schedule: '30 3 * * *', command: [], last: null, logTail: null },
      { env: 'production', job: 'stuck', service: 'web', schedule: '* * * * *', command: [], last: { ...run('2026-01-02T03:00:05Z'), result: null, exitCode: null, lastFinishedAt: null }, logTail: null },
    ]);
    expect(text.split('\n')).toEqual([
      'ENV         JOB      SCHEDULE (UTC)  LAST START            RESULT',
      'production  hourly   0 * * * *       2026-01-02T03:00:05Z  ok (exit 0, 0.0 s)',
      'production  nightly  30 3 * * *      -                     never ran',
      'production  stuck    * * * * *       2026-01-02T03:00:05Z  no result (running, or codeb was stopped)',
    ]);
  });
});
