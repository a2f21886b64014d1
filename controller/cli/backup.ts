import type { Command } from 'commander';
import { CodebError, EXIT } from '../errors.js';
import { eprintln, printJson, println, runCommand } from './output.js';
import { globalRegistry } from './registry.js';
import { SERVER_CODEB } from '../settings.js';

interface EnvOpts {
  env: string;
  json?: boolean;
}

async function reporterFor(json: boolean | undefined) {
  const { consoleReporter, silentReporter } = await import('../reconcile/reporter.js');
  return json ? silentReporter : consoleReporter();
}

const mb = (n: number) => (n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KB` : `${(n / 1048576).toFixed(1)} MB`);

export function registerBackup(program: Command): void {
  const backup = program
    .command('backup')
    .description('Database and bucket backups in the shared backup bucket: run, list, verify, restore, switch, drop-database, prune, timer')
    .addHelpText(
      'after',
      '\nA backup is good only once every object was uploaded, read back and matched its sha256 (manifest.json is written last).\n' +
        'Failures exit 1 and send the backup.failed alert; `run --due` also sends backup.missed. See docs/backup.md.',
    );

  backup
    .command('run')
    .description('Back up one deployment now (pg_dump, bucket objects), then apply retention; or with --due every deployment whose schedule is due')
    .argument('[project]', 'project id (not with --due)')
    .option('-e, --env <name>', 'environment', 'production')
    .option('--due', 'every deployment with backup.enabled whose backup.schedule (UTC) fired since its newest good backup; alerts backup.missed')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nExit codes: 0 good backup(s), 1 a backup failed (nothing unfinished counts as good), 2 invalid input.\nRun `--due` from a timer or cron every few minutes (docs/backup.md).')
    .action((project: string | undefined, opts: EnvOpts & { due?: boolean }, cmd: Command) =>
      runCommand(opts.json, async () => {
        const ops = await import('../ops/backup.js');
        const reporter = await reporterFor(opts.json);
        const registry = globalRegistry(cmd);
        if (opts.due) {
          if (project) throw new CodebError('`backup run --due` takes no project: it checks every deployment.', { exitCode: EXIT.invalid });
          const outcomes = await ops.runDue({ registry, reporter });
          if (opts.json) printJson({ ok: outcomes.every((o) => o.action !== 'failed'), deployments: outcomes });
          else if (outcomes.length === 0) println('No deployments with an applied manifest.');
          else for (const o of outcomes) println(`${o.project} (${o.env}): ${o.action}${o.id ? ` ${o.id}` : ''}${o.missed ? ` (missed slot ${o.missed} alerted)` : ''}${o.error ? `: ${o.error}` : ''}`);
          return outcomes.some((o) => o.action === 'failed') ? EXIT.failure : EXIT.ok;
        }
        if (!project) throw new CodebError('Which project? `codeb backup run <project> [--env E]`, or `--due` for every due one.', { exitCode: EXIT.invalid });
        if (!opts.json) eprintln(`Backing up ${project} (${opts.env})`);
        const r = await ops.runBackup(project, opts.env, { registry, reporter });
        if (opts.json) printJson({ ok: true, ...r });
        else println(`Backup ${r.id} of ${project} (${opts.env}) is good: ${r.bucket}/${r.prefix} (${mb(r.manifest.totalBytes)}, ${r.manifest.objects.length} objects, ${(r.manifest.durationMs / 1000).toFixed(1)} s).`);
        return EXIT.ok;
      }),
    );

  backup
    .command('list')
    .description('The backups of one deployment, oldest first, with their state and last verification')
    .argument('<project>', 'project id')
    .option('-e, --env <name>', 'environment', 'production')
    .option('--json', 'print as JSON')
    .action((project: string, opts: EnvOpts, cmd: Command) =>
      runCommand(opts.json, async () => {
        const { listBackups } = await import('../ops/backup.js');
        const rows = await listBackups(project, opts.env, { registry: globalRegistry(cmd) });
        if (opts.json) return printJson({ project, env: opts.env, backups: rows });
        if (rows.length === 0) return println(`No backups of ${project} (${opts.env}) yet. Make one: codeb backup run ${project} --env ${opts.env}`);
        const table = [
          ['ID', 'STATUS', 'SIZE', 'TABLES', 'ROWS', 'TOOK', 'VERIFIED'],
          ...rows.map((b) => [
            b.id,
            b.status,
            mb(b.bytes),
            b.tables === null ? '-' : String(b.tables),
            b.rows === null ? '-' : String(b.rows),
            b.durationMs === null ? '-' : `${(b.durationMs / 1000).toFixed(1)} s`,
            b.lastVerify ? `${b.lastVerify.ok ? 'ok' : 'FAILED'} ${b.lastVerify.at}` : '-',
          ]),
        ];
        const widths = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
        for (const r of table) println(r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd());
      }),
    );

  backup
    .command('verify')
    .description('Restore a backup into a scratch database, compare tables and row counts with its manifest, drop the scratch database')
    .argument('<project>', 'project id')
    .option('-e, --env <name>', 'environment', 'production')
    .option('--id <id>', 'the backup (default: the newest good one)')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nEvery object\'s sha256 is checked first. The result is recorded beside the backup (verify/<time>.json; `backup list` shows it).\nExit codes: 0 verified, 1 verification failed (backup.failed alert sent), 2 invalid input.')
    .action((project: string, opts: EnvOpts & { id?: string }, cmd: Command) =>
      runCommand(opts.json, async () => {
        const { verifyBackup } = await import('../ops/backup.js');
        if (!opts.json) eprintln(`Verifying ${opts.id ?? 'the newest good backup'} of ${project} (${opts.env})`);
        const r = await verifyBackup(project, opts.env, opts.id, { registry: globalRegistry(cmd), reporter: await reporterFor(opts.json) });
        if (opts.json) printJson(r);
        else println(`Backup ${r.id} verified: ${r.tables} tables, ${r.rows} rows restored as recorded (${(r.durationMs / 1000).toFixed(1)} s).`);
      }),
    );

  backup
    .command('restore')
    .description('Restore a backup into a NEW database (the project keeps its current one until you switch); --in-place overwrites the live one; --volumes restores the volumes')
    .argument('<project>', 'project id')
    .requiredOption('--id <id>', 'the backup (`codeb backup list`)')
    .option('-e, --env <name>', 'environment', 'production')
    .option('--switch', 'switch the project to the restored database at once (env file, blue-green redeploy)')
    .option('--in-place', 'overwrite the live database instead (a safety backup is taken first); needs --yes')
    .option('--yes', 'confirm --in-place or --volumes')
    .option('--volumes', "restore the backup's volumes instead (include: volumes): each stateful service is stopped, its volume emptied and filled from the backup, and started again; needs --yes")
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      '\nThe previous database is kept: switch back with `codeb backup switch <project> --database <previous>`, and remove it\n' +
        'when you no longer need it with `codeb backup drop-database <project> --database <name> --yes`.\n' +
        'Exit codes: 0, 1 failure (nothing switched), 2 invalid input, 3/4 as for deploy when --switch redeploys.',
    )
    .action((project: string, opts: EnvOpts & { id: string; switch?: boolean; inPlace?: boolean; yes?: boolean; volumes?: boolean }, cmd: Command) =>
      runCommand(opts.json, async () => {
        if (opts.volumes) {
          if (opts.switch || opts.inPlace) throw new CodebError('--volumes restores volumes only: leave out --switch and --in-place (restore the database with a second command).', { exitCode: EXIT.invalid });
          if (!opts.yes) throw new CodebError('--volumes replaces the contents of the live volumes; add --yes to confirm.', { exitCode: EXIT.invalid, hint: 'Back up the current state first if you may want it back: codeb backup run.' });
          const ops = await import('../ops/backup.js');
          const reporter = await reporterFor(opts.json);
          if (!opts.json) eprintln(`Restoring the volumes of backup ${opts.id} of ${project} (${opts.env})`);
          const v = await ops.restoreVolumes(project, opts.env, opts.id, { registry: globalRegistry(cmd), reporter });
          if (opts.json) printJson({ ok: true, ...v });
          else println(`Restored ${v.volumes.join(', ')} from ${v.id}.`);
          return EXIT.ok;
        }
        if (opts.inPlace && !opts.yes) {
          throw new CodebError('--in-place overwrites the live database; add --yes to confirm.', { exitCode: EXIT.invalid, hint: 'Without --in-place the backup goes into a new database and nothing live changes.' });
        }
        if (opts.inPlace && opts.switch) throw new CodebError('--switch and --in-place exclude each other: in place there is nothing to switch to.', { exitCode: EXIT.invalid });
        const ops = await import('../ops/backup.js');
        const reporter = await reporterFor(opts.json);
        const registry = globalRegistry(cmd);
        if (!opts.json) eprintln(`Restoring backup ${opts.id} of ${project} (${opts.env})${opts.inPlace ? ' IN PLACE' : ' into a new database'}`);
        const r = await ops.restoreBackup(project, opts.env, opts.id, { inPlace: opts.inPlace }, { registry, reporter });
        let code: number = EXIT.ok;
        let deploy: unknown = null;
        if (opts.switch) {
          const s = await ops.switchDatabase(project, opts.env, r.database, { registry, reporter });
          r.switched = true;
          deploy = s.apply.deploy ?? null;
          const { outcomeError } = await import('../deploy/bluegreen.js');
          const failed = s.apply.deploy ? outcomeError(s.apply.deploy, project, opts.env) : null;
          if (failed) code = failed.exitCode;
        }
        if (opts.json) printJson({ ok: code === EXIT.ok, ...r, deploy });
        else if (r.inPlace) println(`Restored ${r.id} into the live database ${r.database}. The state before is backup ${r.safetyBackup}.`);
        else {
          println(`Restored ${r.id} into the new database ${r.database}; ${project} ${r.switched ? 'now uses it' : `still uses ${r.previousDatabase}`}.`);
          if (!r.switched) println(`Switch to it: codeb backup switch ${project} --env ${opts.env} --database ${r.database}`);
          println(`The previous database ${r.previousDatabase} is kept; remove it when done: codeb backup drop-database ${project} --env ${opts.env} --database ${r.previousDatabase} --yes`);
        }
        return code;
      }),
    );

  backup
    .command('switch')
    .description("Point the project at another of its databases (a restored one, or back to the previous): env file rewritten, blue-green redeploy")
    .argument('<project>', 'project id')
    .requiredOption('--database <name>', "a database owned by the project's role")
    .option('-e, --env <name>', 'environment', 'production')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nThe database left behind is kept. Exit codes as for deploy: 0, 1, 2, 3 health gate failed (traffic untouched), 4 rolled back.')
    .action((project: string, opts: EnvOpts & { database: string }, cmd: Command) =>
      runCommand(opts.json, async () => {
        const { switchDatabase } = await import('../ops/backup.js');
        const s = await switchDatabase(project, opts.env, opts.database, { registry: globalRegistry(cmd), reporter: await reporterFor(opts.json) });
        const { outcomeError } = await import('../deploy/bluegreen.js');
        const failed = s.apply.deploy ? outcomeError(s.apply.deploy, project, opts.env) : null;
        if (opts.json) printJson({ ok: !failed, project, env: opts.env, database: s.database, previousDatabase: s.previousDatabase, deploy: s.apply.deploy ?? null });
        else println(`${project} (${opts.env}) ${failed ? 'could not be redeployed with' : 'now uses'} ${s.database}${failed ? `: ${failed.message}` : ''}; ${s.previousDatabase} is kept.`);
        return failed ? failed.exitCode : EXIT.ok;
      }),
    );

  backup
    .command('drop-database')
    .description("Drop a database the project no longer uses (one left behind by restore or switch); never the live one")
    .argument('<project>', 'project id')
    .requiredOption('--database <name>', "a database owned by the project's role, other than the one it uses")
    .option('-e, --env <name>', 'environment', 'production')
    .option('--yes', 'confirm')
    .option('--json', 'print the result as JSON')
    .action((project: string, opts: EnvOpts & { database: string; yes?: boolean }, cmd: Command) =>
      runCommand(opts.json, async () => {
        if (!opts.yes) throw new CodebError(`Dropping ${opts.database} deletes its data; add --yes to confirm.`, { exitCode: EXIT.invalid });
        const { dropOldDatabase } = await import('../ops/backup.js');
        await dropOldDatabase(project, opts.env, opts.database, { registry: globalRegistry(cmd) });
        if (opts.json) printJson({ ok: true, project, env: opts.env, dropped: opts.database });
        else println(`Dropped database ${opts.database}.`);
      }),
    );

  backup
    .command('prune')
    .description('Apply retention now: delete backups older than backup.retentionDays (never the newest good one) and unfinished leftovers')
    .argument('<project>', 'project id')
    .option('-e, --env <name>', 'environment', 'production')
    .option('--json', 'print the result as JSON')
    .action((project: string, opts: EnvOpts, cmd: Command) =>
      runCommand(opts.json, async () => {
        const { pruneBackups } = await import('../ops/backup.js');
        const deleted = await pruneBackups(project, opts.env, { registry: globalRegistry(cmd), reporter: await reporterFor(opts.json) });
        if (opts.json) printJson({ ok: true, project, env: opts.env, deleted });
        else println(deleted.length ? `Deleted ${deleted.length} backup(s).` : 'Nothing to delete.');
      }),
    );

  backup
    .command('timer')
    .description("Print the systemd .service and .timer that run the deployment's backups on a server (from backup.schedule, UTC)")
    .argument('<project>', 'project id')
    .option('-e, --env <name>', 'environment', 'production')
    .option('--codeb <path>', 'the codeb program on the server', SERVER_CODEB)
    .option('--home <path>', 'CODEB_HOME on the server', '/opt/codeb')
    .option('--json', 'print {name, service, timer} as JSON')
    .addHelpText('after', '\nFor a server set up by hand: a server made by `codeb server init` already runs `backup run --due` every 5 minutes\n(its codeb-backups.timer). Install as /etc/systemd/system/<name>.service and .timer, then\n`systemctl enable --now <name>.timer` (docs/backup.md).')
    .action((project: string, opts: EnvOpts & { codeb: string; home: string }, cmd: Command) =>
      runCommand(opts.json, async () => {
        const { backupPolicy } = await import('../ops/backup.js');
        const { backupTimerUnits } = await import('../ops/backup-timer.js');
        const policy = backupPolicy(project, opts.env, { registry: globalRegistry(cmd) });
        const units = backupTimerUnits(project, opts.env, policy.schedule, { codeb: opts.codeb, home: opts.home });
        if (opts.json) return printJson(units);
        println(`# /etc/systemd/system/${units.name}.service`);
        println(units.service);
        println(`# /etc/systemd/system/${units.name}.timer`);
        println(units.timer);
      }),
    );
}
