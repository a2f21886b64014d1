import { describe, expect, it } from 'vitest';
import { CodebError } from '../../controller/errors.js';
import { selectRuntime } from '../../controller/runtime/select.js';
import type { ServerSpec } from '../../controller/manifest/types.js';

const server = (runtime?: ServerSpec['runtime']): ServerSpec => ({ name: 'web1', host: 'local', ...(runtime ? { runtime } : {}) });

describe('selectRuntime', () => {
  it.each([[undefined], ['podman' as const]])('runtime %s is the Podman API driver', (runtime) => {
    expect(selectRuntime(server(runtime), 'm.yaml: servers[0].runtime')).toBe('podman');
  });

  it.each([
    ['kubernetes' as const, /no Kubernetes driver/],
    ['quadlet' as const, /Quadlet units/],
    ['systemd' as const, /systemd units/],
  ])('runtime %s is refused with exit 2, the field and the reason', (runtime, reason) => {
    let err: unknown;
    try {
      selectRuntime(server(runtime), 'm.yaml: servers[0].runtime');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CodebError);
    const e = err as CodebError;
    expect(e.exitCode).toBe(2);
    expect(e.where).toBe('m.yaml: servers[0].runtime');
    expect(e.message).toMatch(reason);
    expect(e.message).toContain('web1');
    expect(e.hint).toContain('runtime: podman');
  });
});
