import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { JobRelay, RelayError } from '../../src/main/data/relays';
import { END, START, TestLink, bytes, encode, header, hint, makeRelay, settle, target, track, type DecodedMessage } from './fakes';

const STREAM_START = 0;
const STREAM_DATA = 1;
const STREAM_END = 2;

/** [stream_type, seq, payload] of every message, asserting the envelope on the way. */
function summary(msgs: DecodedMessage[], jobId = 'job-1'): Array<[number, number, Buffer]> {
  return msgs.map((m) => {
    assert.equal(m.payload, 'stream_data');
    const sd = m.stream_data;
    assert.ok(sd);
    assert.equal(sd.job_id, jobId);
    // Upstream sets the payload on every message, START and END included.
    assert.ok(sd.payload, 'payload present');
    return [sd.stream_type, sd.payload.sequence_number, sd.payload.payload];
  });
}

const EMPTY = Buffer.alloc(0);

test('START, DATA per batch and END, with one sequence across batches and hints cut between them', async () => {
  const h = makeRelay('hints');
  h.relay.setLinks([1, 2]);
  const bigHint = hint(0x100, bytes(40));
  const b1 = Buffer.concat([START, bigHint.subarray(0, 24)]);
  const b2 = bigHint.subarray(24);
  const b3 = Buffer.concat([hint(0x101, bytes(8)), END]);
  await h.relay.push(b1);
  await h.relay.push(b2);
  assert.equal(target(h, 1).buffers.length, 3, 'no END before CTRL_END');
  await h.relay.push(b3);
  h.relay.end();
  await settle();

  const expected: Array<[number, number, Buffer]> = [
    [STREAM_START, 0, EMPTY],
    [STREAM_DATA, 1, b1],
    [STREAM_DATA, 2, b2],
    [STREAM_DATA, 3, b3],
    [STREAM_END, 4, EMPTY],
  ];
  assert.deepEqual(summary(target(h, 1).decoded()), expected);
  assert.deepEqual(summary(target(h, 2).decoded()), expected);
  for (let i = 0; i < expected.length; i++) {
    assert.equal(target(h, 1).buffers[i], target(h, 2).buffers[i], 'encoded once');
  }
  // The link accounts every write, once grpc-js took it, as hints bytes of the message's size.
  assert.deepEqual(
    target(h, 1).counted,
    target(h, 1).buffers.map((b) => ({ kind: 'hints', bytes: b.length })),
  );
  assert.deepEqual(h.failures, []);
});

test('a single batch holding CTRL_START and CTRL_END gives START 0, DATA 1, END 2', async () => {
  const h = makeRelay('hints', [1]);
  h.relay.setLinks([1]);
  const batch = Buffer.concat([START, hint(0x200, bytes(3)), END]);
  await h.relay.push(batch);
  assert.deepEqual(summary(target(h, 1).decoded()), [
    [STREAM_START, 0, EMPTY],
    [STREAM_DATA, 1, batch],
    [STREAM_END, 2, EMPTY],
  ]);
});

test('end() without CTRL_END fails the job and sends no END', async () => {
  const h = makeRelay('hints', [1]);
  h.relay.setLinks([1]);
  await h.relay.push(Buffer.concat([START, hint(0x200, bytes(8))]));
  h.relay.end();
  await settle();
  assert.deepEqual(h.failures, ['invalid hints stream: stream ended without CTRL_END (after 24 bytes)']);
  assert.deepEqual(
    summary(target(h, 1).decoded()).map((s) => s[0]),
    [STREAM_START, STREAM_DATA],
  );
});

test('end() right after an un-awaited push waits for it, so its CTRL_END counts', async () => {
  const h = makeRelay('hints', [1]);
  const p = h.relay.push(Buffer.concat([START, END]));
  h.relay.end();
  h.relay.setLinks([1]);
  await p;
  await settle();
  assert.deepEqual(h.failures, []);
  assert.equal(target(h, 1).buffers.length, 3);
});

