/**
 * The health gate. Podman runs container health checks from systemd timers, which do not exist
 * everywhere (not here, not in many CI boxes), so codeb probes health itself: HTTP from the host
 * for web and internal services, `exec` of a command or "stays up without restarting" for workers.
 */
import { request } from 'node:http';
import type { ResolvedService } from '../manifest/types.js';

/**
 * The service a visitor's check through Caddy reaches (deploy's verification after a switch and
 * `codeb monitor`): the main domain's catch-all web service with an HTTP health check. One with
 * route auth is left out: without its password it answers 401 (its slot passed the gate directly).
 */
export function proxyProbeService<S extends Pick<ResolvedService, 'type' | 'routePath' | 'domains' | 'auth' | 'healthCheck'>>(services: readonly S[]): S | undefined {
  return services.find((s) => s.type === 'web' && s.routePath === null && s.domains.length === 0 && !s.auth && s.healthCheck.kind === 'http');
}

export interface ProbeResult {
  ok: boolean;
  at: string;
  ms: number;
  status?: number;
  detail: string;
}

/** GET http://host:port/path; healthy when the status matches within the timeout. */
export function probeHttp(opts: {
  host?: string;
  port: number;
  path: string;
  expectStatus: number;
  timeoutMs: number;
  hostHeader?: string;
  headers?: Record<string, string>;
  /**
   * Also require this response header (verification: who answered): `value` is what it must be, or
   * any of a list (one token per replica that may answer); `what` names the expected answerer.
   */
  expectHeader?: { name: string; value: string | string[]; what: string };
}): Promise<ProbeResult> {
  const t0 = performance.now();
  const at = new Date().toISOString();
  return new Promise((resolve) => {
    let settled = false;
    const finish = (r: Omit<ProbeResult, 'at' | 'ms'>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ ...r, at, ms: Math.round(performance.now() - t0) });
    };
    const req = request(
      { host: opts.host ?? '127.0.0.1', port: opts.port, path: opts.path, method: 'GET', agent: false, headers: { ...opts.headers, ...(opts.hostHeader ? { host: opts.hostHeader } : {}) } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          if (body.length < 300) body += c;
        });
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          const snippet = body.replace(/\s+/g, ' ').trim().slice(0, 200);
          const want = opts.expectHeader;
          const got = res.headers[want?.name ?? ''];
          if (want && status === opts.expectStatus && !(typeof got === 'string' && (Array.isArray(want.value) ? want.value.includes(got) : got === want.value))) {
            finish({ ok: false, status, detail: `HTTP ${status}, but not answered by ${want.what} (another upstream serves this domain)` });
            return;
          }
          finish({ ok: status === opts.expectStatus, status, detail: `HTTP ${status}${snippet ? ` ${snippet}` : ''}` });
        });
        res.on('error', (err) => finish({ ok: false, detail: err.message }));
      },
    );
    const timer = setTimeout(() => {
      req.destroy();
      finish({ ok: false, detail: `no answer within ${opts.timeoutMs} ms` });
    }, opts.timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => finish({ ok: false, detail: err.code ?? err.message }));
    req.end();
  });
}

export interface GateOptions {
  /** Consecutive passing checks needed. */
  successes: number;
  intervalMs: number;
  /** Time the app may take to start; it extends the deadline (failures never count, they reset the streak). */
  startPeriodMs: number;
  /** Give up when not healthy by then. */
  deadlineMs: number;
}

export interface GateResult {
  healthy: boolean;
  elapsedMs: number;
  /** Time until the first passing check. */
  firstOkMs: number | null;
  checks: ProbeResult[];
  reason: string;
}

export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const realClock: Clock = { now: () => performance.now(), sleep: (ms) => new Promise((r) => setTimeout(r, ms)) };

/**
 * Probe until `successes` checks in a row pass, or the deadline passes. `abort` lets the caller
 * stop early (e.g. the container exited: no point waiting for the deadline).
 */
export async function runHealthGate(probe: () => Promise<ProbeResult>, o: GateOptions, clock: Clock = realClock, abort?: () => Promise<string | null>): Promise<GateResult> {
  const t0 = clock.now();
  const checks: ProbeResult[] = [];
  let streak = 0;
  let firstOkMs: number | null = null;
  for (;;) {
    const r = await probe();
    checks.push(r);
    const elapsed = clock.now() - t0;
    if (r.ok) {
      firstOkMs ??= elapsed;
      streak++;
      if (streak >= o.successes) return { healthy: true, elapsedMs: elapsed, firstOkMs, checks: checks.slice(-10), reason: `${streak} checks in a row passed` };
    } else {
      streak = 0;
    }
    const stop = abort ? await abort() : null;
    if (stop) return { healthy: false, elapsedMs: clock.now() - t0, firstOkMs, checks: checks.slice(-10), reason: stop };
    const limit = o.startPeriodMs + o.deadlineMs;
    if (clock.now() - t0 + o.intervalMs > limit) {
      const last = checks[checks.length - 1]!;
      return { healthy: false, elapsedMs: clock.now() - t0, firstOkMs, checks: checks.slice(-10), reason: `not healthy within ${Math.round(limit / 1000)} s (last check: ${last.detail})` };
    }
    await clock.sleep(o.intervalMs);
  }
}
