import type { Command } from 'commander';
import { CodebError, EXIT } from '../errors.js';
import { println, printJson, runCommand } from './output.js';

const ID = /^[a-z](?:[a-z0-9]|-(?=[a-z0-9]))*$/;

export function registerInit(program: Command): void {
  program
    .command('init')
    .description('Write a commented starter manifest for a new project')
    .argument('<project-id>', 'lowercase DNS label, e.g. food-delivery-app')
    .option('-o, --output <file>', 'where to write it (default: <project-id>.yaml)')
    .option('--force', 'overwrite an existing file')
    .option('--json', 'print the result as JSON')
    .action((id: string, opts: { output?: string; force?: boolean; json?: boolean }) =>
      runCommand(opts.json, async () => {
        if (!ID.test(id) || id.length < 2 || id.length > 40) {
          throw new CodebError(`Invalid project id ${JSON.stringify(id)}.`, {
            exitCode: EXIT.invalid,
            hint: 'Use 2-40 lowercase letters, digits and single dashes, starting with a letter (e.g. food-delivery-app).',
          });
        }
        const { existsSync, writeFileSync } = await import('node:fs');
        const { dirname, relative, resolve } = await import('node:path');
        const { installRoot } = await import('../install-root.js');
        const { starterManifest } = await import('../manifest/starter.js');
        const out = resolve(opts.output ?? `${id}.yaml`);
        if (existsSync(out) && !opts.force) {
          throw new CodebError(`${out} already exists.`, { hint: 'Choose another --output, or pass --force to overwrite it.' });
        }
        const schema = resolve(installRoot(), 'schemas', 'project-manifest.schema.json');
        let ref = relative(dirname(out), schema);
        if (!ref.startsWith('.')) ref = './' + ref;
        writeFileSync(out, starterManifest(id, ref), { flag: opts.force ? 'w' : 'wx' });
        if (opts.json) printJson({ ok: true, file: out, project: id });
        else {
          println(`Wrote ${out}`);
          println(`Next: edit the image, then \`codeb validate ${relative(process.cwd(), out) || out}\`.`);
        }
      }),
    );
}
