import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EgressBudget, type WorkerLink } from '../../src/main/cluster/worker-link';
import { fakeLink, type FakeCall } from '../helpers/fake-call';

const MiB = 1 << 20;

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function links(n: number, budget: EgressBudget): Array<{ link: WorkerLink; call: FakeCall }> {
  return Array.from({ length: n }, (_, i) => fakeLink(i, { egress: budget }));
}

const sizes = (call: FakeCall): number[] => call.writes.map((w) => w.length);

const message = (bytes: number) => ({ bytes, kind: 'input' as const, encode: () => Buffer.alloc(bytes) });

test('large messages are handed to grpc-js at most perTurnBytes per event-loop turn, across streams', async () => {
  const budget = new EgressBudget(1 << 30, 4 * MiB);
  const ls = links(5, budget);
  for (const { link } of ls) link.send(message(2 * MiB));
  const written = () => ls.reduce((n, { call }) => n + call.writes.length, 0);
  assert.equal(written(), 2, 'first turn: 2 × 2 MiB');
  await nextTurn();
  assert.equal(written(), 4, 'second turn: 2 more');
  await nextTurn();
  assert.equal(written(), 5);
  // Small messages are not paced.
  for (const { link, call } of ls) {
    call.complete();
    link.send(message(1000));
  }
  assert.equal(written(), 10);
});

test('a message bigger than a turn goes alone in its turn, and each stream keeps its order', async () => {
  const budget = new EgressBudget(1 << 30, 4 * MiB);
  const [a, b] = links(2, budget);
  a.link.send(message(6 * MiB));
  a.link.send(message(1 * MiB));
  b.link.send(message(1 * MiB));
  assert.deepEqual(sizes(a.call), [6 * MiB]);
  assert.equal(b.call.writes.length, 0);
  await nextTurn();
  assert.deepEqual(sizes(b.call), [1 * MiB]);
  // a's next message also waits for its own write window (6 MiB in flight) to drain.
  assert.deepEqual(sizes(a.call), [6 * MiB]);
  a.call.complete();
  assert.deepEqual(sizes(a.call), [6 * MiB, 1 * MiB]);
});

test('a stream closed while waiting for its turn writes nothing more', async () => {
  const budget = new EgressBudget(1 << 30, 2 * MiB);
  const [a, b] = links(2, budget);
  a.link.send(message(2 * MiB));
  b.link.send(message(2 * MiB));
  assert.equal(b.call.writes.length, 0);
  b.link.markClosed();
  await nextTurn();
  await nextTurn();
  assert.equal(b.call.writes.length, 0);
  assert.equal(a.call.writes.length, 1);
});
