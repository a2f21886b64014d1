/**
 * `replicas: N` for real (app ports 5550-5649): three web containers per slot and two worker
 * copies, each web replica on its own slot port; requests through Caddy reach all three (the test
 * app answers with its container's hostname); a deploy under load fails no request and moves all
 * three at once; rollback and gc handle every replica; an apply with replicas 2 scales down with a
 * blue-green deploy and shrinks the registry's ports; deploys killed during the gate and after
 * the switch are discarded / finished over every replica by the next apply; a replica that stops
 * is skipped by the forwarder and the next plan sees it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ForwarderClient } from '../../controller/deploy/forwarder-client.js';
import { slotPorts } from '../../controller/registry/slot-ports.js';
import { DeployEnv, manifest, show, uniqueId, until } from './helpers/deploy.js';
import { appPorts } from './helpers/stack.js';

const t = new DeployEnv(appPorts('5550-5649'));
const id = uniqueId('rep');
const domain = `${id}.localhost`;
const name = (service: string, slot: string, n = 1) => `${id}--production--${service}--${slot}${n > 1 ? `--${n}` : ''}`;
const image = (v: string) => `localhost/codeb-testapp:${v}`;

function services(webReplicas: number, version = 'v1'): string {
  return `  web:
    type: web
    image: localhost/codeb-testapp:${version}
    port: 8080
    replicas: ${webReplicas}
    healthCheck:
      http:
        path: /api/health
        timeout: 1s
        interval: 200ms
        successes: 2
  worker:
    type: worker
    image: localhost/codeb-testapp:${version}
    command: ["/usr/bin/node", "/app/app.js", "--worker"]
    replicas: 2
    healthCheck:
      startPeriod: 1s
`;
}

const three = t.write('project.yaml', manifest({ id, services: services(3), database: false }));
const two = t.write('two.yaml', manifest({ id, services: services(2), database: false }));
const twoV3 = t.write('two-v3.yaml', manifest({ id, services: services(2, 'v3'), database: false }));
const forwarder = () => new ForwarderClient(t.settings.forwarder.socketPath);

/** The web entry's targets in the forwarder. */
async function targets(): Promise<number[]> {
  const e = (await forwarder().list()).find((x) => x.id === `${id}--production--web`)!;
  return e.targets ?? [e.target];
}

/** Hostnames (container ids) of the containers named, as Podman made them. */
async function hostnames(names: string[]): Promise<string[]> {
  return Promise.all(names.map(async (n) => (await t.runtime.inspect(n))!.id.slice(0, 12)));
}

/** One /api/version request through Caddy: the answering container's hostname goes to `seen`, anything but a 200 to `failures`. */
async function ask(seen: Set<string>, failures: string[]): Promise<void> {
  try {
    const r = await t.viaCaddy(domain, '/api/version');
    if (r.status !== 200) failures.push(`HTTP ${r.status} ${r.body.slice(0, 100)}`);
    else seen.add((JSON.parse(r.body) as { hostname: string }).hostname);
  } catch (err) {
    failures.push((err as Error).message);
  }
}

/** Which containers answer /api/version through Caddy over `count` requests; failures listed. */
async function sample(count: number): Promise<{ seen: Set<string>; failures: string[] }> {
  const seen = new Set<string>();
  const failures: string[] = [];
  for (let i = 0; i < count; i++) await ask(seen, failures);
  return { seen, failures };
}

/** `workers` loops requesting through Caddy while `during` runs: every answer must be a 200. */
async function underLoad<T>(workers: number, during: () => Promise<T>): Promise<{ result: T; requests: number; failures: string[]; seen: Set<string> }> {
  const failures: string[] = [];
  const seen = new Set<string>();
  let requests = 0;
  let stop = false;
  const loop = async () => {
    while (!stop && requests < 200_000) {
      requests++;
      await ask(seen, failures);
    }
  };
  const loops = Array.from({ length: workers }, loop);
  try {
    return { result: await during(), requests, failures, seen };
  } finally {
    stop = true;
    await Promise.all(loops);
  }
}

