/**
 * A separate process for the registry tests, bundled on demand by bundle-child.ts so it always runs
 * the current controller/registry/store.ts (not a stale dist/).
 *
 *   try   <file> <waitMs>           take the lock once; print {"ok":true} or {"ok":false,message,hint}; exit 0 / 1
 *   hold  <file> <command>          take the lock, print "locked <pid>", release when stdin closes
 *   write <file> <project> <entries> under the lock: print "locked", then add <project> with a history of
 *                                   <entries> entries (a big document, so the write takes measurable time)
 */
import { withRegistryLock, updateRegistry } from '../../controller/registry/store.js';
import { CodebError } from '../../controller/errors.js';

const [mode, file, a, b] = process.argv.slice(2);

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
  if (mode === 'write') {
    const project = a!;
    const entries = Number(b);
    await updateRegistry(file, { command: `registry-child write ${project}` }, (doc) => {
      process.stdout.write('locked\n');
      const now = new Date().toISOString();
      doc.projects[project] = {
        id: project,
        name: project,
        createdAt: now,
        updatedAt: now,
        environments: {
          production: {
            env: 'production',
            status: 'allocated',
            createdAt: now,
            updatedAt: now,
            domain: `${project}.localhost`,
            aliases: [],
            ports: {},
            redisDb: null,
            redisUser: null,
            database: null,
            databaseRole: null,
            bucket: null,
            buckets: [],
            liveSlot: null,
            containers: [],
            health: { status: 'unknown', lastCheck: null },
            history: Array.from({ length: entries }, (_, i) => ({ at: now, by: 'test@host', action: `deploy ${i}`, result: 'ok' as const, detail: { image: `example/app:${i}`, note: 'x'.repeat(64) } })),
          },
        },
      };
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
