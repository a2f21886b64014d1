/**
 * Issue 12, items 5-8, on the real stack (slot-0 app ports 5650-5699, appPorts):
 *
 * - dependsOn: `web` depends on `api`. The new slot starts in waves: api starts and passes its
 *   health gate before web's container is started (Podman's start time of web is after api's
 *   passing check). An api that fails its gate keeps web from starting; the old version serves.
 * - database.name per environment: staging's database is the name the manifest gives, the app
 *   connects to it; another project naming it is refused at plan (exit 2, naming the owner), and so
 *   is a new name for the existing deployment.
 * - extensions: those the server has are created (hstore, citext); timescaledb, which the stack's
 *   Postgres lacks, is refused at plan and apply (exit 2) with the list of what it has.
 * - deploy.strategy per environment: staging recreates (never two versions running at once).
 * - logs.maxSize (item 8): a worker's 2 MB of output leave a log file of at most 64 KiB.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeployEnv, manifest, show, uniqueId } from './helpers/deploy.js';
import { statSync } from 'node:fs';
import { databaseFacts, pgQuery, podman } from './helpers/apply.js';
import { appPorts } from './helpers/stack.js';

const t = new DeployEnv(appPorts('5650-5699'));
beforeAll(() => t.privateProxy());
afterAll(() => t.close());
const http = `    healthCheck:
      http:
        path: /api/health
        timeout: 1s
        interval: 200ms
        successes: 3
`;

interface Check {
  ok: boolean;
  at: string;
}
interface Outcome {
  result: string;
  reason: string;
  health: Array<{ service: string; healthy: boolean; reason: string; checks: Check[] }>;
}

describe('dependsOn orders start-up and health gates', () => {
  const id = uniqueId('dep');
  const name = (service: string, slot: string) => `${id}--production--${service}--${slot}`;
  const services = (apiEnv: string) => `  web:
    type: web
    image: localhost/codeb-testapp:v1
    port: 8080
    dependsOn: [api]
${http}  api:
    type: internal
    image: localhost/codeb-testapp:v1
    port: 8080
${apiEnv}${http}`;
  const base = t.write('dep.yaml', manifest({ id, services: services(''), database: false }));
  const failing = t.write('dep-failing.yaml', manifest({ id, services: services('    env:\n      FAIL_MODE: unhealthy\n'), database: false, deadline: '6s' }));

  afterAll(async () => {
    const r = await t.codeb('destroy', id, '--delete-data', '--yes');
    expect(r.code, show(r)).toBe(0);
  });

  it('starts api, gates it, and only then starts web', async () => {
    const plan = await t.codeb('plan', base);
    expect(plan.code, show(plan)).toBe(10); // changes pending
    expect(plan.stdout + plan.stderr).toContain('dependsOn: services start in 2 waves, each once the one before passed its health gate: api -> web');
    const r = await t.codeb('apply', base, '--json');
    expect(r.code, show(r)).toBe(0);
    const out = JSON.parse(r.stdout) as { deploy: Outcome };
    expect(out.deploy.result).toBe('deployed');
    // Podman says so: web's container started after api's last (passing) health check.
    const api = out.deploy.health.find((h) => h.service === 'api')!;
    expect(api.healthy).toBe(true);
    const apiHealthyAt = Date.parse(api.checks.at(-1)!.at);
    expect(api.checks.at(-1)!.ok).toBe(true);
    const web = await t.runtime.inspect(name('web', 'blue'));
    const apiState = await t.runtime.inspect(name('api', 'blue'));
    expect(web?.running && apiState?.running).toBe(true);
    expect(Date.parse(web!.startedAt!)).toBeGreaterThan(apiHealthyAt);
    expect(Date.parse(apiState!.startedAt!)).toBeLessThan(apiHealthyAt);
    expect((await t.viaCaddy(`${id}.localhost`, '/')).body).toBe('hello from v1\n');
  });

  it('an api that fails its gate keeps web from starting; the old version keeps serving (exit 3)', async () => {
    const r = await t.codeb('deploy', failing, '--image', 'localhost/codeb-testapp:v2');
    expect(r.code, show(r)).toBe(3);
    // The progress: api's wave started and gated, web's never started.
    expect(r.stderr).toContain('health gate (1 container of wave 1/2: api)');
    expect(r.stderr).toContain('web: not started: it depends on api, which failed its health gate');
    expect(r.stderr).toContain(`start ${name('api', 'green')}`);
    expect(r.stderr).not.toContain(`start ${name('web', 'green')}`);
    expect(await t.runtime.inspect(name('web', 'green'))).toBeNull();
    expect(await t.runtime.inspect(name('api', 'green'))).toBeNull();
    expect(await t.running(name('web', 'blue'))).toBe(true);
    expect((await t.viaCaddy(`${id}.localhost`, '/')).body).toBe('hello from v1\n');
    const rec = await t.record(id);
    const detail = rec.history.filter((e) => e.action === 'deploy').at(-1)!.detail as { outcome: string; health: Array<{ service: string; healthy: boolean }> };
    expect(detail.outcome).toBe('health-failed');
    expect(detail.health.map((h) => [h.service, h.healthy])).toEqual([
      ['api', false],
      ['web', false],
    ]);
  });
});

describe('per-environment database.name, extensions and deploy.strategy', () => {
  const id = uniqueId('dbn');
  const other = uniqueId('dbo');
  const named = `${id.replaceAll('-', '_')}_stg`;
  const staging = `${id}--staging--web`;
  // A worker that writes 2 MB to its log at start, then a marker line, with logs.maxSize 64Ki.
  const chatty = (webEnv = '') => `  web:
    type: web
    image: localhost/codeb-testapp:v1
    port: 8080
${webEnv}${http}  chatty:
    type: worker
    image: localhost/codeb-testapp:v1
    command: ['/usr/bin/node', '-e', "const l = 'x'.repeat(1000) + '\\\\n'; for (let i = 0; i < 2000; i++) process.stdout.write(l); process.stdout.write('written\\\\n'); setInterval(() => {}, 1000);"]
    logs: { maxSize: 64Ki }
    healthCheck: { startPeriod: 1s }
`;
  const file = (o: { dbName?: string; extensions?: string[]; webEnv?: string } = {}) =>
    manifest({
      id,
      services: chatty(o.webEnv),
      deadline: '8s',
      extra: `environments:
  staging:
    domain: ${id}-staging.localhost
    database: { name: ${o.dbName ?? named} }
    deploy: { strategy: recreate }
`,
      features: `  database:\n    extensions: [${(o.extensions ?? ['hstore', 'citext']).join(', ')}]\n`,
      database: false,
    }).replace('features:\n  database: false\n', 'features:\n');
  const base = t.write('dbn.yaml', file());

  afterAll(async () => {
    const r = await t.codeb('destroy', id, '--env', 'staging', '--delete-data', '--yes');
    expect(r.code, show(r)).toBe(0);
    expect((await databaseFacts(t.settings, named)).exists).toBe(false);
  });

  it('staging gets the database the manifest names, with the extensions the server has, and the app uses it', async () => {
    const r = await t.codeb('apply', base, '--env', 'staging');
    expect(r.code, show(r)).toBe(0);
    const rec = await t.record(id, 'staging');
    expect(rec).toMatchObject({ database: named, databaseRole: `${named}_owner` });
    const facts = await databaseFacts(t.settings, named);
    expect(facts).toMatchObject({ exists: true, owner: `${named}_owner` });
    expect(facts.extensions).toEqual(expect.arrayContaining(['citext', 'hstore']));
    // The app's own connection (DATABASE_URL from its env file) lands in that database.
    const script = `const { Client } = require('/app/node_modules/pg'); const c = new Client({ connectionString: process.env.DATABASE_URL });
c.connect().then(() => c.query('SELECT current_database() AS d')).then((r) => { console.log(r.rows[0].d); return c.end(); }).catch((e) => { console.log('ERR', e.message); process.exit(1); });`;
    const q = await t.runtime.exec(`${staging}--blue`, ['/usr/bin/node', '-e', script], 20_000);
    expect(q.exitCode, q.output).toBe(0);
    expect(q.output.trim()).toBe(named);
  });

  it('logs.maxSize is honoured: Podman truncates a log that outgrows it', async () => {
    const container = `${id}--staging--chatty--blue`;
    let tail = '';
    for (let i = 0; i < 300 && !tail.includes('written'); i++) {
      tail = await t.runtime.logsTail(container, 1);
      if (!tail.includes('written')) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(tail).toContain('written');
    const logPath = ((await podman(t.settings).getContainer(container).inspect()) as unknown as { LogPath: string }).LogPath;
    // 2 MB were written; the file holds at most 64 KiB (and the line after the cut).
    expect(statSync(logPath).size).toBeLessThanOrEqual(64 * 1024 + 2048);
  });

  it('another project naming that database is refused at plan, naming the owner (exit 2, nothing recorded)', async () => {
    const theirs = t.write(
      'other.yaml',
      manifest({ id: other, extra: `environments:\n  qa:\n    database: { name: ${named} }\n` }),
    );
    const r = await t.codeb('plan', theirs, '--env', 'qa');
    expect(r.code, show(r)).toBe(2);
    expect(r.stderr).toContain(`${other} (qa) names database ${named} (database.name), which project "${id}" (staging) already has it`);
    const inspect = await t.codeb('registry', 'inspect', other, '--json');
    expect(inspect.code).not.toBe(0);
    expect((await t.viaCaddy(`${id}-staging.localhost`, '/')).body).toBe('hello from v1\n');
  });

  it('a new name for the existing deployment is refused: no second, empty database', async () => {
    const renamed = t.write('dbn-renamed.yaml', file({ dbName: `${named}_new` }));
    for (const cmd of ['plan', 'apply']) {
      const r = await t.codeb(cmd, renamed, '--env', 'staging');
      expect(r.code, show(r)).toBe(2);
      expect(r.stderr).toContain(`has database ${named}; the manifest names ${named}_new`);
    }
    expect((await databaseFacts(t.settings, `${named}_new`)).exists).toBe(false);
    expect((await t.record(id, 'staging')).database).toBe(named);
  });

  it('timescaledb, which this Postgres lacks, is refused at plan and apply with the list of what it has', async () => {
    const available = (await pgQuery<{ name: string }>(t.settings, 'SELECT name FROM pg_available_extensions')).map((e) => e.name);
    expect(available).not.toContain('timescaledb');
    const withTs = t.write('dbn-ts.yaml', file({ extensions: ['hstore', 'citext', 'timescaledb'] }));
    for (const cmd of ['plan', 'apply']) {
      const r = await t.codeb(cmd, withTs, '--env', 'staging');
      expect(r.code, show(r)).toBe(2);
      expect(r.stderr).toContain('extension timescaledb is not available on this Postgres server');
      expect(r.stderr).toMatch(/Available: [^\n]*\bcitext\b[^\n]*\bhstore\b[^\n]*\bpg_trgm\b/);
    }
    expect((await databaseFacts(t.settings, named)).extensions).not.toContain('timescaledb');
  });

  it('staging recreates: the old version stops before the new one starts, never two at once', async () => {
    let maxRunning = 0;
    let samples = 0;
    let done = false;
    const sampling = (async () => {
      for (let i = 0; !done && i < 5000; i++) {
        // A container removed between Podman's list and inspect makes a sample fail: skip it.
        const list = await t.runtime.list({ 'codeb.project': id, 'codeb.env': 'staging' }).catch(() => null);
        if (list) {
          maxRunning = Math.max(maxRunning, list.filter((c) => c.running && c.labels['codeb.service'] === 'web').length);
          samples++;
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    const r = await t.codeb('deploy', base, '--env', 'staging', '--image', 'localhost/codeb-testapp:v2');
    done = true;
    await sampling;
    expect(r.code, show(r)).toBe(0);
    expect(samples).toBeGreaterThan(1);
    expect(maxRunning).toBe(1);
    const stop = r.stderr.indexOf('stop the previous version in the blue slot (strategy recreate)');
    expect(stop).toBeGreaterThanOrEqual(0);
    expect(r.stderr.indexOf(`start ${staging}--green`)).toBeGreaterThan(stop);
    expect((await t.viaCaddy(`${id}-staging.localhost`, '/')).body).toBe('hello from v2\n');
    expect(await t.runtime.inspect(`${staging}--blue`)).toBeNull();
    const rec = await t.record(id, 'staging');
    expect(rec.liveSlot).toBe('green');
    expect(rec.retained ?? null).toBeNull();
  });

  it('a recreate whose new version fails leaves nothing serving and says so; rollback redeploys the last good version', async () => {
    const failing = t.write('dbn-failing.yaml', file({ webEnv: '    env:\n      FAIL_MODE: unhealthy\n' }));
    const r = await t.codeb('deploy', failing, '--env', 'staging', '--image', 'localhost/codeb-testapp:v3');
    expect(r.code, show(r)).toBe(3);
    expect(r.stderr).toContain('stopped before the switch; the previous version had been stopped');
    expect(r.stderr).toContain('strategy recreate: the previous version was stopped first, so nothing serves now');
    expect(await t.runtime.list({ 'codeb.project': id, 'codeb.env': 'staging' })).toEqual([]);
    expect((await t.record(id, 'staging')).liveSlot).toBeNull();
    const back = await t.codeb('rollback', id, '--env', 'staging');
    expect(back.code, show(back)).toBe(0);
    expect((await t.viaCaddy(`${id}-staging.localhost`, '/')).body).toBe('hello from v2\n');
  });
});
