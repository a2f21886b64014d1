/**
 * Valid manifests and the commands that check or write them: every example in manifests/ is valid
 * and resolves in each of its environments; `codeb validate` exit codes, text, --json and GitHub
 * annotations; `codeb init` writes a starter that validates and refuses hostile ids and overwrites.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkManifest } from '../../controller/manifest/index.js';
import { deploymentSites } from '../../controller/manifest/sites.js';
import { environmentNames, resolveDeployment } from '../../controller/manifest/normalize.js';
import { starterManifest } from '../../controller/manifest/starter.js';
import { startWaves } from '../../controller/manifest/depends.js';
import { allocate } from '../../controller/registry/allocate.js';
import { allocationRequest, deploymentNames } from '../../controller/registry/records.js';
import { slotPorts } from '../../controller/registry/slot-ports.js';
import { emptyRegistry } from '../../controller/registry/types.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = join(ROOT, 'bin/codeb.js');
const SCHEMA = join(ROOT, 'schemas/project-manifest.schema.json');
const EXAMPLES = readdirSync(join(ROOT, 'manifests'))
  .filter((n) => n.endsWith('.yaml') || n.endsWith('.yml'))
  .sort();

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function run(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<RunResult> {
  return new Promise((resolvePromise) => {
    execFile(process.execPath, [CLI, ...args], { cwd: opts.cwd ?? ROOT, env: { ...process.env, GITHUB_ACTIONS: '', ...opts.env } }, (err, stdout, stderr) => {
      resolvePromise({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

const SCHEMA_LINE = /^# yaml-language-server: \$schema=(\S+)\n/;

let tmp: string;
beforeAll(() => {
  if (!existsSync(join(ROOT, 'dist/codeb.mjs'))) throw new Error('the CLI is not built: run `npm run build` first');
  tmp = mkdtempSync(join(tmpdir(), 'codeb-valid-'));
});
afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('the examples in manifests/', () => {
  it('include the four reference systems', () => {
    expect(EXAMPLES).toEqual(expect.arrayContaining(['minimal.yaml', 'food-delivery-app.yaml', 'stock-analysis.yaml', 'qna-community.yaml']));
  });

  describe.each(EXAMPLES)('%s', (name) => {
    const file = join(ROOT, 'manifests', name);

    it('validates with no issues', () => {
      const checked = checkManifest(file);
      expect(checked.issues).toEqual([]);
      expect(checked.manifest).toBeDefined();
    });

    it('starts with a yaml-language-server line pointing at the manifest schema', () => {
      const m = SCHEMA_LINE.exec(readFileSync(file, 'utf8'));
      expect(m, 'first line must be # yaml-language-server: $schema=...').not.toBeNull();
      const target = resolve(dirname(file), m![1]!);
      expect(existsSync(target)).toBe(true);
      expect(target).toBe(SCHEMA);
    });

    it('resolves in every one of its environments', () => {
      const manifest = checkManifest(file).manifest!;
      const envs = environmentNames(manifest);
      const domains = new Set<string>();
      for (const env of envs) {
        const d = resolveDeployment(manifest, env);
        expect(d.env).toBe(env);
        expect(d.multiEnv).toBe(envs.length > 1);
        expect(d.services.map((s) => s.name)).toEqual(Object.keys(manifest.services));
        domains.add(d.domain);
      }
      expect(domains.size).toBe(envs.length);
    });
  });
});

describe('manifests/qna-community.yaml (the regional Q&A community)', () => {
  const manifest = checkManifest(join(ROOT, 'manifests/qna-community.yaml')).manifest!;

  it('has production as the primary environment plus development and staging', () => {
    expect(environmentNames(manifest)).toEqual(['production', 'development', 'staging']);
  });

  it('runs several Node services: a web app, an api routed by /api and a notification worker', () => {
    const d = resolveDeployment(manifest);
    const byName = Object.fromEntries(d.services.map((s) => [s.name, s]));
    expect(byName.web).toMatchObject({ type: 'web', routePath: null });
    expect(byName.api).toMatchObject({ type: 'web', routePath: '/api' });
    expect(byName.notifier).toMatchObject({ type: 'worker', port: null });
    for (const s of d.services) expect(s.command?.[0]).toBe('node');
    expect(d.features.database).not.toBeNull();
    expect(d.features.cache).not.toBeNull();
    expect(d.features.storage).not.toBeNull();
  });

  it('gives each environment its own domain, image tag, database (named: database.name), bucket and strategy', () => {
    const rows = environmentNames(manifest).map((env) => {
      const d = resolveDeployment(manifest, env);
      const names = deploymentNames(d, undefined);
      return { env, domain: d.domain, image: d.services[0]!.image, database: names.database, role: names.databaseRole, bucket: names.buckets[0], strategy: d.deploy.strategy };
    });
    expect(rows).toEqual([
      { env: 'production', domain: 'qna.localhost', image: 'ghcr.io/community-team/qna-web:2.3.0', database: 'dongne_prod', role: 'dongne_prod_owner', bucket: 'qna-community-prod-uploads', strategy: 'blue-green' },
      { env: 'development', domain: 'dev.qna.localhost', image: 'ghcr.io/community-team/qna-web:dev', database: 'dongne_dev', role: 'dongne_dev_owner', bucket: 'qna-community-dev-uploads', strategy: 'recreate' },
      { env: 'staging', domain: 'staging.qna.localhost', image: 'ghcr.io/community-team/qna-web:staging', database: 'dongne_staging', role: 'dongne_staging_owner', bucket: 'qna-community-staging-uploads', strategy: 'recreate' },
    ]);
  });

  it('starts api before the web app and the notifier that depend on it', () => {
    expect(startWaves(resolveDeployment(manifest).services)).toEqual([['api'], ['web', 'notifier']]);
  });

  it('runs three web replicas and two notifier copies in production, one web replica in staging', () => {
    const replicas = (env?: string) => Object.fromEntries(resolveDeployment(manifest, env).services.map((s) => [s.name, s.replicas]));
    expect(replicas()).toEqual({ web: 3, api: 1, notifier: 2 });
    expect(replicas('staging')).toEqual({ web: 1, api: 1, notifier: 2 });
    // Each web replica gets its own port per slot; the worker copies get none.
    const d = resolveDeployment(manifest);
    const ports = allocate(emptyRegistry(), allocationRequest(d)).ports;
    expect(slotPorts(ports.web!, 'blue')).toHaveLength(3);
    expect(slotPorts(ports.web!, 'green')).toHaveLength(3);
    expect(ports.api!.replicas).toBeUndefined();
    expect(ports.notifier).toBeUndefined();
  });

  it('keeps daily backups and blue-green deploys in production', () => {
    const d = resolveDeployment(manifest);
    expect(d.deploy.strategy).toBe('blue-green');
    expect(d.backup).toMatchObject({ enabled: true, schedule: '0 3 * * *', retentionDays: 30 });
  });
});

describe('manifests/metrics-monitoring.yaml (host names of their own and route auth)', () => {
  const manifest = checkManifest(join(ROOT, 'manifests/metrics-monitoring.yaml')).manifest!;
  const sites = (env: string) => deploymentSites(resolveDeployment(manifest, env)).map((s) => [s.domains.join(' '), s.services.map((x) => `${x.name}${x.routePath ?? ''}`).join(' ')]);

  it('serves the status page at the main domain and each other web service at its own host names, per environment', () => {
    expect(sites('production')).toEqual([
      ['metrics.example.com www.metrics.example.com', 'status'],
      ['api.metrics.example.com', 'ingest ingest-docs/docs'],
      ['grafana.metrics.example.com', 'grafana'],
      ['prometheus.metrics.example.com', 'prometheus'],
    ]);
    expect(sites('staging')).toEqual([
      ['metrics-staging.example.com', 'status'],
      ['api.metrics-staging.example.com', 'ingest ingest-docs/docs'],
      ['grafana.metrics-staging.example.com', 'grafana'],
      ['prometheus.metrics-staging.example.com', 'prometheus'],
    ]);
  });

  it('guards Grafana with a generated password and Prometheus with a hash and an allow-list', () => {
    const auth = Object.fromEntries(resolveDeployment(manifest).services.map((s) => [s.name, s.auth]));
    expect(auth.grafana).toEqual({ basic: { user: 'ops', passwordHash: null }, allow: [] });
    expect(auth.prometheus).toMatchObject({ basic: { user: 'ops', passwordHash: expect.stringMatching(/^\$2b\$10\$/) }, allow: ['203.0.113.0/24', '198.51.100.7/32'] });
    expect(auth.status).toBeNull();
  });
});

describe('explicit hostPorts', () => {
  it('may name the entry port beside blue and green, or leave it to allocation, here and in an environment', () => {
    const file = join(tmp, 'entry-ports.yaml');
    writeFileSync(
      file,
      `apiVersion: codeb/v1
project: { id: entry-ports }
services:
  web:
    image: localhost/demo:v1
    port: 8080
    hostPorts: { blue: 3100, green: 3101, entry: 3102 }
  api:
    image: localhost/demo-api:v1
    port: 8081
    routePath: /api
    hostPorts: { blue: 3110, green: 3111 }
environments:
  staging:
    services:
      web:
        hostPorts: { blue: 3200, green: 3201, entry: 3202 }
`,
    );
    const checked = checkManifest(file);
    expect(checked.issues).toEqual([]);
    const prod = Object.fromEntries(resolveDeployment(checked.manifest!).services.map((s) => [s.name, s.hostPorts]));
    expect(prod).toEqual({ web: { blue: 3100, green: 3101, entry: 3102 }, api: { blue: 3110, green: 3111 } });
    const staging = Object.fromEntries(resolveDeployment(checked.manifest!, 'staging').services.map((s) => [s.name, s.hostPorts]));
    expect(staging).toEqual({ web: { blue: 3200, green: 3201, entry: 3202 }, api: null });
  });
});

describe('codeb validate', () => {
  const rel = (name: string) => `manifests/${name}`;

  it('exits 0 and prints one ok line per valid file', async () => {
    const r = await run(['validate', ...EXAMPLES.map(rel)]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    for (const name of EXAMPLES) expect(r.stdout).toMatch(new RegExp(`^ok  ${rel(name).replaceAll('.', '\\.')}: project `, 'm'));
    expect(r.stdout).not.toContain('FAIL');
    expect(r.stdout).toContain(`${EXAMPLES.length} files, 0 invalid`);
    expect(r.stdout).toContain('environments: production, development, staging');
  });

  it('exits 2 for one invalid file and prints every problem with file:line:col', async () => {
    const bad = 'test/fixtures/invalid/many-problems.yaml';
    const r = await run(['validate', bad]);
    expect(r.code).toBe(2);
    expect(r.stdout).toContain(`FAIL ${bad}: 4 problems`);
    for (const at of ['9:7: /project/id', '13:11: /services/web/port', '14:5: /services/web/replica', '16:18: /backup/retentionDays']) expect(r.stdout).toContain(`${bad}:${at}: `);
    expect(r.stdout).toContain('(did you mean "replicas"?)');
    expect(r.stdout).toContain('allowed: ');
  });

  it('checks several files at once: all problems printed, one FAIL per bad file, exit 2', async () => {
    const files = ['manifests/minimal.yaml', 'test/fixtures/invalid/unknown-key-service.yaml', 'test/fixtures/invalid/port-70000.yaml', 'manifests/qna-community.yaml', 'does-not-exist.yaml'];
    const r = await run(['validate', ...files]);
    expect(r.code).toBe(2);
    expect(r.stdout.match(/^FAIL /gm)).toHaveLength(3);
    expect(r.stdout.match(/^ok  /gm)).toHaveLength(2);
    expect(r.stdout).toContain('FAIL test/fixtures/invalid/unknown-key-service.yaml: 1 problem\n');
    expect(r.stdout).toContain('test/fixtures/invalid/unknown-key-service.yaml:9:5: /services/web/healthcheck: unknown key "healthcheck" (did you mean "healthCheck"?)');
    expect(r.stdout).toContain('test/fixtures/invalid/port-70000.yaml:8:11: /services/web/port: 70000 is out of range');
    expect(r.stdout).toContain('FAIL does-not-exist.yaml: 1 problem');
    expect(r.stdout).toContain('5 files, 3 invalid');
    expect(r.stdout).not.toContain('::error');
  });

  it('--json: { ok, files: [{ file, valid, project, issues }] }', async () => {
    const r = await run(['validate', '--json', 'manifests/minimal.yaml', 'test/fixtures/invalid/depends-on-missing.yaml']);
    expect(r.code).toBe(2);
    const out = JSON.parse(r.stdout) as { ok: boolean; files: Array<Record<string, unknown>> };
    expect(out.ok).toBe(false);
    expect(out.files).toEqual([
      { file: 'manifests/minimal.yaml', valid: true, project: 'hello', issues: [] },
      {
        file: 'test/fixtures/invalid/depends-on-missing.yaml',
        valid: false,
        issues: [
          {
            file: 'test/fixtures/invalid/depends-on-missing.yaml',
            line: 9,
            col: 17,
            path: '/services/web/dependsOn/0',
            code: 'reference',
            message: 'no service named "dbb"',
            allowed: 'web, db',
            suggestion: 'db',
          },
        ],
      },
    ]);
    const good = await run(['validate', '--json', ...EXAMPLES.map(rel)]);
    expect(good.code).toBe(0);
    expect(JSON.parse(good.stdout)).toMatchObject({ ok: true });
  });

  it('under GitHub Actions prints an ::error annotation per problem, pointing at the line', async () => {
    const files = ['manifests/minimal.yaml', 'test/fixtures/invalid/bad-duration.yaml', 'test/fixtures/invalid/yaml-tab-indent.yaml'];
    const r = await run(['validate', ...files], { env: { GITHUB_ACTIONS: 'true' } });
    expect(r.code).toBe(2);
    const annotations = r.stdout.split('\n').filter((l) => l.startsWith('::error '));
    expect(annotations).toHaveLength(3);
    expect(annotations[0]).toMatch(/^::error file=test\/fixtures\/invalid\/bad-duration\.yaml,line=11,col=24,title=codeb manifest::\/services\/web\/healthCheck\/http\/timeout: value "half a second" is not allowed here/);
    expect(annotations[1]).toMatch(/^::error file=test\/fixtures\/invalid\/bad-duration\.yaml,line=13,col=17,/);
    expect(annotations[2]).toMatch(/^::error file=test\/fixtures\/invalid\/yaml-tab-indent\.yaml,line=5,col=1,/);
    expect(r.stdout).not.toContain('file=manifests/minimal.yaml');
    const clean = await run(['validate', 'manifests/minimal.yaml'], { env: { GITHUB_ACTIONS: 'true' } });
    expect(clean.code).toBe(0);
    expect(clean.stdout).not.toContain('::error');
  });
});

describe('codeb init', () => {
  it('the starter is valid for any valid id, including the longest', () => {
    for (const id of ['ab', 'food-delivery-app', 'x1-y2-z3', 'a'.repeat(40)]) {
      const file = join(tmp, `starter-${id}.yaml`);
      writeFileSync(file, starterManifest(id, '../schemas/project-manifest.schema.json'));
      const checked = checkManifest(file);
      expect(checked.issues).toEqual([]);
      expect(checked.manifest!.project.id).toBe(id);
    }
  });

  it('writes <id>.yaml in the current folder, which validates as written and points at the schema', async () => {
    const dir = mkdtempSync(join(tmp, 'init-'));
    const r = await run(['init', 'my-shop'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    const file = join(dir, 'my-shop.yaml');
    expect(r.stdout).toContain(`Wrote ${file}`);
    const text = readFileSync(file, 'utf8');
    const ref = SCHEMA_LINE.exec(text)?.[1];
    expect(ref).toBeDefined();
    expect(resolve(dir, ref!)).toBe(SCHEMA);
    expect(checkManifest(file).issues).toEqual([]);
    const v = await run(['validate', file]);
    expect(v.code, v.stdout).toBe(0);
    expect(v.stdout).toContain('project my-shop, 1 service, environments: production');
  });

  it('--output and --json', async () => {
    const dir = mkdtempSync(join(tmp, 'init-json-'));
    const file = join(dir, 'project.yaml');
    const ok = await run(['init', 'food-delivery-app', '--output', file, '--json']);
    expect(ok.code, ok.stdout).toBe(0);
    expect(JSON.parse(ok.stdout)).toEqual({ ok: true, file, project: 'food-delivery-app' });
    expect(checkManifest(file).issues).toEqual([]);
    expect(resolve(dir, SCHEMA_LINE.exec(readFileSync(file, 'utf8'))![1]!)).toBe(SCHEMA);
  });

  it('refuses to overwrite an existing file without --force, and overwrites with it', async () => {
    const dir = mkdtempSync(join(tmp, 'init-force-'));
    const file = join(dir, 'app.yaml');
    writeFileSync(file, 'keep me\n');
    const r = await run(['init', 'demo-app', '-o', file]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('already exists');
    expect(r.stderr).toContain('--force');
    expect(readFileSync(file, 'utf8')).toBe('keep me\n');
    const forced = await run(['init', 'demo-app', '-o', file, '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(checkManifest(file).manifest?.project.id).toBe('demo-app');
  });

  it.each([
    ["a'; DROP DATABASE x; --"],
    ['$(reboot)'],
    ['demo;reboot'],
    ['demo`id`'],
    ['demo|sh'],
    ['../etc'],
    ['../../tmp/evil'],
    ['FoodDelivery'],
    ['fооd'], // Cyrillic о
    ['ｄｅｍｏ'], // fullwidth
    ['a'.repeat(41)],
    ['a'],
    ['-demo'],
    ['demo-'],
    ['demo--app'],
    ['1demo'],
    ['demo_app'],
  ])('refuses the id %j with exit 2 and writes nothing', async (id) => {
    const dir = mkdtempSync(join(tmp, 'init-hostile-'));
    const r = await run(['init', '--', id], { cwd: dir });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain('Invalid project id');
    expect(readdirSync(dir)).toEqual([]);
    expect(existsSync(resolve(dir, `${id}.yaml`))).toBe(false);
  });
});
