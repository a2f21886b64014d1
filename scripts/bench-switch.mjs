#!/usr/bin/env node
/**
 * `npm run bench:switch`: failed requests and latency through Caddy while a project is switched
 * blue -> green, rolled back, and while another project (a neighbour) is created and destroyed:
 * its route is added to and removed from the forwarder's host table behind Caddy's static front
 * (no Caddy config change; before host routing each of these reloaded Caddy and failed requests).
 *
 * A steady HTTP load on loopback through Caddy (Host = the project's domain), from a keep-alive
 * agent, concurrency 20, bounded in time and request count. The client never retries: every answer
 * that is not 2xx counts as failed, and every connection error (reset, hang-up, refused, timeout)
 * counts as failed. Each request is counted in the phase during which it was sent.
 *
 *   baseline       load alone
 *   deploy v1->v2  `codeb deploy --image ...:v2` (start green, gate, switch, verify, watch)
 *   rollback       `codeb rollback`
 *   create other   `codeb apply` of a second project on the same Caddy and forwarder (a route add)
 *   destroy other  `codeb destroy` of it (a route removal); create/destroy repeated --neighbours times
 *   scale 1->N     `codeb apply` with `replicas: N` (--replicas, 3): a blue-green deploy into N containers
 *   deploy v1->v2 (N replicas), rollback (N replicas)   the same with N containers per slot: the
 *                  forwarder spreads requests over them and a switch moves all N at once
 *   idle           load alone again
 *
 * The switch time is the deploy's own figure (from "every new container healthy" to "every entry
 * switched" in the forwarder: `deploy.switchMs` of `codeb deploy --json`) and the rollback's
 * (`switchMs`, from its request); "confirmed" adds the wait for the forwarder's answers, which come
 * after it has saved its table (fsync).
 *
 * Needs the local stack and the test images:
 *   export CODEB_HOME=$PWD/.codeb/test-home; node bin/codeb.js stack up; bash scripts/build-test-images.sh
 *
 * Options:
 *   --concurrency N     parallel requests (20)
 *   --rate N            requests per second over all workers, 0 = as fast as possible (1000)
 *   --max-requests N    stop the load after N requests (150000)
 *   --max-seconds N     stop the load after N seconds (150)
 *   --rounds N          repeat deploy/rollback/neighbours N times (1)
 *   --neighbours N      neighbour create + destroy pairs per round (2)
 *   --replicas N        replicas for the replicas phases (3; 0 or 1 leaves them out)
 *   --path P            what the load requests (/; e.g. /api/sleep?ms=50 for slower requests)
 *   --stack-proxy       use the stack's Caddy and forwarder instead of private ones
 *   --json              print the results as JSON
 *
 * By default the bench starts a Caddy and a codeb forwarder of its own with the stack's own code:
 * `codeb stack up --only caddy,forwarder` in a temporary stack folder, on free HTTP/HTTPS ports
 * (the same static front, admin socket and host router as `codeb stack up`), so other work on the
 * stack's forwarder does not disturb it and the forwarder runs this build's code. Postgres, Redis,
 * S3 and Podman are the stack's.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(repo, 'bin', 'codeb.js');

const { values: opt } = parseArgs({
  options: {
    concurrency: { type: 'string', default: '20' },
    rate: { type: 'string', default: '1000' },
    'max-requests': { type: 'string', default: '150000' },
    'max-seconds': { type: 'string', default: '150' },
    rounds: { type: 'string', default: '1' },
    neighbours: { type: 'string', default: '2' },
    replicas: { type: 'string', default: '3' },
    path: { type: 'string', default: '/' },
    'stack-proxy': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});
const concurrency = Number(opt.concurrency);
const rate = Number(opt.rate);
const maxRequests = Number(opt['max-requests']);
const maxMs = Number(opt['max-seconds']) * 1000;
const rounds = Number(opt.rounds);
const neighbours = Number(opt.neighbours);
const replicas = Number(opt.replicas);
for (const [name, v] of Object.entries({ concurrency, rate, 'max-requests': maxRequests, 'max-seconds': maxMs, rounds, neighbours, replicas })) {
  if (!Number.isFinite(v) || v < 0) {
    console.error(`bench-switch: --${name} must be a number >= 0`);
    process.exit(2);
  }
}
const log = (m) => process.stderr.write(`bench-switch: ${m}\n`);

// ------------------------------------------------------------------ settings and a private Caddy

if (!process.env.CODEB_HOME && !process.env.CODEB_SETTINGS && !existsSync(join(homedir(), '.codeb', 'settings.json')) && existsSync(join(repo, '.codeb', 'test-home', 'settings.json'))) {
  process.env.CODEB_HOME = join(repo, '.codeb', 'test-home');
}
const settingsFile = process.env.CODEB_SETTINGS ?? join(process.env.CODEB_HOME ?? join(homedir(), '.codeb'), 'settings.json');
if (!existsSync(settingsFile)) {
  console.error(`bench-switch: no ${settingsFile}. Start the stack first: CODEB_HOME=$PWD/.codeb/test-home node bin/codeb.js stack up`);
  process.exit(1);
}
if (!existsSync(join(repo, 'dist'))) {
  console.error('bench-switch: dist/ is missing: npm run build');
  process.exit(1);
}
const stackSettings = JSON.parse(readFileSync(settingsFile, 'utf8'));
const dir = mkdtempSync(join(tmpdir(), 'codeb-bench-switch-'));
const env = { ...process.env, CODEB_PORT_RANGE: process.env.CODEB_PORT_RANGE ?? '5320-5369', NO_COLOR: '1' };

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
    s.on('error', rej);
  });
}

function httpGet(port, path, host, agent = false, timeoutMs = 10_000) {
  return new Promise((res, rej) => {
    const req = request({ host: '127.0.0.1', port, path, agent, headers: host ? { host } : {} }, (r) => {
      let body = '';
      r.setEncoding('utf8');
      r.on('data', (c) => (body += c));
      r.on('end', () => res({ status: r.statusCode, body }));
      r.on('error', rej);
    });
    req.setTimeout(timeoutMs, () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    req.on('error', rej);
    req.end();
  });
}

let proxyEnv = null;
let settings = stackSettings;
if (!opt['stack-proxy']) {
  // The stack's own code starts the pair: same config, admin socket and router as `codeb stack up`.
  proxyEnv = {
    ...process.env,
    CODEB_STACK_DIR: join(dir, 'stack'),
    CODEB_SETTINGS: join(dir, 'proxy-settings.json'),
    CODEB_STACK_HTTP_PORT: String(await freePort()),
    CODEB_STACK_HTTPS_PORT: String(await freePort()),
  };
  try {
    execFileSync(process.execPath, [cli, 'stack', 'up', '--only', 'caddy,forwarder'], { env: proxyEnv, stdio: ['ignore', 'ignore', 'inherit'] });
  } catch {
    console.error('bench-switch: the private Caddy and forwarder did not start (see above)');
    rmSync(dir, { recursive: true, force: true });
    process.exit(1);
  }
  const pair = JSON.parse(readFileSync(proxyEnv.CODEB_SETTINGS, 'utf8'));
  settings = { ...stackSettings, caddy: pair.caddy, forwarder: pair.forwarder };
  env.CODEB_SETTINGS = join(dir, 'settings.json');
  writeFileSync(env.CODEB_SETTINGS, JSON.stringify(settings, null, 2), { mode: 0o600 });
}
const caddyPort = settings.caddy.httpPort;
const caddyVersion = execFileSync('caddy', ['version'], { encoding: 'utf8' }).trim().split(' ')[0];

// ------------------------------------------------------------------ codeb

function codeb(...args) {
  const t0 = performance.now();
  return new Promise((res) => {
    execFile(process.execPath, [cli, '--registry', join(dir, 'projects.json'), ...args], { env, maxBuffer: 16 << 20, timeout: 300_000 }, (err, stdout, stderr) => {
      res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}
function must(r, what) {
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}):\n${r.stderr}${r.stdout}`);
  return r;
}

const suffix = `${process.pid.toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
const project = `bench-${suffix}`;
const other = `bench-other-${suffix}`;
const domain = `${project}.localhost`;
function manifest(id, n = 1) {
  return `apiVersion: codeb/v1
project:
  id: ${id}
environment:
  domain: ${id}.localhost
services:
  web:
    type: web
    image: localhost/codeb-testapp:v1
    port: 8080
    replicas: ${n}
    healthCheck:
      http:
        path: /api/health
        timeout: 2s
        interval: 200ms
        successes: 3
deploy:
  healthGate:
    deadline: 30s
    verifyAfterSwitch: 3
    watchAfterSwitch: 2s
  drain: 1s
`;
}
const projectFile = join(dir, 'project.yaml');
const otherFile = join(dir, 'other.yaml');
const replicasFile = join(dir, 'replicas.yaml');
writeFileSync(projectFile, manifest(project));
writeFileSync(replicasFile, manifest(project, replicas));
writeFileSync(otherFile, manifest(other));

// ------------------------------------------------------------------ the load

const agent = new Agent({ keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency });
const phases = [];
let phase = null;
let sent = 0;
let stopLoad = false;
let loadStart = 0;

function newPhase(name) {
  phase = { name, startedAt: performance.now(), endedAt: null, requests: 0, ok: 0, non2xx: {}, errors: {}, latencies: [], bodies: {}, samples: [], switchMs: null, ackMs: null, commandMs: null, exit: null, neighbour: false };
  phases.push(phase);
  return phase;
}

function one(p) {
  const t0 = performance.now();
  p.requests++;
  return new Promise((res) => {
    const done = (kind, key, body) => {
      const ms = performance.now() - t0;
      if (kind === 'ok') {
        p.ok++;
        p.latencies.push(ms);
        const b = (body ?? '').trim().replace(/^\{"version":"(\w+)".*$/, '$1');
        p.bodies[b] = (p.bodies[b] ?? 0) + 1;
      } else if (kind === 'status') {
        p.non2xx[key] = (p.non2xx[key] ?? 0) + 1;
        if (p.samples.length < 3) p.samples.push(`HTTP ${key} ${JSON.stringify((body ?? '').slice(0, 160))}`);
      }
      else p.errors[key] = (p.errors[key] ?? 0) + 1;
      res();
    };
    const req = request({ host: '127.0.0.1', port: caddyPort, path: opt.path, agent, headers: { host: domain } }, (r) => {
      let body = '';
      r.setEncoding('utf8');
      r.on('data', (c) => (body += c));
      r.on('end', () => (r.statusCode >= 200 && r.statusCode < 300 ? done('ok', null, body) : done('status', String(r.statusCode), `${r.headers.server ?? ''} ${body}`)));
      r.on('error', (e) => done('error', e.code ?? e.message));
      r.on('aborted', () => done('error', 'aborted'));
    });
    req.setTimeout(10_000, () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    let failed = false;
    req.on('error', (e) => {
      if (failed) return;
      failed = true;
      done('error', e.code ?? e.message);
    });
    req.end();
  });
}

async function worker() {
  while (!stopLoad) {
    if (sent >= maxRequests || performance.now() - loadStart > maxMs) {
      stopLoad = true;
      break;
    }
    if (rate > 0) {
      const due = loadStart + (sent / rate) * 1000;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    sent++;
    await one(phase);
  }
}

// ------------------------------------------------------------------ run

function percentile(sorted, q) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let failure = null;
let workers = [];
/** How many different containers answered after the scale to --replicas (null: not run). */
let replicasAnswering = null;
let caddyLog = '';
try {
  log(`Caddy ${caddyVersion} (${opt['stack-proxy'] ? 'the stack\'s, and its forwarder' : 'the bench\'s own and a forwarder of its own, started by `codeb stack up --only caddy,forwarder`'}) on 127.0.0.1:${caddyPort}; stack settings ${settingsFile}`);
  execFileSync('bash', [join(repo, 'scripts', 'build-test-images.sh')], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  log(`apply ${project} (v1)`);
  must(await codeb('apply', projectFile), 'apply');
  const first = await httpGet(caddyPort, '/', domain);
  if (first.status !== 200) throw new Error(`the project does not answer through Caddy: HTTP ${first.status} ${first.body}`);

  // Warm the keep-alive pool so the baseline is not the cost of connecting.
  newPhase('warm-up');
  loadStart = performance.now();
  workers = Array.from({ length: concurrency }, () => worker());
  await sleep(1000);

  const timed = async (name, fn) => {
    const p = newPhase(name);
    try {
      await fn(p);
    } finally {
      p.endedAt = performance.now();
    }
  };
  await timed('baseline', () => sleep(3000));
  for (let round = 1; round <= rounds && !stopLoad; round++) {
    const tag = rounds > 1 ? ` #${round}` : '';
    // After the rollback v1 is live again, so every round deploys v2 anew.
    await timed(`deploy v1->v2${tag}`, async (p) => {
      const r = must(await codeb('deploy', projectFile, '--image', 'localhost/codeb-testapp:v2', '--json'), 'deploy');
      const out = JSON.parse(r.stdout);
      p.switchMs = out.deploy?.switchMs ?? null;
      p.ackMs = out.deploy?.switchAckMs ?? null;
      p.commandMs = r.ms;
      p.exit = r.code;
    });
    await sleep(300);
    await timed(`rollback${tag}`, async (p) => {
      const r = must(await codeb('rollback', project, '--json'), 'rollback');
      const out = JSON.parse(r.stdout);
      p.switchMs = out.switchMs;
      p.ackMs = out.switchAckMs ?? null;
      p.commandMs = r.ms;
      p.exit = r.code;
    });
    await sleep(300);
    for (let n = 1; n <= neighbours && !stopLoad; n++) {
      const ntag = `${tag}${neighbours > 1 ? ` (${n})` : ''}`;
      await timed(`create other${ntag}`, async (p) => {
        const r = must(await codeb('apply', otherFile), 'apply of the other project');
        p.commandMs = r.ms;
        p.exit = r.code;
        p.neighbour = true;
        // The neighbour answers through the same Caddy: its route is live.
        const seen = await httpGet(caddyPort, '/', `${other}.localhost`);
        if (seen.status !== 200) throw new Error(`the other project does not answer through Caddy: HTTP ${seen.status}`);
      });
      await sleep(300);
      await timed(`destroy other${ntag}`, async (p) => {
        const r = must(await codeb('destroy', other, '--yes', '--delete-data'), 'destroy of the other project');
        p.commandMs = r.ms;
        p.exit = r.code;
        p.neighbour = true;
      });
      await sleep(300);
    }
  }
  if (replicas > 1 && !stopLoad) {
    // The same switch with N containers per slot (v1 is live again after the rollback above).
    await timed(`scale 1->${replicas}`, async (p) => {
      const r = must(await codeb('apply', replicasFile, '--json'), `apply with replicas ${replicas}`);
      const out = JSON.parse(r.stdout);
      p.switchMs = out.deploy?.switchMs ?? null;
      p.ackMs = out.deploy?.switchAckMs ?? null;
      p.commandMs = r.ms;
      p.exit = r.code;
    });
    // Which containers answer: the test app reports its hostname (the container's).
    const hosts = new Set();
    for (let i = 0; i < 10 * replicas; i++) {
      const r = await httpGet(caddyPort, '/api/version', domain);
      if (r.status === 200) hosts.add(JSON.parse(r.body).hostname);
    }
    replicasAnswering = hosts.size;
    await sleep(300);
    await timed(`deploy v1->v2 (${replicas} replicas)`, async (p) => {
      const r = must(await codeb('deploy', replicasFile, '--image', 'localhost/codeb-testapp:v2', '--json'), 'deploy with replicas');
      const out = JSON.parse(r.stdout);
      p.switchMs = out.deploy?.switchMs ?? null;
      p.ackMs = out.deploy?.switchAckMs ?? null;
      p.commandMs = r.ms;
      p.exit = r.code;
    });
    await sleep(300);
    await timed(`rollback (${replicas} replicas)`, async (p) => {
      const r = must(await codeb('rollback', project, '--json'), 'rollback with replicas');
      const out = JSON.parse(r.stdout);
      p.switchMs = out.switchMs;
      p.ackMs = out.switchAckMs ?? null;
      p.commandMs = r.ms;
      p.exit = r.code;
    });
    await sleep(300);
  }
  await timed('idle', () => sleep(2000));
} catch (err) {
  failure = err;
} finally {
  stopLoad = true;
  await Promise.all(workers);
  if (phase && phase.endedAt === null) phase.endedAt = performance.now();
  agent.destroy();
  for (const id of [other, project]) await codeb('destroy', id, '--yes', '--delete-data');
  if (proxyEnv) {
    caddyLog = (() => {
      try {
        return readFileSync(join(dir, 'stack', 'logs', 'caddy.log'), 'utf8');
      } catch {
        return '';
      }
    })();
    execFileSync(process.execPath, [cli, 'stack', 'down'], { env: proxyEnv, stdio: 'ignore' });
  }
  rmSync(dir, { recursive: true, force: true });
}

// ------------------------------------------------------------------ report

const rows = phases
  .filter((p) => p.name !== 'warm-up' && p.endedAt !== null)
  .map((p) => {
    const sorted = [...p.latencies].sort((a, b) => a - b);
    const non2xx = Object.values(p.non2xx).reduce((a, b) => a + b, 0);
    const errors = Object.values(p.errors).reduce((a, b) => a + b, 0);
    return {
      phase: p.name,
      seconds: Math.round(p.endedAt - p.startedAt) / 1000,
      requests: p.requests,
      ok: p.ok,
      non2xx,
      connectionErrors: errors,
      failed: non2xx + errors,
      p50ms: sorted.length ? Math.round(percentile(sorted, 0.5) * 10) / 10 : null,
      p99ms: sorted.length ? Math.round(percentile(sorted, 0.99) * 10) / 10 : null,
      maxMs: sorted.length ? Math.round(sorted[sorted.length - 1] * 10) / 10 : null,
      switchMs: p.switchMs === null ? null : Math.round(p.switchMs * 10) / 10,
      confirmedMs: p.ackMs === null ? null : Math.round(p.ackMs * 10) / 10,
      commandMs: p.commandMs === null ? null : Math.round(p.commandMs),
      statuses: p.non2xx,
      errors: p.errors,
      answers: p.bodies,
      samples: p.samples,
      neighbour: p.neighbour,
      latencies: sorted,
    };
  });
const total = rows.reduce((a, r) => ({ requests: a.requests + r.requests, failed: a.failed + r.failed }), { requests: 0, failed: 0 });
// Every neighbour create/destroy phase together: what another project's route changes cost this one.
const nRows = rows.filter((r) => r.neighbour);
const nLat = nRows.flatMap((r) => r.latencies).sort((a, b) => a - b);
const neighbourTotal = {
  phases: nRows.length,
  requests: nRows.reduce((a, r) => a + r.requests, 0),
  failed: nRows.reduce((a, r) => a + r.failed, 0),
  p50ms: nLat.length ? Math.round(percentile(nLat, 0.5) * 10) / 10 : null,
  p99ms: nLat.length ? Math.round(percentile(nLat, 0.99) * 10) / 10 : null,
};
const baseLat = rows.filter((r) => r.phase === 'baseline' || r.phase === 'idle').flatMap((r) => r.latencies).sort((a, b) => a - b);
const baselineP50 = baseLat.length ? Math.round(percentile(baseLat, 0.5) * 10) / 10 : null;
// Caddy's own error lines (JSON log of the private Caddy): why a request failed, if one did.
const caddyErrors = {};
for (const line of caddyLog.split('\n')) {
  try {
    const e = JSON.parse(line);
    if (e.level === 'error') {
      const key = `${e.logger ?? ''}: ${String(e.msg ?? '').slice(0, 200)}${e.error ? ` (${String(e.error).slice(0, 100)})` : ''}`;
      caddyErrors[key] = (caddyErrors[key] ?? 0) + 1;
    }
  } catch {
    // not JSON
  }
}
for (const r of rows) delete r.latencies;
const result = {
  caddy: caddyVersion,
  proxy: opt['stack-proxy'] ? 'the stack\'s Caddy and forwarder' : 'private Caddy and forwarder (codeb stack up --only caddy,forwarder)',
  concurrency,
  rate: rate || 'unlimited',
  keepAlive: true,
  retries: 0,
  path: opt.path,
  sent,
  phases: rows,
  total,
  neighbours: neighbourTotal,
  baselineP50ms: baselineP50,
  replicas: replicas > 1 ? { replicas, answering: replicasAnswering } : null,
  caddyErrors,
  error: failure ? String(failure.message ?? failure) : null,
};

if (opt.json) {
  console.log(JSON.stringify(result, null, 2));
} else {
  const cols = ['phase', 'seconds', 'requests', 'non2xx', 'connectionErrors', 'p50ms', 'p99ms', 'maxMs', 'switchMs', 'confirmedMs'];
  const head = ['phase', 's', 'requests', 'non-2xx', 'conn errors', 'p50 ms', 'p99 ms', 'max ms', 'switch ms', 'confirmed ms'];
  const cell = (v) => (v === null || v === undefined ? '-' : String(v));
  const widths = cols.map((c, i) => Math.max(head[i].length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals) => vals.map((v, i) => (i === 0 ? v.padEnd(widths[i]) : v.padStart(widths[i]))).join('  ');
  console.log(`Caddy ${caddyVersion} (${result.proxy}), ${concurrency} concurrent keep-alive clients, ${result.rate} req/s, GET ${opt.path}, no retries`);
  console.log(line(head));
  for (const r of rows) console.log(line(cols.map((c) => cell(r[c]))));
  for (const r of rows) {
    const detail = [
      ...Object.entries(r.statuses).map(([k, v]) => `HTTP ${k} x${v}`),
      ...Object.entries(r.errors).map(([k, v]) => `${k} x${v}`),
    ];
    const answers = Object.entries(r.answers).map(([k, v]) => `"${k}" x${v}`).join(', ');
    console.log(`  ${r.phase}: ${r.requests ? answers : 'no load (the request limit was reached)'}${detail.length ? `; failed: ${detail.join(', ')}` : ''}${r.commandMs !== null ? `; command ${r.commandMs} ms` : ''}`);
    for (const x of r.samples.slice(0, 1)) console.log(`    e.g. ${x}`);
  }
  for (const [k, v] of Object.entries(caddyErrors)) console.log(`  Caddy logged x${v}: ${k}`);
  console.log(
    `neighbour created/destroyed ${neighbourTotal.phases} times: ${neighbourTotal.requests} requests to this project meanwhile, ${neighbourTotal.failed} failed; ` +
      `p50 ${neighbourTotal.p50ms ?? '-'} ms (baseline ${baselineP50 ?? '-'} ms), p99 ${neighbourTotal.p99ms ?? '-'} ms`,
  );
  if (result.replicas) console.log(`replicas: ${result.replicas.answering ?? '-'} of ${replicas} containers answered ${10 * replicas} requests after the scale`);
  console.log(`total: ${total.requests} requests, ${total.failed} failed${sent >= maxRequests ? ' (stopped at --max-requests)' : ''}`);
}
if (failure) {
  console.error(`bench-switch: ${failure.message ?? failure}`);
  process.exit(1);
}
