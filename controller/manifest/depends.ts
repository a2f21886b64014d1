/**
 * The services' `dependsOn` graph (pure): validation refuses a cycle, since it would leave no
 * service to start first.
 */

export type DependencyGraph = Record<string, readonly string[]>;

/**
 * The first cycle found, as the path that closes it (`['a', 'b', 'a']`), or null. Edges to
 * unknown services and self-edges are ignored here (validation reports those on their own).
 */
export function findCycle(graph: DependencyGraph): string[] | null {
  const state = new Map<string, 'visiting' | 'done'>();
  const path: string[] = [];
  const visit = (n: string): string[] | null => {
    if (state.get(n) === 'done') return null;
    if (state.get(n) === 'visiting') return [...path.slice(path.indexOf(n)), n];
    state.set(n, 'visiting');
    path.push(n);
    for (const dep of graph[n] ?? []) {
      if (dep === n || !(dep in graph)) continue;
      const cycle = visit(dep);
      if (cycle) return cycle;
    }
    path.pop();
    state.set(n, 'done');
    return null;
  };
  for (const n of Object.keys(graph)) {
    const cycle = visit(n);
    if (cycle) return cycle;
  }
  return null;
}
