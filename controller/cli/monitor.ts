import type { Command } from 'commander';
import { EXIT } from '../errors.js';
import { printJson, println, runCommand } from './output.js';
import { globalRegistry } from './registry.js';

interface Opts {
  project?: string;
  json?: boolean;
}

export function registerMonitor(program: Command): void {
  program
    .command('monitor')
    .description('Check every running deployment once through Caddy, record its health in the registry, alert on a change')
    .option('-p, --project <id>', 'only this project')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
One pass: each deployment's web health path is requested through Caddy (its domain as Host), up to
3 times; the result is written to the registry (health, lastCheck, since; \`codeb registry list\`
shows it). A change to unhealthy sends one service.unhealthy alert to monitoring.alerts.webhook, the
way back one service.recovered; a deployment that stays unhealthy is not alerted again.
Run it periodically: a systemd timer on a server, a cron line or a loop on the local stack
(docs/monitoring.md).
Exit codes: 0 every checked deployment is healthy, 1 one is unhealthy (or the check failed),
2 unknown --project.`,
    )
    .action((opts: Opts, cmd: Command) =>
      runCommand(opts.json, async () => {
        const { registryPath, loadSettings } = await import('../settings.js');
        const { monitorOnce, renderMonitor } = await import('../ops/monitor.js');
        const registry = registryPath(globalRegistry(cmd));
        const rows = await monitorOnce({ registry, settings: loadSettings(), project: opts.project });
        if (opts.json) printJson({ ok: true, registry, deployments: rows });
        else println(renderMonitor(rows));
        return rows.some((r) => r.health === 'unhealthy') ? EXIT.failure : EXIT.ok;
      }),
    );
}
