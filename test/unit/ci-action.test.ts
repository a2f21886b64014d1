/**
 * CI: the composite action (action.yml) and the workflow template parse and have the inputs and
 * steps docs/ci.md promises; the action's own shell steps are run with bash against stand-ins; and
 * the codeb CLI under GITHUB_ACTIONS=true prints manifest annotations, appends a step summary for
 * failed deploys and applies, and masks secrets. (A successful deploy's summary, over SSH against
 * the local stack, is in test/integration/remote-ssh.test.ts.)
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { parse } from 'yaml';
import { renderStepSummary } from '../../controller/cli/github-summary.js';
import { registerSecret } from '../../controller/redact.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = join(ROOT, 'bin/codeb.js');
const tmp = mkdtempSync(join(tmpdir(), 'codeb-ci-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Step {
  name?: string;
  id?: string;
  uses?: string;
  run?: string;
  shell?: string;
  if?: string;
  env?: Record<string, string>;
  with?: Record<string, unknown>;
}

const action = parse(readFileSync(join(ROOT, 'action.yml'), 'utf8')) as {
  name: string;
  inputs: Record<string, { required?: boolean; default?: string; description: string }>;
  outputs: Record<string, { value: string }>;
  runs: { using: string; steps: Step[] };
};
const workflow = parse(readFileSync(join(ROOT, 'templates/github-workflow.yml'), 'utf8')) as {
  on: Record<string, unknown>;
  jobs: Record<string, { needs?: string | string[]; if?: string; environment?: { name: string }; permissions?: Record<string, string>; steps: Step[]; outputs?: Record<string, string> }>;
};
const step = (name: string) => action.runs.steps.find((s) => s.name === name)!;

describe('action.yml', () => {
  it('is a composite action with the documented inputs', () => {
    expect(action.runs.using).toBe('composite');
    expect(Object.keys(action.inputs).sort()).toEqual(['codeb-path', 'codeb-version', 'environment', 'host', 'image', 'known-hosts', 'manifest', 'node-version', 'remote-codeb', 'ssh-key'].sort());
    for (const required of ['manifest', 'image', 'ssh-key', 'known-hosts']) expect(action.inputs[required]!.required).toBe(true);
    for (const optional of ['environment', 'host', 'codeb-version', 'codeb-path', 'remote-codeb']) expect(action.inputs[optional]!.required).toBe(false);
    expect(action.outputs['exit-code']!.value).toBe('${{ steps.deploy.outputs.exit-code }}');
  });

  it('sets up node, installs codeb, writes the key and known_hosts, deploys and removes the key', () => {
    const names = action.runs.steps.map((s) => s.name);
    expect(names).toEqual(['Set up Node.js', 'Install codeb', 'SSH key and known_hosts', 'Deploy', 'Remove the SSH key']);
    expect(step('Set up Node.js').uses).toMatch(/^actions\/setup-node@v\d+$/);
    expect(step('Install codeb').run).toContain('npm ci');
    expect(step('Deploy').run).toContain('node "$CODEB_CLI" "${args[@]}"');
    expect(step('Remove the SSH key').if).toBe('always()');
    for (const s of action.runs.steps.filter((x) => x.run)) expect(s.shell).toBe('bash');
  });

  it('never pastes an input into a script (no ${{ }} inside run:, inputs arrive as env)', () => {
    for (const s of action.runs.steps) if (s.run) expect(s.run).not.toContain('${{');
    expect(step('Deploy').env).toMatchObject({ MANIFEST: '${{ inputs.manifest }}', IMAGES: '${{ inputs.image }}', HOST: '${{ inputs.host }}' });
  });

  /** Run one of the action's bash steps as the runner does (bash -e -o pipefail). */
  function runStep(name: string, env: Record<string, string>): { code: number; out: string } {
    const script = join(tmp, `${name.replace(/\W+/g, '-')}.sh`);
    writeFileSync(script, step(name).run!);
    try {
      const out = execFileSync('bash', ['--noprofile', '--norc', '-eo', 'pipefail', script], { env: { PATH: process.env.PATH!, ...env }, encoding: 'utf8' });
      return { code: 0, out };
    } catch (err) {
      const e = err as { status: number; stdout: string };
      return { code: e.status, out: e.stdout };
    }
  }

  it('writes the SSH key and known_hosts with mode 0600 and points codeb at them', () => {
    const runnerTemp = mkdtempSync(join(tmp, 'runner-'));
    const githubEnv = join(runnerTemp, 'env');
    const key = '-----BEGIN OPENSSH PRIVATE KEY-----\r\nAAAA\r\n-----END OPENSSH PRIVATE KEY-----';
    const r = runStep('SSH key and known_hosts', { RUNNER_TEMP: runnerTemp, GITHUB_ENV: githubEnv, SSH_KEY: key, KNOWN_HOSTS: '[app1.example.com]:2222 ssh-ed25519 AAAAC3Nza' });
    expect(r.code).toBe(0);
    const dir = join(runnerTemp, 'codeb-ssh');
    expect(statSync(join(dir, 'key')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'known_hosts')).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(readFileSync(join(dir, 'key'), 'utf8')).toBe(key.replaceAll('\r', '') + '\n');
    expect(readFileSync(githubEnv, 'utf8')).toBe(`CODEB_SSH_KEY_FILE=${dir}/key\nCODEB_KNOWN_HOSTS=${dir}/known_hosts\n`);
    // An empty known-hosts input fails the step with an annotation instead of trusting anything.
    const empty = runStep('SSH key and known_hosts', { RUNNER_TEMP: runnerTemp, GITHUB_ENV: githubEnv, SSH_KEY: key, KNOWN_HOSTS: ' ' });
    expect(empty.code).toBe(1);
    expect(empty.out).toContain('::error title=codeb known-hosts::');
  });

  it('builds the codeb deploy arguments from the inputs and passes its exit code on', () => {
    // A stand-in codeb that prints its arguments and exits 3 (health gate failed).
    const fake = join(tmp, 'fake-codeb.mjs');
    writeFileSync(fake, 'console.log(JSON.stringify(process.argv.slice(2))); process.exit(3);\n');
    const githubOutput = join(tmp, 'output');
    const r = runStep('Deploy', {
      CODEB_CLI: fake,
      GITHUB_OUTPUT: githubOutput,
      MANIFEST: 'deploy/my app.yaml',
      IMAGES: ' ghcr.io/org/web:abc123 \n\n  worker=ghcr.io/org/worker:abc123\n',
      ENVIRONMENT: 'production',
      HOST: 'deploy@app1.example.com:2222',
      REMOTE_CODEB: '',
    });
    expect(r.code).toBe(3);
    expect(JSON.parse(r.out)).toEqual(['deploy', 'deploy/my app.yaml', '--image', 'ghcr.io/org/web:abc123', '--image', 'worker=ghcr.io/org/worker:abc123', '--env', 'production', '--host', 'deploy@app1.example.com:2222']);
    expect(readFileSync(githubOutput, 'utf8')).toBe('exit-code=3\n');
  });
});

