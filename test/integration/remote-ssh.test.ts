/**
 * codeb over SSH against a real OpenSSH server (Debian's sshd, key authentication only) listening
 * on 127.0.0.1 on its own port. The "server" is this same machine: its codeb is this checkout
 * (CODEB_REMOTE_COMMAND) working on the local stack's services, with the registry in a temp file.
 * The client side gets an empty CODEB_HOME of its own, to show a laptop keeps no state.
 *
 * Shown: apply and deploy over SSH end in the same state a local apply makes (a local plan on the
 * server finds nothing to change; the app answers through Caddy); an unknown or changed host key
 * and a wrong client key fail clearly and change nothing; a connection dropped mid-deploy fails
 * clearly while the server finishes, and re-running converges; two deploys at once are serialised
 * by the server's registry lock (one fails naming the holder, or waits); server check; destroy.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readRegistryFile } from '../../controller/registry/store.js';
import { codebHome } from '../../controller/settings.js';
import { appPorts, stackSettings, uniqueId } from './helpers/stack.js';
import { keygen, startSshd, type Sshd } from './helpers/sshd.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = join(ROOT, 'bin/codeb.js');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

let sshd: Sshd;
const tmp = mkdtempSync(join(tmpdir(), 'codeb-remote-ssh-'));
const clientHome = join(tmp, 'client-home');
const registry = join(tmp, 'server', 'registry.json');
const project = uniqueId('ssh');
const manifest = join(tmp, 'app.yaml');
let caddyPort = 0;
// The server's codeb allocates this file's own ports, never the 3000-3999 a running demo stack uses.
const PORT_RANGE = appPorts('4900-4949');

/** The client's environment: its own empty CODEB_HOME, the test sshd's key and known_hosts, no agent. */
function clientEnv(extra: Record<string, string> = {}, remoteEnv = ''): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    CODEB_HOME: clientHome,
    CODEB_KNOWN_HOSTS: sshd.knownHosts,
    CODEB_SSH_KEY_FILE: sshd.clientKey,
    SSH_AUTH_SOCK: '',
    // The server's codeb: this checkout, with the test stack's CODEB_HOME (on a real server: /opt/codeb).
    CODEB_REMOTE_COMMAND: `env CODEB_HOME=${codebHome()} CODEB_PORT_RANGE=${PORT_RANGE} ${remoteEnv} ${process.execPath} ${CLI}`,
    ...extra,
  };
  return env;
}

function codeb(args: string[], env: NodeJS.ProcessEnv, onStderr?: (all: string) => void): Promise<Run> & { pid?: number } {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: tmp, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString();
    onStderr?.(stderr);
  });
  return new Promise((res) => child.on('close', (code) => res({ code: code ?? 1, stdout, stderr })));
}

/** On the server itself (same machine): a local codeb with the stack's CODEB_HOME. */
function onServer(args: string[]): Promise<Run> {
  return codeb(['--registry', registry, ...args], { ...process.env, CODEB_HOME: codebHome(), CODEB_PORT_RANGE: PORT_RANGE, GITHUB_ACTIONS: '' });
}

function viaCaddy(path = '/'): Promise<{ status: number; body: string }> {
  return new Promise((res, rej) => {
    const req = request({ host: '127.0.0.1', port: caddyPort, path, headers: { host: `${project}.localhost` }, timeout: 3000 }, (r) => {
      let body = '';
      r.on('data', (c: Buffer) => (body += c.toString()));
      r.on('end', () => res({ status: r.statusCode ?? 0, body: body.trim() }));
    });
    req.on('error', rej);
    req.end();
  });
}

function record() {
  return readRegistryFile(registry).projects[project]?.environments.production;
}

function okDeploys(version: string): number {
  return (record()?.history ?? []).filter((h) => h.action === 'deploy' && h.result === 'ok' && h.detail?.version === version).length;
}

beforeAll(async () => {
  caddyPort = stackSettings().caddy.httpPort;
  mkdirSync(clientHome);
  sshd = await startSshd();
  writeFileSync(
    manifest,
    [
      'apiVersion: codeb/v1',
      'project:',
      `  id: ${project}`,
      'servers:',
      '  - name: app1',
      `    host: ${sshd.target}`,
      'services:',
      '  web:',
      '    image: localhost/codeb-testapp:v1',
      '    port: 8080',
      '    healthCheck:',
      '      http: { path: /api/health, interval: 200ms }',
      'features:',
      '  database: true',
      'deploy:',
      '  healthGate: { watchAfterSwitch: 1s }',
      '',
    ].join('\n'),
  );
});

