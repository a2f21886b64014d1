/**
 * A real Debian 12 server end to end, over SSH: a bare Debian 12 (bookworm) test host (systemd as
 * PID 1, test/helpers/server-host.ts, suite `bookworm`) whose operator installed Debian's own podman
 * (4.3.1, no Quadlet) and a Node 20 (Debian 12 ships 18; this machine's node binary copied to
 * /usr/local/bin, as an operator would install a release tarball). `codeb server init` makes it
 * ready with the s3rver stand-in (Debian 12's radosgw 16.2 has no dbstore backend) → `server check`
 * ok, a second init changes nothing. Then a project with web, api, database, Redis and a bucket,
 * with no `runtime` (the host's default: plain systemd units running Podman 4.3's `podman run`):
 * apply answers through the server's Caddy; deploy v2 under load fails no request; a reboot brings
 * v2 back with no codeb command. `runtime: quadlet` (or `kubernetes`) is refused with exit 2 and
 * the reason, nothing changed. Needs root (skipped otherwise).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allServerPackages } from '../../controller/server/packages.js';
import { codebCli, holdTimers, startServerHost, viaHostCaddy, type ExecResult, type ServerHost } from '../helpers/server-host.js';
import { serverProjectManifest, show, underLoad, waitViaCaddy } from './helpers/server-project.js';
import { stackSettings } from './helpers/stack.js';

const root = process.getuid?.() === 0;
/** This file's test host: its own name and /24 (files run in parallel; subnets are machine-wide). */
const HOST = { name: 'podman43', slot: 3, pool: process.env.CODEB_PODMAN43_TEST_POOL || '10.73.0.0/16', suite: 'bookworm' as const };
const PROJECT = 'hello';
const DOMAIN = 'hello.test';

interface Checks {
  checks: Array<{ name: string; status: string; found: string }>;
}

