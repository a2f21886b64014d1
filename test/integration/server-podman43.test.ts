/**
 * A real Podman 4.3 server: a bare Debian 12 (bookworm) test host (systemd as PID 1,
 * test/helpers/server-host.ts, suite `bookworm`) whose operator installed Debian's own podman
 * (4.3.1, no Quadlet), a Node 20 (Debian 12 ships 18; this machine's node binary copied to
 * /usr/local/bin, as an operator would install a release tarball) and codeb in /opt/codeb (the
 * bundle `codeb server init` uploads: controller/server/bundle.ts). Over SSH, a manifest asking
 * for `runtime: quadlet` (or `kubernetes`) is refused with exit 2 and the reason, and nothing on
 * the server changes. Needs root (skipped otherwise).
 *
 * Why not `codeb server init` here: it needs every package it installs pre-downloaded into the
 * rootfs (postgresql, caddy, radosgw, ... for bookworm), minutes of CI for a refusal that happens
 * before codeb reads its settings (the runtime is decided first, controller/reconcile/apply.ts).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeBundle, packBundle } from '../../controller/server/bundle.js';
import { codebCli, startServerHost, type ExecResult, type ServerHost } from '../helpers/server-host.js';

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
});
