import type { Command } from 'commander';
import { CodebError, EXIT } from '../errors.js';
import { eprintln, printJson, println, runCommand } from './output.js';
import { globalRegistry } from './registry.js';

interface Opts {
  env?: string;
  yes?: boolean;
  deleteData?: boolean;
  json?: boolean;
}

export function registerDestroy(program: Command): void {
  program
    .command('destroy')
    .description('Remove a deployment: route, env file, Redis slot and user; release its ports. Keeps the database, buckets and volumes unless --delete-data')
    .argument('<project>', 'project id')
    .option('-e, --env <name>', 'environment', 'production')
    .option('-y, --yes', 'do not ask for confirmation (required without a terminal)')
    .option('--delete-data', 'also drop the database and its role, delete the buckets with every object in them and remove the volumes')
    .option('--json', 'print the result as JSON')
    .action((project: string, opts: Opts, cmd: Command) =>
      runCommand(opts.json, async () => {
        const { destroyDeployment } = await import('../reconcile/destroy.js');
        const { renderDestroy, renderSteps } = await import('../reconcile/render.js');
        const { stepResult } = await import('../reconcile/apply.js');
        const { consoleReporter, silentReporter } = await import('../reconcile/reporter.js');
        const confirm = async (actions: Parameters<typeof stepResult>[0][]) => {
          if (opts.yes) return true;
          if (!process.stdin.isTTY) {
            throw new CodebError('destroy needs confirmation and there is no terminal to ask.', { exitCode: EXIT.invalid, hint: 'Pass --yes to confirm non-interactively.' });
          }
          eprintln(`This will destroy ${project} (${opts.env}):`);
          for (const l of renderSteps(actions.map((a) => stepResult(a)), false)) eprintln(l);
          const { createInterface } = await import('node:readline/promises');
          const rl = createInterface({ input: process.stdin, output: process.stderr });
          const answer = await rl.question(`Type the project id (${project}) to confirm: `);
          rl.close();
          return answer.trim() === project;
        };
        const r = await destroyDeployment({
          project,
          env: opts.env ?? 'production',
          deleteData: Boolean(opts.deleteData),
          registry: globalRegistry(cmd),
          reporter: opts.json ? silentReporter : consoleReporter(),
          confirm,
        });
        if (opts.json) printJson({ ok: !r.cancelled, ...r });
        else println(renderDestroy(r));
        return r.cancelled ? EXIT.failure : EXIT.ok;
      }),
    );
}
