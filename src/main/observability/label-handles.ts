/**
 * Bound series handles by their label values, so an update neither hashes labels nor builds a key
 * string: a map per label, nested in label order. Used for prom-client `labels(...)` handles and for
 * the lean histograms' own series.
 */
export class Handles<T> {
  private readonly root = new Map<string, unknown>();

  constructor(private readonly make: (...values: string[]) => T) {}

  get(...values: string[]): T {
    let map = this.root;
    for (let i = 0; i < values.length - 1; i++) {
      let next = map.get(values[i]) as Map<string, unknown> | undefined;
      if (next === undefined) {
        next = new Map();
        map.set(values[i], next);
      }
      map = next;
    }
    const last = values[values.length - 1];
    let handle = map.get(last) as T | undefined;
    if (handle === undefined) {
      handle = this.make(...values);
      map.set(last, handle);
    }
    return handle;
  }
}
