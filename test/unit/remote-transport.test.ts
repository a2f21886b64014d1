/**
 * The pure parts of running commands on a server: target addresses, known_hosts matching (checked
 * against files and fingerprints made by the real ssh-keygen), the arguments forwarded to the
 * server's codeb, and `server check`'s assessment of a server's facts.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { registerApply } from '../../controller/cli/apply.js';
import { registerDeploy } from '../../controller/cli/deploy.js';
import { registerRegistry } from '../../controller/cli/registry.js';
import { addTransportOptions, forwardedArgs } from '../../controller/cli/remote.js';
import { assessServer, parseShellFacts, versionOf, type CodebFacts } from '../../controller/server/check.js';
import { entriesFor, fingerprint, hostKeyAlgorithms, parseKnownHosts, patternsMatch, verifyHostKey } from '../../controller/transport/known-hosts.js';
import { parseTarget, knownHostsName, type SshTarget } from '../../controller/transport/target.js';

const dir = mkdtempSync(join(tmpdir(), 'codeb-remote-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function keypair(name: string): { blob: Buffer; line: string; fp: string } {
  const f = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', f]);
  const pub = readFileSync(`${f}.pub`, 'utf8').trim().split(' ');
  return { blob: Buffer.from(pub[1]!, 'base64'), line: `${pub[0]} ${pub[1]}`, fp: execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${f}.pub`], { encoding: 'utf8' }).split(' ')[1]! };
}

describe('parseTarget', () => {
  it('reads user@host[:port], [IPv6] and ssh://', () => {
    expect(parseTarget('deploy@app1.example.com')).toMatchObject({ user: 'deploy', host: 'app1.example.com', port: 22, display: 'deploy@app1.example.com' });
    expect(parseTarget('root@127.0.0.1:2222')).toMatchObject({ user: 'root', host: '127.0.0.1', port: 2222 });
    expect(parseTarget('root@[2001:db8::1]:2222')).toMatchObject({ host: '2001:db8::1', port: 2222, display: 'root@[2001:db8::1]:2222' });
    expect(parseTarget('root@[::1]')).toMatchObject({ host: '::1', port: 22 });
    expect(parseTarget('ssh://ci@host.internal:22')).toMatchObject({ user: 'ci', host: 'host.internal', port: 22 });
    expect(parseTarget('local')).toBe('local');
  });

  it.each(['host.example.com', 'root@', '@host', 'root@host:0', 'root@host:70000', 'Root@host', 'root@host -oProxyCommand=x', 'root@-oProxyCommand=x', 'root@a_b', 'root@::1', '-x@host', 'root@host:22;id'])(
    'refuses %j with exit code 2',
    (bad) => {
      expect(() => parseTarget(bad)).toThrow(expect.objectContaining({ exitCode: 2 }));
    },
  );

  it('names hosts as OpenSSH does in known_hosts', () => {
    expect(knownHostsName({ host: 'a.example', port: 22 })).toBe('a.example');
    expect(knownHostsName({ host: '127.0.0.1', port: 2222 })).toBe('[127.0.0.1]:2222');
  });
});

describe('known_hosts', () => {
  const server = keypair('server');
  const other = keypair('other');
  const target = parseTarget('root@127.0.0.1:2222') as SshTarget;

  it('fingerprints like ssh-keygen -l', () => {
    expect(fingerprint(server.blob)).toBe(server.fp);
  });

  it('accepts the listed key, calls an unlisted host unknown and a different key changed', () => {
    const entries = parseKnownHosts(`# comment\n\n[127.0.0.1]:2222 ${server.line}\nother.example ${other.line}\n`, 'kh');
    expect(verifyHostKey(entries, target, server.blob)).toMatchObject({ ok: true, entry: { line: 3 } });
    expect(verifyHostKey(entries, { host: '127.0.0.1', port: 2223 }, server.blob)).toMatchObject({ ok: false, reason: 'unknown' });
    // The same address on port 22 is a different known_hosts name.
    expect(verifyHostKey(entries, { host: '127.0.0.1', port: 22 }, server.blob)).toMatchObject({ ok: false, reason: 'unknown' });
    expect(verifyHostKey(entries, target, other.blob)).toMatchObject({ ok: false, reason: 'changed', entries: [{ line: 3 }] });
  });

  it('matches entries hashed by ssh-keygen -H', () => {
    const f = join(dir, 'hashed');
    writeFileSync(f, `[127.0.0.1]:2222 ${server.line}\n`);
    execFileSync('ssh-keygen', ['-H', '-f', f], { stdio: 'ignore' });
    const text = readFileSync(f, 'utf8');
    expect(text.startsWith('|1|')).toBe(true);
    const entries = parseKnownHosts(text, f);
    expect(verifyHostKey(entries, target, server.blob).ok).toBe(true);
    expect(verifyHostKey(entries, { host: '127.0.0.2', port: 2222 }, server.blob).ok).toBe(false);
  });

  it('understands patterns, negation and @revoked', () => {
    expect(patternsMatch('*.example.com,!bad.example.com', 'app.example.com')).toBe(true);
    expect(patternsMatch('*.example.com,!bad.example.com', 'bad.example.com')).toBe(false);
    expect(patternsMatch('app?.example.com', 'app1.example.com')).toBe(true);
    expect(patternsMatch('[127.0.0.1]:2222', '[127.0.0.1]:2222')).toBe(true);
    expect(patternsMatch('[127.0.0.1]:2222', '1')).toBe(false);
    const entries = parseKnownHosts(`[127.0.0.1]:2222 ${server.line}\n@revoked * ${server.line}\n`, 'kh');
    expect(verifyHostKey(entries, target, server.blob)).toMatchObject({ ok: false, reason: 'revoked' });
  });

  it('offers the host key types known for the host first', () => {
    const entries = parseKnownHosts(`[127.0.0.1]:2222 ssh-rsa ${Buffer.from('x').toString('base64')}\n`, 'kh');
    expect(hostKeyAlgorithms(entriesFor(entries, target)).slice(0, 3)).toEqual(['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']);
    expect(hostKeyAlgorithms([])[0]).toBe('ssh-ed25519');
  });
});

describe('forwardedArgs', () => {
  /** Parse a command line with the real command definitions and capture what would be forwarded. */
  async function forward(argv: string[]): Promise<string[]> {
    const program = new Command('codeb').option('--registry <file>').exitOverride();
    addTransportOptions(program);
    registerApply(program);
    registerDeploy(program);
    registerRegistry(program);
    let captured: string[] = [];
    program.hook('preAction', (_p, cmd) => {
      const manifestCommand = ['plan', 'apply', 'deploy'].includes(cmd.name());
      captured = forwardedArgs(cmd, manifestCommand ? ['<manifest>', ...cmd.processedArgs.slice(1)] : cmd.processedArgs);
      throw new Error('stop');
    });
    await program.parseAsync(argv, { from: 'user' }).catch((e: Error) => {
      if (e.message !== 'stop') throw e;
    });
    return captured;
  }

  it('forwards the options given, in --name=value form, without the SSH options', async () => {
    expect(
      await forward(['--host', 'root@h:2', '--registry', '/srv/r.json', 'deploy', 'p.yaml', '-i', 'web=ghcr.io/o/a:1', '--image', 'ghcr.io/o/w:2', '-e', 'production', '--identity', '/k', '--json']),
    ).toEqual(['--registry=/srv/r.json', 'deploy', '--image=web=ghcr.io/o/a:1', '--image=ghcr.io/o/w:2', '--env=production', '--json', '--', '<manifest>']);
    expect(await forward(['plan', '--remote-codeb', '/x/codeb.js', 'p.yaml'])).toEqual(['plan', '--', '<manifest>']);
  });

  it('keeps hostile values as single arguments and subcommand paths whole', async () => {
    expect(await forward(['registry', 'inspect', '-e', '$(id); rm -rf /', '--', '-project'])).toEqual(['registry', 'inspect', '--env=$(id); rm -rf /', '--', '-project']);
  });
});

