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

/**
 * Start-up waves (pure): each wave holds the services whose dependencies are all in earlier
 * waves, in the given order. Services with no dependencies among `services` form the first wave,
 * so a manifest without dependsOn is one wave (everything starts together, as before). Edges to
 * services not in the list (not started in this slot, e.g. replicas 0) are ignored. The graph has
 * no cycle (validation refuses one); were one there anyway, its services come last, together.
 */
export function startWaves(services: ReadonlyArray<{ name: string; dependsOn: readonly string[] }>): string[][] {
  const names = new Set(services.map((s) => s.name));
  const placed = new Set<string>();
  const waves: string[][] = [];
  let left = [...services];
  while (left.length) {
    const ready = left.filter((s) => s.dependsOn.every((d) => d === s.name || !names.has(d) || placed.has(d)));
    const wave = ready.length ? ready : left;
    waves.push(wave.map((s) => s.name));
    for (const s of wave) placed.add(s.name);
    left = left.filter((s) => !placed.has(s.name));
  }
  return waves;
}
