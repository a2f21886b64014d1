/**
 * A project on a real server, end to end, over SSH: a bare Debian 13 test host (systemd as PID 1,
 * test/helpers/server-host.ts) made ready by `codeb server init`, then `runtime: quadlet`:
 * apply (units exist, the app answers through the server's Caddy with its database, Redis and
 * bucket), deploy v2 and roll back while a load client on the host sends requests through Caddy
 * (0 failed), a reboot (restart of the host container) that brings the live version back with no
 * codeb command, a runtime the server cannot honour (exit 2, nothing changed), destroy (units gone).
 * Needs root (skipped otherwise).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codebCli, holdTimers, startServerHost, viaHostCaddy, type ExecResult, type ServerHost } from '../helpers/server-host.js';
import { serverProjectManifest, show, underLoad as underLoadOn, waitViaCaddy } from './helpers/server-project.js';
import { stackSettings } from './helpers/stack.js';

const root = process.getuid?.() === 0;
/** This file's test host: its own name and /24 (files run in parallel; subnets are machine-wide). */
const HOST = { name: 'i10q-e2e', slot: 2, pool: process.env.CODEB_QUADLET_TEST_POOL || '10.72.0.0/16' };
const PROJECT = 'shop';
const DOMAIN = 'shop.test';
const manifest = (target: string, runtime: string) => serverProjectManifest({ project: PROJECT, domain: DOMAIN, target, runtime });

describe.runIf(root)('a project on a real server over SSH with runtime: quadlet', () => {
  let host: ServerHost;
  let work: string;
  let quadletManifest: string;
  const cli = (...args: string[]) => codebCli(host, args);

  /** GET through the server's Caddy, on the host itself (bounded: 5 s). */
  const viaCaddy = (path: string) => viaHostCaddy(host, DOMAIN, path);
  const units = async () => (await host.sh('ls /etc/containers/systemd/ 2>/dev/null || true')).split('\n').filter((f) => f.endsWith('.container')).sort();
  /** Registry, units and containers: what a refused command must leave as it was. */
  const snapshot = () => host.sh('md5sum /opt/codeb/registry/projects.json; ls -la --time-style=full-iso /etc/containers/systemd; podman ps -a --format "{{.Names}} {{.ID}} {{.State}} {{.StartedAt}}" | sort');

  const underLoad = (command: Parameters<typeof underLoadOn>[2]) => underLoadOn(host, DOMAIN, command);

  beforeAll(async () => {
    host = await startServerHost(HOST);
    work = mkdtempSync(join(tmpdir(), 'codeb-server-quadlet-'));
    quadletManifest = join(work, 'shop.yaml');
    writeFileSync(quadletManifest, manifest(host.target, 'quadlet'));
    const init = await cli('server', 'init', host.target);
    if (init.code !== 0) throw new Error(`server init failed: ${show(init)}`);
    for (const v of ['v1', 'v2']) await host.loadImage(`localhost/codeb-testapp:${v}`, { podmanSocket: stackSettings().podman.socketPath });
  }, 900_000);
  afterAll(async () => {
    await host?.remove();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('apply: a Quadlet unit per service, and the app answers through Caddy with its database, Redis and bucket', async () => {
    const r = await cli('apply', quadletManifest);
    expect(r.code, show(r)).toBe(0);
    const files = await units();
    expect(files).toHaveLength(2);
    for (const f of files) expect(f).toMatch(new RegExp(`^${PROJECT}--production--(web|api)--(blue|green)\\.container$`));
    for (const f of files) expect((await host.sh(`systemctl is-active ${f.replace(/\.container$/, '.service')}`)).trim()).toBe('active');
    const health = await viaCaddy('/api/health');
    expect(health.status, health.body).toBe(200);
    expect(JSON.parse(health.body)).toMatchObject({ ok: true, version: 'v1', database: 'ok', redis: 'ok' });
    // The bucket, from inside the web container at the services address: it exists (an unsigned
    // request is refused with 403, a missing bucket would be 404).
    const web = files.find((f) => f.includes('--web--'))!.replace(/\.container$/, '');
    const s3 = await host.exec(['podman', 'exec', web, '/usr/bin/node', '-e', 'fetch(process.env.S3_ENDPOINT + "/" + process.env.S3_BUCKET).then((r) => console.log(r.status, process.env.S3_BUCKET))']);
    expect(s3.stdout.trim(), show(s3)).toMatch(/^403 \S*uploads/);
  }, 300_000);

  it('deploy --image v2 over SSH while a client on the server sends requests through Caddy: none fails', async () => {
    const { run, load } = await underLoad(() => cli('deploy', quadletManifest, '--image', 'localhost/codeb-testapp:v2'));
    expect(run.code, show(run)).toBe(0);
    expect(load.failed, JSON.stringify(load)).toBe(0);
    expect(load.versions.v1, JSON.stringify(load)).toBeGreaterThan(0);
    expect(load.versions.v2, JSON.stringify(load)).toBeGreaterThan(0);
    expect(JSON.parse((await viaCaddy('/api/version')).body).version).toBe('v2');
    // Both slots are units now: the live one (v2) and the retained one (v1, for rollback).
    expect(await units()).toHaveLength(4);
  }, 300_000);

  it('rollback over SSH under the same load: none fails, v1 serves again', async () => {
    const { run, load } = await underLoad(() => cli('--host', host.target, 'rollback', PROJECT, '--env', 'production'));
    expect(run.code, show(run)).toBe(0);
    expect(load.failed, JSON.stringify(load)).toBe(0);
    expect(load.versions.v1, JSON.stringify(load)).toBeGreaterThan(0);
    expect(JSON.parse((await viaCaddy('/api/version')).body).version).toBe('v1');
  }, 300_000);

  it('a reboot brings the project back with the same live version, with no codeb command run', async () => {
    await host.restart();
    const answer = await waitViaCaddy(host, DOMAIN, '/api/health');
    expect(answer.status, answer.body).toBe(200);
    expect(JSON.parse(answer.body)).toMatchObject({ ok: true, version: 'v1', database: 'ok', redis: 'ok' });
  }, 300_000);

  it('runtime: kubernetes is refused over SSH with exit 2 and the reason; nothing changes', async () => {
    const k8s = join(work, 'k8s.yaml');
    writeFileSync(k8s, manifest(host.target, 'kubernetes'));
    // codeb monitor's health record would change the registry within a minute: held meanwhile.
    const resumeTimers = await holdTimers(host);
    const before = await snapshot();
    for (const command of ['plan', 'apply']) {
      const r = await cli(command, k8s);
      expect(r.code, show(r)).toBe(2);
      expect(r.stderr).toContain('servers[0].runtime');
      expect(r.stderr).toContain('no Kubernetes driver');
    }
    expect(await snapshot()).toBe(before);
    await resumeTimers();
  }, 120_000);

  it('destroy removes the units and the containers', async () => {
    const r = await cli('--host', host.target, 'destroy', PROJECT, '--env', 'production', '--yes');
    expect(r.code, show(r)).toBe(0);
    expect(await units()).toEqual([]);
    expect((await host.sh(`podman ps -a --filter label=codeb.project=${PROJECT} --format {{.Names}}`)).trim()).toBe('');
    expect((await host.sh("systemctl list-units --all --no-legend 'shop--*' | wc -l")).trim()).toBe('0');
  }, 120_000);
});
