/**
 * Compute-unit allocation as upstream does it (docs/decisions.md, Scheduling), which the real worker
 * depends on (it enables its "first partition" services iff its list contains unit 0).
 *
 * Unit `u` goes to rank `u mod n` if that rank has room, else to the next rank (cyclically) that does.
 * "Next rank with room" is a union-find over the cyclic rank order, so pathological capacity mixes
 * stay O(T·α) instead of O(T·n).
 */
export function allocateUnits(capacities: readonly number[]): number[][] {
  const n = capacities.length;
  const lists: number[][] = capacities.map(() => []);
  if (n === 0) return lists;
  let total = 0;
  for (const c of capacities) total += c;
  // parent[i] === i while rank i has room; a full rank points at its cyclic successor.
  const parent = new Int32Array(n);
  for (let i = 0; i < n; i++) parent[i] = capacities[i] > 0 ? i : (i + 1) % n;
  const find = (i: number): number => {
    let root = i;
    while (parent[root] !== root) root = parent[root];
    while (parent[i] !== root) {
      const next = parent[i];
      parent[i] = root;
      i = next;
    }
    return root;
  };
  for (let u = 0; u < total; u++) {
    const rank = find(u % n);
    lists[rank].push(u);
    if (lists[rank].length >= capacities[rank]) parent[rank] = (rank + 1) % n;
  }
  return lists;
}
