/**
 * A multi-service project on a test host (test/helpers/server-host.ts) made ready by `server init`,
 * as server-quadlet.test.ts (Debian 13), server-podman43.test.ts (Debian 12) and server-ubuntu.test.ts deploy it: the
 * manifest, requests through the server's Caddy made on the host itself, and a load client on the
 * host that runs while a command (deploy, rollback) does.
 */
import { viaHostCaddy, type ExecResult, type ServerHost } from '../../helpers/server-host.js';

export const show = (r: ExecResult) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

/** web + internal api (the test app), a database, Redis and a bucket; no runtime: the host's default. */
export function serverProjectManifest(o: { project: string; domain: string; target: string; runtime?: string }): string {
  const health = `    healthCheck:
      http:
        path: /api/health
        timeout: 2s
        interval: 200ms
        successes: 3
`;
  return `apiVersion: codeb/v1
project:
  id: ${o.project}
environment:
  domain: ${o.domain}
services:
  web:
    type: web
    image: localhost/codeb-testapp:v1
    port: 8080
${health}  api:
    type: internal
    image: localhost/codeb-testapp:v1
    port: 8080
${health}features:
  database: true
  cache: true
  storage:
    buckets: [uploads]
deploy:
  healthGate:
    deadline: 120s
    verifyAfterSwitch: 2
    watchAfterSwitch: 2s
  drain: 2s
servers:
  - name: app1
    host: ${o.target}
${o.runtime ? `    runtime: ${o.runtime}\n` : ''}`;
}

/** Ask through Caddy until it answers 200 (a reboot: the services come back on their own), at most `tries` times. */
export async function waitViaCaddy(host: ServerHost, domain: string, path: string, tries = 240): Promise<{ status: number; body: string }> {
  let answer: { status: number; body: string } = { status: 0, body: '' };
  for (let i = 0; i < tries; i++) {
    answer = await viaHostCaddy(host, domain, path);
    if (answer.status === 200) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  return answer;
}

/**
 * A load client on the host: GET /api/version through Caddy, two requests at a time, until
 * /tmp/codeb-load-stop appears (or 600 s, or 100 000 requests). Prints {ok, failed, versions, errors}.
 */
function loadClient(domain: string): string {
  return `
const http = require('node:http');
const fs = require('node:fs');
const started = Date.now();
const out = { ok: 0, failed: 0, versions: {}, errors: [] };
const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
function one() {
  return new Promise((done) => {
    const req = http.get({ host: '127.0.0.1', port: 80, path: '/api/version', headers: { host: ${JSON.stringify(domain)} }, agent, timeout: 10000 }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => {
        if (res.statusCode === 200) {
          out.ok++;
          const v = JSON.parse(body).version;
          out.versions[v] = (out.versions[v] || 0) + 1;
        } else {
          out.failed++;
          if (out.errors.length < 5) out.errors.push(res.statusCode + ' ' + body.slice(0, 200));
        }
        done();
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => {
      out.failed++;
      if (out.errors.length < 5) out.errors.push(e.message);
      done();
    });
  });
}
async function worker() {
  while (!fs.existsSync('/tmp/codeb-load-stop') && Date.now() - started < 600000 && out.ok + out.failed < 100000) await one();
}
fs.writeFileSync('/tmp/codeb-load-started', '');
Promise.all([worker(), worker()]).then(() => console.log(JSON.stringify(out)));
`;
}

export interface LoadResult {
  ok: number;
  failed: number;
  versions: Record<string, number>;
  errors: string[];
}

/** Run `command` (deploy, rollback) while the load client runs on the host; its result. */
export async function underLoad(host: ServerHost, domain: string, command: () => Promise<ExecResult>): Promise<{ run: ExecResult; load: LoadResult }> {
  await host.sh('rm -f /tmp/codeb-load-stop /tmp/codeb-load-started');
  const load = host.exec(['node', '-e', loadClient(domain)], { timeoutMs: 660_000 });
  // A busy machine can take many seconds to start node on the host; a command run before the load
  // would prove nothing, so wait for it (bounded) instead of going on after a guessed time.
  const deadline = Date.now() + 120_000;
  while ((await host.exec(['test', '-e', '/tmp/codeb-load-started'])).code !== 0) {
    if (Date.now() > deadline) throw new Error('the load client on the test host did not start sending within 120 s');
    await new Promise((r) => setTimeout(r, 100));
  }
  const run = await command();
  await host.sh('touch /tmp/codeb-load-stop');
  const l = await load;
  if (l.code !== 0) throw new Error(`load client failed: ${show(l)}`);
  return { run, load: JSON.parse(l.stdout.trim()) as LoadResult };
}