describe.runIf(root)('a real Debian 12 server (Podman 4.3) made ready by server init, over SSH', () => {
  let host: ServerHost;
  let work: string;
  let podmanVersion: string;
  let projectManifest: string;
  let firstInit: ExecResult;
  const cli = (...args: string[]) => codebCli(host, args);
  const manifest = (runtime?: string) => serverProjectManifest({ project: PROJECT, domain: DOMAIN, target: host.target, runtime });
  /** Packages, codeb, its key files, units and their start times: what an init that changes nothing leaves as it was. */
  const initState = () =>
    host.sh(
      "dpkg-query -W -f '${Package} ${Status}\\n' | sort | md5sum; cd /opt/codeb 2>&1 && md5sum settings.json .codeb-bundle .codeb-storage stack/s3/key.env 2>&1; md5sum /etc/systemd/system/*.service /etc/systemd/system/*.timer 2>&1; ls -la --time-style=full-iso /etc/systemd/system; systemctl show -p ActiveEnterTimestamp codeb-postgres codeb-redis codeb-s3 codeb-forwarder codeb-caddy 2>&1",
    );
  /** That, and the registry, units and containers: what a refused command must leave as it was (codeb's timers held meanwhile: the monitor writes the registry). */
  const snapshot = async () =>
    (await initState()) + (await host.sh("ls -laR --time-style=full-iso /opt/codeb/registry 2>&1; ls -la --time-style=full-iso /etc/containers/systemd 2>&1; podman ps -a --format '{{.Names}} {{.ID}} {{.State}}' | sort"));
  const settings = async () => JSON.parse(await host.sh('cat /opt/codeb/settings.json')) as { storage: { kind: string; accessKey: string; secretKey: string; port: number }; network: { servicesAddress: string } };
  const checkOk = async () => {
    const check = await cli('server', 'check', host.target, '--json');
    expect(check.code, show(check)).toBe(0);
    const { checks } = JSON.parse(check.stdout) as Checks;
    // Podman 4.3 warns (no Quadlet: runtime systemd or podman only); everything else is ok.
    for (const c of checks) expect(c, JSON.stringify(c)).toMatchObject({ status: c.name === 'podman' ? 'warn' : 'ok' });
    return checks;
  };

  beforeAll(async () => {
    host = await startServerHost(HOST);
    work = mkdtempSync(join(tmpdir(), 'codeb-server-podman43-'));
    projectManifest = join(work, 'hello.yaml');
    writeFileSync(projectManifest, manifest());
    // Node 20+ the way an operator without a package would: one binary in /usr/local/bin.
    await host.sh('mkdir -p /usr/local/bin');
    const put = await host.exec(['sh', '-c', 'cat > /usr/local/bin/node.new && chmod 755 /usr/local/bin/node.new && mv /usr/local/bin/node.new /usr/local/bin/node'], { input: readFileSync(process.execPath) });
    if (put.code !== 0) throw new Error(`copying node to the host failed: ${show(put)}`);
    podmanVersion = (await host.sh('podman --version')).trim().replace(/^podman version /, '');
  }, 600_000);
  afterAll(async () => {
    await host?.remove();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('is what it claims: Debian 12, systemd as PID 1, Debian’s Podman 4.3, Node 18 and radosgw 16.2 offered, a Node 20+ on the PATH of SSH sessions', async () => {
    expect(await host.sh('. /etc/os-release; echo "$ID $VERSION_ID"')).toBe('debian 12\n');
    expect((await host.sh('test -d /run/systemd/system && readlink /proc/1/exe')).trim()).toMatch(/systemd$/);
    expect(podmanVersion).toMatch(/^4\.3\./);
    expect((await host.sh('node --version')).trim()).toMatch(/^v(2\d|[3-9]\d)\./);
    // The host offers Debian 12's Node 18 and radosgw 16.2 (its package lists are there), as a real server does.
    expect(await host.sh("apt-cache policy nodejs | sed -n 's/^ *Candidate: //p'")).toMatch(/^18\./);
    expect(await host.sh("apt-cache policy radosgw | sed -n 's/^ *Candidate: //p'")).toMatch(/^(\d+:)?16\./);
  }, 60_000);

  it('server init --dry-run names the stand-in (s3rver) and why, keeps the hand-installed Node 20, lists the steps and changes nothing', async () => {
    const before = await initState();
    const r = await cli('server', 'init', host.target, '--dry-run', '--json');
    expect(r.code, show(r)).toBe(0);
    const report = JSON.parse(r.stdout) as { dryRun: boolean; storage: { kind: string; why: string }; steps: Array<{ step: string }> };
    expect(report.storage.kind).toBe('s3rver');
    expect(report.storage.why).toMatch(/radosgw 16\.2\.\S* here has no dbstore backend \(needs 17\+\), so s3rver: one key shared by every project/);
    expect(r.stderr).toMatch(/object storage: s3rver \(radosgw 16\.2/);
    const steps = report.steps.map((s) => s.step).join('\n');
    // What the s3rver stand-in needs and the host lacks (its operator installed podman), minus Debian's
    // Node 18 (a Node 20 is on the PATH); no radosgw.
    const installed = new Set((await host.exec(['dpkg-query', '-W', '-f', '${Package} ${Status}\n'])).stdout.split('\n').filter((l) => l.endsWith(' install ok installed')).map((l) => l.split(' ')[0]));
    const missing = allServerPackages({ id: 'debian', version: '12' }, 's3rver').filter((p) => p !== 'nodejs' && !installed.has(p));
    expect(missing).toEqual(expect.arrayContaining(['caddy', 'postgresql', 'redis-server']));
    expect(steps).toContain(`apt-get install ${missing.join(' ')}\n`);
    expect(steps).not.toMatch(/radosgw|nodejs/);
    expect(steps).toMatch(/install codeb in \/opt\/codeb/);
    expect(await initState()).toBe(before);
  }, 120_000);

  it('server init makes it ready with s3rver as a systemd unit; server check is ok; the key is in settings.json only', async () => {
    firstInit = await cli('server', 'init', host.target);
    expect(firstInit.code, show(firstInit)).toBe(0);
    expect(firstInit.stdout).toMatch(/object storage: s3rver/);
    expect(firstInit.stdout).toMatch(/codeb-s3\.service: write-and-start/);
    expect(firstInit.stdout).toContain('0 gaps, 1 warning.');
    const checks = await checkOk();
    expect(checks.find((c) => c.name === 'minio/s3')?.found).toMatch(/^s3rver reachable at 127\.0\.0\.1:\d+.*one key shared by every project/);
    expect((await host.exec(['dpkg-query', '-W', '-f', '${Status}', 'radosgw'])).stdout).not.toMatch(/install ok installed/);

    const s = await settings();
    expect(s.storage.kind).toBe('s3rver');
    expect((await host.sh('stat -c %a /opt/codeb/settings.json')).trim()).toBe('600');
    expect(s.storage.secretKey.length).toBeGreaterThan(15);
    // Never printed; not in the unit (readable by all): in a root-only file systemd reads.
    expect(firstInit.stdout + firstInit.stderr).not.toContain(s.storage.secretKey);
    const unit = await host.sh('cat /etc/systemd/system/codeb-s3.service');
    expect(unit).toMatch(/s3rver/);
    expect(unit).not.toContain(s.storage.secretKey);
    expect(unit).not.toContain(s.storage.accessKey);
    expect(unit).toMatch(/^EnvironmentFile=\/opt\/codeb\/stack\/s3\/key\.env$/m);
    expect((await host.sh('stat -c "%a %U" /opt/codeb/stack/s3/key.env /opt/codeb/stack/s3')).trim().split('\n')).toEqual(['600 root', '700 root']);
    expect((await host.sh('systemctl show -p Environment codeb-s3.service'))).not.toContain(s.storage.secretKey);
    expect((await host.sh('systemctl is-enabled codeb-s3.service; systemctl is-active codeb-s3.service')).trim().split('\n')).toEqual(['enabled', 'active']);
    // It listens on loopback and the services address only (like radosgw), with the generated key.
    const listeners = (await host.sh(`ss -ltnH 'sport = :${s.storage.port}'`)).trim().split('\n').map((l) => l.trim().split(/\s+/)[3]).sort();
    expect(listeners).toEqual([`${s.network.servicesAddress}:${s.storage.port}`, `127.0.0.1:${s.storage.port}`].sort());
    const buckets = await host.exec(['node', '-e', S3_LIST_BUCKETS]);
    expect(buckets.code, show(buckets)).toBe(0);
    expect(JSON.parse(buckets.stdout.trim())).toEqual([]);
  }, 900_000);

  it('a second init (and a dry run) has nothing to do, changes nothing and keeps the key', async () => {
    const key = (await settings()).storage;
    const before = await initState();
    const again = await cli('server', 'init', host.target, '--json');
    expect(again.code, show(again)).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ changed: false, steps: [], ok: true, storage: { kind: 's3rver' } });
    expect(again.stderr).toContain('nothing to do');
    // A dry run on the ready server asks its codeb (`server setup --dry-run --storage s3rver`): nothing either.
    const dry = await cli('server', 'init', host.target, '--dry-run');
    expect(dry.code, show(dry)).toBe(0);
    expect(dry.stdout).toContain('object storage: s3rver');
    expect(dry.stdout).toContain('nothing to do');
    expect(await initState()).toBe(before);
    expect((await settings()).storage).toEqual(key);
  }, 300_000);

  it.each([
    ['quadlet', (): string => `Podman ${podmanVersion} has no Quadlet`],
    ['kubernetes', (): string => 'no Kubernetes driver'],
  ] as const)('runtime: %s is refused over SSH with exit 2, naming the field and the reason; nothing changes', async (runtime, reason) => {
    const file = join(work, `${runtime}.yaml`);
    writeFileSync(file, manifest(runtime));
    const resumeTimers = await holdTimers(host);
    const before = await snapshot();
    for (const command of ['plan', 'apply']) {
      const r = await cli(command, file);
      expect(r.code, show(r)).toBe(2);
      expect(r.stderr, show(r)).toContain('servers[0].runtime');
      expect(r.stderr, show(r)).toContain(reason());
    }
    expect(await snapshot()).toBe(before);
    expect((await host.sh('ls /etc/containers/systemd 2>/dev/null | wc -l')).trim()).toBe('0');
    await resumeTimers();
  }, 420_000);

  it('apply with no runtime: plain systemd units (Podman 4.3’s podman run); the app answers through Caddy with its database, Redis and bucket', async () => {
    for (const v of ['v1', 'v2']) await host.loadImage(`localhost/codeb-testapp:${v}`, { podmanSocket: stackSettings().podman.socketPath });
    const r = await cli('apply', projectManifest);
    expect(r.code, show(r)).toBe(0);
    // s3rver has no users: apply says plainly that the key is shared.
    expect(r.stdout + r.stderr).toMatch(/storage: s3rver cannot make a key per project/);
    const units = (await host.sh(`ls /etc/systemd/system | grep '^${PROJECT}--' || true`)).trim().split('\n').filter(Boolean).sort();
    expect(units).toHaveLength(2);
    for (const u of units) expect(u).toMatch(new RegExp(`^${PROJECT}--production--(web|api)--(blue|green)\\.service$`));
    for (const u of units) expect((await host.sh(`systemctl is-active ${u}; systemctl is-enabled ${u}`)).trim().split('\n')).toEqual(['active', 'enabled']);
    expect((await host.sh('ls /etc/containers/systemd 2>/dev/null | wc -l')).trim()).toBe('0');
    const health = await viaHostCaddy(host, DOMAIN, '/api/health');
    expect(health.status, health.body).toBe(200);
    expect(JSON.parse(health.body)).toMatchObject({ ok: true, version: 'v1', database: 'ok', redis: 'ok' });
    // The bucket exists in the server's s3rver, and the web container reaches s3rver at the
    // services address (an unsigned request: s3rver's own refusal, 403 AccessDenied).
    const buckets = await host.exec(['node', '-e', S3_LIST_BUCKETS]);
    expect(buckets.code, show(buckets)).toBe(0);
    const names = JSON.parse(buckets.stdout.trim()) as string[];
    const web = units.find((u) => u.includes('--web--'))!.replace(/\.service$/, '');
    const s3 = await host.exec(['podman', 'exec', web, '/usr/bin/node', '-e', 'fetch(process.env.S3_ENDPOINT + "/" + process.env.S3_BUCKET).then(async (r) => console.log(r.status, process.env.S3_BUCKET, (await r.text()).includes("AccessDenied")))']);
    const [status, bucket, denied] = s3.stdout.trim().split(' ');
    expect(status, show(s3)).toBe('403');
    expect(denied, show(s3)).toBe('true');
    expect(bucket).toMatch(/uploads/);
    expect(names).toContain(bucket);
  }, 600_000);

  it('deploy --image v2 over SSH while a client on the server sends requests through Caddy: none fails', async () => {
    const { run, load } = await underLoad(host, DOMAIN, () => cli('deploy', projectManifest, '--image', 'localhost/codeb-testapp:v2'));
    expect(run.code, show(run)).toBe(0);
    expect(load.failed, JSON.stringify(load)).toBe(0);
    expect(load.versions.v1, JSON.stringify(load)).toBeGreaterThan(0);
    expect(load.versions.v2, JSON.stringify(load)).toBeGreaterThan(0);
    expect(JSON.parse((await viaHostCaddy(host, DOMAIN, '/api/version')).body).version).toBe('v2');
  }, 600_000);

  it('a reboot brings the shared services and the project back with the same live version, with no codeb command run', async () => {
    await host.restart();
    const answer = await waitViaCaddy(host, DOMAIN, '/api/health');
    expect(answer.status, answer.body).toBe(200);
    expect(JSON.parse(answer.body)).toMatchObject({ ok: true, version: 'v2', database: 'ok', redis: 'ok' });
    await checkOk();
    // The bucket and its key survived: s3rver's data is on disk, its key in settings.json.
    const buckets = await host.exec(['node', '-e', S3_LIST_BUCKETS]);
    expect(buckets.code, show(buckets)).toBe(0);
    expect((JSON.parse(buckets.stdout.trim()) as string[]).some((b) => b.includes('uploads'))).toBe(true);
  }, 600_000);
});

/** On the host: the bucket names of its object storage, through codeb's own S3 client and settings (prints no key). */
const S3_LIST_BUCKETS = `
const s = JSON.parse(require('node:fs').readFileSync('/opt/codeb/settings.json', 'utf8')).storage;
const { Client } = require('/opt/codeb/node_modules/minio');
new Client({ endPoint: s.endPoint, port: s.port, useSSL: false, accessKey: s.accessKey, secretKey: s.secretKey, region: s.region })
  .listBuckets()
  .then((b) => console.log(JSON.stringify(b.map((x) => x.name))), (e) => { console.error(e.code || e.message); process.exit(1); });
`;
