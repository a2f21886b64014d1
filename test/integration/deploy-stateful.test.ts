/**
 * A stateful service on the real stack: `db` (the test image with a named volume at /data) beside
 * a blue-green `web`. A file written into the volume must survive two app deploys (which leave db
 * running: same container), a deploy that changes db itself (stop-then-start: never two db
 * containers running, sampled while the deploy runs), a restart, and a destroy that keeps data plus
 * a re-apply; a backup (include: volumes) restores it. destroy --delete-data then removes the
 * volume. First, ownership: a volume codeb creates is writable by a non-root image user (Podman
 * chowns it once, at the first mount; codeb never chowns). App ports: slice 5450-5499 (appPorts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { libpodCall } from '../../controller/providers/libpod.js';
import { VolumeProvider } from '../../controller/providers/volume.js';
import { makeResource } from '../../controller/reconcile/model.js';
import { DeployEnv, manifest, show, uniqueId, type Run } from './helpers/deploy.js';
import { appPorts } from './helpers/stack.js';

const t = new DeployEnv(appPorts('5450-5499'));
const id = uniqueId('sf');
const db = `${id}--production--db--blue`;
const volume = `codeb-${id}--production--db--data`;

function services(dbEnv = 'one'): string {
  const http = `    healthCheck:
      http:
        path: /api/health
        timeout: 1s
        interval: 200ms
        successes: 2
`;
  return `  web:
    image: localhost/codeb-testapp:v1
    port: 8080
${http}  db:
    type: internal
    image: localhost/codeb-testapp:v1
    port: 8080
    env:
      DB_GENERATION: ${dbEnv}
    volumes:
      data: /data
${http}`;
}

const backup = 'backup:\n  include: [volumes]\n';
const base = t.write('project.yaml', manifest({ id, services: services(), database: false, extra: backup }));
const dbChanged = t.write('db-changed.yaml', manifest({ id, services: services('two'), database: false, extra: backup }));
const volumes = new VolumeProvider(t.settings.podman.socketPath);

/** Run node inside a container; its output trimmed. */
async function node(container: string, script: string): Promise<string> {
  const r = await t.runtime.exec(container, ['/usr/bin/node', '-e', script], 10_000);
  expect(r.exitCode, r.output).toBe(0);
  return r.output.trim();
}
const readKept = () => node(db, 'process.stdout.write(require("fs").readFileSync("/data/kept.txt", "utf8"))');

/** db containers running right now (by label: whatever their name). */
async function runningDb(): Promise<string[]> {
  return (await t.runtime.list({ 'codeb.project': id, 'codeb.service': 'db' })).filter((c) => c.running).map((c) => c.name);
}

/** Run a codeb command while sampling the running db containers until it exits. */
async function sampled(args: string[]): Promise<{ run: Run; samples: string[][] }> {
  const started = t.start(args);
  let done = false;
  const finished = started.done.then((r) => {
    done = true;
    return r;
  });
  const samples: string[][] = [];
  try {
    while (!done) samples.push(await runningDb());
  } finally {
    // A failed sample must not leave the command running into the next test.
    if (!done) started.child.kill('SIGTERM');
  }
  return { run: await finished, samples };
}

/** A one-off container of the test image as `user`, with `volume` at /data, run to its end: exit code and output. */
async function runAs(user: string, volume: string, script: string): Promise<{ exitCode: number; output: string }> {
  const sock = t.settings.podman.socketPath;
  const name = `${id}-owner-probe`;
  const created = await libpodCall(sock, 'POST', '/containers/create', { name, image: 'localhost/codeb-testapp:v1', command: ['/usr/bin/node', '-e', script], user, cap_drop: ['ALL'], volumes: [{ Name: volume, Dest: '/data' }] });
  expect(created.status, JSON.stringify(created.json)).toBe(201);
  try {
    expect((await libpodCall(sock, 'POST', `/containers/${name}/start`)).status).toBe(204);
    const waited = await libpodCall(sock, 'POST', `/containers/${name}/wait`);
    return { exitCode: Number(waited.json), output: await t.runtime.logsTail(name, 20) };
  } finally {
    await libpodCall(sock, 'DELETE', `/containers/${name}?force=true`);
  }
}

describe('ownership of a volume codeb creates', () => {
  const name = `codeb-${id}--production--owner--data`;
  afterAll(async () => {
    await volumes.remove(name);
  });

  it('a non-root image user can write to it: Podman chowns its top folder once, at the first mount; later mounts change nothing', async () => {
    const resource = makeResource('volume.data', name, { owner: `${id}/production`, service: 'owner', volume: 'data' }, [], true);
    await volumes.execute({ op: 'create', key: resource.key, kind: resource.kind, name, reason: 'test', changes: [], resource }, { secret: () => '', progress: () => {} });
    const write = 'const fs = require("fs"); try { fs.writeFileSync("/data/by-" + process.getuid(), "x"); console.log("wrote", fs.statSync("/data").uid) } catch (e) { console.log(e.code); process.exit(3) }';
    const first = await runAs('1000:1000', name, write);
    expect(first, first.output).toMatchObject({ exitCode: 0 });
    expect(first.output).toContain('wrote 1000');
    // Not a chown on every start (what :U would do): another user mounting it later is not given it.
    const second = await runAs('2000:2000', name, write);
    expect(second.exitCode, second.output).toBe(3);
    expect(second.output).toContain('EACCES');
  });
});


