/**
 * Ports that belong to the stack or the server itself (Postgres, Redis, S3, Caddy HTTP/HTTPS/admin,
 * sshd): never handed to a deployment, and refused when a manifest names one in hostPorts. A slot
 * or entry port on Caddy's own port made Caddy proxy to itself; on the HTTPS port it broke TLS for
 * every site. Pure: the settings are read by the caller.
 */
import type { Settings } from '../settings.js';

/** sshd: a server is managed over it; a container bound to it would lock the operator out. */
export const SSH_PORT = 22;

function portOfUrl(url: string | undefined): number | null {
  if (!url || !/^https?:\/\//.test(url)) return null;
  try {
    const u = new URL(url);
    return u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : 80;
  } catch {
    return null;
  }
}

/** port -> what holds it, from the service settings (a missing settings file gives sshd only). */
export function reservedPorts(s: Partial<Settings> | null): Map<number, string> {
  const out = new Map<number, string>([[SSH_PORT, 'sshd']]);
  const add = (port: number | null | undefined, what: string) => {
    if (typeof port === 'number' && Number.isInteger(port) && port > 0 && !out.has(port)) out.set(port, what);
  };
  add(s?.postgres?.port, 'Postgres');
  add(s?.redis?.port, 'Redis');
  add(s?.storage?.port, 'S3');
  add(s?.caddy?.httpPort, 'Caddy HTTP');
  add(s?.caddy?.httpsPort, 'Caddy HTTPS');
  add(portOfUrl(s?.caddy?.adminUrl), 'Caddy admin API');
  return out;
}
