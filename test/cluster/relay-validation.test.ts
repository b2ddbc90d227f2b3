/**
 * What one worker hands the coordinator to relay (its challenges, its proof list) is checked before
 * any other worker gets it: a malformed part fails the job naming its sender, and the honest peers'
 * streams stay up (docs/protocol.md, Inbound protobuf). Upstream wire: a real worker's decoder
 * refuses a whole task carrying a malformed relayed part, and its stream with it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, failureOf, assertAllReady } from '../helpers/cluster';
import { inline, submit, waitTerminal } from '../api/helpers';
import { simPublics } from '../../src/sim/data';

/** The sim's publics of a job as little-endian u64 words (public_outputs after its 32-byte prefix). */
function publicsWords(jobId: string): Buffer {
  const values = simPublics(jobId);
  const out = Buffer.alloc(8 * values.length);
  values.forEach((v, i) => out.writeBigUInt64LE(v, 8 * i));
  return out;
}

for (const phase of ['contribution', 'prove'] as const) {
  test(`a malformed relayed part from one worker in the ${phase} phase fails the job naming it; its peers stay connected and are released`, async () => {
    const c = await startCluster(3, {
      tag: `relay-${phase}`,
      sim: { wire: 'upstream', perWorker: (i) => (i === 1 ? { faults: { [phase]: { action: 'garbleRelay' } } } : undefined) },
    });
    try {
      const bad = c.fleet.workers[1];
      const jobId = await submit(c.client, { prove: { hash_id: c.hashId, input: inline(Buffer.alloc(64, 1)), proof_dest: 1 } });
      const failure = failureOf(await waitTerminal(c.client, jobId));
      assert.equal(failure.kind, 'execution');
      const reason = failure.execution?.reason ?? '';
      assert.match(reason, new RegExp(`worker ${bad.id}\\b`), reason);
      assert.match(reason, /malformed relayed data/, reason);
      for (const w of c.fleet.workers) if (w !== bad) assert.doesNotMatch(reason, new RegExp(`${w.id}\\b`), reason);
      // Nobody's stream broke: every worker is on its first connection, with no stream error.
      for (const w of c.fleet.workers) {
        assert.equal(w.stats.connects, 1, `${w.id} reconnected`);
        assert.equal(w.stats.streamErrors, 0, `${w.id} had a stream error`);
      }
      // Released: all three are ready again and the next job runs on them (the fault fired once).
      await assertAllReady(c, 3);
      const next = await submit(c.client, { prove: { hash_id: c.hashId, input: inline(Buffer.alloc(64, 2)), proof_dest: 1 } });
      assert.equal((await waitTerminal(c.client, next)).job_status.status, 'completed');
      assert.equal(c.fleet.stats().challengeMismatches, 0);
    } finally {
      await c.close();
    }
  });
}

test('witness arrays sent unpacked (valid proto3) are accepted and compare equal to packed ones', async () => {
  const c = await startCluster(2, { tag: 'relay-unpacked', sim: { wire: 'upstream', perWorker: (i) => (i === 0 ? { unpackedArrays: true } : undefined) } });
  try {
    const prove = await submit(c.client, { prove: { hash_id: c.hashId, input: inline(Buffer.alloc(64, 3)), proof_dest: 1 } });
    const r = await waitTerminal(c.client, prove);
    // The witness check compares worker 0's unpacked arrays with worker 1's packed ones.
    assert.equal(r.job_status.status, 'completed', JSON.stringify(r.job_status));
    const exec = await submit(c.client, { execute: { hash_id: c.hashId, input: inline(Buffer.alloc(8)) } });
    const e = await waitTerminal(c.client, exec);
    assert.equal(e.job_status.status, 'completed', JSON.stringify(e.job_status));
    const out = Buffer.from((e.result as unknown as { execute: { public_outputs: Buffer } }).execute.public_outputs);
    assert.ok(out.subarray(32).equals(publicsWords(exec)), 'public outputs decoded from the unpacked or packed publics alike');
    for (const w of c.fleet.workers) assert.equal(w.stats.connects, 1, `${w.id} reconnected`);
  } finally {
    await c.close();
  }
});

test('a WorkerMessage that is not valid protobuf ends only its own stream, with INVALID_ARGUMENT and the reason', async () => {
  const c = await startCluster(2, { tag: 'relay-malformed', sim: { wire: 'upstream', reconnectOnReject: false } });
  try {
    const [bad, good] = c.fleet.workers;
    const ended = new Promise<{ code: number; details: string }>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('the malformed message did not end the stream')), 10_000);
      bad.once('disconnected', (info) => (clearTimeout(t), resolve(info)));
    });
    // heartbeat_ack{worker_id} with the string's length running 268 MB past the end.
    bad.sendRaw(Buffer.from([0x0a, 0x09, 0x0a, 0x80, 0x80, 0x80, 0x80, 0x01, 0x61, 0x62, 0x63]));
    const info = await ended;
    assert.equal(info.code, 3, JSON.stringify(info));
    assert.match(info.details, /^Malformed WorkerMessage: length \d+ at byte 3 runs past the end of its message/);
    // The other worker is untouched and still works.
    const jobId = await submit(c.client, { prove: { hash_id: c.hashId, input: inline(Buffer.alloc(64, 4)), proof_dest: 1 } });
    assert.equal((await waitTerminal(c.client, jobId)).job_status.status, 'completed');
    assert.equal(good.stats.connects, 1);
  } finally {
    await c.close();
  }
});
