/**
 * Deadline-ordered timers for the pure scheduler core: a binary min-heap keyed by (deadline, insertion
 * sequence) with lazy cancellation. Cancelling only flags the entry; flagged entries are skipped when
 * they reach the top and the heap is compacted once they outnumber the live ones, so a cancel is O(1)
 * and the heap never grows without bound.
 */

export interface TimerEntry<T> {
  readonly at: number;
  readonly seq: number;
  readonly task: T;
  cancelled: boolean;
}

/** Compaction is skipped below this size: rebuilding a tiny heap buys nothing. */
const COMPACT_MIN_SIZE = 64;

export class TimerHeap<T> {
  private heap: TimerEntry<T>[] = [];
  private nextSeq = 0;
  private cancelledCount = 0;

  get size(): number {
    return this.heap.length - this.cancelledCount;
  }

  schedule(at: number, task: T): TimerEntry<T> {
    // The sequence number breaks ties so timers due at the same instant fire in scheduling order,
    // which keeps the core deterministic.
    const entry: TimerEntry<T> = { at, seq: this.nextSeq++, task, cancelled: false };
    this.heap.push(entry);
    this.siftUp(this.heap.length - 1);
    return entry;
  }

  cancel(entry: TimerEntry<T> | undefined): void {
    if (!entry || entry.cancelled) return;
    entry.cancelled = true;
    this.cancelledCount++;
    if (this.cancelledCount > COMPACT_MIN_SIZE && this.cancelledCount * 2 > this.heap.length) this.compact();
  }

  /** Earliest live deadline, if any. */
  peek(): number | undefined {
    this.dropCancelledTop();
    return this.heap.length > 0 ? this.heap[0].at : undefined;
  }

  /** Removes and returns the earliest live entry due at or before `now`. */
  popDue(now: number): TimerEntry<T> | undefined {
    this.dropCancelledTop();
    if (this.heap.length === 0 || this.heap[0].at > now) return undefined;
    const top = this.removeTop();
    // A popped entry is spent: flag it so a late cancel() by its owner is a no-op.
    top.cancelled = true;
    return top;
  }

  private dropCancelledTop(): void {
    while (this.heap.length > 0 && this.heap[0].cancelled) {
      this.removeTop();
      this.cancelledCount--;
    }
  }

  private removeTop(): TimerEntry<T> {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop() as TimerEntry<T>;
    if (heap.length > 0) {
      heap[0] = last;
      this.siftDown(0);
    }
    return top;
  }

  private compact(): void {
    this.heap = this.heap.filter((e) => !e.cancelled);
    this.cancelledCount = 0;
    for (let i = (this.heap.length >> 1) - 1; i >= 0; i--) this.siftDown(i);
  }

  private less(a: TimerEntry<T>, b: TimerEntry<T>): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  private siftUp(i: number): void {
    const heap = this.heap;
    const item = heap[i];
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(item, heap[parent])) break;
      heap[i] = heap[parent];
      i = parent;
    }
    heap[i] = item;
  }

  private siftDown(i: number): void {
    const heap = this.heap;
    const n = heap.length;
    const item = heap[i];
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && this.less(heap[right], heap[left]) ? right : left;
      if (!this.less(heap[child], item)) break;
      heap[i] = heap[child];
      i = child;
    }
    heap[i] = item;
  }
}
