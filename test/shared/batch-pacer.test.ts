/**
 * The pacer of the scheduler channel: a batch leaves at once after a quiet gap, and under load at
 * most once per gap with everything requested meanwhile. Fake timers and a fake clock.
 */
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { BatchPacer } from '../../src/shared/batch-pacer';

function rig(sameTurn: boolean): { pacer: BatchPacer; sends: number[]; advance: (ms: number) => void } {
  let now = 1_000;
  const sends: number[] = [];
  mock.timers.enable({ apis: ['setTimeout', 'setImmediate'] });
  const pacer = new BatchPacer(2, () => sends.push(now), sameTurn, () => now);
  return {
    pacer,
    sends,
    advance: (ms) => {
      now += ms;
      mock.timers.tick(ms);
    },
  };
}

test('after a quiet gap a batch leaves at once (same turn), and within the gap it waits for the gap', (t) => {
  t.after(() => mock.timers.reset());
  const { pacer, sends, advance } = rig(true);
  pacer.request();
  assert.deepEqual(sends, [1_000], 'the first batch leaves inside request()');
  advance(0.5);
  pacer.request();
  pacer.request();
  advance(1);
  assert.deepEqual(sends, [1_000], 'still within 2 ms of the previous batch');
  advance(0.5);
  assert.deepEqual(sends, [1_000, 1_002], 'both requests left as one batch when the gap passed');
  advance(5);
  pacer.request();
  assert.deepEqual(sends, [1_000, 1_002, 1_007], 'quiet again: at once');
});

test('not same turn: every request of a turn leaves as one batch at its end', (t) => {
  t.after(() => mock.timers.reset());
  const { pacer, sends, advance } = rig(false);
  pacer.request();
  pacer.request();
  assert.deepEqual(sends, [], 'nothing inside the turn');
  advance(0);
  assert.deepEqual(sends, [1_000]);
  pacer.request();
  advance(0);
  assert.deepEqual(sends, [1_000], 'the next turn is within the gap');
  advance(2);
  assert.deepEqual(sends, [1_000, 1_002]);
});

test('cancel drops a pending batch and a later request starts afresh', (t) => {
  t.after(() => mock.timers.reset());
  const { pacer, sends, advance } = rig(true);
  pacer.request();
  pacer.request();
  pacer.cancel();
  advance(10);
  assert.deepEqual(sends, [1_000]);
  pacer.request();
  assert.deepEqual(sends, [1_000, 1_010]);
});
