/**
 * The codeb forwarder for the local stack: `codeb forwarder run` as a detached process. It owns the
 * entry ports that blue-green deploys switch and the host router Caddy's static route proxies every
 * site to (controller/deploy/forwarder.ts). On a server the same command runs as a systemd unit.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { buildId } from '../build-id.js';
import { packageRoot } from './layout.js';
import { baseEnv, errorText, httpGet, type Part, type PartContext, type ProbeResult, type StartContext } from './part.js';

export const forwarderPart: Part = {
  name: 'forwarder',
  stopSignal: 'SIGTERM',
  startTimeoutMs: 10_000,
  // The services address is part of its identity: a forwarder started for another pool must restart.
  address: (ctx) => `unix://${ctx.paths.forwarder.socket}, entries for containers on ${ctx.network.servicesAddress}`,
  // Entry ports are opened on demand by deploys; the control socket is not a TCP port.
  tcpPorts: () => [],

  // A forwarder of another build may judge routes by other rules (an older one refused routes
  // without `sse`): restarted, its table comes back from its file. Not when codeb runs from source.
  async outdated(ctx: PartContext): Promise<string | null> {
    const ours = buildId();
    if (!ours) return null;
    try {
      const a = await httpGet({ socketPath: ctx.paths.forwarder.socket, path: '/health' });
      const theirs = (JSON.parse(a.body) as { build?: unknown }).build;
      return theirs === ours ? null : `it ran ${typeof theirs === 'string' ? `codeb build ${theirs}` : 'an older codeb'}, this is build ${ours}`;
    } catch {
      return null; // no answer: waitReady says so
    }
  },

  async prepare(ctx: StartContext): Promise<void> {
    mkdirSync(ctx.paths.forwarder.root, { recursive: true, mode: 0o700 });
  },

  launch(ctx: StartContext) {
    return {
      command: ctx.bins.node,
      args: [
        join(packageRoot(), 'bin', 'codeb.js'),
        'forwarder',
        'run',
        '--socket',
        ctx.paths.forwarder.socket,
        '--router',
        ctx.paths.forwarder.router,
        '--https-port',
        String(ctx.ports.https),
        '--table',
        ctx.paths.forwarder.table,
        '--services-address',
        ctx.network.servicesAddress,
      ],
      env: baseEnv(ctx.env),
      cwd: ctx.paths.forwarder.root,
    };
  },

  async probe(ctx: PartContext): Promise<ProbeResult> {
    try {
      const a = await httpGet({ socketPath: ctx.paths.forwarder.socket, path: '/health' });
      if (a.status !== 200 || !a.body.includes('"ok":true')) return { ok: false, reason: `unexpected answer (HTTP ${a.status})` };
      // A forwarder from before host routing has no router: Caddy's front would answer 502 for every site.
      if (!a.body.includes(JSON.stringify(ctx.paths.forwarder.router))) return { ok: false, reason: `it serves no host router at ${ctx.paths.forwarder.router} (restart it: codeb stack down && codeb stack up)`, fatal: true };
      return { ok: true };
    } catch (err) {
      return { ok: false, reason: errorText(err) };
    }
  },
};
