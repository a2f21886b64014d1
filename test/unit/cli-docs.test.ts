import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
// @ts-expect-error plain .mjs script without types
import { generate } from '../../scripts/gen-cli-docs.mjs';

describe('docs/cli.md', () => {
  it('is the CLI help as the code prints it (regenerate with `node scripts/gen-cli-docs.mjs`)', () => {
    expect(readFileSync('docs/cli.md', 'utf8')).toBe(generate());
    // One CLI process per command's --help: on a machine loaded with other work (test:busy) that
    // took over 100 s; waiting costs nothing here.
  }, 600_000);
});
