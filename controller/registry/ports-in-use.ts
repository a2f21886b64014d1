/**
 * Ports some process on this machine listens on, read from /proc/net/tcp{,6} (state 0A = LISTEN).
 * Race-free compared with trying to bind each port, but not free: the kernel lists every socket,
 * and with thousands of them (TIME_WAIT on a busy test machine) one read took 0.3-2 s here.
 */
import { readFileSync } from 'node:fs';

export function parseProcNetTcp(text: string): number[] {
  const ports: number[] = [];
  for (const line of text.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 4 || cols[3] !== '0A') continue;
    const hexPort = cols[1]?.split(':').pop();
    if (hexPort) ports.push(parseInt(hexPort, 16));
  }
  return ports;
}

export function listeningPorts(): Set<number> {
  const out = new Set<number>();
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    try {
      for (const p of parseProcNetTcp(readFileSync(f, 'utf8'))) out.add(p);
    } catch {
      // Not Linux, or no procfs: nothing known to be busy.
    }
  }
  return out;
}

/**
 * listeningPorts, read on the first `has`: an apply that allocates no new port (a no-change apply)
 * never reads the table.
 */
export function lazyListeningPorts(): Pick<ReadonlySet<number>, 'has'> {
  let ports: Set<number> | undefined;
  return { has: (port) => (ports ??= listeningPorts()).has(port) };
}