describe('replicas: N containers per slot behind one entry (real containers)', () => {
  beforeAll(() => t.up(three));
  afterAll(() => t.down(id));

  it('apply starts three web containers and two workers in the blue slot, each replica on its own port', async () => {
    const rec = await t.record(id);
    expect(rec.liveSlot).toBe('blue');
    const web = rec.ports.web!;
    expect(slotPorts(web, 'blue')).toHaveLength(3);
    expect(slotPorts(web, 'green')).toHaveLength(3);
    expect(new Set([...slotPorts(web, 'blue'), ...slotPorts(web, 'green'), web.entry]).size).toBe(7);
    const names = [1, 2, 3].map((n) => name('web', 'blue', n));
    expect(rec.containers.filter((c) => c.service === 'web').map((c) => [c.name, c.hostPort])).toEqual(names.map((n, i) => [n, slotPorts(web, 'blue')[i]]));
    for (const n of [...names, name('worker', 'blue'), name('worker', 'blue', 2)]) expect(await t.running(n), n).toBe(true);
    expect(await t.runtime.inspect(name('web', 'blue', 4))).toBeNull();
    expect(await targets()).toEqual(slotPorts(web, 'blue'));
    // registry inspect shows every replica's port.
    const text = await t.codeb('registry', 'inspect', id);
    expect(text.stdout).toContain(`web entry ${web.entry} (blue ${slotPorts(web, 'blue').join(' ')}, green ${slotPorts(web, 'green').join(' ')}; 3 replicas)`);
  });

  it('requests through Caddy reach all three replicas', async () => {
    const { seen, failures } = await sample(30);
    expect(failures).toEqual([]);
    expect([...seen].sort()).toEqual((await hostnames([1, 2, 3].map((n) => name('web', 'blue', n)))).sort());
  });

  it('a deploy under load moves all three at once and fails no request', async () => {
    const before = await t.record(id);
    const { result: r, requests, failures, seen } = await underLoad(4, () => t.codeb('deploy', three, '--image', image('v2'), '--json'));
    expect(r.code, show(r)).toBe(0);
    expect(failures).toEqual([]);
    expect(requests).toBeGreaterThan(20);
    const out = JSON.parse(r.stdout) as { deploy: { health: Array<{ service: string; container?: string; healthy: boolean }> } };
    // The gate waited for every replica (three web, two workers).
    expect(out.deploy.health.filter((h) => h.healthy).map((h) => h.container).sort()).toEqual([1, 2, 3].map((n) => name('web', 'green', n)).concat([name('worker', 'green'), name('worker', 'green', 2)]).sort());
    const rec = await t.record(id);
    expect(rec.liveSlot).toBe('green');
    expect(rec.ports).toEqual(before.ports);
    expect(await targets()).toEqual(slotPorts(rec.ports.web!, 'green'));
    const green = await hostnames([1, 2, 3].map((n) => name('web', 'green', n)));
    // The load saw the old replicas and then the new ones; afterwards only the new ones answer.
    for (const h of green) expect(seen).toContain(h);
    const after = await sample(30);
    expect(after.failures).toEqual([]);
    expect([...after.seen].sort()).toEqual(green.sort());
    // The old web replicas are retained for a rollback; the old workers stopped after the watch.
    for (const n of [1, 2, 3]) expect(await t.running(name('web', 'blue', n))).toBe(true);
    expect(await t.runtime.inspect(name('worker', 'blue', 2))).toBeNull();
  });

  it('rollback switches back to all three retained replicas in one switch', async () => {
    const r = await t.codeb('rollback', id);
    expect(r.code, show(r)).toBe(0);
    const rec = await t.record(id);
    expect(rec.liveSlot).toBe('blue');
    expect(await targets()).toEqual(slotPorts(rec.ports.web!, 'blue'));
    const { seen, failures } = await sample(30);
    expect(failures).toEqual([]);
    expect([...seen].sort()).toEqual((await hostnames([1, 2, 3].map((n) => name('web', 'blue', n)))).sort());
  });

  it('an apply with replicas 2 scales down by a blue-green deploy and drops the last replica ports', async () => {
    const plan = await t.codeb('plan', two);
    expect(plan.code, show(plan)).toBe(10);
    const before = (await t.record(id)).ports.web!;
    const r = await t.codeb('apply', two);
    expect(r.code, show(r)).toBe(0);
    const rec = await t.record(id);
    expect(rec.liveSlot).toBe('green');
    const web = rec.ports.web!;
    expect([web.blue, web.green, web.entry]).toEqual([before.blue, before.green, before.entry]);
    expect(web.replicas).toEqual({ blue: before.replicas!.blue.slice(0, 1), green: before.replicas!.green.slice(0, 1) });
    expect(await targets()).toEqual(slotPorts(web, 'green'));
    expect(await t.running(name('web', 'green', 2))).toBe(true);
    expect(await t.runtime.inspect(name('web', 'green', 3))).toBeNull();
    const { seen, failures } = await sample(20);
    expect(failures).toEqual([]);
    expect([...seen].sort()).toEqual((await hostnames([name('web', 'green'), name('web', 'green', 2)])).sort());
    const again = await t.codeb('apply', two);
    expect(again.code, show(again)).toBe(0);
    expect(again.stdout).toContain('No changes');
  });

  it('gc removes every retained replica', async () => {
    const g = await t.codeb('gc', '--now', '--json');
    expect(g.code, show(g)).toBe(0);
    for (const n of [1, 2, 3]) expect(await t.runtime.inspect(name('web', 'blue', n))).toBeNull();
    expect((await t.record(id)).containers.filter((c) => c.slot === 'blue')).toEqual([]);
  });

  /** `apply file` paused at `point` (CODEB_TEST_PAUSE_AT), then SIGKILLed there. */
  async function killAt(file: string, point: string): Promise<void> {
    const run = t.start(['apply', file], { CODEB_TEST_PAUSE_AT: point });
    let exited = false;
    void run.done.then(() => (exited = true));
    await until(() => exited || run.stderr().includes(`paused at ${point} `), 90_000, `the deploy to pause at ${point}`);
    if (exited) throw new Error(`the deploy ended before it reached ${point}\n${show(await run.done)}`);
    run.child.kill('SIGKILL');
    expect((await run.done).signal).toBe('SIGKILL');
  }

  it('a deploy killed during the gate: the next apply removes every replica it started, green keeps serving', async () => {
    await killAt(twoV3, 'gate-check');
    expect((await t.record(id)).deploy).toMatchObject({ phase: 'gating', slot: 'blue', from: 'green' });
    expect(await t.running(name('web', 'blue', 2))).toBe(true);
    const r = await t.codeb('apply', two);
    expect(r.code, show(r)).toBe(0);
    for (const n of [1, 2]) expect(await t.runtime.inspect(name('web', 'blue', n))).toBeNull();
    expect(await t.runtime.inspect(name('worker', 'blue', 2))).toBeNull();
    const rec = await t.record(id);
    expect(rec.liveSlot).toBe('green');
    expect(await targets()).toEqual(slotPorts(rec.ports.web!, 'green'));
  });

  it('a deploy killed right after it started a replica (not yet recorded): rollback ends it and removes every replica, green keeps serving', async () => {
    // The second web replica is running, the registry does not list it yet.
    const run = t.start(['apply', twoV3], { CODEB_TEST_CRASH_AT: `done:start ${name('web', 'blue', 2)}` });
    expect((await run.done).signal, show(await run.done)).toBe('SIGKILL');
    expect(await t.running(name('web', 'blue', 2))).toBe(true);
    expect((await t.record(id)).containers.map((c) => c.name)).not.toContain(name('web', 'blue', 2));
    const r = await t.codeb('rollback', id);
    expect(r.code, show(r)).toBe(0);
    for (const n of [1, 2]) expect(await t.runtime.inspect(name('web', 'blue', n))).toBeNull();
    const rec = await t.record(id);
    expect(rec.liveSlot).toBe('green');
    expect(rec.deploy).toMatchObject({ phase: 'failed', slot: 'blue' });
    expect(rec.containers.filter((c) => c.slot === 'blue')).toEqual([]);
    expect(await targets()).toEqual(slotPorts(rec.ports.web!, 'green'));
  });

  it('a deploy killed after the switch: the next apply finishes it over every replica', async () => {
    await killAt(twoV3, 'switched');
    const rec0 = await t.record(id);
    expect(rec0.deploy).toMatchObject({ phase: 'switched', slot: 'blue', from: 'green' });
    expect(await targets()).toEqual(slotPorts(rec0.ports.web!, 'blue'));
    const r = await t.codeb('apply', twoV3);
    expect(r.code, show(r)).toBe(0);
    const rec = await t.record(id);
    expect(rec.liveSlot).toBe('blue');
    expect(rec.deploy).toMatchObject({ phase: 'done', version: 'v3' });
    expect(rec.history.filter((h) => h.action === 'deploy').at(-1)).toMatchObject({ result: 'ok', detail: { resumed: { phase: 'switched' } } });
    const { seen, failures } = await sample(20);
    expect(failures).toEqual([]);
    expect([...seen].sort()).toEqual((await hostnames([name('web', 'blue'), name('web', 'blue', 2)])).sort());
  });

  it('a replica that stops is skipped for safe requests, and the next plan sees it', async () => {
    await t.runtime.remove(name('web', 'blue', 2), 0);
    const { seen, failures } = await sample(20);
    expect(failures).toEqual([]);
    expect([...seen]).toEqual(await hostnames([name('web', 'blue')]));
    const plan = await t.codeb('plan', twoV3);
    expect(plan.code, show(plan)).toBe(10);
  });
});
