/**
 * Which container runtime runs a deployment, decided from the manifest's `servers[].runtime`
 * (pure). Only the Podman API driver exists in this version; every other value is refused with
 * the reason, never quietly run through Podman instead.
 */
import { CodebError, EXIT } from '../errors.js';
import type { ServerSpec } from '../manifest/types.js';

export type RuntimeKind = NonNullable<ServerSpec['runtime']>;

/** Why each runtime codeb cannot drive yet is refused (what a user reads). */
const NOT_YET: Partial<Record<RuntimeKind, { reason: string; hint: string }>> = {
  kubernetes: {
    reason: 'codeb has no Kubernetes driver yet',
    hint: 'Use runtime: podman (or leave it out) until the Kubernetes driver exists.',
  },
  quadlet: {
    reason: 'codeb does not write Quadlet units on a server yet (they are only rendered, see docs/runtime.md)',
    hint: 'Use runtime: podman (or leave it out): containers then run through the Podman API socket.',
  },
  systemd: {
    reason: 'codeb does not write systemd units on a server yet (they are only rendered, see docs/runtime.md)',
    hint: 'Use runtime: podman (or leave it out): containers then run through the Podman API socket.',
  },
};

/** The runtime for `server`, or a CodebError (exit 2) naming the field and the reason. */
export function selectRuntime(server: ServerSpec, where: string): RuntimeKind {
  const kind: RuntimeKind = server.runtime ?? 'podman';
  const refused = NOT_YET[kind];
  if (refused) {
    throw new CodebError(`Server ${server.name} asks for runtime: ${kind}, but ${refused.reason}.`, {
      exitCode: EXIT.invalid,
      where,
      hint: refused.hint,
    });
  }
  return kind;
}
