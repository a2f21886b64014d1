/**
 * SSH sessions to a server (node-ssh over ssh2): key authentication from the agent, a key file or
 * an environment variable; host keys verified against known_hosts; every failure turned into a
 * CodebError that says what happened and what to run. The only module that imports node-ssh.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { NodeSSH } from 'node-ssh';
import ssh2 from 'ssh2';
import { CodebError } from '../errors.js';
import { registerSecret } from '../redact.js';
import { fingerprint, hostKeyAlgorithms, keyscanType, keyTypeOf, knownHostsFiles, loadKnownHosts, entriesFor, verifyHostKey, type HostKeyVerdict } from './known-hosts.js';
import { shellQuote } from './shell-quote.js';
import { knownHostsName, type SshTarget } from './target.js';

export interface SshOptions {
  /** --identity: a private key file. */
  identityFile?: string;
  env?: NodeJS.ProcessEnv;
}

export interface ExecResult {
  /** null when the connection ended before the command did. */
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  stdin?: string;
  onStdout?: (chunk: Buffer) => void;
  onStderr?: (chunk: Buffer) => void;
}

interface KeyChoice {
  /** For messages: where the key came from. */
  source: string;
  text: string;
}

const DEFAULT_KEYS = ['id_ed25519', 'id_ecdsa', 'id_rsa'];

/** The private key to offer: --identity, CODEB_SSH_KEY_FILE, CODEB_SSH_KEY (the key text, for CI), else ~/.ssh/id_* when no agent runs. */
function chooseKey(opts: SshOptions, env: NodeJS.ProcessEnv): KeyChoice | null {
  const file = opts.identityFile ?? env.CODEB_SSH_KEY_FILE;
  if (file) {
    if (!existsSync(file)) {
      throw new CodebError(`The SSH key file ${file} does not exist.`, { hint: 'Pass the private key with --identity <file> or CODEB_SSH_KEY_FILE.' });
    }
    return { source: `key file ${file}`, text: readFileSync(file, 'utf8') };
  }
  if (env.CODEB_SSH_KEY) {
    registerSecret(env.CODEB_SSH_KEY);
    return { source: 'the key in CODEB_SSH_KEY', text: env.CODEB_SSH_KEY.replace(/\r\n/g, '\n').trim() + '\n' };
  }
  if (env.SSH_AUTH_SOCK) return null;
  for (const name of DEFAULT_KEYS) {
    const f = join(homedir(), '.ssh', name);
    if (existsSync(f)) return { source: `key file ${f}`, text: readFileSync(f, 'utf8') };
  }
  return null;
}

/** Parse the key up front so a bad or encrypted key is reported as such, with its public fingerprint. */
function describeKey(key: KeyChoice, passphrase: string | undefined): string {
  const parsed = ssh2.utils.parseKey(key.text, passphrase);
  if (parsed instanceof Error) {
    const encrypted = /encrypted|passphrase/i.test(parsed.message);
    throw new CodebError(`Cannot use ${key.source}: ${parsed.message}.`, {
      hint: encrypted
        ? 'The key is protected by a passphrase: set CODEB_SSH_KEY_PASSPHRASE, or load it into ssh-agent (ssh-add) and leave out --identity.'
        : 'Give an OpenSSH or PEM private key (the file without .pub).',
    });
  }
  const k = Array.isArray(parsed) ? parsed[0]! : parsed;
  const pub = k.getPublicSSH();
  return `${key.source} (${keyTypeOf(pub)} ${fingerprint(pub)})`;
}

function hostKeyError(target: SshTarget, verdict: Exclude<HostKeyVerdict, { ok: true }>, key: Buffer, files: string[]): CodebError {
  const type = keyTypeOf(key);
  const fp = fingerprint(key);
  const name = knownHostsName(target);
  const file = files[0]!;
  const scan = `ssh-keyscan ${target.port === 22 ? '' : `-p ${target.port} `}-t ${keyscanType(type)} ${target.host} >> ${file}`;
  if (verdict.reason === 'unknown') {
    return new CodebError(
      `The host key of ${name} is not known: it presents ${type} key ${fp}, and no known_hosts file (${files.join(', ')}) lists it. Nothing was run on the server.`,
      {
        hint: `Check that fingerprint with the server's administrator (on the server: ssh-keygen -lf /etc/ssh/ssh_host_${keyscanType(type)}_key.pub), then trust it:\n    ${scan}\n  In CI, store that known_hosts line as a secret (the action's known-hosts input) or set CODEB_KNOWN_HOSTS to a file holding it.`,
      },
    );
  }
  const where = verdict.entries.map((e) => `${e.file}:${e.line}`).join(', ');
  if (verdict.reason === 'revoked') {
    return new CodebError(`REFUSED: the host key of ${name} (${type} ${fp}) is marked @revoked in ${where}. Nothing was run on the server.`, {
      hint: 'Someone revoked this key on purpose; ask the server administrator which key is current.',
    });
  }
  const expected = verdict.entries.map((e) => `${e.keyType} ${fingerprint(e.key)} (${e.file}:${e.line})`).join('; ');
  return new CodebError(
    `REFUSED: THE HOST KEY OF ${name} HAS CHANGED. It now presents ${type} ${fp}; known_hosts expects ${expected}. ` +
      'This can be a man-in-the-middle attack, or the server was reinstalled. Nothing was run on the server.',
    {
      hint: `Ask the server administrator for the new fingerprint. Only if it matches ${fp}: remove the old entry (ssh-keygen -R '${name}' -f ${verdict.entries[0]!.file}) and trust the new key (${scan}).`,
    },
  );
}

