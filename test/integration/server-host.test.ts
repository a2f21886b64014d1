/**
 * The test host itself (test/helpers/server-host.ts): a bare Debian 13 server with systemd as PID 1
 * on its own Podman network, reached over SSH; the packages `server init` installs come from its
 * apt cache without any mirror; its own Podman runs a test image loaded from this machine; a
 * "reboot" keeps its disk and brings SSH back. Needs root (skipped otherwise).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SERVER_PACKAGES } from '../../controller/server/packages.js';
import { startServerHost, type ServerHost } from '../helpers/server-host.js';
import { stackSettings } from './helpers/stack.js';

const root = process.getuid?.() === 0;

describe.runIf(root)('test host: a bare Debian 13 server over SSH', () => {
  let host: ServerHost;

  beforeAll(async () => {
    host = await startServerHost({ name: 'host-self', slot: 1 });
  });
  afterAll(async () => {
    await host?.remove();
  });

  it('boots systemd as PID 1 and answers SSH at its own address, with nothing of codeb installed', async () => {
    expect((await host.sh('cat /proc/1/comm')).trim()).toBe('systemd');
    expect((await host.sh('. /etc/os-release; echo $VERSION_CODENAME')).trim()).toBe('trixie');
    expect(await host.sh('ip -4 -o addr show')).toContain(`${host.address}/24`);
    const r = await host.exec(['sh', '-c', 'command -v podman caddy redis-server node; test -d /opt/codeb']);
    expect(r.stdout.trim()).toBe('');
    expect(r.code).not.toBe(0);
  });

  it('reaches no mirror: its network is internal', async () => {
    // The gateway (this machine) answers; an outside address is unroutable from an internal network.
    const r = await host.exec(['sh', '-c', 'ip route get 1.1.1.1']);
    expect(r.code).not.toBe(0);
  });

  it('installs Podman from its apt cache offline, and that Podman runs a test image loaded from here', async () => {
    await host.sh(`DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ${SERVER_PACKAGES.podman.join(' ')}`, { timeoutMs: 600_000 });
    expect(await host.sh('podman --version')).toMatch(/podman version 5\./);
    await host.loadImage('localhost/codeb-testapp:v1', { podmanSocket: stackSettings().podman.socketPath });
    const out = await host.sh("podman run --rm --entrypoint node localhost/codeb-testapp:v1 -e 'console.log(6 * 7)'");
    expect(out.trim()).toBe('42');
    expect((await host.sh('podman info --format {{.Store.GraphDriverName}}')).trim()).toBe('overlay');
  });

  it('survives a reboot: the disk is kept, SSH and systemd come back', async () => {
    await host.sh('echo before-reboot > /root/marker; systemctl show -p ActiveEnterTimestampMonotonic --value sysinit.target > /root/boot-1');
    const before = (await host.sh('cat /proc/1/stat')).split(' ')[21];
    await host.restart();
    expect((await host.sh('cat /root/marker')).trim()).toBe('before-reboot');
    // systemd started again: PID 1's start time (jiffies since the machine booted) moved on.
    const after = (await host.sh('cat /proc/1/stat')).split(' ')[21];
    expect(Number(after)).toBeGreaterThan(Number(before));
    expect((await host.sh('cat /proc/1/comm')).trim()).toBe('systemd');
  });
});
