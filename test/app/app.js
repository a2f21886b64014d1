'use strict';
/*
 * codeb-testapp: the small HTTP app baked into localhost/codeb-testapp:v1..v4 by
 * scripts/build-test-images.sh, so deploys, health gates, release commands and rollbacks can be
 * exercised for real without a container registry. CommonJS on purpose: the image has no package
 * manager, only /usr/bin/node, /app/app.js and /app/node_modules (pg, ioredis).
 *
 *   node app.js              HTTP server on $HOST:$PORT (default 127.0.0.1:8080)
 *   node app.js --migrate    release command: prints "migrated" and exits 0 (1 with MIGRATE_FAIL=1)
 *   node app.js --worker     background worker: stays up, logs a tick now and then
 *
 * HTTP:
 *   GET /                    "hello from <version>"
 *   GET /api/version         {"version", "pid", "hostname", "startedAt", "mode"}: hostname is the
 *                            container's (which replica answered)
 *   GET /api/health          200 {"ok":true,"version","database","redis"} when every configured
 *                            dependency answers within DEP_TIMEOUT_MS (300): DATABASE_URL ->
 *                            SELECT 1 (pg), REDIS_URL -> PING (ioredis); 503 with the reason
 *                            otherwise. Also served on /health and on $HEALTH_PATH. A probe only
 *                            waits DEP_TIMEOUT_MS; the connection it started goes on for up to
 *                            CONNECT_TIMEOUT_MS (10000), so a slow first connection on a busy
 *                            machine serves the next probe instead of being dropped and restarted.
 *   GET /events              server-sent events, one per 100 ms carrying the version
 *   GET /ws                  websocket: one text message per 100 ms carrying the version, echoes text
 *   GET /api/sleep?ms=N      answers after N ms (a long request, for drain tests)
 *   GET /api/items           {"database", "items": [{id, name}]}: the rows of table `items` in
 *                            DATABASE_URL's database (backup/restore tests); 500 with the reason
 *   GET|POST /api/chaos?mode=M[&ms=N]   switch the failure mode at run time (ok resets it)
 *
 * Failure modes (FAIL_MODE at start, /api/chaos at run time):
 *   unhealthy    health answers 500
 *   hang         health never answers
 *   slow         health answers after SLOW_MS (2000)
 *   crash        the process exits 1 at start, or after CRASH_AFTER_MS when set
 *   fail-after   healthy for FAIL_AFTER_MS (5000), then health answers 500
 *
 * Secrets: connection URLs and every other environment value are never printed.
 */
const http = require('node:http');
const crypto = require('node:crypto');
const os = require('node:os');

const VERSION = process.env.VERSION || 'dev';
const HOST = process.env.HOST || '127.0.0.1';
const PORT = Number(process.env.PORT || 8080);
const DEP_TIMEOUT_MS = Number(process.env.DEP_TIMEOUT_MS || 300);
// Opening a connection (TCP, a Postgres backend forked, SCRAM-SHA-256's 4096 PBKDF2 rounds on both
// sides) takes far longer than a query on a loaded machine; waiting for it costs nothing.
const CONNECT_TIMEOUT_MS = Number(process.env.CONNECT_TIMEOUT_MS || 10_000);
const MIGRATE_TIMEOUT_MS = Number(process.env.MIGRATE_TIMEOUT_MS || 45_000);
const MODES = ['ok', 'unhealthy', 'hang', 'slow', 'crash', 'fail-after'];
const startedAt = new Date();

function log(message) {
  process.stdout.write(`${new Date().toISOString()} codeb-testapp ${VERSION}: ${message}\n`);
}

function num(value, fallback) {
  const n = Number(value);
  return value !== undefined && value !== '' && Number.isFinite(n) && n >= 0 ? n : fallback;
}

/** Rejects after ms with a plain message; never leaves the timer running. */
function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Error text safe to show: the message only (pg and ioredis messages carry no passwords). */
function reasonOf(err) {
  return String((err && err.message) || err).split('\n')[0].slice(0, 200);
}

// ---------------------------------------------------------------- dependencies

