import type { Command } from 'commander';
import { printJson, println, runCommand } from './output.js';

export function registerForwarder(program: Command): void {
  const fwd = program
    .command('forwarder')
    .description('The blue-green forwarder and host router: stable entry ports switched between slots, and the host table Caddy routes every site through (started by `codeb stack up`, or a systemd unit on servers)');

  fwd
    .command('run')
    .description('Run the forwarder in the foreground until SIGTERM')
    .requiredOption('--socket <path>', 'control socket (owner-only)')
    .requiredOption('--table <file>', 'where the entry and host tables are persisted')
    .option('--router <path>', "the host router's socket, which Caddy's static route proxies every site to (owner and group)")
    .option('--services-address <ip>', "also serve each entry on this host address, to the owning project's containers only")
    .option('--https-port <port>', 'the public HTTPS port, for redirects of TLS hosts asked for over plain HTTP', '443')
    .action((opts: { socket: string; table: string; router?: string; httpsPort: string; servicesAddress?: string }) =>
      // The process stays up after this returns: the servers it started keep it alive until a signal.
      runCommand(false, async () => {
        const httpsPort = Number(opts.httpsPort);
        if (!Number.isInteger(httpsPort) || httpsPort < 1 || httpsPort > 65535) {
          const { CodebError, EXIT } = await import('../errors.js');
          throw new CodebError(`--https-port ${opts.httpsPort} is not a port number (1-65535).`, { exitCode: EXIT.invalid, hint: 'Give the public HTTPS port, e.g. --https-port 443.' });
        }
        const { runForwarder } = await import('../deploy/forwarder-daemon.js');
        const stop = await runForwarder(opts.socket, opts.table, { routerSocket: opts.router, httpsPort, servicesAddress: opts.servicesAddress ?? null });
        process.stdout.write(`codeb forwarder listening on ${opts.socket}${opts.router ? `, host router on ${opts.router}` : ''}\n`);
        const shutdown = () => void stop().then(() => process.exit(0));
        process.on('SIGTERM', shutdown);
        process.on('SIGINT', shutdown);
      }),
    );

  fwd
    .command('status')
    .description('List the entry ports with the slot port each one forwards to, and the host routes')
    .option('--json', 'print as JSON')
    .action((opts: { json?: boolean }) =>
      runCommand(opts.json, async () => {
        const { loadSettings } = await import('../settings.js');
        const { ForwarderClient } = await import('../deploy/forwarder-client.js');
        const client = new ForwarderClient(loadSettings().forwarder.socketPath);
        const [entries, routes] = await Promise.all([client.list(), client.routes()]);
        if (opts.json) return printJson({ entries, routes });
        if (!entries.length) println('No entries.');
        else for (const e of entries) println(`${e.id}  127.0.0.1:${e.entryPort} -> 127.0.0.1:${(e.targets ?? [e.target]).join(',')}${e.previous ? `  (previous ${e.previous})` : ''}${e.allow ? `  (containers of ${e.allow})` : ''}`);
        if (!routes.length) println('No host routes.');
        const { routeSites } = await import('../deploy/host-routes.js');
        for (const r of routes) {
          for (const site of routeSites(r)) {
            const guard = (u: (typeof site.upstreams)[number]) => (u.auth ? ` [${[u.auth.basic ? `basic auth ${u.auth.basic.user}` : '', u.auth.allow.length ? `allow ${u.auth.allow.join(' ')}` : ''].filter(Boolean).join(', ')}]` : '');
            const ups = site.upstreams.map((u) => `${u.path ?? '*'} -> entry ${u.port} (${u.service})${guard(u)}`).join(', ');
            println(`${r.id}  ${site.domains.join(', ')}  tls ${site.tls}  ${ups || '(no service)'}`);
          }
        }
      }),
    );
}