afterAll(async () => {
  // Leave nothing behind on the stack, whatever happened above.
  if (record()) await onServer(['destroy', project, '--yes', '--delete-data']);
  await sshd?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

describe.sequential('codeb over SSH (real sshd on 127.0.0.1)', () => {
  it('apply over SSH: the server registry has the deployment, the app answers through Caddy, a local plan on the server finds nothing to change', async () => {
    // The allocation is made in the server's registry too (registry allocate takes the manifest's server).
    const allocated = await codeb(['--registry', registry, 'registry', 'allocate', manifest, '--json'], clientEnv());
    expect(allocated.code).toBe(0);
    expect(readRegistryFile(registry).projects[project]?.environments.production?.status).toBe('allocated');

    const r = await codeb(['--registry', registry, 'apply', manifest], clientEnv());
    expect(r.stderr).not.toContain('error:');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Applied ${project} (production)`);
    // Progress lines came back live from the server-side codeb.
    expect(r.stderr).toMatch(/health gate \(1 container\) \.\.\. healthy/);

    const rec = record()!;
    expect(rec).toMatchObject({ status: 'running', liveSlot: 'blue', database: expect.stringMatching(/_db$/) });
    expect((await viaCaddy()).body).toBe('hello from v1');

    // What a local apply would have made: the server's own codeb plans nothing.
    const plan = await onServer(['plan', manifest, '--host', 'local']);
    expect(plan.stdout).toContain('No changes.');
    expect(plan.code).toBe(0);
    // The client kept no state.
    expect(readdirSync(clientHome, { withFileTypes: true }).length).toBe(0);
  });

  it('deploy over SSH under GitHub Actions: secrets masked, a step summary with version, health timings and switch time', async () => {
    const summary = join(tmp, 'summary.md');
    const r = await codeb(['--registry', registry, 'deploy', manifest, '--image', 'localhost/codeb-testapp:v2'], clientEnv({ GITHUB_ACTIONS: 'true', GITHUB_STEP_SUMMARY: summary }));
    expect(r.code).toBe(0);
    expect((await viaCaddy()).body).toBe('hello from v2');

    const secretsDir = join(dirname(registry), 'secrets');
    const secrets = JSON.parse(readFileSync(join(secretsDir, readdirSync(secretsDir).find((f) => f.endsWith('.secrets.json'))!), 'utf8')) as Record<string, string>;
    expect(Object.keys(secrets).length).toBeGreaterThan(0);
    for (const value of Object.values(secrets)) {
      expect(r.stdout.split('\n')).toContain(`::add-mask::${value}`);
      const elsewhere = (r.stdout + r.stderr).split('\n').filter((l) => l.includes(value) && l !== `::add-mask::${value}`);
      expect(elsewhere).toEqual([]);
    }

    const md = readFileSync(summary, 'utf8');
    expect(md).toContain(`### codeb deploy: ${project} (production)`);
    expect(md).toContain('| Result | ✅ deployed (exit code 0) |');
    expect(md).toContain('| Version | `v2` |');
    expect(md).toContain('| Traffic | blue → green |');
    expect(md).toMatch(/\| Health gate \| web: healthy after [\d.]+ m?s \(first ok at [\d.]+ m?s\) \|/);
    expect(md).toMatch(/\| Switch \| [\d.]+ ms \|/);
    expect(md).toContain(`| URL | http://${project}.localhost:${caddyPort}/ |`);
    expect(md).toContain(`| Ran on | ${sshd.target} (over SSH) |`);
    expect(md).toContain(`| Manifest | \`${manifest}\` |`);

    // history has no manifest to take the server from: --host names it.
    const remoteHistory = await codeb(['--registry', registry, '--host', sshd.target, 'history', project, '--json'], clientEnv());
    expect(remoteHistory.code).toBe(0);
    expect((JSON.parse(remoteHistory.stdout) as { history: Array<{ detail?: { version?: string } }> }).history.at(-2)?.detail?.version).toBe('v2');
  });

  it('a failing deploy over SSH: exit code and summary say failed, with the reason; traffic stays on v2', async () => {
    const summary = join(tmp, 'summary-failed.md');
    const r = await codeb(['--registry', registry, 'deploy', manifest, '--image', 'localhost/codeb-testapp:missing'], clientEnv({ GITHUB_ACTIONS: 'true', GITHUB_STEP_SUMMARY: summary }));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Image localhost/codeb-testapp:missing is not present');
    const md = readFileSync(summary, 'utf8');
    expect(md).toContain('| Result | ❌ failed (exit code 1) |');
    expect(md).toMatch(/\| Reason \| Image localhost\/codeb-testapp:missing is not present/);
    expect((await viaCaddy()).body).toBe('hello from v2');
  });

  it('an unknown host key: a clear error with the fingerprint and the command to trust it; nothing changed', async () => {
    const empty = join(tmp, 'known_hosts.empty');
    writeFileSync(empty, '');
    const before = readFileSync(registry, 'utf8');
    const r = await codeb(['--registry', registry, 'deploy', manifest, '--image', 'localhost/codeb-testapp:v3'], clientEnv({ CODEB_KNOWN_HOSTS: empty }));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`error: The host key of [127.0.0.1]:${sshd.port} is not known: it presents ssh-ed25519 key ${sshd.hostFingerprint}`);
    expect(r.stderr).toContain(`ssh-keyscan -p ${sshd.port} -t ed25519 127.0.0.1 >> ${empty}`);
    expect(r.stderr).toContain('Nothing was run on the server.');
    expect(readFileSync(registry, 'utf8')).toBe(before);
  });

  it('a changed host key is refused loudly', async () => {
    const other = join(tmp, 'other_host');
    keygen(other);
    const changed = join(tmp, 'known_hosts.changed');
    writeFileSync(changed, `[127.0.0.1]:${sshd.port} ${readFileSync(`${other}.pub`, 'utf8').split(' ').slice(0, 2).join(' ')}\n`);
    const r = await codeb(['--registry', registry, '--host', sshd.target, 'registry', 'list'], clientEnv({ CODEB_KNOWN_HOSTS: changed }));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`REFUSED: THE HOST KEY OF [127.0.0.1]:${sshd.port} HAS CHANGED. It now presents ssh-ed25519 ${sshd.hostFingerprint}`);
  });

  it('a wrong client key: a clear authentication error naming the key offered', async () => {
    const wrong = join(tmp, 'wrong_key');
    keygen(wrong);
    const before = readFileSync(registry, 'utf8');
    const r = await codeb(['--registry', registry, 'deploy', manifest, '--image', 'localhost/codeb-testapp:v3', '--identity', wrong], clientEnv());
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`error: SSH authentication as ${sshd.user} on 127\\.0\\.0\\.1:${sshd.port} failed: the server accepted none of the offered keys \\(key file ${wrong} \\(ssh-ed25519 SHA256:`));
    expect(r.stderr).toContain('authorized_keys');
    expect(readFileSync(registry, 'utf8')).toBe(before);
  });

  it('a connection dropped mid-deploy: a clear error here, the server finishes, re-running converges', async () => {
    let dropped = 0;
    const r = await codeb(['--registry', registry, 'deploy', manifest, '--image', 'localhost/codeb-testapp:v3'], clientEnv(), (err) => {
      // The new container has started and the health gate runs: cut the connection now.
      if (!dropped && /start \S+--web--\w+ \.\.\. started/.test(err)) dropped = sshd.dropConnections();
    });
    expect(dropped).toBeGreaterThan(0);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`error: Lost the connection to ${sshd.target} after [\\d.]+ s, while \`codeb deploy\` was running there`));
    expect(r.stderr).toContain('running the same command again converges');

    // The server-side codeb was not cut off with its output: it finishes the deploy and unlocks.
    const deadline = Date.now() + 30_000;
    while ((existsSync(`${registry}.lock`) || okDeploys('v3') === 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    const rec = record()!; // readRegistryFile checks the document against its schema
    expect(rec.status).toBe('running');
    expect(okDeploys('v3')).toBe(1);
    expect((await viaCaddy()).body).toBe('hello from v3');

    // Re-running the same command converges: nothing left to do, still one v3 deploy recorded.
    const again = await codeb(['--registry', registry, 'deploy', manifest, '--image', 'localhost/codeb-testapp:v3'], clientEnv());
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('No changes.');
    expect(okDeploys('v3')).toBe(1);
  });

  it('two deploys of the same project at once: one proceeds, the other fails naming the lock holder', async () => {
    const env = clientEnv({}, 'CODEB_LOCK_TIMEOUT_MS=500');
    const args = ['--registry', registry, 'deploy', manifest, '--image', 'localhost/codeb-testapp:v4'];
    const [a, b] = await Promise.all([codeb(args, env), codeb(args, env)]);
    const codes = [a.code, b.code].sort();
    expect(codes).toEqual([0, 1]);
    const loser = a.code === 1 ? a : b;
    expect(loser.stderr).toMatch(new RegExp(`error: The registry ${registry.replaceAll('.', '\\.')} is locked by \\S+ pid \\d+ \\(codeb (apply|deploy) .*\\) since .*; waited 1 s\\.`));
    expect(okDeploys('v4')).toBe(1);
    expect((await viaCaddy()).body).toBe('hello from v4');
  });

  it('two deploys at once with the default lock wait: the second waits and then runs', async () => {
    const before = record()!.history.length;
    const args = (v: string) => ['--registry', registry, 'deploy', manifest, '--image', `localhost/codeb-testapp:${v}`];
    const [a, b] = await Promise.all([codeb(args('v1'), clientEnv()), codeb(args('v2'), clientEnv())]);
    expect([a.code, b.code]).toEqual([0, 0]);
    const added = record()!.history.slice(before).filter((h) => h.action === 'deploy');
    expect(added.map((h) => h.result)).toEqual(['ok', 'ok']);
    // Serialised: the later deploy started from the slot the earlier one made live.
    expect(added[1]!.detail!.from).toBe(added[0]!.detail!.to);
    expect((await viaCaddy()).body).toBe(`hello from ${String(added[1]!.detail!.version)}`);
  });

  it('logs in with a key from the SSH agent or from CODEB_SSH_KEY (the key text, as CI passes it)', async () => {
    const list = ['--registry', registry, '--host', sshd.target, 'registry', 'list', '--json'];
    const fromEnv = await codeb(list, clientEnv({ CODEB_SSH_KEY_FILE: '', CODEB_SSH_KEY: readFileSync(sshd.clientKey, 'utf8') }));
    expect(fromEnv.stderr).toBe('');
    expect(JSON.parse(fromEnv.stdout)).toMatchObject({ registry, deployments: [expect.objectContaining({ project })] });

    const sock = join(tmp, 'agent.sock');
    const agent = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' });
    try {
      const deadline = Date.now() + 5000;
      while (!existsSync(sock) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const added = await new Promise<number>((res) => spawn('ssh-add', [sshd.clientKey], { env: { ...process.env, SSH_AUTH_SOCK: sock }, stdio: 'ignore' }).on('close', (c) => res(c ?? 1)));
      expect(added).toBe(0);
      const fromAgent = await codeb(list, clientEnv({ CODEB_SSH_KEY_FILE: '', SSH_AUTH_SOCK: sock }));
      expect(fromAgent.stderr).toBe('');
      expect(fromAgent.code).toBe(0);
    } finally {
      agent.kill();
    }
  });

  it('server check over SSH reports what the server has, as JSON', async () => {
    const r = await codeb(['server', 'check', sshd.target, '--json'], clientEnv());
    const out = JSON.parse(r.stdout) as { target: string; ok: boolean; checks: Array<{ name: string; status: string }> };
    expect(out.target).toBe(sshd.target);
    const status = Object.fromEntries(out.checks.map((c) => [c.name, c.status]));
    expect(status).toMatchObject({ node: 'ok', codeb: 'ok', settings: 'ok', caddy: 'ok', postgres: 'ok', redis: 'ok', 'minio/s3': 'ok', 'podman api': 'ok', ports: 'ok' });
    expect(r.code).toBe(out.checks.some((c) => c.status === 'missing') ? 1 : 0);
    expect(out.ok).toBe(r.code === 0);
  });

  it('destroy over SSH removes the deployment from the server', async () => {
    const r = await codeb(['--registry', registry, '--host', sshd.target, 'destroy', project, '--yes', '--delete-data'], clientEnv());
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Destroyed ${project} (production)`);
    expect(record()).toBeUndefined();
    expect(readdirSync(clientHome).length).toBe(0);
  });
});
