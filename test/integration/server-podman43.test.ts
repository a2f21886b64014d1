/**
 * A real Podman 4.3 server: a bare Debian 12 (bookworm) test host (systemd as PID 1,
 * test/helpers/server-host.ts, suite `bookworm`) whose operator installed Debian's own podman
 * (4.3.1, no Quadlet), a Node 20 (Debian 12 ships 18; this machine's node binary copied to
 * /usr/local/bin, as an operator would install a release tarball) and codeb in /opt/codeb (the
 * bundle `codeb server init` uploads: controller/server/bundle.ts). Over SSH, a manifest asking
 * for `runtime: quadlet` (or `kubernetes`) is refused with exit 2 and the reason, and nothing on
 * the server changes; `server init --dry-run` keeps that Node 20 and then refuses, before any
 * change, because Debian 12's radosgw 16.2 has no dbstore backend for the object storage; without
 * `runtime` the host's own default is the plain systemd driver (the driver alone, run on the host: its unit runs Podman 4.3's `podman run` and the app answers on its slot port).
 * Needs root (skipped otherwise).
 *
 * Why not a whole `codeb server init` here: it would need every package it installs downloaded into
 * the rootfs (minutes of CI for refusals that happen before codeb reads its settings: the runtime is
 * decided first, controller/reconcile/apply.ts), and init refuses Debian 12 anyway (above).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ContainerSpec } from '../../controller/runtime/types.js';
import { describeBundle, packBundle } from '../../controller/server/bundle.js';
import { webContainerSpec } from '../helpers/container-spec.js';
import { codebCli, installUnitDriverProbe, startServerHost, type ExecResult, type ServerHost } from '../helpers/server-host.js';
import { stackSettings } from './helpers/stack.js';

const root = process.getuid?.() === 0;
const ROOT = resolve(import.meta.dirname, '..', '..');
/** This file's test host: its own name and /24 (files run in parallel; subnets are machine-wide). */
const HOST = { name: 'podman43', slot: 3, pool: process.env.CODEB_PODMAN43_TEST_POOL || '10.73.0.0/16', suite: 'bookworm' as const };
const show = (r: ExecResult) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

function manifest(target: string, runtime: string | undefined): string {
  return `apiVersion: codeb/v1
project:
  id: hello
environment:
  domain: hello.test
services:
  web:
    type: web
    image: localhost/codeb-testapp:v1
    port: 8080
servers:
  - name: app1
    host: ${target}
${runtime ? `    runtime: ${runtime}\n` : ''}`;
}

/** The project network inside the host (the host's own namespace, so no clash on this machine). */
const NETWORK = { name: 'hello-production', subnet: '10.73.200.0/26' };
const SLOT_PORT = 4301;

/** A web container as a deploy of the manifest above would make it (the spec the driver takes). */
function webSpec(): ContainerSpec {
  return webContainerSpec({ project: 'hello', network: NETWORK.name, slot: 'blue', version: 'v1', port: SLOT_PORT });
}

