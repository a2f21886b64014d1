/**
 * The `quadlet` and `systemd` runtime drivers (controller/runtime/unit-runtime.ts) on a real
 * Debian 13 server: systemd as PID 1, Podman 5.4 from its apt cache (test/helpers/server-host.ts).
 * The driver itself runs on the host (bundled from test/helpers/unit-driver-probe.ts), as codeb
 * does over SSH: units are written, started and removed through systemd; a "reboot" (restart of the
 * host container) brings back what is installed and nothing that was removed. Needs root.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SERVER_PACKAGES } from '../../controller/server/packages.js';
import type { ContainerSpec, ContainerState } from '../../controller/runtime/types.js';
import { webContainerSpec } from '../helpers/container-spec.js';
import { installUnitDriverProbe, startServerHost, type ServerHost } from '../helpers/server-host.js';
import { stackSettings } from './helpers/stack.js';

const root = process.getuid?.() === 0;
/** This file's test host: its own name and /24 (files run in parallel; subnets are machine-wide). */
const HOST = { name: 'i10q-units', slot: 1, pool: process.env.CODEB_QUADLET_TEST_POOL || '10.72.0.0/16' };
/** The project network inside the host (the host's own namespace, so no clash on this machine). */
const NETWORK = { name: 'demo-production', subnet: '10.72.200.0/26' };

function spec(slot: 'blue' | 'green', version: 'v1' | 'v2', port: number): ContainerSpec {
  // Values that must reach the app literally through a unit: spaces, $, %, quotes.
  return webContainerSpec({ project: 'demo', network: NETWORK.name, slot, version, port, environment: { GREETING: `it's $HOME at 100% "quoted"` } });
}

const blue = spec('blue', 'v1', 4101);
const green = spec('green', 'v2', 4102);

