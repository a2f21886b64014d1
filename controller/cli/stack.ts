/** `codeb stack up | down | status`: parsing and printing only; the work is in controller/stack. */
import type { Command } from 'commander';
import { println, printJson, runCommand } from './output.js';
import { EXIT } from '../errors.js';

interface JsonOpt {
  json?: boolean;
}

const secs = (ms: number): string => `${(ms / 1000).toFixed(1)}s`;

export function registerStack(program: Command): void {
  const stack = program
    .command('stack')
    .description('the embedded local stack: Postgres, Redis, S3 (s3rver or radosgw), Caddy and the Podman API on 127.0.0.1')
    .addHelpText(
      'after',
      `
State lives in $CODEB_STACK_DIR (default $CODEB_HOME/stack); \`up\` writes service endpoints and admin
credentials to $CODEB_SETTINGS (default $CODEB_HOME/settings.json, mode 0600).
Ports: 25432 postgres, 26379 redis, 29000 s3, 28080 http, 28443 https; move them all with
CODEB_STACK_PORT_BASE (e.g. 30000 -> 35432, ...). Caddy's admin API is a Unix socket
(stack/caddy/run/admin.sock, owner only), never TCP.
S3 server: s3rver by default (one key shared by every project); CODEB_STACK_S3=radosgw runs the Ceph
RADOS Gateway instead (root; a Debian 13 rootfs built once with debootstrap into
$CODEB_ROOTFS_CACHE, default /var/cache/codeb/rootfs): a key per project, bucket policies,
lifecycle. The choice is kept in the settings file; switch with \`stack down\` first. See docs/stack.md.`,
    );

  stack
    .command('up')
    .description('start every part that is not running (safe to repeat) and write the settings file')
    .option('--only <parts>', 'start only these parts, comma-separated (postgres,redis,s3,caddy,podman,forwarder), e.g. a private caddy,forwarder pair for a benchmark')
    .option('--json', 'print the result as JSON')
    .action(async (opts: JsonOpt & { only?: string }) => {
      await runCommand(opts.json, async () => {
        const { upStack, StackStartError, resolveStack, PART_NAMES } = await import('../stack/index.js');
        const r = resolveStack();
        let parts: (typeof PART_NAMES)[number][] | undefined;
        if (opts.only !== undefined) {
          const asked = opts.only.split(',').map((p) => p.trim()).filter(Boolean);
          const unknown = asked.filter((p) => !(PART_NAMES as readonly string[]).includes(p));
          if (unknown.length || !asked.length) {
            const { CodebError } = await import('../errors.js');
            throw new CodebError(`--only ${JSON.stringify(opts.only)}: ${unknown.length ? `unknown part ${unknown.join(', ')}` : 'no part named'}.`, {
              exitCode: EXIT.invalid,
              hint: `Name parts from: ${PART_NAMES.join(', ')}.`,
            });
          }
          parts = asked as (typeof PART_NAMES)[number][];
        }
        if (!opts.json) println(`codeb local stack in ${r.paths.dir}`);
        const onProgress = opts.json
          ? undefined
          : (p: { name: string; state: string; address: string; ms: number; reason?: string }): void => {
              const name = p.name.padEnd(8);
              if (p.state === 'started') println(`  ${name} ... up (${p.address}) ${secs(p.ms)}`);
              else if (p.state === 'running') println(`  ${name} ... already running (${p.address})`);
              else println(`  ${name} ... FAILED after ${secs(p.ms)}`);
            };
        try {
          const res = await upStack({ onProgress, parts });
          if (opts.json) {
            printJson({ ok: true, dir: res.dir, settingsFile: res.settingsFile, parts: res.parts.map(({ logTail: _, ...p }) => p), notes: res.notes });
          } else {
            for (const n of res.notes) println(`note: ${n}`);
            println(`settings (endpoints and admin credentials, mode 0600): ${res.settingsFile}`);
          }
          return EXIT.ok;
        } catch (err) {
          if (opts.json && err instanceof StackStartError) {
            const res = err.result;
            printJson({ ok: false, dir: res.dir, settingsFile: res.settingsFile, parts: res.parts, notes: res.notes, error: { message: err.message, hint: err.hint } });
            return EXIT.failure;
          }
          throw err;
        }
      });
    });

  stack
    .command('down')
    .description('stop the processes `up` started (containers of the stack\'s Podman included); data is kept')
    .option('--purge', 'also delete the stack folder (all data) and the settings file it wrote')
    .option('--json', 'print the result as JSON')
    .action(async (opts: JsonOpt & { purge?: boolean }) => {
      await runCommand(opts.json, async () => {
        const { stopStack } = await import('../stack/index.js');
        const onProgress = opts.json
          ? undefined
          : (p: { name: string; state: string; pid?: number }): void =>
              println(`  ${p.name.padEnd(8)} ... ${p.state === 'not-running' ? 'not running' : `${p.state} (pid ${p.pid})`}`);
        const res = await stopStack({ purge: opts.purge, onProgress });
        if (opts.json) printJson({ ok: true, ...res });
        else if (res.purged) println(`deleted ${res.dir} and the settings it wrote`);
        return EXIT.ok;
      });
    });

  stack
    .command('status')
    .description('show each part: up, down, unhealthy (ours, not answering) or foreign (answering, not ours)')
    .option('--json', 'print the status as JSON')
    .action(async (opts: JsonOpt) => {
      await runCommand(opts.json, async () => {
        const { stackStatus } = await import('../stack/index.js');
        const st = await stackStatus();
        if (opts.json) {
          printJson({ ok: true, ...st });
          return EXIT.ok;
        }
        println(`codeb local stack in ${st.dir}`);
        for (const p of st.parts) {
          const extra = [p.pid ? `pid ${p.pid}` : '', p.reason ?? ''].filter(Boolean).join(', ');
          println(`  ${p.name.padEnd(8)} ${p.state.padEnd(9)} ${p.address}${extra ? `  (${extra})` : ''}`);
        }
        println(
          st.settingsPresent
            ? `settings: ${st.settingsFile}`
            : `settings: ${st.settingsFile} does not exist yet (\`codeb stack up\` writes it)`,
        );
        return EXIT.ok;
      });
    });
}
