/**
 * Named volumes of stateful services (`volume.data/<volumeName>`, docs/manifest.md "Stateful
 * services"): one Podman volume per project, environment, service and volume name, labelled with
 * its owner. A volume of that name another deployment (or nobody) owns is a `blocked` action, never
 * taken over or removed. Volumes hold data: destroy keeps them unless --delete-data.
 *
 * Ownership: a volume Podman creates is marked to be chowned once, to the user of the first
 * container that mounts it (Podman 4.3: `NeedsChown`, the volume's root only, not recursive), so a
 * non-root image can write to it and no deploy ever chowns its contents again (`:U` would, on
 * every start).
 */
import { CodebError } from '../errors.js';
import type { Action, ExecContext, Observed, Provider, Resource } from '../reconcile/model.js';
import { LABEL } from '../runtime/types.js';
import { labelOwner, libpodCall, libpodInspect, libpodMessage, libpodRemove, ownerConflict, ownerLabels } from './libpod.js';

/** The volume label (besides project, env and service). */
export const VOLUME_LABEL = 'codeb.volume';

export interface VolumeSpec extends Record<string, unknown> {
  /** <project>/<env>, from the owner labels. */
  owner: string;
  /** The service that mounts it, and its name in the manifest. */
  service: string;
  volume: string;
}

interface LibpodVolume {
  Name: string;
  Mountpoint?: string;
  Labels?: Record<string, string>;
}

export class VolumeProvider implements Provider {
  readonly system = 'volume' as const;

  constructor(private readonly socketPath: string) {}

  inspect(name: string): Promise<LibpodVolume | null> {
    return libpodInspect<LibpodVolume>(this.socketPath, 'volume', name);
  }

  /** Every volume at once (one request each). */
  async observe(resources: Resource[]): Promise<Observed[]> {
    return Promise.all(resources.map((r) => this.observeOne(r)));
  }

  private async observeOne(r: Resource): Promise<Observed> {
    const v = await this.inspect(r.name);
    if (!v) return { key: r.key, exists: false };
    const labels = v.Labels ?? {};
    const owner = labelOwner(labels);
    const want = r.spec as Partial<VolumeSpec>;
    const spec: VolumeSpec = { owner: owner ?? '(not codeb)', service: labels[LABEL.service] ?? '', volume: labels[VOLUME_LABEL] ?? '' };
    const conflict = ownerConflict('volume', r.name, owner, want.owner);
    // Destroy knows only the owner: the service and volume labels are compared on apply alone.
    const observed = want.service === undefined ? { owner: spec.owner } : spec;
    return { key: r.key, exists: true, spec: observed, ...(conflict ? { conflict } : {}) };
  }

  async execute(a: Action, ctx: ExecContext): Promise<void> {
    if (a.op === 'delete') {
      await this.remove(a.name);
      ctx.progress('removed with its data');
      return;
    }
    if (a.op === 'update') {
      // Only the labels can differ (the name fixes owner, service and volume): never recreate data.
      throw new CodebError(`Podman volume ${a.name} carries other labels than codeb gives it (${a.changes.map((c) => c.field).join(', ')}).`, {
        hint: 'It was changed outside codeb. Check it with `podman volume inspect`; codeb never recreates a volume, as that would lose its data.',
      });
    }
    if (a.op !== 'create') return;
    const spec = a.resource.spec as VolumeSpec;
    const r = await libpodCall(this.socketPath, 'POST', '/volumes/create', {
      Name: a.name,
      Driver: 'local',
      Label: { ...ownerLabels(spec.owner), [LABEL.service]: spec.service, [VOLUME_LABEL]: spec.volume },
    });
    if (r.status !== 200 && r.status !== 201) throw new CodebError(`Cannot create Podman volume ${a.name}: ${libpodMessage(r.json)}`);
    ctx.progress(`for ${spec.service}`);
  }

  remove(name: string): Promise<void> {
    return libpodRemove(this.socketPath, 'volume', name, 'A container still uses it: remove it first (`codeb destroy` removes the containers before the volumes).');
  }

  async close(): Promise<void> {}
}
