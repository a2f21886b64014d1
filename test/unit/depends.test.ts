import { describe, expect, it } from 'vitest';
import { findCycle, startWaves, type DependencyGraph } from '../../controller/manifest/depends.js';

describe('findCycle', () => {
  it.each<[string, DependencyGraph, string[] | null]>([
    ['no edges', { a: [], b: [] }, null],
    ['a chain', { a: ['b'], b: ['c'], c: [] }, null],
    ['a diamond', { a: ['b', 'c'], b: ['d'], c: ['d'], d: [] }, null],
    ['two nodes', { a: ['b'], b: ['a'] }, ['a', 'b', 'a']],
    ['three nodes', { a: ['b'], b: ['c'], c: ['a'] }, ['a', 'b', 'c', 'a']],
    ['a cycle off the first node', { a: ['b'], b: ['c'], c: ['b'] }, ['b', 'c', 'b']],
    ['self-edges and unknown names are not cycles', { a: ['a', 'zz'], b: ['a'] }, null],
  ])('%s', (_name, graph, cycle) => {
    expect(findCycle(graph)).toEqual(cycle);
  });
});

describe('startWaves', () => {
  const svc = (graph: DependencyGraph) => Object.entries(graph).map(([name, dependsOn]) => ({ name, dependsOn }));
  it.each<[string, DependencyGraph, string[][]]>([
    ['no edges: one wave, manifest order', { web: [], api: [], worker: [] }, [['web', 'api', 'worker']]],
    ['a dependency first', { web: ['db'], db: [] }, [['db'], ['web']]],
    ['a chain', { web: ['api'], api: ['db'], db: [] }, [['db'], ['api'], ['web']]],
    ['a diamond: the two middles together', { web: ['a', 'b'], a: ['db'], b: ['db'], db: [] }, [['db'], ['a', 'b'], ['web']]],
    ['independent services stay in the first wave', { web: ['db'], db: [], worker: [] }, [['db', 'worker'], ['web']]],
    ['an edge to a service not started is ignored', { web: ['gone'], api: [] }, [['web', 'api']]],
    ['a cycle (validation refuses it) ends as one last wave', { web: ['api'], api: ['web'], db: [] }, [['db'], ['web', 'api']]],
  ])('%s', (_name, graph, waves) => {
    expect(startWaves(svc(graph))).toEqual(waves);
  });
});
