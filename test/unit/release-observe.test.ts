import { describe, expect, it } from 'vitest';
import { foreignContainer, releaseContainerNames } from '../../controller/reconcile/release.js';
import type { ContainerState } from '../../controller/runtime/types.js';

const d = (replicas: number[]) => ({ projectId: 'shop', env: 'production', services: replicas.map((n, i) => ({ name: `s${i}`, replicas: n })) });

describe('releaseContainerNames: each container the release observes, once', () => {
  const cases: Array<[string, number[], Array<{ service: string; slot: 'blue' | 'green' }>, string[]]> = [
    ['one replica: both slots', [1], [], ['shop--production--s0--blue', 'shop--production--s0--green']],
    ['replicas 0 still looks at the first name (a foreign container there blocks a later scale-up)', [0], [], ['shop--production--s0--blue', 'shop--production--s0--green']],
    ['two replicas', [2], [], ['shop--production--s0--blue', 'shop--production--s0--blue--2', 'shop--production--s0--green', 'shop--production--s0--green--2']],
    [
      'the record holds more in one slot (before a scale-down): those too, in that slot only',
      [1],
      [{ service: 's0', slot: 'green' }, { service: 's0', slot: 'green' }, { service: 's0', slot: 'green' }],
      ['shop--production--s0--blue', 'shop--production--s0--green', 'shop--production--s0--green--2', 'shop--production--s0--green--3'],
    ],
  ];
  for (const [name, replicas, containers, want] of cases) {
    it(name, () => {
      const names = releaseContainerNames(d(replicas) as never, { containers: containers as never });
      expect(names).toEqual(want);
      expect(new Set(names).size).toBe(names.length);
    });
  }
});

describe('foreignContainer', () => {
  const st = (labels: Record<string, string>): ContainerState => ({ name: 'x', id: 'i', image: 'img', running: true, status: 'running', restartCount: 0, startedAt: null, exitCode: null, labels });
  it('names the owner of a container with one of the deployment\'s names', () => {
    const states = new Map<string, ContainerState | null>([
      ['shop--production--s0--blue', st({ 'codeb.project': 'shop', 'codeb.env': 'production' })],
      ['shop--production--s0--green', st({ 'codeb.project': 'other', 'codeb.env': 'staging' })],
    ]);
    expect(foreignContainer({ projectId: 'shop', env: 'production' }, states)).toMatch(/shop--production--s0--green exists and belongs to project "other" \(staging\)/);
  });
  it('a container without codeb labels is foreign; missing and own ones are not', () => {
    expect(foreignContainer({ projectId: 'shop', env: 'production' }, new Map([['a', st({})]]))).toMatch(/no codeb deployment/);
    expect(foreignContainer({ projectId: 'shop', env: 'production' }, new Map([['a', null], ['b', st({ 'codeb.project': 'shop', 'codeb.env': 'production' })]]))).toBeNull();
  });
});
