/**
 * The stack's Postgres part when settings.json lost the admin password of an existing cluster: it
 * sets a new one in single-user mode. When that fails (here: a cluster whose superuser is not
 * `codeb`), Postgres logs the failing statement, password included; the error codeb reports must
 * say what failed without it. Real initdb and postgres binaries; no server is started.
 */
import { spawnSync } from 'node:child_process';
import { chownSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findBinaries } from '../../controller/stack/binaries.js';
import { stackNetwork, stackPaths, stackPorts } from '../../controller/stack/layout.js';
import { postgresPart } from '../../controller/stack/postgres.js';
import type { StartContext } from '../../controller/stack/part.js';

const isRoot = process.getuid?.() === 0;
const dir = mkdtempSync(join(tmpdir(), 'codeb-pg-reset-'));

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('postgres part: resetting a lost admin password', () => {
  it('a failed reset names the cause and never the new password', async () => {
    const env = { ...process.env };
    const bins = findBinaries(['postgres'], env);
    const paths = stackPaths(join(dir, 'stack'));
    const password = `pw'Secret-${process.pid}-x`;
    const ctx: StartContext = {
      paths,
      ports: stackPorts(env),
      network: stackNetwork(env, paths.dir),
      env,
      isRoot,
      creds: { pgPassword: password, redisPassword: 'r', s3AccessKey: 'a', s3SecretKey: 's', fresh: { postgres: true, redis: false, s3: false } },
      bins,
      notes: [],
    };
    // A cluster made elsewhere: its superuser is `other`, so ALTER ROLE "codeb" fails.
    mkdirSync(paths.postgres.data, { recursive: true, mode: 0o700 });
    const pgUser = isRoot ? { uid: Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout), gid: Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout) } : null;
    if (pgUser) {
      spawnSync('chmod', ['o+x', dir]);
      for (const d of [paths.dir, paths.postgres.root, paths.postgres.data]) chownSync(d, pgUser.uid, pgUser.gid);
    }
    const made = spawnSync(bins.initdb, ['-D', paths.postgres.data, '-U', 'other', '--no-sync', '--auth=trust'], { encoding: 'utf8', ...(pgUser ?? {}) });
    expect(made.status, made.stderr).toBe(0);

    const err = await postgresPart.prepare(ctx).then(
      () => null,
      (e: Error) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect(err!.message).toMatch(/could not reset the codeb password/);
    expect(err!.message).toMatch(/role "codeb" does not exist/);
    expect(err!.message).toContain('[redacted]');
    expect(err!.message).not.toContain('Secret-');
  }, 60_000);
});
