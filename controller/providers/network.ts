/**
 * Project networks: one Podman bridge network per project and environment
 * (`network.project/<networkName>`), created with `isolate=true` so no other project's network can
 * reach it, on the subnet the registry holds and a bridge name derived from it. Labelled with its
 * owner; a network of the same name that another deployment (or nobody) owns is a `blocked`
 * action, never taken over. Talks to Podman's own (libpod) API on the same socket as the runtime:
 * the Docker-compatible API cannot set the bridge name or the isolate option.
 */
import { execFile } from 'node:child_process';
import { CodebError } from '../errors.js';
import { labelOwner, libpodCall, libpodInspect, libpodMessage as message, libpodRemove, ownerConflict, ownerLabels } from './libpod.js';
import type { Action, ExecContext, Observed, Provider, Resource } from '../reconcile/model.js';
import { parseIpAddresses } from '../runtime/network.js';

export interface NetworkSpec extends Record<string, unknown> {
  subnet: string;
  gateway: string;
  /** The Linux bridge (names are global on the machine, so codeb picks them: runtime/network.ts). */
  bridge: string;
  /** Traffic to and from other isolated networks is dropped (Podman's isolate option). */
  isolate: boolean;
  /** <project>/<env>, from the owner labels. */
  owner: string;
}

interface LibpodNetwork {
  name: string;
  network_interface?: string;
  subnets?: Array<{ subnet: string; gateway?: string }>;
  options?: Record<string, string>;
  labels?: Record<string, string>;
}

export class NetworkProvider implements Provider {
  readonly system = 'network' as const;

  constructor(private readonly socketPath: string) {}

  inspect(name: string): Promise<LibpodNetwork | null> {
    return libpodInspect<LibpodNetwork>(this.socketPath, 'network', name);
  }

  /** Subnets of every Podman network but `except` (another registry's, or not codeb's at all). */
  async subnetsInUse(except: string): Promise<string[]> {
    const r = await libpodCall(this.socketPath, 'GET', '/networks/json');
    if (r.status !== 200) throw new CodebError(`Cannot list Podman networks: ${message(r.json)}`);
    const networks = r.json as LibpodNetwork[];
    const own = networks.find((n) => n.name === except)?.network_interface;
    // And what the host's interfaces hold, up or down: another stack's bridges (its Podman is not
    // this one) and bridges left behind, which `podman network create` would refuse as "already used".
    const host = parseIpAddresses(await hostAddresses()).filter((x) => x.iface !== own).map((x) => x.subnet);
    return [...networks.filter((n) => n.name !== except).flatMap((n) => (n.subnets ?? []).map((x) => x.subnet)), ...host];
  }

  /** Every network at once (one request each). */
  async observe(resources: Resource[]): Promise<Observed[]> {
    return Promise.all(resources.map((r) => this.observeOne(r)));
  }

  private async observeOne(r: Resource): Promise<Observed> {
    const n = await this.inspect(r.name);
    if (!n) return { key: r.key, exists: false };
    const owner = labelOwner(n.labels);
    const spec: NetworkSpec = {
      subnet: n.subnets?.[0]?.subnet ?? '',
      gateway: n.subnets?.[0]?.gateway ?? '',
      bridge: n.network_interface ?? '',
      isolate: n.options?.isolate === 'true',
      owner: owner ?? '(not codeb)',
    };
    const conflict = ownerConflict('network', r.name, owner, (r.spec as Partial<NetworkSpec>).owner);
    return { key: r.key, exists: true, spec, ...(conflict ? { conflict } : {}) };
  }

  async execute(a: Action, ctx: ExecContext): Promise<void> {
    if (a.op === 'delete') {
      await this.remove(a.name);
      ctx.progress('removed');
      return;
    }
    if (a.op !== 'create' && a.op !== 'update') return;
    const spec = a.resource.spec as NetworkSpec;
    // A subnet cannot change in place: the network is made again (Podman refuses while containers use it).
    if (a.op === 'update') await this.remove(a.name);
    const r = await libpodCall(this.socketPath, 'POST', '/networks/create', {
      name: a.name,
      driver: 'bridge',
      network_interface: spec.bridge,
      subnets: [{ subnet: spec.subnet, gateway: spec.gateway }],
      options: spec.isolate ? { isolate: 'true' } : {},
      labels: ownerLabels(spec.owner),
      dns_enabled: false,
      internal: false,
    });
    if (r.status !== 200 && r.status !== 201) {
      throw new CodebError(`Cannot create Podman network ${a.name} (${spec.subnet}, bridge ${spec.bridge}): ${message(r.json)}`, {
        hint: 'Another network on this machine may use that subnet or bridge: see `ip addr`, and give codeb a pool of its own (CODEB_NETWORK_POOL, docs/stack.md).',
      });
    }
    ctx.progress(`${spec.subnet}, bridge ${spec.bridge}, isolated`);
  }

  remove(name: string): Promise<void> {
    return libpodRemove(this.socketPath, 'network', name, 'Containers still use it: remove them first (`codeb destroy` removes the containers before the network).');
  }

  async close(): Promise<void> {}
}

/** `ip -4 -o addr show` ('' where it cannot run: Podman's own list is then all there is). */
function hostAddresses(): Promise<string> {
  return new Promise((resolve) => execFile('ip', ['-4', '-o', 'addr', 'show'], { timeout: 10_000 }, (err, stdout) => resolve(err ? '' : String(stdout))));
}
