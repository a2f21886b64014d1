/** S3 for the local stack: scripts/stack-s3rver.mjs (s3rver) as a detached node process. */
import { mkdirSync } from 'node:fs';
import { LOOPBACK } from './layout.js';
import { baseEnv, errorText, httpGet, type Part, type PartContext, type ProbeResult, type StartContext } from './part.js';

export const s3Part: Part = {
  name: 's3',
  stopSignal: 'SIGTERM',
  startTimeoutMs: 20_000,
  address: (ctx) => `${LOOPBACK}:${ctx.ports.s3}, ${ctx.network.servicesAddress}:${ctx.ports.s3}`,
  tcpPorts: (ctx) => [ctx.ports.s3],

  async prepare(ctx: StartContext): Promise<void> {
    mkdirSync(ctx.paths.s3.data, { recursive: true, mode: 0o700 });
  },

  launch(ctx: StartContext) {
    return {
      command: ctx.bins.node,
      args: [ctx.bins.s3rverScript, '--dir', ctx.paths.s3.data, '--port', String(ctx.ports.s3), '--address', LOOPBACK, '--address', ctx.network.servicesAddress],
      env: baseEnv(ctx.env, { S3RVER_ACCESS_KEY: ctx.creds.s3AccessKey, S3RVER_SECRET_KEY: ctx.creds.s3SecretKey }),
      cwd: ctx.paths.s3.root,
    };
  },

  async probe(ctx: PartContext): Promise<ProbeResult> {
    try {
      const a = await httpGet({ url: `http://${LOOPBACK}:${ctx.ports.s3}/_codeb/health` });
      return a.status === 200 && a.body.includes('codeb-s3rver')
        ? { ok: true }
        : { ok: false, reason: `something else answers on this port (HTTP ${a.status})` };
    } catch (err) {
      return { ok: false, reason: errorText(err) };
    }
  },
};
