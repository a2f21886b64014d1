/**
 * Which container runtime runs a deployment: a pure decision from the manifest's
 * `servers[].runtime` and the facts of the machine codeb runs on (codeb runs on the server itself,
 * docs/remote.md). Without a value: Quadlet units where systemd is PID 1 and Podman has Quadlet
 * (>= 4.4), plain systemd units where systemd is PID 1 with an older Podman, else the Podman API
 * (the local stack). A value codeb cannot honour on this machine is
 * refused with the reason (exit 2), never quietly run another way. See docs/runtime.md, "Drivers".
 */
import { CodebError, EXIT } from '../errors.js';
import type { ServerSpec } from '../manifest/types.js';
import { compareVersions, QUADLET_MIN_VERSION } from './units.js';

export type RuntimeKind = NonNullable<ServerSpec['runtime']>;

/** What the decision needs to know about the machine (gathered by runtime/facts.ts). */
export interface RuntimeFacts {
  /** systemd runs as PID 1 (sd_booted: /run/systemd/system exists). */
  systemdPid1: boolean;
  /** `podman --version` of /usr/bin/podman, e.g. "4.3.1"; null when it is not installed or not asked. */
  podmanVersion: string | null;
}

export type RuntimeDecision = { ok: true; kind: Exclude<RuntimeKind, 'kubernetes'>; why: string } | { ok: false; reason: string; hint: string };

const hasQuadlet = (v: string) => compareVersions(v, QUADLET_MIN_VERSION) >= 0;

/** Pure: the runtime for a requested value (undefined = none given) on a machine with these facts. */
export function decideRuntime(requested: RuntimeKind | undefined, facts: RuntimeFacts): RuntimeDecision {
  const v = facts.podmanVersion;
  switch (requested) {
    case undefined:
      if (facts.systemdPid1 && v && hasQuadlet(v)) return { ok: true, kind: 'quadlet', why: `systemd is PID 1 and Podman ${v} has Quadlet` };
      // A systemd server with an older Podman (Debian 12: 4.3) gets plain systemd units, so its
      // containers still come back after a reboot; the Podman API alone would not bring them back.
      if (facts.systemdPid1 && v) return { ok: true, kind: 'systemd', why: `systemd is PID 1 and Podman ${v} has no Quadlet (needs ${QUADLET_MIN_VERSION}): plain systemd units` };
      return { ok: true, kind: 'podman', why: facts.systemdPid1 ? 'Podman is not installed here' : 'systemd is not PID 1 here' };
    case 'podman':
      return { ok: true, kind: 'podman', why: 'asked for' };
    case 'kubernetes':
      return { ok: false, reason: 'codeb has no Kubernetes driver yet', hint: 'Use runtime: quadlet, systemd or podman (or leave it out: codeb picks what the server supports).' };
    case 'quadlet':
    case 'systemd': {
      if (!facts.systemdPid1) {
        return {
          ok: false,
          reason: `systemd is not PID 1 on this machine, so there is nothing to run ${requested === 'quadlet' ? 'Quadlet' : 'systemd'} units`,
          hint: 'Use runtime: podman (or leave it out) here: containers then run through the Podman API socket. Quadlet and systemd units need a server booted with systemd.',
        };
      }
      if (!v) return { ok: false, reason: 'Podman is not installed here', hint: 'Run `codeb server init` on this server first.' };
      if (requested === 'quadlet' && !hasQuadlet(v)) {
        return { ok: false, reason: `its Podman ${v} has no Quadlet (Quadlet needs Podman ${QUADLET_MIN_VERSION} or later)`, hint: 'Use runtime: systemd (plain systemd units running `podman run`), or leave it out, or upgrade Podman.' };
      }
      return { ok: true, kind: requested, why: 'asked for' };
    }
  }
}

/** The runtime for `server` on a machine with `facts`, or a CodebError (exit 2) naming the field and the reason. */
export function selectRuntime(server: ServerSpec, facts: RuntimeFacts, where: string): Exclude<RuntimeKind, 'kubernetes'> {
  const d = decideRuntime(server.runtime, facts);
  if (!d.ok) {
    throw new CodebError(`Server ${server.name} asks for runtime: ${server.runtime}, but ${d.reason}. Nothing was changed.`, { exitCode: EXIT.invalid, where, hint: d.hint });
  }
  return d.kind;
}
