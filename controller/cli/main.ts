/**
 * The codeb command line. Each command lives in its own file and registers itself here;
 * heavy modules (yaml, ajv, drivers) are imported lazily inside actions so `--help` stays fast.
 */
import { Command } from 'commander';
import { registerInit } from './init.js';
import { registerValidate } from './validate.js';
import { registerRegistry } from './registry.js';
import { registerStack } from './stack.js';
import { registerApply } from './apply.js';
import { registerDestroy } from './destroy.js';
import { registerForwarder } from './forwarder.js';
import { registerDeploy } from './deploy.js';
import { registerSecrets } from './secrets.js';
import { registerBackup } from './backup.js';
import { registerServer } from './server.js';
import { registerMonitor } from './monitor.js';
import { registerJobs } from './jobs.js';
import { addTransportOptions, afterAction, beforeAction, keepRunningWithoutOutput } from './remote.js';

const program = new Command('codeb')
  .description(
    'Declarative private PaaS controller: make servers match a project manifest\n' +
      '(Postgres database, Redis slot, S3 bucket, Caddy route, Podman containers, blue-green deploys).',
  )
  .version(process.env.CODEB_VERSION ?? '0.1.0', '-V, --version')
  .option('--registry <file>', 'registry file (default: $CODEB_REGISTRY or $CODEB_HOME/registry/projects.json)')
  .showHelpAfterError('(run with --help for usage)')
  .addHelpText(
    'after',
    `
Remote servers: plan, apply, deploy, destroy, rollback, history, gc and registry list/inspect/allocate/release
run ON the server (its codeb, registry and services) over SSH when --host or the manifest's servers[].host
is not local (docs/remote.md).
Exit codes: 0 ok, 1 codeb or a service failed (or the SSH connection), 2 invalid input, 3 health gate failed
            (traffic untouched), 4 rolled back after the switch, 10 plan has pending changes.
Docs: docs/manifest.md (every field), docs/remote.md (SSH, servers), docs/ci.md (GitHub Actions), docs/stack.md.`,
  );
addTransportOptions(program);
// Names the running top-level command for dist/codeb.mjs, which keeps a V8 code cache per command
// (scripts/lib/cli-loader.mjs).
program.hook('preAction', (_program, action) => {
  let top = action;
  while (top.parent?.parent) top = top.parent;
  (globalThis as Record<symbol, unknown>)[Symbol.for('codeb.command')] = top.name();
});
program.hook('preAction', beforeAction);
program.hook('postAction', afterAction);

// Before the commands are added, so every subcommand inherits it.
program.exitOverride((err) => {
  // commander's own usage errors (unknown option, missing argument) are invalid input.
  process.exit(err.exitCode === 0 ? 0 : 2);
});

registerInit(program);
registerValidate(program);
registerApply(program);
registerDeploy(program);
registerDestroy(program);
registerSecrets(program);
registerBackup(program);
registerRegistry(program);
registerStack(program);
registerForwarder(program);
registerServer(program);
registerMonitor(program);
registerJobs(program);



if (process.env.CODEB_REMOTE_SESSION === '1') {
  // Started over SSH by another codeb: a dropped connection must not cut a deploy in half.
  keepRunningWithoutOutput();
} else {
  // Output piped into `head` and the like: stop quietly when the reader goes away.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  });
}

// Not awaited: the bundle is CommonJS (scripts/build.mjs), which has no top-level await. A
// rejection still ends the process with its error, as an awaited one did.
void program.parseAsync(process.argv);
