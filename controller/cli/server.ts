import type { Command } from 'commander';
import { CodebError, EXIT } from '../errors.js';
import { printJson, println, runCommand } from './output.js';
import { globalRegistry } from './registry.js';
import type { TransportOptions } from './remote.js';

export function registerServer(program: Command): void {
  const server = program.command('server').description('Servers codeb deploys to');

  server
    .command('check')
    .description('What a server has and lacks for codeb (node, codeb, podman, systemd, caddy, postgres, redis, MinIO/S3, free ports), with the command that fixes each gap')
    .argument('<target>', 'user@host[:port] (over SSH) or local')
    .option('--json', 'print the checks as JSON')
    .addHelpText('after', '\nExit codes: 0 nothing missing (warnings allowed), 1 gaps found or the server could not be reached, 2 invalid target.\nSSH: see `codeb --help` (--identity, --remote-codeb) and docs/remote.md.')
    .action((targetText: string, opts: { json?: boolean }, cmd: Command) =>
      runCommand(opts.json, async () => {
        const { parseTarget } = await import('../transport/target.js');
        const target = parseTarget(targetText);
        const r = await checkServer(target, cmd.parent!.parent!.opts<TransportOptions>());
        if (opts.json) printJson(r.json);
        else println(r.text);
        return r.gaps ? EXIT.failure : EXIT.ok;
      }),
    );

  server
    .command('init')
    .description('Make a fresh Debian 12, Debian 13 or Ubuntu 24.04 server ready for codeb, idempotently (Debian 12 and Ubuntu 24.04 ship Node 18: install Node 20+ there first, e.g. from NodeSource): install what is missing (Podman, Caddy, PostgreSQL, Redis, Node, RADOS Gateway where radosgw 17+ is offered) with apt-get, install this codeb in /opt/codeb, run the shared services as systemd units, write /opt/codeb/settings.json; ends with `server check`')
    .argument('<target>', 'user@host[:port] (over SSH; root, or a user with passwordless sudo) or local')
    .option('--dry-run', 'list the steps init would take and change nothing')
    .option('--json', 'print the report (steps taken and the final checks) as JSON; progress goes to stderr')
    .addHelpText(
      'after',
      [
        '',
        'Steps (each only when needed; a second run on a ready server changes nothing):',
        '  1. apt-get install --no-install-recommends the missing packages (apt-get update only when one has no candidate)',
        '  2. upload this codeb (built CLI + production node_modules, no build on the server) to /opt/codeb',
        '  3. `codeb server setup` on the server, as root: the services address interface (codeb-network),',
        '     codeb-postgres (SCRAM), codeb-redis (ACLs, RDB), codeb-s3 (the MinIO stand-in, see below),',
        '     codeb-forwarder and codeb-caddy (admin API on a Unix socket; ports 80/443) as systemd units,',
        '     podman.socket, generated admin credentials in /opt/codeb/settings.json (0600; never printed), and the',
        '     timers of the periodic work: codeb-monitor and codeb-jobs (due jobs) every minute, codeb-backups',
        '     (due backups) every 5 minutes',
        '  4. `codeb server check`: every line ok',
        '',
        'Object storage (printed as `object storage: <kind> (<why>)`; MinIO is not packaged):',
        '  radosgw  where the distribution offers radosgw 17+ (Debian 13, Ubuntu 24.04): dbstore backend,',
        '           a key per deployment, bucket policies, lifecycle',
        '  s3rver   where it offers an older one (Debian 12: 16.2, no dbstore): one key shared by every',
        '           project, no policies or lifecycle; its key only in settings.json and a root-only file.',
        '           A server on s3rver keeps it (its buckets are there).',
        '',
        'Exit codes: 0 ready, 1 a step failed (unsupported distribution, no root/sudo, apt failure, a service that does not start), 2 invalid target.',
        'SSH: see `codeb --help` (--identity, --remote-codeb) and docs/remote.md.',
      ].join('\n'),
    )
    .action((targetText: string, opts: { json?: boolean; dryRun?: boolean }, cmd: Command) =>
      runCommand(opts.json, async () => {
        const { parseTarget } = await import('../transport/target.js');
        const { serverInit, sshRunner, localRunner } = await import('../server/init.js');
        const { remoteCodebCommand } = await import('../transport/remote.js');
        const target = parseTarget(targetText);
        const t = cmd.parent!.parent!.opts<TransportOptions>();
        const progress = (line: string) => (opts.json ? process.stderr : process.stdout).write(`${line}\n`);
        let session: import('../transport/ssh.js').SshSession | undefined;
        if (target !== 'local') {
          const { SshSession } = await import('../transport/ssh.js');
          session = await SshSession.open(target, { identityFile: t.identity });
        }
        try {
          const report = await serverInit({
            target,
            runner: session ? sshRunner(session) : localRunner(),
            dryRun: opts.dryRun,
            progress,
            remoteCodeb: target === 'local' ? [process.execPath, '/opt/codeb/bin/codeb.js'] : remoteCodebCommand(t.remoteCodeb),
          });
          if (opts.dryRun) {
            if (opts.json) printJson(report);
            return EXIT.ok;
          }
          // Over the same SSH connection. A sudo user's codeb reads root's settings.json and Podman
          // socket through sudo, as init did.
          const check = await checkServer(target, t, report.become === 'sudo', session);
          if (opts.json) printJson({ ...report, ok: check.gaps === 0, checks: check.json.checks });
          else println(check.text);
          return check.gaps ? EXIT.failure : EXIT.ok;
        } finally {
          session?.close();
        }
      }),
    );

  server
    .command('setup', { hidden: true })
    .description('The server half of `server init` (run there as root): shared services as systemd units, settings.json')
    .option('--dry-run', 'print the steps and change nothing')
    .option('--json', 'print the steps as JSON on stdout (progress on stderr)')
    .option('--disable-distro <units>', 'comma-separated distribution services init installed (postgresql,redis-server,caddy): stopped and disabled')
    .option('--code-changed', 'codeb was just updated: restart the forwarder')
    .option('--storage <kind>', 'the object storage stand-in init chose: radosgw (17+, dbstore) or s3rver', 'radosgw')
    .action((opts: { dryRun?: boolean; json?: boolean; disableDistro?: string; codeChanged?: boolean; storage: string }) =>
      runCommand(opts.json, async () => {
        const { runSetup } = await import('../server/setup.js');
        const allowed = new Set(['postgresql', 'redis-server', 'caddy']);
        const disable = (opts.disableDistro ?? '').split(',').filter(Boolean);
        const bad = disable.filter((d) => !allowed.has(d));
        if (bad.length) throw new CodebError(`--disable-distro takes postgresql, redis-server and caddy, not ${bad.join(', ')}.`, { exitCode: EXIT.invalid });
        if (opts.storage !== 'radosgw' && opts.storage !== 's3rver') throw new CodebError(`--storage takes radosgw or s3rver, not ${JSON.stringify(opts.storage)}.`, { exitCode: EXIT.invalid });
        const say = (line: string) => (opts.json ? process.stderr : process.stdout).write(`${line}\n`);
        const started = new Map<string, number>();
        const r = await runSetup({
          dryRun: opts.dryRun,
          disableDistro: disable,
          codeChanged: opts.codeChanged,
          storage: opts.storage,
          onStep: (s, state) => {
            if (state === 'doing') started.set(s.target, Date.now());
            else say(`${s.target}: ${s.action} (${s.why}) ... done ${((Date.now() - (started.get(s.target) ?? Date.now())) / 1000).toFixed(1)}s`);
          },
        });
        if (opts.json) printJson(r);
        else if (!r.steps.length) say('nothing to do');
        else if (opts.dryRun) for (const s of r.steps) say(`would ${s.action} ${s.target} (${s.why})`);
      }),
    );

  server
    .command('facts', { hidden: true })
    .description('JSON facts about this machine for `server check` (settings, service reachability, free ports)')
    .action((_opts: unknown, cmd: Command) =>
      runCommand(true, async () => {
        const { gatherFacts } = await import('../server/facts.js');
        printJson(await gatherFacts(globalRegistry(cmd)));
      }),
    );
}

