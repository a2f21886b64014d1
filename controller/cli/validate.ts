import type { Command } from 'commander';
import { EXIT } from '../errors.js';
import { printJson, println, runCommand } from './output.js';

export function registerValidate(program: Command): void {
  program
    .command('validate')
    .description('Check manifests against the schema and report every problem with file:line:column')
    .argument('<manifest...>', 'manifest files (YAML)')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nExit codes: 0 all valid, 2 some invalid, 1 codeb failed.\nUnder GitHub Actions (GITHUB_ACTIONS=true) problems are also printed as ::error annotations.')
    .action((files: string[], opts: { json?: boolean }) =>
      runCommand(opts.json, async () => {
        const { checkManifest } = await import('../manifest/index.js');
        const { formatIssue } = await import('../manifest/issues.js');
        const { environmentNames } = await import('../manifest/normalize.js');
        const results = files.map((f) => checkManifest(f));
        const invalid = results.filter((r) => !r.manifest);
        if (opts.json) {
          printJson({ ok: invalid.length === 0, files: results.map((r) => ({ file: r.file, valid: Boolean(r.manifest), project: r.manifest?.project.id, issues: r.issues })) });
        } else {
          for (const r of results) {
            if (r.manifest) {
              const services = Object.keys(r.manifest.services).length;
              println(`ok  ${r.file}: project ${r.manifest.project.id}, ${services} service${services === 1 ? '' : 's'}, environments: ${environmentNames(r.manifest).join(', ')}`);
            } else {
              println(`FAIL ${r.file}: ${r.issues.length} problem${r.issues.length === 1 ? '' : 's'}`);
              for (const i of r.issues) println('  ' + formatIssue(i).replaceAll('\n', '\n  '));
            }
          }
          if (files.length > 1) println(`${files.length} files, ${invalid.length} invalid`);
        }
        if (process.env.GITHUB_ACTIONS === 'true') {
          const { annotation } = await import('./github.js');
          for (const r of invalid) for (const i of r.issues) process.stdout.write(annotation(i) + '\n');
        }
        return invalid.length ? EXIT.invalid : EXIT.ok;
      }),
    );
}
