/**
 * `codeb server facts` (hidden; run by `server check` on the server): the service endpoints of this
 * machine's settings.json and whether each answers, and how many app ports are free. Reads only.
 */
import { existsSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { codebHome, loadSettings, registryPath, settingsPath } from '../settings.js';
import { policyFromEnv } from '../registry/allocate.js';
import { listeningPorts } from '../registry/ports-in-use.js';
import { readRegistryFile } from '../registry/store.js';
import type { CodebFacts, Endpoint } from './check.js';
import { allPorts } from '../registry/slot-ports.js';

function probe(target: { host: string; port: number } | { path: string }, timeoutMs = 1500): Promise<Endpoint> {
  const address = 'path' in target ? `unix:${target.path}` : `${target.host}:${target.port}`;
  return new Promise((resolve) => {
    const socket: Socket = 'path' in target ? connect(target.path) : connect(target.port, target.host);
    const done = (reachable: boolean, error?: string) => {
      socket.destroy();
      resolve({ address, reachable, ...(error ? { error } : {}) });
    };
    socket.setTimeout(timeoutMs, () => done(false, `no answer within ${timeoutMs} ms`));
    socket.once('connect', () => done(true));
    socket.once('error', (err) => done(false, (err as NodeJS.ErrnoException).code ?? err.message));
  });
}

export async function gatherFacts(registry?: string, env: NodeJS.ProcessEnv = process.env): Promise<CodebFacts> {
  const file = registryPath(registry, env);
  const doc = readRegistryFile(file);
  const allocated = new Set<number>();
  let deployments = 0;
  for (const p of Object.values(doc.projects)) {
    for (const e of Object.values(p.environments)) {
      deployments++;
      for (const pair of Object.values(e.ports)) for (const port of allPorts(pair)) allocated.add(port);
    }
  }
  const { portRange } = policyFromEnv(env);
  const [min, max] = [portRange.min, portRange.max];
  const busy = listeningPorts();
  let listening = 0;
  let free = 0;
  for (let p = min; p <= max; p++) {
    if (allocated.has(p)) continue;
    if (busy.has(p)) listening++;
    else free++;
  }
  const facts: CodebFacts = {
    codebHome: codebHome(env),
    settingsFile: settingsPath(env),
    settings: existsSync(settingsPath(env)),
    services: {},
    ports: { min, max, listening, allocated: [...allocated].filter((p) => p >= min && p <= max).length, free },
    registry: { file, deployments },
  };
  if (!facts.settings) return facts;
  try {
    const s = loadSettings(env);
    const caddy = new URL(s.caddy.adminUrl);
    // The stack's admin API is a Unix socket (unix:///path); a server's may still be host:port.
    const caddyTarget = caddy.protocol === 'unix:' ? { path: caddy.pathname } : { host: caddy.hostname, port: Number(caddy.port || (caddy.protocol === 'https:' ? 443 : 80)) };
    const [postgres, redis, storage, caddyAdmin, podman] = await Promise.all([
      probe({ host: s.postgres.host, port: s.postgres.port }),
      probe({ host: s.redis.host, port: s.redis.port }),
      probe({ host: s.storage.endPoint, port: s.storage.port }),
      probe(caddyTarget),
      probe({ path: s.podman.socketPath.replace(/^unix:\/\//, '') }),
    ]);
    facts.services = { postgres, redis, storage: { ...storage, kind: s.storage.kind }, caddy: caddyAdmin, podman };
  } catch (err) {
    facts.settings = false;
    facts.settingsError = `cannot be used: ${(err as Error).message}`;
  }
  return facts;
}