/** An open SSH connection to one server; run commands as argument arrays. */
export class SshSession {
  private lost: Error | null = null;

  private constructor(
    readonly target: SshTarget,
    private readonly ssh: NodeSSH,
  ) {
    // A dropped connection after the handshake is reported by exec (code null); never crash on it.
    ssh.connection?.on('error', (err) => {
      this.lost = err;
    });
  }

  static async open(target: SshTarget, opts: SshOptions = {}): Promise<SshSession> {
    const env = opts.env ?? process.env;
    const files = knownHostsFiles(env);
    const entries = loadKnownHosts(files);
    const key = chooseKey(opts, env);
    const passphrase = env.CODEB_SSH_KEY_PASSPHRASE || undefined;
    const offered: string[] = [];
    if (key) offered.push(describeKey(key, passphrase));
    if (env.SSH_AUTH_SOCK) offered.push(`the keys of the SSH agent at ${env.SSH_AUTH_SOCK}`);
    if (!offered.length) {
      throw new CodebError(`No SSH key to log in to ${target.display} with.`, {
        hint: 'Start ssh-agent and ssh-add your key, or pass --identity <file>, CODEB_SSH_KEY_FILE=<file> or CODEB_SSH_KEY=<key text> (CI).',
      });
    }

    let rejected: { verdict: Exclude<HostKeyVerdict, { ok: true }>; key: Buffer } | null = null;
    const ssh = new NodeSSH();
    try {
      await ssh.connect({
        host: target.host,
        port: target.port,
        username: target.user,
        ...(key ? { privateKey: key.text, ...(passphrase ? { passphrase } : {}) } : {}),
        ...(env.SSH_AUTH_SOCK ? { agent: env.SSH_AUTH_SOCK } : {}),
        algorithms: { serverHostKey: hostKeyAlgorithms(entriesFor(entries, target)) as never },
        hostVerifier: (hostKey: Buffer) => {
          const verdict = verifyHostKey(entries, target, hostKey);
          if (verdict.ok) return true;
          rejected = { verdict, key: hostKey };
          return false;
        },
        readyTimeout: Number(env.CODEB_SSH_TIMEOUT_MS) || 20_000,
        // A silent network drop is noticed within ~15 s instead of hanging forever.
        keepaliveInterval: 5_000,
        keepaliveCountMax: 3,
      });
    } catch (err) {
      ssh.dispose();
      if (rejected) {
        const r = rejected as { verdict: Exclude<HostKeyVerdict, { ok: true }>; key: Buffer };
        throw hostKeyError(target, r.verdict, r.key, files);
      }
      throw connectError(target, err, offered);
    }
    return new SshSession(target, ssh);
  }

  /** Run argv through the remote shell (quoted by shellQuote), streaming its output. */
  async exec(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    if (this.lost || !this.ssh.isConnected()) return { code: null, signal: null, stdout: '', stderr: '' };
    try {
      const r = await this.ssh.execCommand(shellQuote(argv), { stdin: opts.stdin, onStdout: opts.onStdout, onStderr: opts.onStderr, noTrim: true });
      return { code: r.code, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
    } catch (err) {
      this.lost = err as Error;
      return { code: null, signal: null, stdout: '', stderr: '' };
    }
  }

  /** Copy a local file to the server over SFTP (`server init` uploads the codeb bundle this way). */
  async upload(localFile: string, remoteFile: string): Promise<void> {
    await this.ssh.putFile(localFile, remoteFile);
  }

  /** Why the connection ended, when it did. */
  get lostReason(): string {
    return this.lost ? this.lost.message : 'the connection closed';
  }

  close(): void {
    this.ssh.dispose();
  }
}

function connectError(target: SshTarget, err: unknown, offered: string[]): CodebError {
  const e = err as Error & { level?: string; code?: string };
  const where = `${target.host}:${target.port}`;
  if (e.level === 'client-authentication') {
    return new CodebError(`SSH authentication as ${target.user} on ${where} failed: the server accepted none of the offered keys (${offered.join('; ')}).`, {
      hint: `Add the public key to ~${target.user}/.ssh/authorized_keys on the server (ssh-copy-id -i <key>.pub ${target.port === 22 ? '' : `-p ${target.port} `}${target.user}@${target.host}), or offer the right key with --identity <file>, CODEB_SSH_KEY_FILE or CODEB_SSH_KEY.`,
      cause: err,
    });
  }
  if (e.level === 'client-timeout') {
    return new CodebError(`SSH to ${where} timed out during the handshake.`, { hint: 'Check the address and port, and that sshd answers there (ssh -v ...).', cause: err });
  }
  if (e.code === 'ECONNREFUSED' || e.code === 'ENOTFOUND' || e.code === 'EHOSTUNREACH' || e.code === 'ETIMEDOUT' || e.code === 'EAI_AGAIN' || e.code === 'ENETUNREACH') {
    return new CodebError(`Cannot reach ${where} over SSH: ${e.message}.`, { hint: 'Check the host name and port, that sshd runs there, and that no firewall is in the way.', cause: err });
  }
  return new CodebError(`SSH connection to ${where} failed: ${e.message}`, { hint: 'Run again with CODEB_DEBUG=1 for details; `ssh -v` with the same key shows what the server says.', cause: err });
}
