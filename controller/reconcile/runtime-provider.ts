/**
 * The provider for `runtime.release`: containers through a Runtime driver and entry ports through
 * the forwarder. A deploy needs the registry record (live slot, containers, history), so the
 * blue-green run itself is handed in by apply as `deploy`.
 */
import { entryId } from '../deploy/bluegreen.js';
import { ForwarderClient } from '../deploy/forwarder-client.js';
import type { Deployment } from '../manifest/types.js';
import type { EnvironmentRecord } from '../registry/types.js';
import { PodmanApiRuntime } from '../runtime/podman-api.js';
import { LABEL, type Runtime } from '../runtime/types.js';
import type { Settings } from '../settings.js';
import type { Action, ExecContext, Observed, Provider, Resource } from './model.js';
import { observeRelease, onlyEntriesDiffer, type ReleaseSpec } from './release.js';

export interface ReleaseProviderOptions {
  settings: Settings;
  rec: EnvironmentRecord;
  projectId: string;
  /** Absent for destroy (no manifest). */
  d?: Deployment;
  /** Runs a blue-green deploy; returns a one-line result for the progress line. */
  deploy?: (a: Action, runtime: Runtime, forwarder: ForwarderClient) => Promise<string>;
}

export class ReleaseProvider implements Provider {
  readonly system = 'runtime' as const;
  readonly runtime: Runtime;
  readonly forwarder: ForwarderClient;

  constructor(private readonly o: ReleaseProviderOptions) {
    this.runtime = new PodmanApiRuntime(o.settings.podman.socketPath);
    this.forwarder = new ForwarderClient(o.settings.forwarder.socketPath);
  }

  async observe(resources: Resource[]): Promise<Observed[]> {
    const out: Observed[] = [];
    for (const r of resources) {
      if (this.o.d) {
        out.push(await observeRelease(this.o.d, this.o.rec, this.runtime, this.forwarder, r));
      } else {
        const containers = await this.runtime.list({ [LABEL.project]: this.o.projectId, [LABEL.env]: this.o.rec.env });
        const entries = (await this.forwarder.list()).filter((e) => Object.keys(this.o.rec.ports).some((s) => e.id === entryId(this.o.projectId, this.o.rec.env, s)));
        out.push({ key: r.key, exists: containers.length > 0 || entries.length > 0 });
      }
    }
    return out;
  }

  async execute(a: Action, ctx: ExecContext): Promise<void> {
    const { rec, projectId } = this.o;
    if (a.op === 'delete') {
      const names = new Set([...rec.containers.map((c) => c.name), ...(await this.runtime.list({ [LABEL.project]: projectId, [LABEL.env]: rec.env })).map((c) => c.name)]);
      for (const name of names) await this.runtime.remove(name);
      let removed = 0;
      for (const s of Object.keys(rec.ports)) if (await this.forwarder.remove(entryId(projectId, rec.env, s))) removed++;
      rec.containers = [];
      rec.liveSlot = null;
      ctx.progress(`${names.size} container${names.size === 1 ? '' : 's'} and ${removed} entr${removed === 1 ? 'y' : 'ies'} removed`);
      return;
    }
    if (a.op === 'update' && onlyEntriesDiffer(a.changes)) {
      const spec = a.resource.spec as ReleaseSpec;
      for (const [svc, to] of Object.entries(spec.entries)) await this.forwarder.set(entryId(projectId, rec.env, svc), rec.ports[svc]!.entry, to, rec.subnet ?? null);
      ctx.progress('entries re-pointed at the live slot');
      return;
    }
    if (!this.o.deploy) throw new Error('no deploy handler');
    ctx.progress(await this.o.deploy(a, this.runtime, this.forwarder));
  }

  async close(): Promise<void> {
    await this.runtime.close();
  }
}
