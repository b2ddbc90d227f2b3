import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { MAX_INPUT_MESSAGE_BYTES, RelayError } from '../../src/main/data/relays';
import { bytes, makeRelay, settle, target, track } from './fakes';

test('input is held until the first setLinks, then encoded once for every target', async () => {
  const h = makeRelay('input');
  const chunk = bytes(64);
  const p = track(h.relay.push(chunk));
  await settle();
  assert.equal(p.done, false);
  assert.equal(target(h, 1).buffers.length, 0);

  h.relay.setLinks([1, 2]);
  await p.promise;
  assert.equal(p.error, undefined);
  const [t1, t2] = [target(h, 1), target(h, 2)];
  assert.equal(t1.buffers.length, 1);
  assert.equal(t2.buffers.length, 1);
  // One encoding: the very same Buffer object reaches both links.
  assert.equal(t1.buffers[0], t2.buffers[0]);
  // The link accounts the write, once grpc-js took it, as input bytes of the message's size.
  await settle();
  assert.deepEqual(t1.counted, [{ kind: 'input', bytes: t1.buffers[0].length }]);
  const m = t1.decoded()[0];
  assert.equal(m.payload, 'input_stream_data');
  assert.equal(m.input_stream_data?.job_id, 'job-1');
  assert.deepEqual(m.input_stream_data?.payload, chunk);
});

test('a chunk that is not a multiple of 8 fails the job once and stops the relay', async () => {
  const h = makeRelay('input');
  h.relay.setLinks([1, 2]);
  await h.relay.push(bytes(8));
  await assert.rejects(h.relay.push(bytes(13)), (e: unknown) => e instanceof RelayError && e.reason === 'invalid input stream: chunk length 13 is not a multiple of 8');
  assert.deepEqual(h.failures, ['invalid input stream: chunk length 13 is not a multiple of 8']);
  await assert.rejects(h.relay.push(bytes(8)), RelayError);
  assert.equal(h.failures.length, 1);
  assert.equal(target(h, 1).buffers.length, 1);
});

test('empty chunks send nothing; end() sends nothing', async () => {
  const h = makeRelay('input');
  h.relay.setLinks([1]);
  await h.relay.push(Buffer.alloc(0));
  assert.equal(h.relay.ended, false);
  h.relay.end();
  await settle();
  assert.equal(h.relay.ended, true);
  assert.equal(target(h, 1).buffers.length, 0);
  assert.deepEqual(h.failures, []);
});

test('chunks over 4 MiB are split into word-aligned messages of at most 4 MiB', async () => {
  const h = makeRelay('input');
  h.relay.setLinks([1, 2]);
  const chunk = bytes(2 * MAX_INPUT_MESSAGE_BYTES + 1024 + 8, 7);
  await h.relay.push(chunk);
  const t1 = target(h, 1);
  const payloads = t1.decoded().map((m) => m.input_stream_data?.payload ?? Buffer.alloc(0));
  assert.deepEqual(
    payloads.map((p) => p.length),
    [MAX_INPUT_MESSAGE_BYTES, MAX_INPUT_MESSAGE_BYTES, 1032],
  );
  assert.ok(Buffer.concat(payloads).equals(chunk));
  const t2 = target(h, 2);
  for (let i = 0; i < 3; i++) assert.equal(t1.buffers[i], t2.buffers[i]);
});

test('backpressure: push waits while any target has no room, and no target gets the chunk early', async () => {
  const h = makeRelay('input');
  h.relay.setLinks([1, 2]);
  const [t1, t2] = [target(h, 1), target(h, 2)];
  t2.stall();
  const p = track(h.relay.push(bytes(16)));
  // The relay has no timers: all it can do without room happens in promise callbacks, which have
  // all run once an immediate queued after the push runs.
  await settle();
  assert.equal(p.done, false);
  assert.equal(t1.buffers.length, 0);
  assert.equal(t2.buffers.length, 0);

  t2.resume();
  await p.promise;
  assert.equal(t1.buffers.length, 1);
  assert.equal(t2.buffers.length, 1);
});