describe('templates/github-workflow.yml', () => {
  it('tests, builds and pushes the image tagged with the commit sha, deploys staging on main, production behind an approval', () => {
    expect(Object.keys(workflow.on)).toEqual(['push', 'pull_request']);
    const { test, build, 'deploy-staging': staging, 'deploy-production': production } = workflow.jobs;
    expect(test!.steps.map((s) => s.run).filter(Boolean)).toEqual(['npm ci', 'npm test']);

    expect(build!.needs).toBe('test');
    expect(build!.permissions).toMatchObject({ packages: 'write' });
    expect(build!.steps.find((s) => s.id === 'image')!.run).toContain('ghcr.io/${GITHUB_REPOSITORY,,}:${GITHUB_SHA}');
    const push = build!.steps.find((s) => s.uses?.startsWith('docker/build-push-action'))!;
    expect(push.with).toMatchObject({ push: true, tags: '${{ steps.image.outputs.ref }}' });

    expect(staging!.needs).toBe('build');
    expect(staging!.if).toBe("github.ref == 'refs/heads/main'");
    expect(staging!.environment!.name).toBe('staging');
    expect(production!.needs).toEqual(['build', 'deploy-staging']);
    expect(production!.environment!.name).toBe('production');

    for (const [job, env] of [[staging!, 'staging'], [production!, 'production']] as const) {
      const deploy = job.steps.find((s) => s.uses?.includes('/codeb@'))!;
      expect(deploy.with).toMatchObject({
        image: '${{ needs.build.outputs.image }}',
        environment: env,
        'ssh-key': '${{ secrets.CODEB_SSH_KEY }}',
        'known-hosts': '${{ secrets.CODEB_KNOWN_HOSTS }}',
      });
      // Every input the template passes exists in action.yml.
      for (const k of Object.keys(deploy.with!)) expect(action.inputs).toHaveProperty(k);
    }
  });
});

