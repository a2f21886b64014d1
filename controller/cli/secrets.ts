import type { Command } from 'commander';
import { CodebError, EXIT } from '../errors.js';
import { eprintln, printJson, println, runCommand } from './output.js';
import { globalRegistry } from './registry.js';

export function registerSecrets(program: Command): void {
  const secrets = program.command('secrets').description('Deployment secrets (database and Redis passwords): generated once, never printed');
  secrets
    .command('rotate')
    .description('Set a new password on the server, rewrite the env file and redeploy the containers (blue-green, same images)')
    .argument('<project>', 'project id')
    .argument('<secret>', 'postgres or redis')
    .option('-e, --env <name>', 'environment', 'production')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nOpen connections keep working until they reconnect; new ones with the old password fail until the redeploy has switched.\nExit codes as for deploy: 0, 1, 3 health gate failed (traffic untouched), 4 rolled back.')
    .action((project: string, secret: string, opts: { env: string; json?: boolean }, cmd: Command) =>
      runCommand(opts.json, async () => {
        const { rotateSecret, ROTATABLE } = await import('../reconcile/rotate.js');
        if (!(ROTATABLE as readonly string[]).includes(secret)) {
          throw new CodebError(`Unknown secret "${secret}".`, { exitCode: EXIT.invalid, hint: `Rotatable secrets: ${ROTATABLE.join(', ')}.` });
        }
        const { consoleReporter, silentReporter } = await import('../reconcile/reporter.js');
        if (!opts.json) eprintln(`Rotating the ${secret} secret of ${project} (${opts.env})`);
        const r = await rotateSecret({ project, env: opts.env, secret: secret as 'postgres' | 'redis', registry: globalRegistry(cmd), reporter: opts.json ? silentReporter : consoleReporter() });
        if (opts.json) printJson({ ok: true, project, env: opts.env, secret, redeployed: Boolean(r.deploy), deploy: r.deploy ?? null });
        else println(`Rotated the ${secret} secret of ${project} (${opts.env}); the env file was rewritten and the containers redeployed.`);
        return EXIT.ok;
      }),
    );
}
