/**
 * Where a command runs, decided before its action: commands that touch a server run on that
 * server's own codeb over SSH when the target (--host, or the manifest environment's
 * servers[].host) is not `local`. The command's own arguments are forwarded as an argument array
 * (manifest uploaded, --host and the SSH options removed) and the remote exit code becomes ours.
 * Also the GitHub Actions glue of plan/apply/deploy: manifest annotations and the step summary.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { hostname, tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import type { Command, Option } from 'commander';
import { CodebError, EXIT } from '../errors.js';
import type { Deployment } from '../manifest/types.js';
import { commandFailure, reportError } from './output.js';

/** Commands that act on a server, by path; the first argument of MANIFEST_COMMANDS is a manifest. */
const REMOTE_COMMANDS = new Set(['plan', 'apply', 'deploy', 'destroy', 'rollback', 'history', 'gc', 'registry list', 'registry inspect', 'registry allocate', 'registry release', 'secrets rotate', 'backup run', 'backup list', 'backup verify', 'backup restore', 'backup switch', 'backup drop-database', 'backup prune']);
const MANIFEST_COMMANDS = new Set(['plan', 'apply', 'deploy', 'registry allocate']);
const SUMMARY_COMMANDS = new Set(['apply', 'deploy']);
/** Global options that choose and reach the server; never forwarded to it. */
const TRANSPORT_OPTIONS = new Set(['host', 'identity', 'remoteCodeb']);

export interface TransportOptions {
  host?: string;
  identity?: string;
  remoteCodeb?: string;
}

export function addTransportOptions(program: Command): void {
  program
    .option('-H, --host <target>', "run on this server over SSH: user@host[:port], or local (default: the manifest environment's servers[].host, else local)")
    .option('--identity <file>', 'SSH private key file (default: the SSH agent, $CODEB_SSH_KEY_FILE, $CODEB_SSH_KEY, ~/.ssh/id_*)')
    .option('--remote-codeb <path>', "codeb on the server, run with the server's node (default: /opt/codeb/bin/codeb.js; $CODEB_REMOTE_COMMAND replaces the whole command)");
}

function rootOf(cmd: Command): Command {
  let root = cmd;
  while (root.parent) root = root.parent;
  return root;
}

export function commandPath(cmd: Command): string[] {
  const names: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) names.unshift(c.name());
  return names;
}

/** The options given on the command line, back as arguments (`--name=value`, repeated for lists). */
export function explicitOptionArgs(cmd: Command, skip: Set<string> = new Set()): string[] {
  const out: string[] = [];
  for (const o of cmd.options as readonly Option[]) {
    const key = o.attributeName();
    if (skip.has(key) || cmd.getOptionValueSource(key) !== 'cli') continue;
    const flag = o.long ?? o.short!;
    const v: unknown = cmd.getOptionValue(key);
    if (typeof v === 'boolean') {
      if (o.negate ? !v : v) out.push(flag);
    } else if (Array.isArray(v)) {
      for (const item of v) out.push(`${flag}=${String(item)}`);
    } else if (v !== undefined) {
      out.push(`${flag}=${String(v)}`);
    }
  }
  return out;
}

/** The argv the server's codeb gets: global options, command path, options, `--`, positionals. */
export function forwardedArgs(actionCommand: Command, positionals: unknown[]): string[] {
  const root = rootOf(actionCommand);
  const pos = positionals.flatMap((p) => (Array.isArray(p) ? p.map(String) : p === undefined ? [] : [String(p)]));
  return [...explicitOptionArgs(root, TRANSPORT_OPTIONS), ...commandPath(actionCommand), ...explicitOptionArgs(actionCommand), '--', ...pos];
}

interface RunContext {
  command: string;
  manifest?: string;
  deployment?: Deployment;
  registry?: string;
  startedAt: Date;
  where: string;
}
let context: RunContext | null = null;
let cleanup: string | null = null;