describe.runIf(root)('a real Podman 4.3 server (Debian 12) over SSH', () => {
  let host: ServerHost;
  let work: string;
  let podmanVersion: string;
  const cli = (...args: string[]) => codebCli(host, args);
  /** Registry, units and containers: what a refused command must leave as it was. */
  const snapshot = () =>
    host.sh(
      'ls -la --time-style=full-iso /opt/codeb; ls -laR --time-style=full-iso /opt/codeb/registry 2>&1; ls -la --time-style=full-iso /etc/containers/systemd 2>&1; ls -la --time-style=full-iso /etc/systemd/system; podman ps -a --format "{{.Names}} {{.ID}} {{.State}}" | sort',
    );

  beforeAll(async () => {
    host = await startServerHost(HOST);
    work = mkdtempSync(join(tmpdir(), 'codeb-server-podman43-'));
    // Node 20+ the way an operator without a package would: one binary in /usr/local/bin.
    await host.sh('mkdir -p /usr/local/bin');
    const put = await host.exec(['sh', '-c', 'cat > /usr/local/bin/node.new && chmod 755 /usr/local/bin/node.new && mv /usr/local/bin/node.new /usr/local/bin/node'], { input: readFileSync(process.execPath) });
    if (put.code !== 0) throw new Error(`copying node to the host failed: ${show(put)}`);
    // codeb in /opt/codeb: the archive server init uploads, unpacked the way init unpacks it.
    const bundle = describeBundle(ROOT);
    const packed = await packBundle(ROOT, bundle);
    try {
      const r = await host.exec(['sh', '-c', 'set -e; mkdir -p /opt/codeb; cd /opt/codeb; tar -xzf - --no-same-owner; printf "%s\\n" "$1" > .codeb-bundle', 'codeb-install', bundle.hash], {
        input: readFileSync(packed.file),
      });
      if (r.code !== 0) throw new Error(`installing codeb on the host failed: ${show(r)}`);
    } finally {
      rmSync(packed.dir, { recursive: true, force: true });
    }
    podmanVersion = (await host.sh('podman --version')).trim().replace(/^podman version /, '');
  }, 600_000);
  afterAll(async () => {
    await host?.remove();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('is what it claims: Debian 12, systemd as PID 1, Debian’s Podman 4.3, a Node 20+ on the PATH of SSH sessions', async () => {
    expect(await host.sh('. /etc/os-release; echo "$ID $VERSION_ID"')).toBe('debian 12\n');
    expect((await host.sh('test -d /run/systemd/system && readlink /proc/1/exe')).trim()).toMatch(/systemd$/);
    expect(podmanVersion).toMatch(/^4\.3\./);
    expect((await host.sh('node --version')).trim()).toMatch(/^v(2\d|[3-9]\d)\./);
  }, 60_000);

  it('runtime: quadlet is refused over SSH with exit 2, naming the field and the Podman version; nothing changes', async () => {
    const file = join(work, 'quadlet.yaml');
    writeFileSync(file, manifest(host.target, 'quadlet'));
    const before = await snapshot();
    for (const command of ['plan', 'apply']) {
      const r = await cli(command, file);
      expect(r.code, show(r)).toBe(2);
      expect(r.stderr, show(r)).toContain('servers[0].runtime');
      expect(r.stderr, show(r)).toContain(`Podman ${podmanVersion} has no Quadlet`);
    }
    expect(await snapshot()).toBe(before);
    expect((await host.exec(['test', '-e', '/opt/codeb/registry/projects.json'])).code).not.toBe(0);
    expect((await host.sh('ls /etc/containers/systemd 2>/dev/null | wc -l')).trim()).toBe('0');
  }, 120_000);

  it('runtime: kubernetes is refused over SSH with exit 2 and the reason; nothing changes', async () => {
    const file = join(work, 'k8s.yaml');
    writeFileSync(file, manifest(host.target, 'kubernetes'));
    const before = await snapshot();
    for (const command of ['plan', 'apply']) {
      const r = await cli(command, file);
      expect(r.code, show(r)).toBe(2);
      expect(r.stderr, show(r)).toContain('servers[0].runtime');
      expect(r.stderr, show(r)).toContain('no Kubernetes driver');
    }
    expect(await snapshot()).toBe(before);
  }, 120_000);

  it('server init --dry-run gets past the Node check (the Node 20 installed by hand is kept), then refuses: Debian 12’s radosgw 16.2 has no dbstore backend; nothing changes', async () => {
    // The host offers Debian 12's Node 18 and radosgw 16.2 (its package lists are there), as a real server does.
    expect(await host.sh("apt-cache policy nodejs | sed -n 's/^ *Candidate: //p'")).toMatch(/^18\./);
    expect(await host.sh("apt-cache policy radosgw | sed -n 's/^ *Candidate: //p'")).toMatch(/^(\d+:)?16\./);
    const before = await snapshot();
    const r = await cli('server', 'init', host.target, '--dry-run');
    expect(r.code, show(r)).toBe(1);
    // The Node check comes first: a refusal about radosgw means the hand-installed Node 20 was accepted.
    expect(r.stderr, show(r)).not.toMatch(/Node\.js/);
    expect(r.stderr, show(r)).toMatch(/radosgw 16\.2\.[^ ]*, which has no dbstore backend/);
    expect(r.stderr, show(r)).toMatch(/Nothing was changed/);
    expect(r.stderr, show(r)).toMatch(/Debian 13 or Ubuntu 24\.04/);
    expect(await snapshot()).toBe(before);
  }, 120_000);

  it('without runtime the host’s default is the plain systemd driver: a .service under /etc/systemd/system runs `podman run` of Podman 4.3 and answers on its slot port', async () => {
    // The driver itself, decided from the host's own facts (test/helpers/unit-driver-probe.ts, as
    // runtime-units.test.ts runs it on Debian 13), with its templates beside it.
    await installUnitDriverProbe(host, work);
    await host.sh(`systemctl enable --now podman.socket && podman network create --subnet ${NETWORK.subnet} ${NETWORK.name}`);
    await host.loadImage('localhost/codeb-testapp:v1', { podmanSocket: stackSettings().podman.socketPath });

    const spec = webSpec();
    const r = await host.exec(['node', '/opt/codeb-probe/probe.cjs', 'default', 'start'], { input: JSON.stringify(spec), timeoutMs: 180_000 });
    const line = r.stdout.trim().split('\n').pop() ?? '';
    expect(line.startsWith('{'), show(r)).toBe(true);
    expect(JSON.parse(line), show(r)).toMatchObject({ ok: true, kind: 'systemd', state: { name: spec.name, running: true } });
    expect((await host.exec(['test', '-e', `/etc/systemd/system/${spec.name}.service`])).code).toBe(0);
    expect((await host.sh('ls /etc/containers/systemd 2>/dev/null | wc -l')).trim()).toBe('0');
    expect((await host.sh(`systemctl is-active ${spec.name}.service`)).trim()).toBe('active');
    expect((await host.sh(`systemctl is-enabled ${spec.name}.service`)).trim()).toBe('enabled');
    // The app answers on the slot port on the host's loopback (bounded: 60 tries, each 2 s at most).
    const script = `fetch('http://127.0.0.1:${SLOT_PORT}/health', { signal: AbortSignal.timeout(2000) }).then(async (r) => { if (!r.ok) process.exit(1); console.log(await r.text()); }, () => process.exit(1))`;
    let answer: ExecResult | null = null;
    for (let i = 0; i < 60; i++) {
      answer = await host.exec(['node', '-e', script]);
      if (answer.code === 0) break;
      await new Promise((res) => setTimeout(res, 250));
    }
    expect(answer?.code, answer ? show(answer) : '').toBe(0);
    expect(JSON.parse(answer!.stdout)).toMatchObject({ version: 'v1' });
    // The container is the unit's and runs on the host's Podman 4.3.
    const inspect = JSON.parse(await host.sh(`podman inspect ${spec.name}`))[0];
    expect(inspect.Config.Labels.PODMAN_SYSTEMD_UNIT).toBe(`${spec.name}.service`);
    expect((await host.sh('podman version --format "{{.Server.Version}}"')).trim()).toBe(podmanVersion);
  }, 300_000);
});
