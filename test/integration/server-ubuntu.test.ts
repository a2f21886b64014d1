/**
 * `codeb server init` on a real bare Ubuntu 24.04 (noble) server, end to end over SSH: the test host
 * (test/helpers/server-host.ts, suite `noble`: systemd as PID 1, packages from Ubuntu's main and
 * universe in its apt cache, no mirror reachable). Ubuntu ships Node 18, so init first refuses with
 * its hint and changes nothing; with a Node 20 installed as an operator would, init makes the server
 * ready (`server check` all ok) and a second init has nothing to do. Then a project without
 * `runtime` (→ the host's default, Quadlet: Ubuntu's Podman is 4.9) is applied over SSH and answers
 * through the server's Caddy with its database, Redis and bucket, and comes back after a reboot.
 * Debian 13 is shown by server-init/server-quadlet; this file is what differs on Ubuntu.
 * Needs root (skipped otherwise).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allServerPackages } from '../../controller/server/packages.js';
import { codebCli, INIT_SNAPSHOT, installThisNode, startServerHost, viaHostCaddy, type ServerHost } from '../helpers/server-host.js';
import { serverProjectManifest, show, waitViaCaddy } from './helpers/server-project.js';
import { stackSettings } from './helpers/stack.js';

const root = process.getuid?.() === 0;
/** This file's test host: its own name and /24 (files run in parallel; subnets are machine-wide). */
const HOST = { name: 'ubuntu', slot: 4, pool: process.env.CODEB_UBUNTU_TEST_POOL || '10.84.0.0/16', suite: 'noble' as const };
const UBUNTU = { id: 'ubuntu', version: '24.04' };
const PROJECT = 'notes';
const DOMAIN = 'notes.test';
interface Check {
  name: string;
  status: string;
  found: string;
}

