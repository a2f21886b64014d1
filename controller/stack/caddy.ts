/**
 * Caddy for the local stack: JSON config only, admin API on 127.0.0.1:<caddyAdmin>, one HTTP server
 * `codeb` on 127.0.0.1:<http> without automatic HTTPS (local hosts such as food.localhost).
 * Routes added through the admin API are autosaved by Caddy to config/caddy/autosave.json; each start
 * resumes from that file (ports updated to the current ones), so routes survive a restart.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { LOOPBACK } from './layout.js';
import { baseEnv, errorText, httpGet, type Part, type PartContext, type ProbeResult, type StartContext } from './part.js';

export const CADDY_SERVER = 'codeb';

type Json = Record<string, unknown>;
const obj = (v: unknown): Json => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : {});

export function caddyConfig(ctx: PartContext, previous?: unknown): Json {
  const cfg = obj(structuredClone(previous));
  cfg.admin = { ...obj(cfg.admin), listen: `${LOOPBACK}:${ctx.ports.caddyAdmin}`, config: { ...obj(obj(cfg.admin).config), persist: true } };
  const apps = obj(cfg.apps);
  const http = obj(apps.http);
  const servers = obj(http.servers);
  const server = obj(servers[CADDY_SERVER]);
  servers[CADDY_SERVER] = {
    ...server,
    listen: [`${LOOPBACK}:${ctx.ports.http}`],
    routes: Array.isArray(server.routes) ? server.routes : [],
    automatic_https: { ...obj(server.automatic_https), disable: true },
  };
  http.http_port = ctx.ports.http;
  http.https_port = ctx.ports.https;
  http.servers = servers;
  apps.http = http;
  cfg.apps = apps;
  // The stack probes the admin API often; keep those requests out of the log unless they fail.
  cfg.logging ??= { logs: { default: { exclude: ['admin.api'] }, admin: { include: ['admin.api'], level: 'WARN' } } };
  return cfg;
}

export const caddyPart: Part = {
  name: 'caddy',
  stopSignal: 'SIGTERM',
  startTimeoutMs: 20_000,
  address: (ctx) => `${LOOPBACK}:${ctx.ports.http}, admin ${LOOPBACK}:${ctx.ports.caddyAdmin}`,
  tcpPorts: (ctx) => [ctx.ports.caddyAdmin, ctx.ports.http],

  async prepare(ctx: StartContext): Promise<void> {
    const c = ctx.paths.caddy;
    for (const d of [c.root, c.xdgConfig, c.xdgData]) mkdirSync(d, { recursive: true, mode: 0o700 });
    let previous: unknown;
    if (existsSync(c.autosave)) {
      try {
        previous = JSON.parse(readFileSync(c.autosave, 'utf8'));
      } catch {
        ctx.notes.push(`ignored ${c.autosave}: not valid JSON (Caddy starts with an empty route list)`);
      }
    }
    writeFileSync(c.config, JSON.stringify(caddyConfig(ctx, previous), null, 2) + '\n', { mode: 0o600 });
  },

  launch(ctx: StartContext) {
    const c = ctx.paths.caddy;
    return {
      command: ctx.bins.caddy,
      args: ['run', '--config', c.config],
      env: baseEnv(ctx.env, { XDG_CONFIG_HOME: c.xdgConfig, XDG_DATA_HOME: c.xdgData, HOME: c.root }),
      cwd: c.root,
    };
  },

  async probe(ctx: PartContext): Promise<ProbeResult> {
    try {
      const a = await httpGet({ url: `http://${LOOPBACK}:${ctx.ports.caddyAdmin}/config/` });
      return a.status === 200 ? { ok: true } : { ok: false, reason: `admin API answered HTTP ${a.status}` };
    } catch (err) {
      return { ok: false, reason: errorText(err) };
    }
  },
};
