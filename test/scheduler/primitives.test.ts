import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { allocateUnits } from '../../src/threads/core/allocation';
import { TimerHeap } from '../../src/threads/core/timers';

describe('TimerHeap', () => {
  it('pops due entries in deadline order, ties in scheduling order', () => {
    const heap = new TimerHeap<string>();
    heap.schedule(30, 'c');
    heap.schedule(10, 'a1');
    heap.schedule(20, 'b');
    heap.schedule(10, 'a2');
    assert.equal(heap.peek(), 10);
    const popped: string[] = [];
    for (let e = heap.popDue(25); e; e = heap.popDue(25)) popped.push(e.task);
    assert.deepEqual(popped, ['a1', 'a2', 'b']);
    assert.equal(heap.peek(), 30);
    assert.equal(heap.popDue(29), undefined);
  });

  it('skips cancelled entries and compacts when most are cancelled', () => {
    const heap = new TimerHeap<number>();
    const entries = Array.from({ length: 1000 }, (_, i) => heap.schedule(i, i));
    for (let i = 0; i < 990; i++) heap.cancel(entries[i]);
    assert.equal(heap.size, 10);
    assert.equal(heap.peek(), 990);
    const popped: number[] = [];
    for (let e = heap.popDue(10_000); e; e = heap.popDue(10_000)) popped.push(e.task);
    assert.deepEqual(popped, [990, 991, 992, 993, 994, 995, 996, 997, 998, 999]);
    assert.equal(heap.peek(), undefined);
  });

  it('cancelling a popped entry is a no-op', () => {
    const heap = new TimerHeap<string>();
    const e = heap.schedule(1, 'x');
    heap.schedule(2, 'y');
    assert.equal(heap.popDue(1), e);
    heap.cancel(e);
    assert.equal(heap.size, 1);
    assert.equal(heap.popDue(5)?.task, 'y');
  });

  it('stays ordered under random interleaving', () => {
    const heap = new TimerHeap<number>();
    let seed = 7;
    const rnd = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % 10_000;
    const live = new Map<number, ReturnType<typeof heap.schedule>>();
    for (let i = 0; i < 5000; i++) {
      live.set(i, heap.schedule(rnd(), i));
      if (i % 3 === 0) {
        const victim = rnd() % (i + 1);
        heap.cancel(live.get(victim));
        live.delete(victim);
      }
    }
    let last = -1;
    let count = 0;
    for (let e = heap.popDue(Infinity); e; e = heap.popDue(Infinity)) {
      assert.ok(e.at >= last);
      last = e.at;
      assert.ok(live.has(e.task));
      count++;
    }
    assert.equal(count, live.size);
  });
});

describe('allocateUnits (as upstream allocates; docs/decisions.md, Scheduling)', () => {
  it('capacities [2,4] give w0=[0,2], w1=[1,3,4,5]', () => {
    assert.deepEqual(allocateUnits([2, 4]), [
      [0, 2],
      [1, 3, 4, 5],
    ]);
  });

  it('equal capacities interleave', () => {
    assert.deepEqual(allocateUnits([2, 2, 2]), [
      [0, 3],
      [1, 4],
      [2, 5],
    ]);
  });

  it('a full rank passes its unit to the next rank with room, cyclically', () => {
    assert.deepEqual(allocateUnits([4, 1, 1]), [
      [0, 3, 4, 5],
      [1],
      [2],
    ]);
    assert.deepEqual(allocateUnits([1, 1, 3]), [[0], [1], [2, 3, 4]]);
  });

  it('every unit is given exactly once and each rank gets its capacity', () => {
    const caps = [3, 7, 1, 5, 2, 9];
    const lists = allocateUnits(caps);
    lists.forEach((l, i) => assert.equal(l.length, caps[i]));
    const all = lists.flat().sort((a, b) => a - b);
    assert.deepEqual(all, Array.from({ length: 27 }, (_, i) => i));
  });
});