describe.runIf(root)('quadlet and systemd units on a real systemd server', () => {
  let host: ServerHost;
  let work: string;

  type ProbeResult = { ok: true; state?: ContainerState; wasRunning?: boolean } | { ok: false; message: string; hint: string | null };
  const probe = async (kind: 'quadlet' | 'systemd', args: string[], input = ''): Promise<ProbeResult> => {
    const r = await host.exec(['node', '/opt/codeb-probe/probe.cjs', kind, ...args], { input, timeoutMs: 180_000 });
    const line = r.stdout.trim().split('\n').pop() ?? '';
    if (!line.startsWith('{')) throw new Error(`probe ${args.join(' ')} exited ${r.code}:\n${r.stdout}${r.stderr}`);
    return JSON.parse(line) as ProbeResult;
  };
  /** The app's /health through the slot port on the host's loopback (bounded, each try 2 s). */
  const health = async (port: number): Promise<{ version: string } | null> => {
    // The host has no curl: its node (installed above) fetches.
    const script = `fetch('http://127.0.0.1:${port}/health', { signal: AbortSignal.timeout(2000) }).then(async (r) => { if (!r.ok) process.exit(1); console.log(await r.text()); }, () => process.exit(1))`;
    const r = await host.exec(['node', '-e', script]);
    return r.code === 0 ? (JSON.parse(r.stdout) as { version: string }) : null;
  };
  const waitHealth = async (port: number, tries = 60): Promise<{ version: string } | null> => {
    for (let i = 0; i < tries; i++) {
      const h = await health(port);
      if (h) return h;
      await new Promise((r) => setTimeout(r, 250));
    }
    return null;
  };
  const exists = async (path: string) => (await host.exec(['test', '-e', path])).code === 0;

  beforeAll(async () => {
    host = await startServerHost(HOST);
    await host.sh(`DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ${[...SERVER_PACKAGES.podman, ...SERVER_PACKAGES.node].join(' ')}`, { timeoutMs: 600_000 });
    await host.sh(`systemctl enable --now podman.socket && podman network create --subnet ${NETWORK.subnet} ${NETWORK.name}`);
    for (const v of ['v1', 'v2']) await host.loadImage(`localhost/codeb-testapp:${v}`, { podmanSocket: stackSettings().podman.socketPath });
    work = mkdtempSync(join(tmpdir(), 'codeb-units-probe-'));
    await installUnitDriverProbe(host, work);
  }, 900_000);
  afterAll(async () => {
    await host?.remove();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('quadlet: a .container unit under /etc/containers/systemd, started by systemd, wanted at boot', async () => {
    const r = await probe('quadlet', ['start'], JSON.stringify(blue));
    expect(r).toMatchObject({ ok: true, state: { name: blue.name, running: true } });
    expect(await exists(`/etc/containers/systemd/${blue.name}.container`)).toBe(true);
    expect((await host.sh(`systemctl is-active ${blue.name}.service`)).trim()).toBe('active');
    // Quadlet's generator turned the [Install] section into a boot-time want.
    expect(await exists(`/run/systemd/generator/multi-user.target.wants/${blue.name}.service`)).toBe(true);
    expect(await waitHealth(4101)).toMatchObject({ version: 'v1' });
    // The container is the unit's, on the project network, with the values as written.
    const inspect = JSON.parse(await host.sh(`podman inspect ${blue.name}`))[0];
    expect(inspect.Config.Labels.PODMAN_SYSTEMD_UNIT).toBe(`${blue.name}.service`);
    expect(Object.keys(inspect.NetworkSettings.Networks)).toEqual([NETWORK.name]);
    expect(inspect.Config.Env).toContain(`GREETING=it's $HOME at 100% "quoted"`);
  });

  it('quadlet: starting the same spec again changes nothing', async () => {
    const before = JSON.parse(await host.sh(`podman inspect ${blue.name}`))[0].State.StartedAt;
    expect(await probe('quadlet', ['start'], JSON.stringify(blue))).toMatchObject({ ok: true });
    expect(JSON.parse(await host.sh(`podman inspect ${blue.name}`))[0].State.StartedAt).toBe(before);
  });

  it('systemd: a plain podman-run .service under /etc/systemd/system, enabled', async () => {
    const r = await probe('systemd', ['start'], JSON.stringify(green));
    expect(r).toMatchObject({ ok: true, state: { name: green.name, running: true } });
    expect(await exists(`/etc/systemd/system/${green.name}.service`)).toBe(true);
    expect((await host.sh(`systemctl is-enabled ${green.name}.service`)).trim()).toBe('enabled');
    expect(await waitHealth(4102)).toMatchObject({ version: 'v2' });
  });

  it.each([
    ['quadlet', () => blue, 4101, 'v1'],
    ['systemd', () => green, 4102, 'v2'],
  ] as const)('%s: halt (a volume restore) stops the unit through systemd so its Restart= leaves it stopped; resume starts it again', async (kind, s, port, version) => {
    const name = s().name;
    expect(await probe(kind, ['halt', name])).toEqual({ ok: true, wasRunning: true });
    // A plain `podman stop` would end the unit's main process and leave it to Restart=; a stop
    // through systemctl is final: the unit is inactive and has not been restarted.
    expect((await host.exec(['systemctl', 'is-active', `${name}.service`])).stdout.trim()).toBe('inactive');
    expect((await host.sh(`systemctl show -p NRestarts --value ${name}.service`)).trim()).toBe('0');
    expect(await health(port)).toBeNull();
    const resumed = await probe(kind, ['resume', name]);
    expect(resumed).toMatchObject({ ok: true, state: { name, running: true } });
    expect(await waitHealth(port)).toMatchObject({ version });
    // Halting what is not running says so and changes nothing.
    expect(await probe(kind, ['halt', 'demo-production-none-blue'])).toEqual({ ok: true, wasRunning: false });
  });

  it('a unit that cannot start is removed again, and the error carries its journal', async () => {
    const broken = { ...spec('blue', 'v1', 4103), name: 'demo-production-broken-blue', image: 'localhost/codeb-testapp:missing' };
    const r = await probe('quadlet', ['start'], JSON.stringify(broken));
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.message).toContain('did not start through its quadlet unit');
      expect(r.hint).toMatch(/codeb-testapp:missing/);
    }
    expect(await exists(`/etc/containers/systemd/${broken.name}.container`)).toBe(false);
    expect((await host.exec(['podman', 'container', 'exists', broken.name])).code).not.toBe(0);
  });

  it('a reboot brings both units back with no command run', async () => {
    await host.restart();
    expect(await waitHealth(4101)).toMatchObject({ version: 'v1' });
    expect(await waitHealth(4102)).toMatchObject({ version: 'v2' });
  }, 300_000);

  it('remove stops the unit and deletes its file, so the next boot leaves it out', async () => {
    expect(await probe('quadlet', ['remove', blue.name])).toEqual({ ok: true });
    expect(await probe('systemd', ['remove', green.name])).toEqual({ ok: true });
    // Removing what is gone already is fine.
    expect(await probe('quadlet', ['remove', blue.name])).toEqual({ ok: true });
    for (const f of [`/etc/containers/systemd/${blue.name}.container`, `/etc/systemd/system/${green.name}.service`, `/etc/systemd/system/multi-user.target.wants/${green.name}.service`]) {
      expect(await exists(f), f).toBe(false);
    }
    expect((await host.sh('podman ps -a --format {{.Names}}')).trim()).toBe('');
    await host.restart();
    expect((await host.sh('podman ps -a --format {{.Names}}')).trim()).toBe('');
    expect(await health(4101)).toBeNull();
  }, 300_000);
});