const githubActions = () => process.env.GITHUB_ACTIONS === 'true';
const summaryWanted = (command: string) => SUMMARY_COMMANDS.has(command) && githubActions() && Boolean(process.env.GITHUB_STEP_SUMMARY);

/** Load the manifest (annotating problems under GitHub Actions) and resolve the environment. */
async function loadDeployment(file: string, env: string | undefined): Promise<Deployment> {
  const { checkManifest, requireManifest } = await import('../manifest/index.js');
  const checked = checkManifest(file);
  if (!checked.manifest) {
    if (githubActions()) {
      const { annotation } = await import('./github.js');
      for (const i of checked.issues) process.stdout.write(annotation(i) + '\n');
    }
    requireManifest(file); // throws the usual "not a valid manifest" error, exit code 2
  }
  const { resolveDeployment } = await import('../manifest/normalize.js');
  return resolveDeployment(checked.manifest!, env);
}

/** preAction: decide where the command runs; run it remotely (and exit) or let it run here. */
export async function beforeAction(_program: Command, actionCommand: Command): Promise<void> {
  const path = commandPath(actionCommand).join(' ');
  const root = rootOf(actionCommand);
  const t = root.opts<TransportOptions>();
  const json = Boolean(actionCommand.opts<{ json?: boolean }>().json);
  if (!REMOTE_COMMANDS.has(path)) {
    if (t.host !== undefined && path !== 'server check') {
      process.exitCode = reportError(new CodebError(`--host does not apply to \`codeb ${path}\`.`, { exitCode: EXIT.invalid, hint: `It applies to: ${[...REMOTE_COMMANDS].join(', ')}.` }), json);
      process.exit();
    }
    return;
  }
  const onServer = process.env.CODEB_REMOTE_SESSION === '1';
  const registry = root.opts<{ registry?: string }>().registry;
  context = { command: path, startedAt: new Date(), where: (onServer && process.env.CODEB_SUMMARY_WHERE) || `${userInfo().username}@${hostname()}`, registry };
  try {
    const { parseTarget } = await import('../transport/target.js');
    const manifestFile = MANIFEST_COMMANDS.has(path) ? String(actionCommand.processedArgs[0]) : undefined;
    context.manifest = (onServer && process.env.CODEB_SUMMARY_MANIFEST) || manifestFile;
    const deployment = manifestFile ? await loadDeployment(manifestFile, actionCommand.opts<{ env?: string }>().env) : undefined;
    context.deployment = deployment;
    const target = onServer ? 'local' : parseTarget(t.host ?? deployment?.server.host ?? 'local');

    if (target === 'local') {
      // Running here while the manifest names another host for this environment: this machine is
      // that server (we were reached over SSH, or --host local said so).
      if (manifestFile && deployment && deployment.server.host !== 'local') {
        const { targetedCopy } = await import('../transport/target-manifest.js');
        cleanup = mkdtempSync(join(tmpdir(), 'codeb-target-'));
        actionCommand.processedArgs[0] = targetedCopy(manifestFile, deployment.server.name, cleanup);
      }
      return;
    }

    context.where = `${target.display} (over SSH)`;
    const { runRemote, UPLOADED_MANIFEST } = await import('../transport/remote.js');
    const positionals = [...actionCommand.processedArgs];
    if (manifestFile) positionals[0] = UPLOADED_MANIFEST;
    const remoteEnv: Record<string, string> = {};
    if (githubActions()) remoteEnv.GITHUB_ACTIONS = 'true';
    if (summaryWanted(path)) {
      // For the server-side step summary: where it ran and which manifest, as the user sees them.
      remoteEnv.CODEB_SUMMARY_WHERE = `${target.display} (over SSH)`;
      if (manifestFile) remoteEnv.CODEB_SUMMARY_MANIFEST = manifestFile;
    }
    if (process.env.CODEB_DEBUG) remoteEnv.CODEB_DEBUG = process.env.CODEB_DEBUG;
    const r = await runRemote(target, forwardedArgs(actionCommand, positionals), {
      upload: manifestFile ? { localFile: manifestFile, as: 'manifest' } : undefined,
      identityFile: t.identity,
      remoteCodeb: t.remoteCodeb,
      remoteEnv,
      stepSummary: summaryWanted(path),
    });
    let code = r.code;
    if (code === null) {
      code = reportError(
        new CodebError(`Lost the connection to ${target.display} after ${(r.durationMs / 1000).toFixed(1)} s, while \`codeb ${path}\` was running there (${r.lostReason}).`, {
          hint:
            'The server-side codeb goes on to the end of the command on its own: it holds the registry lock and records every step. ' +
            `See what it did with \`codeb history <project> --host ${target.display}\`; running the same command again converges.`,
        }),
        json,
      );
    }
    if (summaryWanted(path)) {
      const { appendStepSummary, renderStepSummary } = await import('./github-summary.js');
      if (r.summary.trim()) appendStepSummary(r.summary);
      else appendStepSummary(renderStepSummary({ ...summaryBase(), exitCode: code, error: commandFailure()?.message, history: [] }));
    }
    await flushAndExit(code);
  } catch (err) {
    const code = reportError(err, json);
    if (summaryWanted(path)) {
      const { appendStepSummary, renderStepSummary } = await import('./github-summary.js');
      appendStepSummary(renderStepSummary({ ...summaryBase(), exitCode: code, error: commandFailure()?.message ?? (err instanceof Error ? err.message : String(err)), history: [] }));
    }
    await flushAndExit(code);
  }
}

