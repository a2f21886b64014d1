/**
 * Just the `codeb stack` commands, bundled by stack.test.ts from the current sources (so the test
 * never runs a stale dist/ and does not depend on the rest of the CLI building).
 */
import { Command } from 'commander';
import { registerStack } from '../../controller/cli/stack.js';

const program = new Command('codeb');
registerStack(program);
await program.parseAsync(process.argv);