describe.runIf(root)('codeb server init on a bare Ubuntu 24.04 server, then a project on it', () => {
  let host: ServerHost;
  let work: string;
  const cli = (...args: string[]) => codebCli(host, args);
  const candidate = async (pkg: string) => (await host.sh(`apt-cache policy ${pkg} | sed -n 's/^ *Candidate: //p'`)).trim();
  const checkAllOk = async () => {
    const check = await cli('server', 'check', host.target, '--json');
    expect(check.code, show(check)).toBe(0);
    const checks = (JSON.parse(check.stdout) as { checks: Check[] }).checks;
    for (const c of checks) expect(c, JSON.stringify(c)).toMatchObject({ status: 'ok' });
    return checks;
  };

  beforeAll(async () => {
    host = await startServerHost(HOST);
    work = mkdtempSync(join(tmpdir(), 'codeb-server-ubuntu-'));
  }, 900_000);
  afterAll(async () => {
    await host?.remove();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('is what it claims: Ubuntu 24.04 with systemd as PID 1, offering what init installs from main and universe', async () => {
    expect(await host.sh('. /etc/os-release; echo "$ID $VERSION_ID"')).toBe('ubuntu 24.04\n');
    expect((await host.sh('test -d /run/systemd/system && readlink /proc/1/exe')).trim()).toMatch(/systemd$/);
    // Ubuntu's own versions (what init then finds): Podman 4.9 has Quadlet, radosgw 19.2 has dbstore.
    expect(await candidate('podman')).toMatch(/^4\.9\./);
    expect(await candidate('caddy')).toMatch(/^2\.6\./);
    expect(await candidate('postgresql')).toMatch(/^16\b/);
    expect(await candidate('redis-server')).toMatch(/^5:7\.0\./);
    expect(await candidate('radosgw')).toMatch(/^19\.2\./);
    expect(await candidate('nodejs')).toMatch(/^18\./);
    expect((await host.exec(['sh', '-c', 'command -v node'])).code).not.toBe(0);
  }, 60_000);

  it('init refuses Ubuntu’s Node 18 with the hint to install a Node 20 first; nothing changes', async () => {
    const before = await host.sh(INIT_SNAPSHOT);
    const r = await cli('server', 'init', host.target);
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr, show(r)).toMatch(/offers Node\.js 18\.[^ ]*; codeb needs 20 or later/);
    expect(r.stderr, show(r)).toMatch(/Install Node\.js 20\+ first/);
    expect(await host.sh(INIT_SNAPSHOT)).toBe(before);
  }, 120_000);

  it('with a Node 20 installed by hand, init installs and configures everything (not Ubuntu’s nodejs); server check is all ok', async () => {
    await installThisNode(host);
    const init = await cli('server', 'init', host.target);
    expect(init.code, show(init)).toBe(0);
    expect(init.stdout).toContain(`apt-get install ${allServerPackages(UBUNTU).filter((p) => p !== 'nodejs').join(' ')}`);
    expect(init.stdout).toContain('Everything codeb needs is there.');
    expect((await host.exec(['dpkg-query', '-W', 'nodejs'])).code, 'Ubuntu’s nodejs 18 was installed beside the Node 20').not.toBe(0);
    const checks = await checkAllOk();
    expect(checks.map((c) => c.name)).toEqual(expect.arrayContaining(['node', 'codeb', 'podman', 'systemd', 'settings', 'caddy', 'postgres', 'redis', 'minio/s3', 'podman api', 'ports']));
    expect(checks.find((c) => c.name === 'podman')?.found).toMatch(/4\.9\./);
    // Unknown hosts get the front's 404 (asked on the host: Caddy on port 80).
    expect((await viaHostCaddy(host, 'unknown.example', '/')).status).toBe(404);
    // A guard against a hang, not a wait: apt-get installing ~200 packages on a busy shared machine.
  }, 900_000);

  it('a second init has nothing to do and changes nothing', async () => {
    const before = await host.sh(INIT_SNAPSHOT);
    const again = await cli('server', 'init', host.target, '--json');
    expect(again.code, show(again)).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ changed: false, steps: [], ok: true });
    expect(again.stderr).toContain('nothing to do');
    expect(await host.sh(INIT_SNAPSHOT)).toBe(before);
  }, 300_000);

  it('apply over SSH without runtime: Quadlet units (the default on Podman 4.9), the app answers through Caddy with its database, Redis and bucket', async () => {
    await host.loadImage('localhost/codeb-testapp:v1', { podmanSocket: stackSettings().podman.socketPath });
    const file = join(work, 'notes.yaml');
    writeFileSync(file, serverProjectManifest({ project: PROJECT, domain: DOMAIN, target: host.target }));
    const r = await cli('apply', file);
    expect(r.code, show(r)).toBe(0);
    const units = (await host.sh('ls /etc/containers/systemd/ 2>/dev/null || true')).split('\n').filter((f) => f.endsWith('.container'));
    expect(units).toHaveLength(2);
    const web = units.find((u) => u.startsWith(`${PROJECT}--production--web--`));
    expect(web).toMatch(new RegExp(`^${PROJECT}--production--web--(blue|green)\\.container$`));
    const service = web!.replace(/\.container$/, '');
    expect((await host.sh(`systemctl is-active ${service}.service`)).trim()).toBe('active');
    const health = await viaHostCaddy(host, DOMAIN, '/api/health');
    expect(health.status, health.body).toBe(200);
    expect(JSON.parse(health.body)).toMatchObject({ ok: true, version: 'v1', database: 'ok', redis: 'ok' });
    // The bucket exists: an unsigned request from the app's container is refused (403), not missing (404).
    const s3 = await host.exec(['podman', 'exec', service, '/usr/bin/node', '-e', 'fetch(process.env.S3_ENDPOINT + "/" + process.env.S3_BUCKET).then((r) => console.log(r.status, process.env.S3_BUCKET))']);
    expect(s3.stdout.trim(), show(s3)).toMatch(/^403 \S*uploads/);
  }, 300_000);

  it('a reboot brings the shared services and the project back with no codeb command', async () => {
    await host.restart();
    const answer = await waitViaCaddy(host, DOMAIN, '/api/health');
    expect(answer.status, answer.body).toBe(200);
    expect(JSON.parse(answer.body)).toMatchObject({ ok: true, version: 'v1', database: 'ok', redis: 'ok' });
    await checkAllOk();
  }, 300_000);
});