describe('a stateful service (volumes): stop-then-start, data kept', () => {
  let firstId: string;

  beforeAll(() => t.up(base));
  afterAll(async () => {
    await t.down(id);
    expect(await volumes.inspect(volume)).toBeNull();
  });

  it('runs db as one container with its named volume, owned by the deployment; registry inspect lists it', async () => {
    const st = await t.runtime.inspect(db);
    expect(st?.running).toBe(true);
    firstId = st!.id;
    expect(await runningDb()).toEqual([db]);
    const v = await volumes.inspect(volume);
    expect(v?.Labels).toMatchObject({ 'codeb.managed': 'true', 'codeb.project': id, 'codeb.env': 'production', 'codeb.service': 'db', 'codeb.volume': 'data' });
    const rec = await t.record(id);
    expect(rec.volumes).toEqual([volume]);
    expect(rec.containers.find((c) => c.service === 'db')).toMatchObject({ name: db, stateful: true });
    const text = await t.codeb('registry', 'inspect', id);
    expect(text.stdout).toMatch(new RegExp(`volumes\\s+${volume}`));
    // The container user can write to the volume (Podman chowned its root once, at first mount).
    await node(db, 'require("fs").writeFileSync("/data/kept.txt", "written by v1")');
    expect(await readKept()).toBe('written by v1');
  });

  it('two app deploys switch web blue-green and leave db running untouched, with its file', async () => {
    for (const tag of ['v2', 'v3']) {
      const r = await t.codeb('deploy', base, '--image', `web=localhost/codeb-testapp:${tag}`);
      expect(r.code, show(r)).toBe(0);
      expect(r.stderr + r.stdout).toContain('db is stateful and unchanged: it keeps running through this deploy');
      const st = await t.runtime.inspect(db);
      expect(st?.id).toBe(firstId);
      expect(st?.running).toBe(true);
      expect(await readKept()).toBe('written by v1');
    }
    const rec = await t.record(id);
    expect(rec.liveSlot).toBe('blue'); // v1 blue, v2 green, v3 blue
    expect((await t.viaCaddy(`${id}.localhost`, '/')).body).toBe('hello from v3\n');
    expect(await runningDb()).toEqual([db]);
  });

  it('a change to db itself stops the running container before the new one starts: never two at once', async () => {
    const plan = await t.codeb('plan', dbChanged);
    expect(plan.code, show(plan)).toBe(10); // changes pending
    expect(plan.stdout + plan.stderr).toContain('db is stateful: stops the running container before starting the new one (brief downtime; never two at once)');
    const { run, samples } = await sampled(['apply', dbChanged]);
    expect(run.code, show(run)).toBe(0);
    expect(run.stderr).toMatch(/stop .*--db--blue \(stateful: never two at once\) \.\.\. stopped and removed/);
    // Sampled throughout the deploy: at most one db container ever ran.
    expect(samples.length).toBeGreaterThan(2);
    expect(samples.filter((s) => s.length > 1)).toEqual([]);
    const st = await t.runtime.inspect(db);
    expect(st?.running).toBe(true);
    expect(st?.id).not.toBe(firstId);
    expect(await node(db, 'process.stdout.write(process.env.DB_GENERATION)')).toBe('two');
    expect(await readKept()).toBe('written by v1');
  });

  it('keeps the file across a restart of the container', async () => {
    const before = (await t.runtime.inspect(db))!.startedAt;
    const r = await libpodCall(t.settings.podman.socketPath, 'POST', `/containers/${db}/restart?t=1`);
    expect(r.status, JSON.stringify(r.json)).toBe(204);
    const after = await t.runtime.inspect(db);
    expect(after?.running).toBe(true);
    expect(after?.startedAt).not.toBe(before);
    expect(await readKept()).toBe('written by v1');
  });

  it('destroy without --delete-data keeps the volume (tombstone); a re-apply mounts it again', async () => {
    const d = await t.codeb('destroy', id, '--yes');
    expect(d.code, show(d)).toBe(0);
    expect(d.stdout + d.stderr).toContain(volume);
    expect(await t.runtime.list({ 'codeb.project': id })).toEqual([]);
    expect(await volumes.inspect(volume)).not.toBeNull();
    const list = await t.codeb('registry', 'list', '--all', '--json');
    const tombstones = (JSON.parse(list.stdout) as { tombstones: Array<{ project: string; volumes?: string[] }> }).tombstones;
    expect(tombstones.find((x) => x.project === id)?.volumes).toEqual([volume]);

    const r = await t.codeb('apply', dbChanged);
    expect(r.code, show(r)).toBe(0);
    expect(await readKept()).toBe('written by v1');
    expect((await t.record(id)).volumes).toEqual([volume]);
  });

  it('backs the volume up (include: volumes) and restores it in place', async () => {
    const b = await t.codeb('backup', 'run', id, '--json');
    expect(b.code, show(b)).toBe(0);
    const run = JSON.parse(b.stdout) as { id: string; manifest: { include: string[]; objects: Array<{ key: string; size: number }> } };
    expect(run.manifest.include).toEqual(['volumes']);
    expect(run.manifest.objects.map((o) => o.key)).toEqual([`volumes/${volume}.tar`]);
    // Changed after the backup: one file rewritten, one added.
    await node(db, 'const fs = require("fs"); fs.writeFileSync("/data/kept.txt", "changed"); fs.writeFileSync("/data/later.txt", "x")');
    const refused = await t.codeb('backup', 'restore', id, '--id', run.id, '--volumes');
    expect(refused.code, show(refused)).toBe(2);
    expect(await readKept()).toBe('changed');
    const r = await t.codeb('backup', 'restore', id, '--id', run.id, '--volumes', '--yes');
    expect(r.code, show(r)).toBe(0);
    expect((await t.runtime.inspect(db))?.running).toBe(true);
    expect(await readKept()).toBe('written by v1');
    expect(await node(db, 'console.log(require("fs").readdirSync("/data").sort().join(","))')).toBe('kept.txt');
  });
});
