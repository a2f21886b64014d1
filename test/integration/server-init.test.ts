/**
 * `codeb server init` on a real bare Debian 13 server (the test host: systemd as PID 1, reached
 * over SSH at its own address on a Podman network this file makes; packages come from its apt
 * cache, no mirror). Dry run first (nothing changes), then init (→ `server check` all ok, the
 * services do what the docs say), then init again and a dry run (nothing to do, nothing changes).
 * Needs root (skipped otherwise).
 */
import { createConnection } from 'node:net';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolve } from 'node:path';
import { describeBundle } from '../../controller/server/bundle.js';
import { allServerPackages } from '../../controller/server/packages.js';
import { SERVER_TIMER_NAMES } from '../../controller/server/timers.js';
import { codebCli, INIT_SNAPSHOT, startServerHost, type ServerHost } from '../helpers/server-host.js';

const root = process.getuid?.() === 0;


function tcpOpen(host: string, port: number): Promise<boolean> {
  return new Promise((done) => {
    const s = createConnection({ host, port, timeout: 3000 });
    s.once('connect', () => (s.destroy(), done(true)));
    s.once('error', () => done(false));
    s.once('timeout', () => (s.destroy(), done(false)));
  });
}

function httpStatus(host: string, port: number, hostHeader: string): Promise<number> {
  return new Promise((done, fail) => {
    const req = request({ host, port, path: '/', headers: { host: hostHeader }, timeout: 5000 }, (r) => {
      r.resume();
      done(r.statusCode ?? 0);
    });
    req.on('error', fail);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

describe.runIf(root)('codeb server init on a bare Debian 13 server', () => {
  let host: ServerHost;
  let firstInit: { code: number; stdout: string; stderr: string };

  beforeAll(async () => {
    host = await startServerHost({ name: 'init', slot: 2 });
  });
  afterAll(async () => {
    await host?.remove();
  });

  it('--dry-run on the bare server lists the steps and changes nothing', async () => {
    const before = await host.sh(INIT_SNAPSHOT);
    const r = await codebCli(host, ['server', 'init', host.target, '--dry-run', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { dryRun: boolean; steps: Array<{ step: string }> };
    expect(report.dryRun).toBe(true);
    const steps = report.steps.map((s) => s.step).join('\n');
    expect(steps).toContain(`apt-get install ${allServerPackages().join(' ')}`);
    expect(steps).toMatch(/install codeb in \/opt\/codeb/);
    expect(steps).toMatch(/configure the shared services/);
    expect(await host.sh(INIT_SNAPSHOT)).toBe(before);
  });

  it('init installs and configures everything; server check is all ok', async () => {
    // Another local user's file where a fixed upload name would be: init must neither write into it
    // (that user could change the archive before root unpacks it) nor fail on it.
    const planted = `/tmp/codeb-bundle-${describeBundle(resolve(import.meta.dirname, '..', '..')).hash}.tar.gz`;
    await host.exec(['install', '-m', '666', '-o', 'nobody', '/dev/null', planted]);
    firstInit = await codebCli(host, ['server', 'init', host.target]);
    expect(firstInit.code, `${firstInit.stdout}\n${firstInit.stderr}`).toBe(0);
    // Progress per step, ending with the check table.
    expect(firstInit.stdout).toMatch(/apt-get install .*podman/);
    expect(firstInit.stdout).toMatch(/codeb-postgres\.service: write-and-start/);
    expect(firstInit.stdout).toContain('Everything codeb needs is there.');
    // What it installed is recorded: a later init still disables those distribution services.
    expect((await host.sh('cat /opt/codeb/.codeb-installed')).split('\n')).toEqual(expect.arrayContaining(['caddy', 'postgresql', 'redis-server']));
    expect((await host.sh(`stat -c '%U %s' ${planted}; ls -d /tmp/codeb-bundle.* 2>/dev/null | wc -l`)).trim().split('\n').map((l) => l.trim())).toEqual(['nobody 0', '0']);

    const check = await codebCli(host, ['server', 'check', host.target, '--json']);
    expect(check.code, check.stdout).toBe(0);
    const checks = (JSON.parse(check.stdout) as { checks: Array<{ name: string; status: string; found: string }> }).checks;
    for (const c of checks) expect(c, JSON.stringify(c)).toMatchObject({ status: 'ok' });
    expect(checks.map((c) => c.name)).toEqual(expect.arrayContaining(['node', 'codeb', 'podman', 'systemd', 'settings', 'caddy', 'postgres', 'redis', 'minio/s3', 'podman api', 'ports']));
    // A guard against a hang, not a wait: apt-get installing ~200 packages on a busy shared machine.
  }, 900_000);

  it('the periodic work is scheduled: monitor, due jobs and due backups timers are active, and each command runs as its unit', async () => {
    const timers = SERVER_TIMER_NAMES.map((n) => `${n}.timer`);
    expect((await host.exec(['systemctl', 'is-active', ...timers])).stdout.trim().split('\n')).toEqual(['active', 'active', 'active']);
    expect((await host.exec(['systemctl', 'is-enabled', ...timers])).stdout.trim().split('\n')).toEqual(['enabled', 'enabled', 'enabled']);
    // Run each once now (a oneshot start returns when the command has ended): the unit finds node and
    // codeb's settings; with no deployment yet each has nothing to do and succeeds.
    const services = SERVER_TIMER_NAMES.map((n) => `${n}.service`);
    const started = await host.exec(['systemctl', 'start', ...services], { timeoutMs: 300_000 });
    expect(started.code, started.stderr).toBe(0);
    const results = await host.exec(['systemctl', 'show', '-p', 'Result', '-p', 'ExecMainStatus', ...services]);
    const lines = results.stdout.trim().split(/\n+/).sort();
    expect(lines, results.stdout).toEqual([...Array(3).fill('ExecMainStatus=0'), ...Array(3).fill('Result=success')]);
    const log = await host.sh(`journalctl -u ${services[0]} -u ${services[1]} -u ${services[2]} --no-pager -o cat`);
    expect(log).toContain('No deployments in the registry.');
    expect(log).toContain('No job is due.');
  });

  it('settings.json is 0600 and no secret of it was printed', async () => {
    expect((await host.sh('stat -c %a /opt/codeb/settings.json')).trim()).toBe('600');
    const s = JSON.parse(await host.sh('cat /opt/codeb/settings.json')) as { postgres: { password: string }; redis: { password: string }; storage: { secretKey: string; kind: string }; caddy: { adminUrl: string } };
    for (const secret of [s.postgres.password, s.redis.password, s.storage.secretKey]) {
      expect(secret.length).toBeGreaterThan(15);
      expect(firstInit.stdout + firstInit.stderr).not.toContain(secret);
    }
    expect(s.storage.kind).toBe('radosgw');
    expect(s.caddy.adminUrl).toMatch(/^unix:\/\//);
  });

  it('the services listen where the docs say: web front public with 404 for unknown hosts, data services not', async () => {
    expect(await httpStatus(host.address, 80, 'unknown.example')).toBe(404);
    const s = JSON.parse(await host.sh('cat /opt/codeb/settings.json')) as { postgres: { port: number }; redis: { port: number; password: string }; storage: { port: number } };
    // Postgres, Redis and S3 answer on the server's loopback and services address, not its public one.
    for (const port of [s.postgres.port, s.redis.port, s.storage.port]) expect(await tcpOpen(host.address, port)).toBe(false);
    expect(await host.sh(`redis-cli -p ${s.redis.port} ping 2>&1`)).toMatch(/NOAUTH/);
    // SCRAM: a wrong password is refused.
    const pg = await host.exec(['sh', '-c', `PGPASSWORD=wrong psql -h 127.0.0.1 -p ${s.postgres.port} -U codeb -d postgres -c 'select 1' 2>&1`]);
    expect(pg.stdout).toMatch(/password authentication failed/);
    // Caddy's admin API is a Unix socket only: nothing listens on its default TCP port.
    expect((await host.exec(['sh', '-c', 'ss -ltn | grep -c ":2019 "'])).stdout.trim()).toBe('0');
    // Every TCP listener of the server: on loopback or the services address, except Caddy's 80/443
    // (and the test host's sshd on 22). A service bound to every address would show up here.
    const { network } = JSON.parse(await host.sh('cat /opt/codeb/settings.json')) as { network: { servicesAddress: string } };
    const listeners = (await host.sh('ss -ltnpH'))
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const f = l.trim().split(/\s+/);
        return { local: f[3]!, who: f.slice(5).join(' ') };
      });
    expect(listeners.length).toBeGreaterThan(4);
    const exposed = listeners.filter(({ local }) => {
      const at = local.lastIndexOf(':');
      const addr = local.slice(0, at).replace(/^\[|\]$/g, '').replace(/%.*$/, '');
      const port = Number(local.slice(at + 1));
      return !(addr.startsWith('127.') || addr === '::1' || addr === network.servicesAddress || port === 80 || port === 443 || port === 22);
    });
    expect(exposed, JSON.stringify(exposed)).toEqual([]);
    // Every unit is enabled for the next boot.
    expect(await host.sh('systemctl is-enabled codeb-network codeb-postgres codeb-redis codeb-s3 codeb-forwarder codeb-caddy podman.socket')).not.toMatch(/disabled/);
  });

  it('a second init has nothing to do and changes nothing; so does a dry run', async () => {
    const before = await host.sh(INIT_SNAPSHOT);
    const again = await codebCli(host, ['server', 'init', host.target, '--json']);
    expect(again.code, again.stderr).toBe(0);
    const report = JSON.parse(again.stdout) as { changed: boolean; steps: unknown[]; ok: boolean };
    expect(report).toMatchObject({ changed: false, steps: [], ok: true });
    expect(again.stderr).toContain('nothing to do');
    const dry = await codebCli(host, ['server', 'init', host.target, '--dry-run']);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain('nothing to do');
    expect(await host.sh(INIT_SNAPSHOT)).toBe(before);
  });

  it('a user with passwordless sudo gets the same (nothing to do); a user without sudo is refused, nothing changed', async () => {
    await host.sh(
      [
        'for u in deploy nosudo; do useradd -m -s /bin/bash "$u"; mkdir -p "/home/$u/.ssh"; cp /root/.ssh/authorized_keys "/home/$u/.ssh/"; chown -R "$u:" "/home/$u/.ssh"; done',
        "echo 'deploy ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/deploy",
        'chmod 0440 /etc/sudoers.d/deploy',
      ].join('; '),
    );
    const before = await host.sh(INIT_SNAPSHOT);
    const viaSudo = await codebCli(host, ['server', 'init', `deploy@${host.address}`, '--json']);
    expect(viaSudo.code, viaSudo.stderr).toBe(0);
    expect(JSON.parse(viaSudo.stdout)).toMatchObject({ become: 'sudo', changed: false, ok: true });
    const refused = await codebCli(host, ['server', 'init', `nosudo@${host.address}`]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/not root and cannot use sudo without a password/);
    expect(refused.stderr).toMatch(/NOPASSWD/);
    expect(await host.sh(INIT_SNAPSHOT)).toBe(before);
  });

  it('after a reboot every shared service is back without any codeb command: server check all ok', async () => {
    await host.restart();
    const check = await codebCli(host, ['server', 'check', host.target, '--json']);
    expect(check.code, check.stdout).toBe(0);
    for (const c of (JSON.parse(check.stdout) as { checks: Array<{ status: string }> }).checks) expect(c, JSON.stringify(c)).toMatchObject({ status: 'ok' });
    expect(await httpStatus(host.address, 80, 'unknown.example')).toBe(404);
  });
});
