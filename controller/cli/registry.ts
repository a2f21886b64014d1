import type { Command } from 'commander';
import { CodebError, EXIT } from '../errors.js';
import { printJson, println, runCommand } from './output.js';
import { formatSlotPorts } from '../registry/slot-ports.js';

interface Opts {
  json?: boolean;
  env?: string;
  all?: boolean;
}

/** The global --registry option, from any subcommand. */
export function globalRegistry(cmd: Command): string | undefined {
  // --registry is a global option on the root program.
  let root: Command = cmd;
  while (root.parent) root = root.parent;
  return root.opts<{ registry?: string }>().registry;
}

export function registerRegistry(program: Command): void {
  const reg = program
    .command('registry')
    .description('Show what the registry holds: ports, Redis DBs, databases, buckets, domains, containers, health, history');

  reg
    .command('list')
    .description('One line per project environment')
    .option('--all', 'also list the data kept by destroyed deployments (tombstones; `destroy <project> --delete-data` removes it)')
    .option('--json', 'print as JSON')
    .action((opts: Opts, cmd: Command) =>
      runCommand(opts.json, async () => {
        const { registryPath } = await import('../settings.js');
        const { readRegistryFile } = await import('../registry/store.js');
        const { listRows, renderTable, tombstoneRows } = await import('../registry/view.js');
        const file = registryPath(globalRegistry(cmd));
        const doc = readRegistryFile(file);
        const rows = listRows(doc);
        const kept = tombstoneRows(doc);
        if (opts.json) printJson({ registry: file, deployments: rows, ...(opts.all ? { tombstones: doc.tombstones ?? [] } : {}) });
        else if (rows.length === 0 && !(opts.all && kept.length)) println(`No projects in ${file}.${kept.length ? ` Kept data of ${kept.length} destroyed deployment(s): registry list --all.` : ''}`);
        else {
          println(renderTable(opts.all ? [...rows, ...kept] : rows));
          if (!opts.all && kept.length) println(`\n${kept.length} destroyed deployment(s) left data behind: registry list --all shows them.`);
        }
      }),
    );

  reg
    .command('inspect')
    .description('Everything the registry knows about one project (secrets are never shown)')
    .argument('<project>', 'project id')
    .option('-e, --env <name>', 'only this environment')
    .option('--json', 'print as JSON')
    .action((project: string, opts: Opts, cmd: Command) =>
      runCommand(opts.json, async () => {
        const { registryPath } = await import('../settings.js');
        const { readRegistryFile } = await import('../registry/store.js');
        const { inspectView, renderInspect } = await import('../registry/view.js');
        const file = registryPath(globalRegistry(cmd));
        const doc = readRegistryFile(file);
        const rec = doc.projects[project];
        if (!rec) {
          const known = Object.keys(doc.projects).sort();
          throw new CodebError(`No project "${project}" in ${file}.`, { hint: known.length ? `Known projects: ${known.join(', ')}.` : 'The registry is empty: `codeb apply <manifest>` adds projects.' });
        }
        if (opts.env && !rec.environments[opts.env]) {
          throw new CodebError(`Project "${project}" has no environment "${opts.env}" in the registry.`, { hint: `It has: ${Object.keys(rec.environments).join(', ') || 'none'}.` });
        }
        const view = inspectView(rec, opts.env);
        // Say how the project's buckets are accessed: per-project keys need a real MinIO admin API.
        let storage: { perProjectKeys: boolean; note: string } | undefined;
        if (Object.values(view.environments).some((e) => e.buckets?.length)) {
          try {
            const { loadSettings } = await import('../settings.js');
            const { storageCapabilities } = await import('../providers/storage.js');
            const caps = storageCapabilities(loadSettings());
            storage = { perProjectKeys: caps.perProjectKeys, note: caps.note };
          } catch {
            storage = undefined; // no settings here: nothing to say about the storage server
          }
        }
        if (opts.json) printJson(storage ? { ...view, storage } : view);
        else println(renderInspect(view) + (storage ? `\n\nstorage access: ${storage.note}` : ''));
      }),
    );

  reg
    .command('allocate')
    .description("Reserve a manifest's ports and Redis slot without provisioning anything (the first step of apply)")
    .argument('<manifest>', 'manifest file')
    .option('-e, --env <name>', 'environment (default: the primary one)')
    .option('--json', 'print as JSON')
    .action((manifest: string, opts: Opts, cmd: Command) =>
      runCommand(opts.json, async () => {
        const { allocateForManifest } = await import('../registry/allocate-manifest.js');
        const rec = await allocateForManifest(manifest, opts.env, globalRegistry(cmd));
        if (opts.json) printJson(rec);
        else {
          println(`Allocated ${rec.project} (${rec.env}) in ${rec.registry}`);
          for (const [svc, p] of Object.entries(rec.ports)) println(`  ${svc}: blue ${formatSlotPorts(p, 'blue')}, green ${formatSlotPorts(p, 'green')}`);
          println(`  redis db: ${rec.redisDb ?? '-'}   database: ${rec.database ?? '-'}   bucket: ${rec.bucket ?? '-'}`);
        }
      }),
    );

  reg
    .command('release')
    .description('Free the ports and Redis slot of a deployment in the registry only (destroy does this and more)')
    .argument('<project>', 'project id')
    .option('-e, --env <name>', 'environment (default: production)')
    .option('--json', 'print as JSON')
    .action((project: string, opts: Opts, cmd: Command) =>
      runCommand(opts.json, async () => {
        const { registryPath } = await import('../settings.js');
        const { actor, updateRegistry } = await import('../registry/store.js');
        const { releaseKeepingData } = await import('../registry/records.js');
        const file = registryPath(globalRegistry(cmd));
        const env = opts.env ?? 'production';
        const released = await updateRegistry(file, { command: `codeb registry release ${project}` }, (doc) =>
          releaseKeepingData(doc, project, env, { by: actor(), at: new Date().toISOString() }),
        );
        if (!released) throw new CodebError(`No deployment ${project} (${env}) in ${file}.`, { exitCode: EXIT.failure, hint: 'See `codeb registry list`.' });
        if (opts.json) printJson({ ok: true, project, env });
        else println(`Released ${project} (${env}).`);
      }),
    );
}
