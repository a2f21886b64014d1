/**
 * One deployment with a database of N rows (default 100 000, in two tables), backed up and
 * verified R times with the real code path (controller/ops/backup.ts): pg_dump, upload with
 * read-back, verify. Run through scripts/bench-backup.mjs, against the stack in $CODEB_HOME.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { parseManifest } from '../../controller/manifest/load.js';
import { validateLoaded } from '../../controller/manifest/validate.js';
import { resolveDeployment } from '../../controller/manifest/normalize.js';
import { allocate, DEFAULT_POLICY } from '../../controller/registry/allocate.js';
import { allocationRequest, recordAllocation } from '../../controller/registry/records.js';
import { updateRegistry } from '../../controller/registry/store.js';
import { storeManifest } from '../../controller/reconcile/manifest-store.js';
import { runBackup, verifyBackup, type Timings } from '../../controller/ops/backup.js';
import { BackupStore } from '../../controller/ops/backup-store.js';
import { deploymentPrefix } from '../../controller/ops/backup-layout.js';
import { loadSettings } from '../../controller/settings.js';

const rounds = Number(process.argv[2] ?? 5);
const rows = Number(process.argv[3] ?? 100_000);
const settings = loadSettings();
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const id = `bench-bk-${process.pid.toString(36)}`;
const dir = mkdtempSync(join(tmpdir(), 'codeb-bench-backup-'));
const registry = join(dir, 'registry', 'projects.json');
const manifestFile = join(dir, `${id}.yaml`);
writeFileSync(manifestFile, `apiVersion: codeb/v1\nproject: { id: ${id} }\nenvironment: { domain: ${id}.localhost }\nservices:\n  web: { image: localhost/codeb-testapp:v1, port: 8080 }\nfeatures: { database: {} }\nbackup: { retentionDays: 1 }\n`);
const d = resolveDeployment(validateLoaded(parseManifest(readFileSync(manifestFile, 'utf8'), manifestFile)).manifest!);
let database = '';
await updateRegistry(registry, { command: 'bench:backup' }, (doc) => {
  const rec = recordAllocation(doc, d, allocate(doc, allocationRequest(d), DEFAULT_POLICY), new Date().toISOString());
  database = rec.database!;
});
storeManifest(registry, id, 'production', manifestFile);

const admin = (db: string) => new pg.Client({ host: settings.postgres.host, port: settings.postgres.port, user: settings.postgres.user, password: settings.postgres.password, database: db });
const a = admin(settings.postgres.database);
await a.connect();
await a.query(`CREATE DATABASE ${pg.escapeIdentifier(database)}`);
await a.end();
const c = admin(database);
await c.connect();
await c.query(`CREATE TABLE orders (id bigserial PRIMARY KEY, customer text NOT NULL, total numeric(10,2) NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
               INSERT INTO orders (customer, total) SELECT 'customer ' || (g % 5000), (g % 1000) / 7.0 FROM generate_series(1, ${Math.floor(rows * 0.8)}) g;
               CREATE TABLE events (id bigserial PRIMARY KEY, order_id bigint, body jsonb);
               INSERT INTO events (order_id, body) SELECT g, jsonb_build_object('kind', 'paid', 'n', g) FROM generate_series(1, ${rows - Math.floor(rows * 0.8)}) g;`);
await c.end();

const dump: number[] = [];
const upload: number[] = [];
const verify: number[] = [];
let bytes = 0;
try {
  for (let i = 0; i < rounds; i++) {
    const t: Timings = { dumpMs: 0, uploadMs: 0 };
    const r = await runBackup(id, 'production', { registry, settings }, t);
    dump.push(t.dumpMs);
    upload.push(t.uploadMs);
    bytes = r.manifest.totalBytes;
    const v = await verifyBackup(id, 'production', r.id, { registry, settings });
    verify.push(v.durationMs);
  }
} finally {
  await new BackupStore(settings.storage).deletePrefix('backup', deploymentPrefix(id, 'production')).catch(() => {});
  const z = admin(settings.postgres.database);
  await z.connect();
  await z.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(database)} WITH (FORCE)`);
  await z.end();
  rmSync(dir, { recursive: true, force: true });
}
const fmt = (ms: number) => `${ms.toFixed(0)} ms`;
const line = (name: string, xs: number[]) => console.log(`  ${name.padEnd(48)} median ${fmt(median(xs))}  (min ${fmt(Math.min(...xs))}, max ${fmt(Math.max(...xs))})`);
console.log(`bench:backup — ${rounds} rounds, ${rows} rows in 2 tables, dump ${(bytes / 1048576).toFixed(1)} MB (pg_dump custom format), stack S3 (${settings.storage.kind})`);
line('pg_dump (snapshot + row counts + dump)', dump);
line('upload + read-back sha256', upload);
line('verify (download, sha256, restore, counts, drop)', verify);