let pgPool = null;
function pg() {
  if (!pgPool) {
    const { Pool } = require('pg');
    pgPool = new Pool({
      connectionString: process.env.DATABASE_URL,
      max: 2,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      idleTimeoutMillis: 10_000,
      query_timeout: 2_000,
    });
    pgPool.on('error', () => {}); // an idle client lost its connection; the next check reconnects
  }
  return pgPool;
}

let redisClient = null;
function redis() {
  if (!redisClient) {
    const mod = require('ioredis');
    const Redis = mod.Redis || mod.default || mod;
    redisClient = new Redis(process.env.REDIS_URL, {
      lazyConnect: false,
      connectTimeout: CONNECT_TIMEOUT_MS,
      maxRetriesPerRequest: 1,
      retryStrategy: (times) => Math.min(times * 100, 1_000),
    });
    redisClient.on('error', () => {}); // reported through the health answer instead
  }
  return redisClient;
}

async function checkDependencies() {
  const result = { database: 'not configured', redis: 'not configured' };
  const problems = [];
  const checks = [];
  if (process.env.DATABASE_URL) {
    checks.push(
      withTimeout(pg().query('SELECT 1 AS one'), DEP_TIMEOUT_MS, 'database').then(
        () => (result.database = 'ok'),
        (err) => {
          result.database = 'error';
          problems.push(`database: ${reasonOf(err)}`);
        },
      ),
    );
  }
  if (process.env.REDIS_URL) {
    checks.push(
      withTimeout(redis().ping(), DEP_TIMEOUT_MS, 'redis').then(
        () => (result.redis = 'ok'),
        (err) => {
          result.redis = 'error';
          problems.push(`redis: ${reasonOf(err)}`);
        },
      ),
    );
  }
  await Promise.all(checks);
  return { ...result, problems };
}

// ---------------------------------------------------------------- failure modes

const chaos = { mode: 'ok', failAt: null };
function setMode(mode, ms) {
  chaos.mode = mode;
  chaos.failAt = mode === 'fail-after' ? Date.now() + num(ms, num(process.env.FAIL_AFTER_MS, 5_000)) : null;
}

function crashNowOrLater(ms) {
  const after = num(ms, null);
  if (after === null) {
    log('crashing now (FAIL_MODE=crash)');
    process.exit(1);
  }
  log(`will crash after ${after} ms (FAIL_MODE=crash)`);
  setTimeout(() => {
    log('crashing now (FAIL_MODE=crash)');
    process.exit(1);
  }, after);
}

// ---------------------------------------------------------------- release command and worker

async function migrate() {
  log('migrating');
  const delay = num(process.env.MIGRATE_DELAY_MS, 0);
  if (delay) await new Promise((r) => setTimeout(r, delay));
  if (process.env.MIGRATE_FAIL === '1') {
    process.stderr.write(`codeb-testapp ${VERSION}: migration failed (MIGRATE_FAIL=1)\n`);
    process.exit(1);
  }
  if (process.env.DATABASE_URL) {
    try {
      // One connection, given the whole release budget: the release command runs once.
      const { Client } = require('pg');
      const client = new Client({ connectionString: process.env.DATABASE_URL, connectionTimeoutMillis: MIGRATE_TIMEOUT_MS });
      await withTimeout(client.connect().then(() => client.query('SELECT 1 AS one')), MIGRATE_TIMEOUT_MS, 'database');
      client.end().catch(() => {});
    } catch (err) {
      process.stderr.write(`codeb-testapp ${VERSION}: migration failed: ${reasonOf(err)}\n`);
      process.exit(1);
    }
  }
  process.stdout.write('migrated\n');
  process.exit(0);
}

function worker() {
  log('worker started');
  if (process.env.FAIL_MODE === 'crash') crashNowOrLater(process.env.CRASH_AFTER_MS);
  let n = 0;
  const tick = setInterval(() => log(`worker tick ${++n}`), num(process.env.WORKER_TICK_MS, 10_000));
  const stop = (signal) => {
    log(`worker stopping (${signal})`);
    clearInterval(tick);
    process.exit(0);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

// ---------------------------------------------------------------- HTTP

function send(res, status, body, type = 'application/json') {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'x-app-version': VERSION });
  res.end(text);
}