test('a framing violation fails the job with the precise reason and sends nothing for the batch', async () => {
  const h = makeRelay('hints', [1]);
  h.relay.setLinks([1]);
  await assert.rejects(h.relay.push(hint(0x105, bytes(32))), RelayError);
  assert.deepEqual(h.failures, ['invalid hints stream: first hint is 0x0000010500000020 (code 0x105, length 32) not CTRL_START']);
  assert.equal(target(h, 1).buffers.length, 0);

  const odd = makeRelay('hints', [1]);
  odd.relay.setLinks([1]);
  await odd.relay.push(START);
  await assert.rejects(odd.relay.push(Buffer.alloc(12)), RelayError);
  assert.match(odd.failures[0], /^invalid hints stream: batch length 12 is not a multiple of 8/);
  odd.relay.end();
  await settle();
  assert.equal(odd.failures.length, 1, 'one failure only');
});

test('data after CTRL_END in a later batch fails the job', async () => {
  const h = makeRelay('hints', [1]);
  h.relay.setLinks([1]);
  await h.relay.push(Buffer.concat([START, END]));
  await assert.rejects(h.relay.push(header(0x100, 0)), RelayError);
  assert.match(h.failures[0], /^invalid hints stream: data after CTRL_END/);
  assert.equal(target(h, 1).buffers.length, 3);
});

test('a push after end() is refused without failing the job', async () => {
  const h = makeRelay('hints', [1]);
  h.relay.setLinks([1]);
  await h.relay.push(Buffer.concat([START, END]));
  h.relay.end();
  await assert.rejects(h.relay.push(START), /already ended/);
  await settle();
  assert.deepEqual(h.failures, []);
  assert.equal(h.relay.ended, true);
});

test('each message reaches every target before the next is produced', async () => {
  const h = makeRelay('hints', [1, 2]);
  h.relay.setLinks([1, 2]);
  const [t1, t2] = [target(h, 1), target(h, 2)];
  // Link 2's peer takes one message at a time.
  t2.takeOne();
  const batch = Buffer.concat([START, END]);
  const p = track(h.relay.push(batch));
  await settle();
  assert.equal(t1.buffers.length, 1);
  assert.equal(t2.buffers.length, 1);
  for (let i = 2; i <= 3; i++) {
    t2.takeOne();
    await settle();
    assert.equal(t1.buffers.length, i);
    assert.equal(t2.buffers.length, i);
  }
  await p.promise;
  assert.deepEqual(summary(t1.decoded()), summary(t2.decoded()));
});

test('a worker reconnected on a new link gets the following messages, sequence continuing', async () => {
  const h = makeRelay('hints', [1, 2, 3]);
  h.relay.setLinks([1, 2]);
  await h.relay.push(Buffer.concat([START, hint(0x100, bytes(8))]));
  target(h, 2).close();
  h.relay.setLinks([1, 3]);
  await h.relay.push(END);
  assert.deepEqual(
    summary(target(h, 3).decoded()).map((s) => [s[0], s[1]]),
    [
      [STREAM_DATA, 2],
      [STREAM_END, 3],
    ],
  );
  assert.equal(target(h, 1).buffers.length, 4);
  assert.equal(target(h, 2).buffers.length, 2);
});

test('hints are held until setLinks; abort releases the wait without a failure', async () => {
  const h = makeRelay('hints', [1]);
  const p = track(h.relay.push(START));
  await settle();
  assert.equal(p.done, false);
  h.relay.abort();
  await p.promise;
  assert.ok(p.error instanceof RelayError);
  h.relay.end();
  await settle();
  assert.deepEqual(h.failures, []);
});

test('a batch too big for one stream_data message fails the job with the sizes and sends nothing', async () => {
  const t = new TestLink(1);
  const failures: string[] = [];
  let hits = 0;
  const relay = new JobRelay({
    jobId: 'job-1',
    kind: 'hints',
    encode,
    target: () => t.link,
    onFailure: (reason) => failures.push(reason),
    maxHintsBatchBytes: 64,
    onBatchTooLarge: () => hits++,
  });
  relay.setLinks([1]);
  await relay.push(Buffer.concat([START, hint(0x100, bytes(40))]));
  const big = hint(0x100, bytes(64));
  const err = await relay.push(big).then(
    () => undefined,
    (e: unknown) => e,
  );
  await settle();
  assert.ok(err instanceof RelayError);
  assert.deepEqual(failures, [
    `invalid hints stream: a batch of ${big.length} bytes is over the limit of 64 bytes (one batch is relayed to workers as one message; send smaller batches)`,
  ]);
  assert.equal(hits, 1);
  assert.deepEqual(
    summary(t.decoded()).map(([type]) => type),
    [STREAM_START, STREAM_DATA],
    'only the batch within the limit went out',
  );
});
