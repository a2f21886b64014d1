/**
 * A separate process for the registry tests, bundled on demand by bundle-child.ts so it always runs
 * the current controller/registry/store.ts (not a stale dist/).
 *
 *   try   <file> <waitMs>           take the lock once; print {"ok":true} or {"ok":false,message,hint}; exit 0 / 1
 *   hold  <file> <command>          take the lock, print "locked <pid>", release when stdin closes
 */
import { withRegistryLock } from '../../controller/registry/store.js';
import { CodebError } from '../../controller/errors.js';

const [mode, file, a] = process.argv.slice(2);

async function main(): Promise<number> {
  if (!file) throw new Error('usage: registry-child <mode> <file> ...');
  if (mode === 'try') {
    try {
      await withRegistryLock(file, { command: 'registry-child try', waitMs: Number(a) }, async () => undefined);
      process.stdout.write(JSON.stringify({ ok: true }) + '\n');
      return 0;
    } catch (err) {
      const e = err as CodebError;
      process.stdout.write(JSON.stringify({ ok: false, message: e.message, hint: e.hint }) + '\n');
      return 1;
    }
  }
  if (mode === 'hold') {
    await withRegistryLock(file, { command: a ?? 'registry-child hold' }, async () => {
      process.stdout.write(`locked ${process.pid}\n`);
      await new Promise<void>((resolve) => {
        process.stdin.on('end', resolve);
        process.stdin.on('close', resolve);
        process.stdin.resume();
      });
    });
    return 0;
  }
  throw new Error(`unknown mode ${mode}`);
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`registry-child: ${(err as Error).stack ?? err}\n`);
    process.exit(2);
  },
);