test('at most one message per target beyond hasRoom(), and pushes keep their order', async () => {
  const h = makeRelay('input');
  h.relay.setLinks([1, 2]);
  const [t1, t2] = [target(h, 1), target(h, 2)];
  t1.takeOne(); // the peer takes one message at a time
  const chunks = [bytes(8, 1), bytes(8, 2), bytes(8, 3)];
  const ps = chunks.map((c) => track(h.relay.push(c)));
  await settle();
  assert.equal(t1.buffers.length, 1);
  assert.deepEqual([ps[0].done, ps[1].done, ps[2].done], [true, false, false]);
  t1.takeOne();
  await settle();
  assert.equal(t1.buffers.length, 2);
  t1.resume();
  await Promise.all(ps.map((p) => p.promise));
  for (const t of [t1, t2]) {
    assert.deepEqual(
      t.decoded().map((m) => m.input_stream_data?.payload),
      chunks,
    );
  }
});

test('closed and unknown links are skipped; setLinks replaces the target set', async () => {
  const h = makeRelay('input', [1, 2, 3]);
  const [t1, t2, t3] = [target(h, 1), target(h, 2), target(h, 3)];
  h.relay.setLinks([1, 2, 99]);
  await h.relay.push(bytes(8, 1));
  t2.stall();
  t2.close(); // a closed link never blocks the others
  await h.relay.push(bytes(8, 2));
  h.relay.setLinks([1, 3]); // the worker of link 2 reconnected on link 3
  await h.relay.push(bytes(8, 3));
  assert.equal(t1.buffers.length, 3);
  assert.equal(t2.buffers.length, 1);
  assert.deepEqual(
    t3.decoded().map((m) => m.input_stream_data?.payload),
    [bytes(8, 3)],
  );
});

test('a relay waiting on a full link follows a setLinks that drops it', async () => {
  const h = makeRelay('input', [1, 2]);
  const [t1, t2] = [target(h, 1), target(h, 2)];
  h.relay.setLinks([1, 2]);
  t2.stall();
  const p = track(h.relay.push(bytes(8)));
  await settle();
  assert.equal(p.done, false);
  h.relay.setLinks([1]);
  await p.promise;
  assert.equal(t1.buffers.length, 1);
  assert.equal(t2.buffers.length, 0);
});

test('with no live link the data is dropped rather than held', async () => {
  const h = makeRelay('input', [1]);
  h.relay.setLinks([]);
  await h.relay.push(bytes(8));
  h.relay.setLinks([1]);
  await h.relay.push(bytes(8, 2));
  assert.equal(target(h, 1).buffers.length, 1);
});

test('abort rejects pending pushes promptly without reporting a failure', async () => {
  const h = makeRelay('input');
  h.relay.setLinks([1, 2]);
  target(h, 1).stall();
  const a = track(h.relay.push(bytes(8)));
  const b = track(h.relay.push(bytes(8)));
  await settle();
  h.relay.abort();
  await Promise.all([a.promise, b.promise]);
  assert.ok(a.error instanceof RelayError);
  assert.ok(b.error instanceof RelayError);
  await assert.rejects(h.relay.push(bytes(8)), RelayError);
  assert.deepEqual(h.failures, []);
  assert.equal(target(h, 2).buffers.length, 0);
});

test('abort also releases a push held before any setLinks', async () => {
  const h = makeRelay('input');
  const a = track(h.relay.push(bytes(8)));
  await settle();
  h.relay.abort();
  await a.promise;
  assert.ok(a.error instanceof RelayError);
  h.relay.fail('too late');
  assert.deepEqual(h.failures, []);
});

test('fail() reports once and rejects pending pushes', async () => {
  const h = makeRelay('input');
  const a = track(h.relay.push(bytes(8)));
  h.relay.fail('cannot read /x: EIO');
  h.relay.fail('second');
  await a.promise;
  assert.ok(a.error instanceof RelayError);
  assert.equal((a.error as RelayError).reason, 'cannot read /x: EIO');
  assert.deepEqual(h.failures, ['cannot read /x: EIO']);
});
