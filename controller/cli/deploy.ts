import type { Command } from 'commander';
import { CodebError, EXIT } from '../errors.js';
import { eprintln, printJson, println, runCommand } from './output.js';
import { globalRegistry } from './registry.js';
import { applyAndPrint } from './apply.js';

const collect = (v: string, prev: string[]) => [...prev, v];

export function registerDeploy(program: Command): void {
  program
    .command('deploy')
    .description('Deploy a new image blue-green: apply the manifest with the image(s) replaced (what CI runs)')
    .argument('<manifest>', 'manifest file')
    .option('-i, --image <ref>', 'new image: `ref` (replaces the image of every service with the same repository) or `service=ref`; repeatable', collect, [])
    .option('-e, --env <name>', 'environment (default: the primary one)')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
A deploy cut short by an earlier run is finished first (see \`codeb apply --help\`).
Exit codes: 0 deployed (or nothing to change), 1 codeb or a service failed, 2 invalid manifest or --image,
            3 health gate failed and traffic untouched, 4 rolled back after the switch.
Example: codeb deploy project.yaml --image ghcr.io/org/app:$GITHUB_SHA --env production`,
    )
    .action((manifest: string, opts: { image: string[]; env?: string; json?: boolean }, cmd: Command) =>
      runCommand(opts.json, async () => {
        if (!opts.image.length) throw new CodebError('deploy needs at least one --image.', { exitCode: EXIT.invalid, hint: 'Use `codeb apply` to apply the manifest as written.' });
        return applyAndPrint(
          { manifestFile: manifest, env: opts.env, registry: globalRegistry(cmd), images: opts.image },
          opts.json,
          `Deploying ${opts.image.join(', ')} with ${manifest}${opts.env ? ` (${opts.env})` : ''}`,
        );
      }),
    );

  program
    .command('rollback')
    .description('Back to the previous version: one switch to the retained slot, or a redeploy of an earlier image from history')
    .argument('<project>', 'project id')
    .option('-e, --env <name>', 'environment', 'production')
    .option('--to <version>', 'redeploy this earlier version (a version or image tag from `codeb history`)')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      '\nWithout --to: switches traffic back to the retained slot (instant); when that slot is gone (after `codeb gc` or its\nkeepPrevious window), redeploys the newest earlier image from history with the last applied manifest.\nDuring a deploy cut short by an earlier run (killed, connection lost): traffic goes (or stays) on the slot that served\nbefore it, the new version containers are removed and the deploy is recorded as ended.\nExit codes as for deploy: 0, 1, 3 health gate failed (traffic untouched), 4 rolled back.',
    )
    .action((project: string, opts: { env: string; to?: string; json?: boolean }, cmd: Command) =>
      runCommand(opts.json, async () => {
        const { rollback, NoRetainedSlotError, chooseEarlierDeploy } = await import('../deploy/rollback.js');
        if (!opts.to) {
          try {
            const r = await rollback({ project, env: opts.env, registry: globalRegistry(cmd) });
            if (opts.json) printJson({ ok: true, mode: r.interrupted ? 'end-interrupted' : 'switch', ...r });
            else if (r.interrupted) {
              const i = r.interrupted;
              println(
                `Rolled back ${project} (${opts.env}): ${i.text}; ${i.trafficMoved ? `traffic ${r.from} -> ${r.to} in ${r.switchMs.toFixed(1)} ms` : `traffic had stayed on ${r.to}`}, ${i.removed} container(s) of ${i.version} removed from the ${i.slot} slot; the deploy is ended.`,
              );
            } else println(`Rolled back ${project} (${opts.env}): traffic ${r.from} -> ${r.to} in ${r.switchMs.toFixed(1)} ms (${Object.entries(r.images).map(([s, i]) => `${s} ${i}`).join(', ') || 'previous images'}).`);
            return EXIT.ok;
          } catch (err) {
            if (!(err instanceof NoRetainedSlotError)) throw err;
            if (!opts.json) eprintln(`${err.message} Redeploying the earlier image instead.`);
          }
        }
        const { registryPath } = await import('../settings.js');
        const { readRegistryFile } = await import('../registry/store.js');
        const { requireDeployment } = await import('../registry/records.js');
        const { storedManifestPath, hasStoredManifest } = await import('../reconcile/manifest-store.js');
        const file = registryPath(globalRegistry(cmd));
        const rec = requireDeployment(readRegistryFile(file), file, project, opts.env);
        const choice = chooseEarlierDeploy(rec, opts.to);
        if (!hasStoredManifest(file, project, opts.env)) {
          throw new CodebError(`No applied manifest is stored for ${project} (${opts.env}).`, { hint: `Deploy the earlier image yourself: codeb deploy <manifest> ${Object.entries(choice.images).map(([s, i]) => `--image ${s}=${i}`).join(' ')}` });
        }
        return applyAndPrint(
          {
            manifestFile: storedManifestPath(file, project, opts.env),
            env: opts.env,
            registry: globalRegistry(cmd),
            images: Object.entries(choice.images).map(([s, i]) => `${s}=${i}`),
          },
          opts.json,
          `Redeploying ${project} (${opts.env}) version ${choice.version} from ${choice.at}`,
          { mode: 'redeploy', version: choice.version, images: choice.images },
        );
      }),
    );

  program
    .command('history')
    .description('Deploys, rollbacks and applies of a project: who, when, image, result, health timings, switch time')
    .argument('<project>', 'project id')
    .option('-e, --env <name>', 'environment', 'production')
    .option('--json', 'print as JSON')
    .action((project: string, opts: { env: string; json?: boolean }, cmd: Command) =>
      runCommand(opts.json, async () => {
        const { registryPath } = await import('../settings.js');
        const { readRegistryFile } = await import('../registry/store.js');
        const { requireDeployment } = await import('../registry/records.js');
        const file = registryPath(globalRegistry(cmd));
        const rec = requireDeployment(readRegistryFile(file), file, project, opts.env);
        if (opts.json) return void printJson({ project, env: opts.env, history: rec.history });
        if (!rec.history.length) return void println('No history yet.');
        for (const h of rec.history) {
          const d = (h.detail ?? {}) as Record<string, unknown>;
          const parts = [h.at, h.action.padEnd(8), h.result.padEnd(11), `by ${h.by}`];
          if (d.version) parts.push(`version ${String(d.version)}`);
          if (d.from !== undefined || d.to !== undefined) parts.push(`${String(d.from ?? 'none')} -> ${String(d.to)}`);
          if (typeof d.switchMs === 'number') parts.push(`switch ${d.switchMs} ms`);
          if (Array.isArray(d.health)) parts.push(`health ${(d.health as Array<{ service: string; ms: number }>).map((x) => `${x.service} ${x.ms} ms`).join(', ')}`);
          if (d.resumed) parts.push(`resumed (cut short at "${String((d.resumed as { phase?: string }).phase)}")`);
          if (h.result !== 'ok' && d.reason) parts.push(`: ${String(d.reason)}`);
          println(parts.join('  '));
        }
      }),
    );

  program
    .command('gc')
    .description('Stop previous slots whose keepPrevious window has passed (closing their long-lived connections)')
    .option('--now', 'retire every retained slot now, whatever its window')
    .option('--json', 'print as JSON')
    .action((opts: { now?: boolean; json?: boolean }, cmd: Command) =>
      runCommand(opts.json, async () => {
        const { gc } = await import('../deploy/rollback.js');
        const r = await gc({ registry: globalRegistry(cmd), force: opts.now });
        if (opts.json) printJson({ ok: true, ...r });
        else if (!r.retired.length) println('Nothing to retire.');
        else for (const x of r.retired) println(`Retired ${x.project} (${x.env}) ${x.slot}: ${x.containers} container(s) stopped, ${x.streamsClosed} open connection(s) closed.`);
      }),
    );
}