function codeb(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...process.env, GITHUB_ACTIONS: 'true', ...env } }, (err, stdout, stderr) =>
      res({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe('codeb under GitHub Actions', () => {
  const invalid = join(ROOT, 'test/fixtures/invalid/unknown-key-service.yaml');
  const home = mkdtempSync(join(tmp, 'home-'));
  const valid = join(tmp, 'app.yaml');
  writeFileSync(valid, 'apiVersion: codeb/v1\nproject:\n  id: ci-summary\nservices:\n  web:\n    image: localhost/codeb-testapp:v1\n    port: 8080\n');

  it.each([['validate'], ['plan'], ['apply'], ['deploy', '--image', 'localhost/x:1']])('`codeb %s` annotates an invalid manifest at its line and column and exits 2', async (...cmd) => {
    const summary = join(tmp, `summary-${cmd[0]}.md`);
    const r = await codeb([cmd[0]!, invalid, ...cmd.slice(1)], { CODEB_HOME: home, GITHUB_STEP_SUMMARY: summary });
    expect(r.code).toBe(2);
    const header = readFileSync(invalid, 'utf8').match(/# expect: (\d+):(\d+) /)!;
    const expected = `::error file=${invalid},line=${header[1]},col=${header[2]},title=codeb manifest::/services/web/healthcheck: unknown key "healthcheck" (did you mean "healthCheck"?)`;
    expect(r.stdout.split('\n').filter((l) => l.startsWith('::error'))).toEqual([expect.stringContaining(expected)]);
    if (cmd[0] === 'apply' || cmd[0] === 'deploy') {
      const md = readFileSync(summary, 'utf8');
      expect(md).toContain(`### codeb ${cmd[0]}: ${invalid}`);
      expect(md).toContain('❌ invalid input (nothing was changed) (exit code 2)');
      expect(md).toMatch(/\| Reason \| .*is not a valid manifest/);
    } else {
      expect(existsSync(summary)).toBe(false);
    }
  });

  it('a failed deploy still appends a summary with the result and the reason', async () => {
    const summary = join(tmp, 'summary-failed.md');
    // No services are configured in this CODEB_HOME: the deploy fails for real, before any change.
    const r = await codeb(['deploy', valid, '--image', 'localhost/codeb-testapp:v9'], { CODEB_HOME: home, GITHUB_STEP_SUMMARY: summary });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('No service settings found');
    const md = readFileSync(summary, 'utf8');
    expect(md).toContain('### codeb deploy: ci-summary (production)');
    expect(md).toContain('| Result | ❌ failed (exit code 1) |');
    expect(md).toMatch(/\| Reason \| No service settings found at .*settings\.json\. \|/);
  });

  it('without GITHUB_ACTIONS=true: no annotations and no summary', async () => {
    const summary = join(tmp, 'summary-off.md');
    const r = await codeb(['deploy', invalid, '--image', 'localhost/x:1'], { GITHUB_ACTIONS: '', CODEB_HOME: home, GITHUB_STEP_SUMMARY: summary });
    expect(r.code).toBe(2);
    expect(r.stdout).not.toContain('::error');
    expect(existsSync(summary)).toBe(false);
  });
});

describe('the step summary', () => {
  it('shows URL, version, images, traffic, health timings and switch time of a deploy', () => {
    const md = renderStepSummary({
      command: 'deploy',
      manifest: 'codeb.yaml',
      project: 'shop',
      env: 'production',
      where: 'deploy@app1 (over SSH)',
      exitCode: 0,
      url: 'https://shop.example.com/',
      durationMs: 4200,
      history: [
        {
          at: '2026-01-01T00:00:00.000Z',
          by: 'ci@runner',
          action: 'deploy',
          result: 'ok',
          detail: { version: '1f2e3d4', images: { web: 'ghcr.io/org/shop:1f2e3d4' }, from: 'blue', to: 'green', switchMs: 3.4, health: [{ service: 'web', healthy: true, ms: 640, firstOkMs: 210 }], reason: 'healthy, switched and verified' },
        },
      ],
    });
    expect(md).toBe(
      [
        '### codeb deploy: shop (production)',
        '',
        '| | |',
        '|---|---|',
        '| Result | ✅ deployed (exit code 0) |',
        '| URL | https://shop.example.com/ |',
        '| Version | `1f2e3d4` |',
        '| Images | web: `ghcr.io/org/shop:1f2e3d4` |',
        '| Traffic | blue → green |',
        '| Health gate | web: healthy after 640 ms (first ok at 210 ms) |',
        '| Switch | 3.4 ms |',
        '| Duration | 4.2 s |',
        '| Ran on | deploy@app1 (over SSH) |',
        '| Manifest | `codeb.yaml` |',
        '',
      ].join('\n'),
    );
  });

  it('a rolled-back deploy shows the reason; table cells cannot be broken by the text', () => {
    const md = renderStepSummary({
      command: 'deploy',
      project: 'shop',
      where: 'x',
      exitCode: 4,
      durationMs: 1,
      error: 'Deploy of shop was rolled back | after the switch\n  last health checks:\n    web 500',
      history: [{ at: 'x', by: 'y', action: 'deploy', result: 'rolled-back', detail: { to: 'green', from: 'blue', reason: 'health check through Caddy failed: 500 | boom' } }],
    });
    expect(md).toContain('| Result | ↩️ rolled back after the switch — the previous version serves again (exit code 4) |');
    expect(md).toContain('| Reason | health check through Caddy failed: 500 \\| boom |');
    expect(md).toContain('<details><summary>Error</summary>');
  });

  it('a deploy that finished one cut short by an earlier run says so', () => {
    const resumed = { phase: 'switched', startedAt: '2026-01-01T00:00:00.000Z', by: 'ci@runner' };
    const md = renderStepSummary({ command: 'deploy', project: 'shop', where: 'x', exitCode: 4, durationMs: 1, history: [{ at: 'x', by: 'y', action: 'deploy', result: 'rolled-back', detail: { to: 'green', from: 'blue', resumed, reason: 'boom' } }] });
    expect(md).toContain('| Resumed | a deploy cut short at "switched" (started 2026-01-01T00:00:00.000Z by ci@runner) was finished by this run |');
  });
});

describe('secrets under GitHub Actions', () => {
  afterEach(() => {
    vi.restoreAllMocks();
    vi.unstubAllEnvs();
  });

  it('every secret codeb loads is masked once, line by line, and only under GitHub Actions', () => {
    const writes: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      writes.push(String(chunk));
      return true;
    });
    vi.stubEnv('GITHUB_ACTIONS', 'true');
    registerSecret('pw-0123456789abcdef');
    registerSecret('pw-0123456789abcdef');
    registerSecret('-----BEGIN KEY-----\nAAAABBBBCCCC\n-----END KEY-----');
    registerSecret('short');
    vi.stubEnv('GITHUB_ACTIONS', '');
    registerSecret('never-masked-outside-actions');
    expect(writes).toEqual(['::add-mask::pw-0123456789abcdef\n', '::add-mask::-----BEGIN KEY-----\n', '::add-mask::AAAABBBBCCCC\n', '::add-mask::-----END KEY-----\n']);
  });
});
