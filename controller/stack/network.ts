/**
 * The stack's services interface: one host address (the pool's first, e.g. 10.99.0.1/32) on an
 * interface of the stack's own, where containers reach Postgres, Redis, S3 and their project's
 * service entries. It is not loopback (containers cannot reach the host's 127.0.0.1) and routes
 * nowhere: a container's packet to it goes out through its bridge's gateway and the host delivers
 * it locally. A `dummy` interface where the kernel has that driver, else an empty bridge (no
 * ports: the same thing for this purpose). Needs root, like Podman's bridge networks.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { CodebError } from '../errors.js';
import { findProgram } from './binaries.js';
import type { StackNetwork } from './layout.js';

const run = promisify(execFile);

interface IpAddrJson {
  ifname: string;
  addr_info?: Array<{ family: string; local: string; prefixlen: number }>;
}

async function ip(env: NodeJS.ProcessEnv, args: string[]): Promise<string> {
  const bin = findProgram('ip', env);
  if (!bin) throw new CodebError('The `ip` program (Debian package iproute2) is missing.', { hint: 'sudo bash scripts/setup.sh' });
  try {
    return (await run(bin, args, { timeout: 10_000 })).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`ip ${args.join(' ')}: ${(e.stderr || e.message).trim()}`);
  }
}

/** Which interface holds an address (null: none), and whether `name` exists. */
export async function observeServicesInterface(net: StackNetwork, env: NodeJS.ProcessEnv): Promise<{ holder: string | null; exists: boolean }> {
  const list = JSON.parse(await ip(env, ['-j', 'addr', 'show'])) as IpAddrJson[];
  const holder = list.find((i) => i.addr_info?.some((a) => a.family === 'inet' && a.local === net.servicesAddress))?.ifname ?? null;
  return { holder, exists: list.some((i) => i.ifname === net.interface) };
}

/** Create the interface and its address when missing (idempotent). Returns a note when it made something. */
export async function ensureServicesInterface(net: StackNetwork, env: NodeJS.ProcessEnv, isRoot: boolean, shared = false): Promise<string | null> {
  const seen = await observeServicesInterface(net, env);
  // `shared`: only a proxy pair (Caddy + forwarder) beside a stack that has the address already.
  if (shared && seen.holder) return null;
  if (seen.holder && seen.holder !== net.interface) {
    throw new CodebError(`The services address ${net.servicesAddress} of network pool ${net.pool} is already on interface ${seen.holder}, which this stack did not make: another stack (or network) uses that pool.`, {
      hint:
        `If another stack runs on that pool, give this one a pool of its own, e.g. CODEB_NETWORK_POOL=${net.pool.startsWith('10.97.') ? '10.96.0.0/16' : '10.97.0.0/16'} codeb stack up (docs/stack.md). ` +
        (seen.holder.startsWith('cbs')
          ? `If no stack runs on it any more (one was killed without \`stack down\`), ${seen.holder} is its leftover: remove it with \`ip link del ${seen.holder}\`.`
          : `${seen.holder} is not codeb's: pick a pool it does not use.`),
    });
  }
  if (seen.holder === net.interface) {
    await ip(env, ['link', 'set', net.interface, 'up']);
    return null;
  }
  if (!isRoot) {
    throw new CodebError(`The services interface ${net.interface} (${net.servicesAddress}) does not exist, and only root can create it.`, {
      hint: 'Run `codeb stack up` as root (containers use Podman bridge networks, which need root here too).',
    });
  }
  if (!seen.exists) {
    try {
      await ip(env, ['link', 'add', net.interface, 'type', 'dummy']);
    } catch (err) {
      // Kernels without the dummy driver (some containers and VMs): a bridge without ports does the same job.
      if (!/unknown device type|not supported/i.test((err as Error).message)) throw err;
      await ip(env, ['link', 'add', net.interface, 'type', 'bridge']);
    }
  }
  await ip(env, ['addr', 'add', `${net.servicesAddress}/32`, 'dev', net.interface]);
  await ip(env, ['link', 'set', net.interface, 'up']);
  return `made interface ${net.interface} with the services address ${net.servicesAddress} (containers reach Postgres, Redis and S3 there)`;
}

/** On `down`: remove the interface (it is the stack's own: the name derives from its folder). */
export async function removeServicesInterface(net: StackNetwork, env: NodeJS.ProcessEnv): Promise<void> {
  const seen = await observeServicesInterface(net, env).catch(() => null);
  if (seen?.exists) await ip(env, ['link', 'del', net.interface]).catch(() => {});
}
