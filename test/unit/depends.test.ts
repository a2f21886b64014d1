import { describe, expect, it } from 'vitest';
import { findCycle, type DependencyGraph } from '../../controller/manifest/depends.js';

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