function summaryBase() {
  const c = context!;
  return {
    command: c.command,
    manifest: c.manifest,
    project: c.deployment?.projectId,
    env: c.deployment?.env,
    where: c.where,
    durationMs: Date.now() - c.startedAt.getTime(),
  };
}

/** postAction: the step summary of a local apply/deploy, from the registry entries this run wrote. */
export async function afterAction(): Promise<void> {
  if (cleanup) rmSync(cleanup, { recursive: true, force: true });
  if (!context || !summaryWanted(context.command)) return;
  const { appendStepSummary, renderStepSummary } = await import('./github-summary.js');
  const d = context.deployment;
  let history: import('../registry/types.js').HistoryEntry[] = [];
  let url: string | null = null;
  if (d) {
    try {
      const { registryPath, loadSettings } = await import('../settings.js');
      const { readRegistryFile } = await import('../registry/store.js');
      const rec = readRegistryFile(registryPath(context.registry)).projects[d.projectId]?.environments[d.env];
      const since = context.startedAt.toISOString();
      history = (rec?.history ?? []).filter((h) => h.at >= since);
      const { deploymentUrl } = await import('../reconcile/apply.js');
      if (d.services.some((s) => s.type === 'web')) url = deploymentUrl(d, loadSettings());
    } catch {
      // The summary shows what is known; the command's own exit code and output stand.
    }
  }
  const code = typeof process.exitCode === 'number' ? process.exitCode : Number(process.exitCode ?? 0);
  appendStepSummary(renderStepSummary({ ...summaryBase(), exitCode: code, error: commandFailure()?.message, history, url }));
}

async function flushAndExit(code: number): Promise<never> {
  await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
  await new Promise<void>((resolve) => process.stderr.write('', () => resolve()));
  if (cleanup) rmSync(cleanup, { recursive: true, force: true });
  process.exit(code);
}

/**
 * On the server, reached over SSH: if the connection drops, finish the command anyway (its
 * output has nowhere to go) instead of dying half-way through a deploy on EPIPE or SIGHUP.
 */
export function keepRunningWithoutOutput(): void {
  const ignore = () => {};
  process.on('SIGHUP', ignore);
  for (const s of [process.stdout, process.stderr]) {
    s.on('error', () => {
      // Writes after this go nowhere; the registry records what happened.
      s.write = (() => true) as typeof s.write;
    });
  }
}

