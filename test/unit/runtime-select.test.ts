import { describe, expect, it } from 'vitest';
import { CodebError } from '../../controller/errors.js';
import { decideRuntime, selectRuntime, type RuntimeFacts, type RuntimeKind } from '../../controller/runtime/select.js';
import type { ServerSpec } from '../../controller/manifest/types.js';

const server = (runtime?: ServerSpec['runtime']): ServerSpec => ({ name: 'web1', host: 'local', ...(runtime ? { runtime } : {}) });

// Machines as they are: a Debian 13 server (systemd, Podman 5.4), a Debian 12 server (systemd,
// Podman 4.3), a server without Podman yet, the local stack here (no systemd as PID 1, Podman 4.3).
const trixie: RuntimeFacts = { systemdPid1: true, podmanVersion: '5.4.2' };
const bookworm: RuntimeFacts = { systemdPid1: true, podmanVersion: '4.3.1' };
const edge: RuntimeFacts = { systemdPid1: true, podmanVersion: '4.4.0' };
const bare: RuntimeFacts = { systemdPid1: true, podmanVersion: null };
const localStack: RuntimeFacts = { systemdPid1: false, podmanVersion: null };

describe('decideRuntime', () => {
  const table: Array<[string, RuntimeKind | undefined, RuntimeFacts, string]> = [
    // requested, machine -> driver or refusal (text the reason must contain)
    ['default on Debian 13', undefined, trixie, 'quadlet'],
    ['default on Podman 4.4.0 exactly', undefined, edge, 'quadlet'],
    ['default on Debian 12 (units survive a reboot)', undefined, bookworm, 'systemd'],
    ['default without Podman', undefined, bare, 'podman'],
    ['default on the local stack', undefined, localStack, 'podman'],
    ['podman on Debian 13', 'podman', trixie, 'podman'],
    ['podman on the local stack', 'podman', localStack, 'podman'],
    ['quadlet on Debian 13', 'quadlet', trixie, 'quadlet'],
    ['quadlet on Podman 4.4.0', 'quadlet', edge, 'quadlet'],
    ['systemd on Debian 13', 'systemd', trixie, 'systemd'],
    ['systemd on Debian 12', 'systemd', bookworm, 'systemd'],
    ['quadlet on Debian 12', 'quadlet', bookworm, 'refused: Podman 4.3.1 has no Quadlet'],
    ['quadlet on the local stack', 'quadlet', localStack, 'refused: systemd is not PID 1'],
    ['systemd on the local stack', 'systemd', localStack, 'refused: systemd is not PID 1'],
    ['quadlet without Podman', 'quadlet', bare, 'refused: Podman is not installed'],
    ['kubernetes on Debian 13', 'kubernetes', trixie, 'refused: no Kubernetes driver'],
    ['kubernetes on the local stack', 'kubernetes', localStack, 'refused: no Kubernetes driver'],
  ];
  it.each(table)('%s', (_name, requested, facts, expected) => {
    const d = decideRuntime(requested, facts);
    if (expected.startsWith('refused: ')) {
      expect(d.ok).toBe(false);
      if (!d.ok) {
        expect(d.reason).toContain(expected.slice('refused: '.length));
        expect(d.hint.length).toBeGreaterThan(10);
      }
    } else {
      expect(d).toMatchObject({ ok: true, kind: expected });
    }
  });
});

describe('selectRuntime', () => {
  it('returns the decided driver', () => {
    expect(selectRuntime(server(), trixie, 'm.yaml: servers[0].runtime')).toBe('quadlet');
    expect(selectRuntime(server('systemd'), bookworm, 'm.yaml: servers[0].runtime')).toBe('systemd');
  });

  it.each([
    ['kubernetes' as const, trixie, /no Kubernetes driver/],
    ['quadlet' as const, bookworm, /Podman 4\.3\.1 has no Quadlet/],
    ['systemd' as const, localStack, /systemd is not PID 1/],
  ])('runtime %s is refused with exit 2, the field and the reason', (runtime, facts, reason) => {
    let err: unknown;
    try {
      selectRuntime(server(runtime), facts, 'm.yaml: servers[0].runtime');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CodebError);
    const e = err as CodebError;
    expect(e.exitCode).toBe(2);
    expect(e.where).toBe('m.yaml: servers[0].runtime');
    expect(e.message).toMatch(reason);
    expect(e.message).toContain('web1');
    expect(e.message).toContain('Nothing was changed');
  });
});
