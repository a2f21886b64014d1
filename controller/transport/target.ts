/**
 * Where a command runs: `local` (this machine) or `user@host[:port]` reached over SSH — the same
 * syntax as `servers[].host` in a manifest (schemas/project-manifest.schema.json).
 */
import { CodebError, EXIT } from '../errors.js';

export interface SshTarget {
  user: string;
  host: string;
  port: number;
  /** As written by the user, for messages: `deploy@example.com:2222`. */
  display: string;
}

export type Target = 'local' | SshTarget;

const USER = /^[a-z_][a-z0-9_-]{0,31}$/;
const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const HOSTNAME = new RegExp(`^${LABEL}(?:\\.${LABEL})*$`);
const IPV6 = /^\[([0-9a-fA-F:]+)\]$/;

/** Parse `local` or `[ssh://]user@host[:port]` (host: DNS name, IPv4 or [IPv6]). Throws exit code 2 on anything else. */
export function parseTarget(text: string): Target {
  const raw = text.trim();
  if (raw === 'local') return 'local';
  const bad = (why: string) =>
    new CodebError(`${JSON.stringify(text)} is not a server address: ${why}.`, {
      exitCode: EXIT.invalid,
      hint: 'Write `local` or user@host[:port], e.g. deploy@app1.example.com or root@[2001:db8::1]:2222.',
    });
  const s = raw.startsWith('ssh://') ? raw.slice('ssh://'.length) : raw;
  const at = s.indexOf('@');
  if (at < 0) throw bad('the user is missing');
  const user = s.slice(0, at);
  if (!USER.test(user)) throw bad(`the user ${JSON.stringify(user)} is not a valid user name`);
  let rest = s.slice(at + 1);
  let port = 22;
  const portMatch = /:(\d{1,5})$/.exec(rest);
  if (portMatch && (rest.startsWith('[') ? rest.lastIndexOf(']') < portMatch.index : true)) {
    port = Number(portMatch[1]);
    if (port < 1 || port > 65535) throw bad(`port ${port} is out of range`);
    rest = rest.slice(0, portMatch.index);
  }
  let host: string;
  const v6 = IPV6.exec(rest);
  if (v6) host = v6[1]!;
  else if (HOSTNAME.test(rest) && rest.length <= 253) host = rest;
  else throw bad(`the host ${JSON.stringify(rest)} is not a DNS name or an address`);
  return { user, host, port, display: `${user}@${rest}${port === 22 ? '' : `:${port}`}` };
}

/** How OpenSSH names a host in known_hosts and ssh-keyscan: `host` on port 22, `[host]:port` otherwise. */
export function knownHostsName(t: Pick<SshTarget, 'host' | 'port'>): string {
  return t.port === 22 ? t.host : `[${t.host}]:${t.port}`;
}
