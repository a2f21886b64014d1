/**
 * Host key verification against OpenSSH known_hosts files: plain, `[host]:port`, hashed (`|1|`)
 * and wildcard/negated patterns, `@revoked` markers. `@cert-authority` lines are not supported
 * (ignored). Pure apart from reading the files.
 */
import { createHash, createHmac } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { knownHostsName, type SshTarget } from './target.js';

export interface KnownHostEntry {
  file: string;
  line: number;
  marker: '' | '@revoked' | '@cert-authority';
  patterns: string;
  keyType: string;
  key: Buffer;
}

/** SHA256 fingerprint as OpenSSH prints it: `SHA256:<base64 without padding>`. */
export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** The key type written inside an SSH public key blob (its first string). */
export function keyTypeOf(key: Buffer): string {
  if (key.length < 4) return 'unknown';
  const len = key.readUInt32BE(0);
  return len > 0 && len < 64 && key.length >= 4 + len ? key.subarray(4, 4 + len).toString('latin1') : 'unknown';
}

export function parseKnownHosts(text: string, file: string): KnownHostEntry[] {
  const out: KnownHostEntry[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const cols = line.split(/\s+/);
    let marker: KnownHostEntry['marker'] = '';
    if (cols[0] === '@revoked' || cols[0] === '@cert-authority') marker = cols.shift() as KnownHostEntry['marker'];
    const [patterns, keyType, b64] = cols;
    if (!patterns || !keyType || !b64) return;
    const key = Buffer.from(b64, 'base64');
    if (key.length === 0) return;
    out.push({ file, line: i + 1, marker, patterns, keyType, key });
  });
  return out;
}

function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replaceAll('*', '.*').replaceAll('?', '.');
  return new RegExp(`^${body}$`, 'i');
}

/** Does one host-pattern field (comma list, `!` negation, `*`/`?`, `|1|salt|hash`) name this host? */
export function patternsMatch(patterns: string, name: string): boolean {
  if (patterns.startsWith('|1|')) {
    const [, , salt, hash] = patterns.split('|');
    if (!salt || !hash) return false;
    return createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64') === hash;
  }
  let matched = false;
  for (const p of patterns.split(',')) {
    const negated = p.startsWith('!');
    const re = globToRegExp(negated ? p.slice(1) : p);
    if (re.test(name)) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

/** known_hosts files codeb reads: $CODEB_KNOWN_HOSTS alone when set, else ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts. */
export function knownHostsFiles(env: NodeJS.ProcessEnv = process.env): string[] {
  if (env.CODEB_KNOWN_HOSTS) return [env.CODEB_KNOWN_HOSTS];
  return [join(homedir(), '.ssh', 'known_hosts'), '/etc/ssh/ssh_known_hosts'];
}

export function loadKnownHosts(files: string[]): KnownHostEntry[] {
  return files.flatMap((f) => (existsSync(f) ? parseKnownHosts(readFileSync(f, 'utf8'), f) : []));
}

/** Entries that name this target (OpenSSH's name for it: `host` on port 22, `[host]:port` otherwise). */
export function entriesFor(entries: KnownHostEntry[], target: Pick<SshTarget, 'host' | 'port'>): KnownHostEntry[] {
  const name = knownHostsName(target);
  return entries.filter((e) => e.marker !== '@cert-authority' && patternsMatch(e.patterns, name));
}

export type HostKeyVerdict =
  | { ok: true; entry: KnownHostEntry }
  | { ok: false; reason: 'unknown' | 'changed' | 'revoked'; entries: KnownHostEntry[] };

/** Decide on a presented host key. Pure. */
export function verifyHostKey(entries: KnownHostEntry[], target: Pick<SshTarget, 'host' | 'port'>, key: Buffer): HostKeyVerdict {
  const mine = entriesFor(entries, target);
  const revoked = entries.filter((e) => e.marker === '@revoked' && e.key.equals(key));
  if (revoked.length) return { ok: false, reason: 'revoked', entries: revoked };
  const same = mine.find((e) => e.marker === '' && e.key.equals(key));
  if (same) return { ok: true, entry: same };
  const known = mine.filter((e) => e.marker === '');
  return { ok: false, reason: known.length ? 'changed' : 'unknown', entries: known };
}

const HOST_KEY_ALGORITHMS = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'];

/** Host key algorithms to offer, those with a known_hosts entry for this host first (as OpenSSH does). */
export function hostKeyAlgorithms(entries: KnownHostEntry[]): string[] {
  const types = new Set(entries.filter((e) => e.marker === '').map((e) => e.keyType));
  const known = HOST_KEY_ALGORITHMS.filter((a) => types.has(a) || (types.has('ssh-rsa') && a.startsWith('rsa-sha2-')));
  return [...known, ...HOST_KEY_ALGORITHMS.filter((a) => !known.includes(a))];
}

/** ssh-keyscan's -t name for a key type: ed25519, ecdsa, rsa. */
export function keyscanType(keyType: string): string {
  if (keyType === 'ssh-ed25519') return 'ed25519';
  if (keyType.startsWith('ecdsa-')) return 'ecdsa';
  if (keyType === 'ssh-rsa') return 'rsa';
  return keyType;
}