const healthPaths = new Set(['/api/health', '/health', process.env.HEALTH_PATH || '/api/health']);

async function health(req, res) {
  const mode = chaos.mode;
  if (mode === 'hang') return; // never answers: the caller's timeout has to fire
  if (mode === 'unhealthy') return send(res, 500, { ok: false, version: VERSION, reason: 'FAIL_MODE=unhealthy' });
  if (mode === 'fail-after' && chaos.failAt !== null && Date.now() >= chaos.failAt) {
    return send(res, 500, { ok: false, version: VERSION, reason: 'FAIL_MODE=fail-after: the failure time has passed' });
  }
  if (mode === 'slow') await new Promise((r) => setTimeout(r, num(process.env.SLOW_MS, 2_000)));
  const deps = await checkDependencies();
  if (deps.problems.length) {
    return send(res, 503, { ok: false, version: VERSION, database: deps.database, redis: deps.redis, reason: deps.problems.join('; ') });
  }
  send(res, 200, { ok: true, version: VERSION, database: deps.database, redis: deps.redis });
}

const streams = new Set();

function events(req, res) {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-app-version': VERSION });
  res.write('retry: 500\n\n');
  let n = 0;
  const timer = setInterval(() => res.write(`id: ${++n}\nevent: version\ndata: ${JSON.stringify({ version: VERSION, n })}\n\n`), 100);
  const entry = { end: () => res.end() };
  streams.add(entry);
  res.on('close', () => {
    clearInterval(timer);
    streams.delete(entry);
  });
}

function wsFrame(opcode, payload) {
  const len = payload.length;
  const head = len < 126 ? Buffer.from([0x80 | opcode, len]) : len < 65536 ? Buffer.from([0x80 | opcode, 126, len >> 8, len & 255]) : null;
  if (!head) {
    const h = Buffer.alloc(10);
    h[0] = 0x80 | opcode;
    h[1] = 127;
    h.writeBigUInt64BE(BigInt(len), 2);
    return Buffer.concat([h, payload]);
  }
  return Buffer.concat([head, payload]);
}

/** A minimal websocket: pushes the version every 100 ms, echoes text, answers ping and close. */
function websocket(req, socket) {
  const key = req.headers['sec-websocket-key'];
  if (!key || String(req.headers.upgrade).toLowerCase() !== 'websocket') {
    socket.end('HTTP/1.1 400 Bad Request\r\n\r\n');
    return;
  }
  const accept = crypto.createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
  let n = 0;
  let buffered = Buffer.alloc(0);
  const timer = setInterval(() => socket.write(wsFrame(1, Buffer.from(JSON.stringify({ version: VERSION, n: ++n })))), 100);
  const close = () => {
    clearInterval(timer);
    if (!socket.destroyed) socket.end(wsFrame(8, Buffer.from([0x03, 0xe8])));
  };
  const entry = { end: close };
  streams.add(entry);
  socket.on('data', (chunk) => {
    buffered = Buffer.concat([buffered, chunk]);
    while (buffered.length >= 2) {
      const opcode = buffered[0] & 0x0f;
      const masked = (buffered[1] & 0x80) !== 0;
      let len = buffered[1] & 0x7f;
      let offset = 2;
      if (len === 126) {
        if (buffered.length < 4) return;
        len = buffered.readUInt16BE(2);
        offset = 4;
      } else if (len === 127) {
        if (buffered.length < 10) return;
        len = Number(buffered.readBigUInt64BE(2));
        offset = 10;
      }
      const maskOffset = offset;
      if (masked) offset += 4;
      if (buffered.length < offset + len) return;
      const payload = Buffer.from(buffered.subarray(offset, offset + len));
      if (masked) for (let i = 0; i < len; i++) payload[i] ^= buffered[maskOffset + (i % 4)];
      buffered = buffered.subarray(offset + len);
      if (opcode === 8) return close();
      if (opcode === 9) socket.write(wsFrame(10, payload));
      if (opcode === 1) socket.write(wsFrame(1, Buffer.from(`${VERSION}: ${payload.toString('utf8')}`)));
    }
  });
  socket.on('close', () => {
    clearInterval(timer);
    streams.delete(entry);
  });
  socket.on('error', () => {});
}

