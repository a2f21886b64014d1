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
        const { FACTS_SCRIPT, assessServer, parseCodebFacts, parseShellFacts, renderChecks } = await import('../server/check.js');
        const { installRoot } = await import('../install-root.js');
        const target = parseTarget(targetText);
        const t = cmd.parent!.parent!.opts<TransportOptions>();
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
          codebCommand = remoteCodebCommand(t.remoteCodeb);
          const session = await SshSession.open(target, { identityFile: t.identity });
          try {
            const r = await session.exec(['sh', '-c', FACTS_SCRIPT, 'codeb-check', 'env', `${REMOTE_SESSION_ENV}=1`, ...codebCommand]);
            if (r.code === null) throw new CodebError(`Lost the connection to ${target.display} during the check (${session.lostReason}).`, { hint: 'Run the check again.' });
            output = r.stdout;
          } finally {
            session.close();
          }
        }
        const facts = parseShellFacts(output);
        const codeb = parseCodebFacts(facts.codeb_facts);
        const checks = assessServer(facts, codeb, { target, codebCommand: codebCommand.join(' '), localInstall: installRoot() });
        const gaps = checks.filter((c) => c.status === 'missing').length;
        const name = target === 'local' ? 'this machine' : target.display;
        if (opts.json) {
          const { codeb_facts: _raw, ...shell } = facts;
          printJson({ target: name, ok: gaps === 0, checks, facts: { ...shell, codeb } });
        } else {
          println(renderChecks(`Server ${name}${facts.distro ? ` (${facts.distro}, ${facts.os})` : facts.os ? ` (${facts.os})` : ''}${facts.user ? `, as ${facts.user}` : ''}:`, checks));
        }
        return gaps ? EXIT.failure : EXIT.ok;
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
