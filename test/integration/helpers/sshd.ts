/**
 * A real OpenSSH server for the remote tests: Debian's /usr/sbin/sshd on 127.0.0.1 on a free
 * port, with its own host key, key-only login for one generated client key, and all state in a
 * temp folder. It is the same machine (loopback), not a separate host: see docs/remote.md.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { freePort } from './stack.js';

export interface Sshd {
  port: number;
  dir: string;
  user: string;
  /** user@127.0.0.1:port */
  target: string;
  clientKey: string;
  /** A known_hosts file that trusts this server's host key. */
  knownHosts: string;
  hostPublicKey: string;
  /** `SHA256:...` of the host key, as ssh-keygen -l prints it. */
  hostFingerprint: string;
  log: () => string;
  /** Kill the per-connection sshd processes (not the listener): every open session drops. */
  dropConnections: () => number;
  stop: () => Promise<void>;
}

export function keygen(file: string, comment = 'codeb-test'): void {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file]);
}

export function fingerprintOf(pubFile: string): string {
  return execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', pubFile], { encoding: 'utf8' }).split(' ')[1]!;
}

/** Children of a process, from /proc (no ps needed). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

export async function startSshd(): Promise<Sshd> {
  const dir = mkdtempSync(join(tmpdir(), 'codeb-sshd-'));
  const port = await freePort();
  const user = userInfo().username;
  keygen(join(dir, 'host_ed25519'), 'codeb-test-host');
  keygen(join(dir, 'client_ed25519'), 'codeb-test-client');
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'client_ed25519.pub')));
  const hostPublicKey = readFileSync(join(dir, 'host_ed25519.pub'), 'utf8').trim().split(' ').slice(0, 2).join(' ');
  writeFileSync(join(dir, 'known_hosts'), `[127.0.0.1]:${port} ${hostPublicKey}\n`);
  writeFileSync(
    join(dir, 'sshd_config'),
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(dir, 'host_ed25519')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'StrictModes no',
      'UsePAM no',
      'PrintMotd no',
      'LogLevel VERBOSE',
      'MaxStartups 50',
      'MaxSessions 50',
      '',
    ].join('\n'),
  );
  mkdirSync('/run/sshd', { recursive: true });
  let log = '';
  const proc: ChildProcess = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', join(dir, 'sshd_config')], { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout!.on('data', (c: Buffer) => (log += c.toString()));
  proc.stderr!.on('data', (c: Buffer) => (log += c.toString()));
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`sshd did not start:\n${log}`)), 10_000);
    const check = () => {
      if (/Server listening on/.test(log)) {
        clearTimeout(t);
        resolve();
      } else if (proc.exitCode !== null) {
        clearTimeout(t);
        reject(new Error(`sshd exited (${proc.exitCode}):\n${log}`));
      } else setTimeout(check, 50);
    };
    check();
  });
  return {
    port,
    dir,
    user,
    target: `${user}@127.0.0.1:${port}`,
    clientKey: join(dir, 'client_ed25519'),
    knownHosts: join(dir, 'known_hosts'),
    hostPublicKey,
    hostFingerprint: fingerprintOf(join(dir, 'host_ed25519.pub')),
    log: () => log,
    dropConnections: () => {
      // The listener's children are the per-connection sshd processes ([priv] and, below it, the
      // session process); killing them closes the TCP connections. The commands they started
      // (sh, node) are not sshd and are left alone.
      let killed = 0;
      const walk = (pid: number) => {
        for (const c of childrenOf(pid)) {
          if (comm(c) !== 'sshd') continue;
          walk(c);
          try {
            process.kill(c, 'SIGKILL');
            killed++;
          } catch {
            // already gone
          }
        }
      };
      walk(proc.pid!);
      return killed;
    },
    stop: async () => {
      if (proc.exitCode === null) {
        proc.kill('SIGTERM');
        await new Promise((r) => proc.once('exit', r));
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
