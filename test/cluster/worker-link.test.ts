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

test('a message over the send limit is never written: its producer is told, the stream goes on', async () => {
  const refused: Array<[string, number, number]> = [];
  const budget = new EgressBudget(4 * MiB);
  const { link, call } = fakeLink(1, {
    held: false,
    egress: budget,
    maxSendBytes: 2 * MiB,
    counters: { bytesSent: () => undefined, messageRefused: (kind, bytes, limit) => refused.push([kind, bytes, limit]) },
  });
  const told: Array<[number, number]> = [];
  link.send({ ...message(2 * MiB + 1), refuse: (bytes, limit) => told.push([bytes, limit]) });
  link.sendBuffer(Buffer.alloc(2 * MiB), 'task', () => assert.fail('fits exactly: sent'));
  link.sendBuffer(Buffer.alloc(100), 'other');
  await nextTurn();
  await nextTurn();
  assert.deepEqual(told, [[2 * MiB + 1, 2 * MiB]]);
  assert.deepEqual(refused, [['input', 2 * MiB + 1, 2 * MiB]]);
  assert.deepEqual(sizes(call), [2 * MiB, 100], 'the messages around it went out in order');
  assert.equal(link.pendingBytes, 0, 'its bytes left the queue');
  assert.equal(budget.bytesInUse, 0, 'its share of the egress budget was given back');
  assert.equal(link.closed, false);
});
