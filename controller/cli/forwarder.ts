import type { Command } from 'commander';
import { printJson, println, runCommand } from './output.js';

export function registerForwarder(program: Command): void {
  const fwd = program
    .command('forwarder')
    .description('The blue-green forwarder: stable entry ports switched between slots (started by `codeb stack up`, or a systemd unit on servers)');

  fwd
    .command('run')
    .description('Run the forwarder in the foreground until SIGTERM')
    .requiredOption('--socket <path>', 'control socket (owner-only)')
    .requiredOption('--table <file>', 'where the entry table is persisted')
    .option('--services-address <ip>', "also serve each entry on this host address, to the owning project's containers only")
    .action(async (opts: { socket: string; table: string; servicesAddress?: string }) => {
      const { runForwarder } = await import('../deploy/forwarder-daemon.js');
      const stop = await runForwarder(opts.socket, opts.table, opts.servicesAddress ?? null);
      process.stdout.write(`codeb forwarder listening on ${opts.socket}\n`);
      const shutdown = () => void stop().then(() => process.exit(0));
      process.on('SIGTERM', shutdown);
      process.on('SIGINT', shutdown);
    });

  fwd
    .command('status')
    .description('List the entry ports and the slot port each one forwards to')
    .option('--json', 'print as JSON')
    .action((opts: { json?: boolean }) =>
      runCommand(opts.json, async () => {
        const { loadSettings } = await import('../settings.js');
        const { ForwarderClient } = await import('../deploy/forwarder-client.js');
        const entries = await new ForwarderClient(loadSettings().forwarder.socketPath).list();
        if (opts.json) printJson({ entries });
        else if (!entries.length) println('No entries.');
        else for (const e of entries) println(`${e.id}  127.0.0.1:${e.entryPort} -> 127.0.0.1:${e.target}${e.previous ? `  (previous ${e.previous})` : ''}${e.allow ? `  (containers of ${e.allow})` : ''}`);
      }),
    );
}
