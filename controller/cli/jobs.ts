import type { Command } from 'commander';
import { EXIT } from '../errors.js';
import { eprintln, printJson, println, runCommand } from './output.js';
import { globalRegistry } from './registry.js';

interface RunOpts {
  env?: string;
  job?: string;
  due?: boolean;
  json?: boolean;
}

export function registerJobs(program: Command): void {
  const jobs = program.command('jobs').description("Scheduled jobs (the manifest's jobs:): run them when due or by name, list their last runs");

  jobs
    .command('run')
    .description('Run jobs as one-off containers in their service\'s image: those whose schedule fired (--due) or one by name (--job)')
    .argument('[project]', 'only this project (default: every project, with --due)')
    .option('-e, --env <name>', 'only this environment')
    .option('--job <name>', 'run this job now, whatever its schedule')
    .option('--due', 'run every job whose cron schedule (UTC) fired since it last started')
    .option('--json', 'print the results as JSON')
    .addHelpText(
      'after',
      `
Each job runs with its service's image (the one live), env file and env, in a container removed when
it ends, one after another. The exit code and times go into the registry (\`codeb jobs list\`), the
last 50 log lines into <registry folder>/jobs/, and a failure (non-zero exit, timeout) sends a
job.failed alert. A timer or cron line runs \`codeb jobs run --due\` every minute (docs/monitoring.md).
Exit codes: 0 every job that ran succeeded (or none was due), 1 one failed, 2 unknown project or job.`,
    )
    .action((project: string | undefined, opts: RunOpts, cmd: Command) =>
      runCommand(opts.json, async () => {
        const { registryPath, loadSettings } = await import('../settings.js');
        const { runJobs, renderJobResults } = await import('../ops/jobs.js');
        const { openHostRuntime } = await import('../runtime/open.js');
        const registry = registryPath(globalRegistry(cmd));
        const settings = loadSettings();
        const runtime = await openHostRuntime(settings);
        try {
          const results = await runJobs({
            registry,
            runtime,
            servicesAddress: settings.network.servicesAddress,
            project,
            env: opts.env,
            job: opts.job,
            due: Boolean(opts.due),
            onStart: opts.json ? undefined : (p) => eprintln(`  running ${p.project}/${p.env} job ${p.job.name} (${p.job.command.join(' ')}) ...`),
          });
          if (opts.json) printJson({ ok: results.every((r) => r.result === 'ok'), registry, jobs: results });
          else println(renderJobResults(results));
          return results.some((r) => r.result !== 'ok') ? EXIT.failure : EXIT.ok;
        } finally {
          await runtime.close();
        }
      }),
    );

  jobs
    .command('list')
    .description("A project's jobs: schedule, command and last run (exit code, when, how long)")
    .argument('<project>', 'project id')
    .option('-e, --env <name>', 'only this environment')
    .option('--json', 'print as JSON (with each last run\'s log tail)')
    .action((project: string, opts: RunOpts, cmd: Command) =>
      runCommand(opts.json, async () => {
        const { registryPath } = await import('../settings.js');
        const { listJobs, renderJobList } = await import('../ops/jobs.js');
        const rows = listJobs(registryPath(globalRegistry(cmd)), project, opts.env);
        if (opts.json) printJson({ project, jobs: rows });
        else println(renderJobList(rows));
      }),
    );
}