describe('server check assessment', () => {
  const codeb: CodebFacts = {
    codebHome: '/opt/codeb',
    settingsFile: '/opt/codeb/settings.json',
    settings: true,
    services: {
      postgres: { address: '127.0.0.1:5432', reachable: true },
      redis: { address: '127.0.0.1:6379', reachable: false, error: 'ECONNREFUSED' },
      storage: { address: '127.0.0.1:9000', reachable: true, kind: 'minio' },
      caddy: { address: 'localhost:2019', reachable: true },
      podman: { address: 'unix:/run/podman/podman.sock', reachable: true },
    },
    ports: { min: 3000, max: 3999, listening: 2, allocated: 6, free: 992 },
    registry: { file: '/opt/codeb/registry/projects.json', deployments: 2 },
  };
  const shell = parseShellFacts(
    ['os=Linux x86_64', 'node=v20.11.1', 'podman=podman version 4.9.3', 'pid1=systemd', 'systemd_state=running', 'caddy=v2.7.6', 'postgres=postgres (PostgreSQL) 16.2', 'redis=Redis server v=7.2.4', 'minio=', 'codeb=0.1.0', 'codeb_facts='].join('\n'),
  );
  const ctx = { target: parseTarget('deploy@app1.example.com:2222'), codebCommand: 'node /opt/codeb/bin/codeb.js', localInstall: '/home/me/codeb' };

  it('reads versions', () => {
    expect(versionOf('podman version 4.3.1')).toEqual([4, 3, 1]);
    expect(versionOf('v20.11.1')).toEqual([20, 11, 1]);
    expect(versionOf('')).toBeNull();
  });

  it('says what is there and what is missing, with the command that fixes each gap', () => {
    const checks = assessServer(shell, codeb, ctx);
    const by = Object.fromEntries(checks.map((c) => [c.name, c]));
    expect(by.node!.status).toBe('ok');
    expect(by.podman).toMatchObject({ status: 'ok', found: expect.stringContaining('Quadlet') });
    expect(by.systemd!.status).toBe('ok');
    expect(by.redis).toMatchObject({ status: 'missing', fix: "ssh -p 2222 deploy@app1.example.com 'sudo systemctl enable --now redis-server'" });
    expect(by.ports).toMatchObject({ status: 'ok', found: expect.stringContaining('992 of 1000 free') });
    expect(checks.filter((c) => c.status === 'missing').map((c) => c.name)).toEqual(['redis']);
    // No timers reported: nothing runs the periodic work, and init is the fix.
    expect(by.timers).toMatchObject({ status: 'warn', found: expect.stringContaining('codeb-monitor, codeb-jobs, codeb-backups'), fix: 'codeb server init deploy@app1.example.com:2222 (installs them)' });
    const withTimers = assessServer({ ...shell, timers: 'active active inactive ' }, codeb, ctx).find((c) => c.name === 'timers');
    expect(withTimers).toMatchObject({ status: 'warn', found: expect.stringMatching(/^not active: codeb-backups:/) });
    expect(assessServer({ ...shell, timers: 'active active active ' }, codeb, ctx).find((c) => c.name === 'timers')!.status).toBe('ok');
  });

  it('a server init made: its object storage stand-in by kind; s3rver is ok with its shared key named; a stopped one is restarted through its unit', () => {
    const s3rver = (reachable: boolean): CodebFacts => ({ ...codeb, services: { ...codeb.services, storage: { address: '127.0.0.1:29000', reachable, kind: 's3rver', ...(reachable ? {} : { error: 'ECONNREFUSED' }) } } });
    const up = Object.fromEntries(assessServer(shell, s3rver(true), ctx).map((c) => [c.name, c]));
    expect(up['minio/s3']).toMatchObject({ status: 'ok', found: 's3rver reachable at 127.0.0.1:29000 (codeb-s3.service); s3rver: one key shared by every project, no bucket policies or lifecycle' });
    const down = Object.fromEntries(assessServer(shell, s3rver(false), ctx).map((c) => [c.name, c]));
    expect(down['minio/s3']).toMatchObject({ status: 'missing', found: expect.stringContaining('(installed: codeb-s3.service)'), fix: "ssh -p 2222 deploy@app1.example.com 'sudo systemctl restart codeb-s3.service'" });
  });

  it('on a bare server: node too old, no codeb, old podman, no systemd', () => {
    const bare = parseShellFacts('node=v18.19.0\npodman=podman version 4.3.1\npid1=bash\ncaddy=\ncodeb=\n');
    const checks = assessServer(bare, null, ctx);
    const by = Object.fromEntries(checks.map((c) => [c.name, c]));
    expect(by.node).toMatchObject({ status: 'missing', found: expect.stringContaining('needs 20') });
    expect(by.codeb).toMatchObject({ status: 'missing', fix: 'codeb server init deploy@app1.example.com:2222' });
    expect(by.podman).toMatchObject({ status: 'warn', found: expect.stringContaining('need 4.4') });
    expect(by.systemd).toMatchObject({ status: 'missing', found: 'PID 1 is "bash", not systemd' });
    expect(by.caddy).toMatchObject({ status: 'missing', fix: expect.stringContaining('apt-get install -y caddy') });
    // No systemd, no codeb: no timers to speak of.
    expect(by.timers).toBeUndefined();
  });
});