interface CheckRun {
  gaps: number;
  text: string;
  json: { target: string; ok: boolean; checks: import('../server/check.js').Check[]; facts: unknown };
}

/** `server check` (also the end of `server init`, on init's open `session`): facts from the server, the checks, rendered. */
async function checkServer(target: import('../transport/target.js').Target, t: TransportOptions, sudo = false, open?: import('../transport/ssh.js').SshSession): Promise<CheckRun> {
  const { FACTS_SCRIPT, assessServer, parseCodebFacts, parseShellFacts, renderChecks } = await import('../server/check.js');
  const { installRoot } = await import('../install-root.js');
  let output: string;
  let codebCommand: string[];
  if (target === 'local') {
    codebCommand = [process.execPath, process.argv[1]!];
    const { spawnSync } = await import('node:child_process');
    const r = spawnSync('/bin/sh', ['-c', FACTS_SCRIPT, 'codeb-check', ...codebCommand], { encoding: 'utf8', timeout: 60_000 });
    output = r.stdout ?? '';
  } else {
    const { REMOTE_SESSION_ENV, remoteCodebCommand } = await import('../transport/remote.js');
    const { SshSession } = await import('../transport/ssh.js');
    codebCommand = [...(sudo ? ['sudo', '-n'] : []), ...remoteCodebCommand(t.remoteCodeb)];
    const session = open ?? (await SshSession.open(target, { identityFile: t.identity }));
    try {
      const r = await session.exec(['sh', '-c', FACTS_SCRIPT, 'codeb-check', ...(sudo ? ['sudo', '-n'] : []), 'env', `${REMOTE_SESSION_ENV}=1`, ...remoteCodebCommand(t.remoteCodeb)]);
      if (r.code === null) throw new CodebError(`Lost the connection to ${target.display} during the check (${session.lostReason}).`, { hint: 'Run the check again.' });
      output = r.stdout;
    } finally {
      if (!open) session.close();
    }
  }
  const facts = parseShellFacts(output);
  const codeb = parseCodebFacts(facts.codeb_facts);
  const checks = assessServer(facts, codeb, { target, codebCommand: codebCommand.join(' '), localInstall: installRoot() });
  const gaps = checks.filter((c) => c.status === 'missing').length;
  const name = target === 'local' ? 'this machine' : target.display;
  const { codeb_facts: _raw, ...shell } = facts;
  return {
    gaps,
    text: renderChecks(`Server ${name}${facts.distro ? ` (${facts.distro}, ${facts.os})` : facts.os ? ` (${facts.os})` : ''}${facts.user ? `, as ${facts.user}` : ''}:`, checks),
    json: { target: name, ok: gaps === 0, checks, facts: { ...shell, codeb } },
  };
}