function server() {
  const initial = process.env.FAIL_MODE || 'ok';
  if (!MODES.includes(initial)) {
    process.stderr.write(`codeb-testapp ${VERSION}: unknown FAIL_MODE ${JSON.stringify(initial)} (use one of ${MODES.join(', ')})\n`);
    process.exit(2);
  }
  if (initial === 'crash') crashNowOrLater(process.env.CRASH_AFTER_MS);
  else setMode(initial);

  const srv = http.createServer((req, res) => {
    const url = new URL(req.url || '/', 'http://app');
    const path = url.pathname;
    if (healthPaths.has(path)) {
      health(req, res).catch((err) => send(res, 500, { ok: false, version: VERSION, reason: reasonOf(err) }));
      return;
    }
    if (path === '/') return send(res, 200, `hello from ${VERSION}\n`, 'text/plain; charset=utf-8');
    if (path === '/api/version') return send(res, 200, { version: VERSION, pid: process.pid, hostname: os.hostname(), startedAt: startedAt.toISOString(), mode: chaos.mode });
    if (path === '/events') return events(req, res);
    if (path === '/api/items') {
      if (!process.env.DATABASE_URL) return send(res, 500, { error: 'no DATABASE_URL' });
      pg()
        .query('SELECT current_database() AS db, (SELECT coalesce(json_agg(i ORDER BY i.id), \'[]\') FROM (SELECT id, name FROM items) i) AS items')
        .then(
          (r) => send(res, 200, { database: r.rows[0].db, items: r.rows[0].items }),
          (err) => send(res, 500, { error: reasonOf(err) }),
        );
      return;
    }
    if (path === '/api/sleep') {
      const ms = Math.min(num(url.searchParams.get('ms'), 1_000), 600_000);
      setTimeout(() => send(res, 200, { version: VERSION, slept: ms }), ms);
      return;
    }
    if (path === '/api/chaos') {
      const mode = url.searchParams.get('mode') || 'ok';
      if (!MODES.includes(mode)) return send(res, 400, { error: `unknown mode ${JSON.stringify(mode)}`, modes: MODES });
      log(`chaos: mode ${mode}`);
      if (mode === 'crash') {
        send(res, 200, { version: VERSION, mode });
        const ms = url.searchParams.get('ms');
        setTimeout(() => crashNowOrLater(ms ?? undefined), 20);
        return;
      }
      setMode(mode, url.searchParams.get('ms') ?? undefined);
      return send(res, 200, { version: VERSION, mode });
    }
    send(res, 404, { error: 'not found', path });
  });
  srv.on('upgrade', (req, socket) => {
    if (new URL(req.url || '/', 'http://app').pathname === '/ws') websocket(req, socket);
    else socket.end('HTTP/1.1 404 Not Found\r\n\r\n');
  });
  srv.on('error', (err) => {
    process.stderr.write(`codeb-testapp ${VERSION}: cannot listen on ${HOST}:${PORT}: ${reasonOf(err)}\n`);
    process.exit(1);
  });
  srv.listen(PORT, HOST, () => log(`listening on http://${HOST}:${PORT} (mode ${chaos.mode})`));

  let stopping = false;
  const stop = (signal) => {
    if (stopping) return;
    stopping = true;
    log(`stopping (${signal})`);
    for (const s of streams) s.end();
    srv.close(() => {
      log('stopped');
      process.exit(0);
    });
    srv.closeIdleConnections?.();
    setTimeout(() => process.exit(0), num(process.env.STOP_GRACE_MS, 5_000)).unref();
    pgPool?.end().catch(() => {});
    redisClient?.disconnect();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

const args = process.argv.slice(2);
if (args.includes('--migrate')) migrate();
else if (args.includes('--worker')) worker();
else server();
