import type { Command } from 'commander';
import { EXIT } from '../errors.js';
import { redactText } from '../redact.js';
import { eprintln, printJson, println, runCommand } from './output.js';
import { globalRegistry } from './registry.js';
import type { ApplyOptions } from '../reconcile/apply.js';

/**
 * Run an apply (apply, deploy, rollback's redeploy, secrets rotate) with progress on stderr, and
 * print one result shape: the summary for people, or the same JSON document for every command.
 */
export async function applyAndPrint(o: Omit<ApplyOptions, 'reporter'>, json: boolean | undefined, banner: string, extra: Record<string, unknown> = {}): Promise<number> {
  const { applyManifest } = await import('../reconcile/apply.js');
  const { renderApplySummary } = await import('../reconcile/render.js');
  const { consoleReporter, silentReporter } = await import('../reconcile/reporter.js');
  if (!json) eprintln(banner);
  let r: Awaited<ReturnType<typeof applyManifest>>;
  try {
    r = await applyManifest({ ...o, reporter: json ? silentReporter : consoleReporter() });
  } catch (err) {
    // A failed first deploy already sent a signed alert: the secret is shown now, not lost.
    const secret = await unshownAlertSecret(o);
    if (secret) process.stderr.write(`${secretLine(secret.project, secret.value)}\n`);
    // A password made before the failure is kept only as a hash: this is its one showing.
    const { takeGeneratedPasswords } = await import('../reconcile/apply.js');
    for (const p of takeGeneratedPasswords()) process.stderr.write(`${passwordLine(p)}\n`);
    throw err;
  }
  const secret = await unshownAlertSecret(o);
  const passwords = r.generatedPasswords ?? [];
  if (json) {
    const { record } = r;
    const doc = {
      ok: true,
      ...extra,
      project: r.project,
      env: r.env,
      applied: r.applied,
      summary: r.summary,
      steps: r.planned,
      durationMs: r.durationMs,
      url: r.url,
      ports: record.ports,
      database: record.database,
      redisDb: record.redisDb,
      buckets: record.buckets,
      envFile: r.envFile,
      notes: r.notes,
      deploy: r.deploy ?? null,
      interrupted: r.interrupted ?? null,
      ...(secret ? { alertSigningSecret: SECRET_PLACEHOLDER } : {}),
      ...(passwords.length ? { generatedPasswords: passwords.map((p, i) => ({ service: p.service, user: p.user, password: `@@generated-password-${i}@@` })) } : {}),
    };
    // Printed past the redaction on purpose, this one time (see ops/alert-secret.ts, reconcile/route-auth-secrets.ts).
    let text = redactText(JSON.stringify(doc, null, 2)).replace(SECRET_PLACEHOLDER, secret?.value ?? '');
    passwords.forEach((p, i) => (text = text.replace(`@@generated-password-${i}@@`, p.password)));
    process.stdout.write(text + '\n');
  } else {
    println(renderApplySummary(r));
    if (secret) process.stdout.write(`${secretLine(secret.project, secret.value)}\n`);
    for (const p of passwords) process.stdout.write(`${passwordLine(p)}\n`);
  }
  return EXIT.ok;
}

const SECRET_PLACEHOLDER = '@@alert-signing-secret@@';

function secretLine(project: string, value: string): string {
  return `Alert signing secret for ${project} (shown only this once; your webhook receiver checks X-Codeb-Signature with it): ${value}`;
}

function passwordLine(p: { service: string; user: string; password: string }): string {
  return `Basic-auth password for ${p.service} (user ${p.user}), shown only this once and kept nowhere (only its bcrypt hash is): ${p.password}`;
}

/** The project's alert signing secret when no command has shown it yet (then marked shown). */
async function unshownAlertSecret(o: Omit<ApplyOptions, 'reporter'>): Promise<{ project: string; value: string } | null> {
  try {
    const { requireManifest } = await import('../manifest/index.js');
    const { resolveDeployment } = await import('../manifest/normalize.js');
    const { takeUnshownAlertSecret } = await import('../ops/alert-secret.js');
    const { registryPath } = await import('../settings.js');
    const project = resolveDeployment(requireManifest(o.manifestFile), o.env).projectId;
    const value = await takeUnshownAlertSecret(registryPath(o.registry), project);
    return value ? { project, value } : null;
  } catch {
    return null;
  }
}

interface Opts {
  env?: string;
  json?: boolean;
}

export function registerApply(program: Command): void {
  program
    .command('plan')
    .description('Show what apply would change, resource by resource, without changing anything')
    .argument('<manifest>', 'manifest file')
    .option('-e, --env <name>', 'environment (default: the primary one)')
    .option('--json', 'print the plan as JSON')
    .addHelpText(
      'after',
      '\nA deploy cut short by an earlier run (killed, connection lost) is shown as a pending "resume" with what apply will do.\nContainers run as servers[].runtime says, decided on the server itself: Quadlet units where systemd is PID 1 and\nPodman >= 4.4, plain systemd units where systemd is PID 1 with an older Podman, else the Podman API (docs/runtime.md).\nExit codes: 0 no changes, 10 changes pending, 2 invalid manifest or a runtime this server cannot run,\n            1 codeb or a service failed (or a resource is blocked).',
    )
    .action((manifest: string, opts: Opts, cmd: Command) =>
      runCommand(opts.json, async () => {
        const { applyManifest } = await import('../reconcile/apply.js');
        const { renderPlan } = await import('../reconcile/render.js');
        const r = await applyManifest({ manifestFile: manifest, env: opts.env, registry: globalRegistry(cmd), planOnly: true });
        if (opts.json) printJson({ ok: true, project: r.project, env: r.env, changed: r.changed, summary: r.summary, actions: r.planned, interrupted: r.interrupted ?? null, notes: r.notes });
        else println(renderPlan(r));
        return r.changed ? EXIT.pending : EXIT.ok;
      }),
    );

  program
    .command('apply')
    .description('Make the servers match the manifest: allocate, then Postgres, Redis, storage, env file, Caddy route, registry')
    .argument('<manifest>', 'manifest file')
    .option('-e, --env <name>', 'environment (default: the primary one)')
    .option('--json', 'print the result as JSON (progress is not shown)')
    .addHelpText(
      'after',
      '\nSafe to re-run: an unchanged manifest changes nothing. Progress goes to stderr, the summary to stdout.\nA basic-auth password codeb generates (services.<s>.auth.basic.generate) is printed once, after the summary\n(--json: generatedPasswords); only its bcrypt hash is kept.\nA deploy cut short by an earlier run is finished first: verified through Caddy and watched for the rest of its\nwindow (rolled back on failure), or its half-started slot removed when traffic had not moved yet.\nWith the quadlet and systemd runtimes every slot container is a systemd unit: the live and the retained slot start\nagain at boot, the unit of a removed slot is deleted (docs/runtime.md, "After a reboot").\nExit codes: 0 applied or nothing to do, 2 invalid manifest or a runtime this server cannot run (nothing changed),\n            1 codeb or a service failed, 3 health gate failed, 4 rolled back after the switch.',
    )
    .action((manifest: string, opts: Opts, cmd: Command) =>
      runCommand(opts.json, async () => {
        return applyAndPrint({ manifestFile: manifest, env: opts.env, registry: globalRegistry(cmd) }, opts.json, `Applying ${manifest}${opts.env ? ` (${opts.env})` : ''}`);
      }),
    );
}
