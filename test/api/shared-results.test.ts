/**
 * Big results are encoded once and shared by every reader (docs/architecture.md, Data plane: big results): over
 * real sockets, every WatchJob and WaitJobResult reader gets the same bytes and the right proof; readers
 * that stop reading hold no copy of the proof; a stalled reader neither blocks a fast one nor the
 * server's other calls; readers that go away leave nothing behind.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http2 from 'node:http2';
import { after, before, describe, it } from 'node:test';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { FramedMessage, frameWithProof, proofDataOf } from '../../src/main/api/result-frames';
import type { JobKindResponseWire } from '../../src/main/api/results';
import { simFinalProof } from '../../src/sim/data';
import { CLIENT_API_PROTO, CLIENT_API_SERVICE, serviceDefinition } from '../../src/shared/proto';
import { FieldWriter } from '../../src/shared/protobuf-wire';
import { startCluster, type Cluster } from '../helpers/cluster';
import { submit, inline, unary, waitTerminal, watch } from './helpers';

const API = serviceDefinition(CLIENT_API_PROTO, CLIENT_API_SERVICE);
const PROOF_BYTES = 16 << 20;

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** ArrayBuffer memory of this process (the in-process coordinator's buffers) after a full collection. */
function arrayBuffersAfterGc(): number {
  gc();
  gc();
  return process.memoryUsage().arrayBuffers;
}

type Method = 'WatchJob' | 'WaitJobResult';

/** More than every small event of a job: a reader with this much is inside the result's message. */
const STARTED_BYTES = 32 * 1024;

function framed(message: Buffer): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out.writeUInt32BE(message.length, 1);
  message.copy(out, 5);
  return out;
}

/**
 * A raw HTTP/2 reader of one call on a connection of its own, with a 64 KiB window (HTTP/2's default),
 * as impolite as a real client that stops reading: it can be paused, and destroyed mid-transfer.
 */
class RawReader {
  readonly session: http2.ClientHttp2Session;
  readonly stream: http2.ClientHttp2Stream;
  private readonly hash = createHash('sha256');
  bytes = 0;
  status: number | undefined;
  /** Resolves once the reader has 32 KiB: the server has handed its big message to the stream. */
  readonly started: Promise<void>;
  readonly closed: Promise<void>;

  constructor(address: string, method: Method, jobId: string) {
    this.session = http2.connect(`http://${address}`);
    this.session.on('error', () => undefined);
    this.stream = this.session.request({
      ':method': 'POST',
      ':path': `/zisk.coordinator.v1.ZiskCoordinatorApi/${method}`,
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    this.stream.on('error', () => undefined);
    const statusOf = (h: http2.IncomingHttpHeaders): void => {
      if (h['grpc-status'] !== undefined) this.status ??= Number(h['grpc-status']);
    };
    this.stream.on('response', statusOf);
    this.stream.on('trailers', statusOf);
    let started = (): void => undefined;
    this.started = new Promise((resolve) => (started = resolve));
    this.stream.on('data', (chunk: Buffer) => {
      this.hash.update(chunk);
      this.bytes += chunk.length;
      if (this.bytes >= STARTED_BYTES) started();
    });
    this.closed = new Promise((resolve) => this.stream.on('close', () => resolve()));
    this.stream.end(framed(new FieldWriter().string(1, jobId, true).finish()));
  }

  digest(): string {
    return this.hash.digest('hex');
  }

  /** Stops reading: the stream's window closes and the server can send no more. */
  pause(): void {
    this.stream.pause();
  }

  resume(): void {
    this.stream.resume();
  }

  close(): void {
    this.session.destroy();
  }
}

describe('a result encoded once for every reader', () => {
  let c: Cluster;
  let jobId: string;
  let proof: Buffer;

  before(async () => {
    c = await startCluster(1, { sim: { finalProofBytes: PROOF_BYTES } });
    jobId = await submit(c.client, { prove: { hash_id: c.hashId, input: inline(Buffer.alloc(8, 1)), proof_dest: 1 } });
    const r = await waitTerminal(c.client, jobId);
    assert.equal(r.job_status.status, 'completed');
    proof = simFinalProof(jobId, PROOF_BYTES);
  });
  after(async () => {
    await c.close();
  });

  it('every reader gets the same bytes, and they decode to the proof (WatchJob and WaitJobResult, grpc-js and raw readers)', async () => {
    for (const method of ['WatchJob', 'WaitJobResult'] as const) {
      const raws = [0, 1, 2].map(() => new RawReader(c.tc.apiAddress, method, jobId));
      await Promise.all(raws.map((r) => r.closed));
      const digests = raws.map((r) => r.digest());
      for (const r of raws) assert.equal(r.status, 0, `${method}: status OK`);
      assert.equal(new Set(digests).size, 1, `${method}: every raw reader got the same bytes`);
      assert.ok(raws[0].bytes > PROOF_BYTES, `${method}: the body holds the proof`);
    }
    const waited = await unary<{ result: { prove: { proof: { data: Buffer } } } }>(c.client, 'WaitJobResult', { job_id: jobId });
    assert.ok(waited.result.prove.proof.data.equals(proof), 'WaitJobResult: the proof, byte for byte');
    const w = watch(c.client, jobId);
    assert.equal((await w.done).code, 0);
    const completed = w.events.find((e) => e.event === 'completed') as { completed: { result: { prove: { proof: { data: Buffer } } } } } | undefined;
    assert.ok(completed?.completed.result.prove.proof.data.equals(proof), 'WatchJob: the proof, byte for byte');
  });

  it('readers that stop reading hold no copy of the proof, and leave nothing behind when they go away', async () => {
    const before = arrayBuffersAfterGc();
    const stalled = [
      ...[0, 1].map(() => new RawReader(c.tc.apiAddress, 'WatchJob', jobId)),
      ...[0, 1].map(() => new RawReader(c.tc.apiAddress, 'WaitJobResult', jobId)),
    ];
    // The server writes a message whole: a reader inside it means all of it is on the server's stream.
    await Promise.all(stalled.map((r) => r.started));
    for (const r of stalled) r.pause();
    const held = arrayBuffersAfterGc() - before;
    // A copy per reader would be 4 × 16 MiB; what is left is HTTP/2 and socket buffers.
    assert.ok(held < PROOF_BYTES / 2, `4 stalled readers hold ${(held / 2 ** 20).toFixed(1)} MiB`);
    for (const r of stalled) assert.ok(r.bytes < PROOF_BYTES, 'the stalled readers did not get everything');
    for (const r of stalled) r.close();
    await Promise.all(stalled.map((r) => r.closed));
    // The server has seen the resets once a call made after them on a new connection is answered
    // and a full read succeeds.
    const probe = new RawReader(c.tc.apiAddress, 'WaitJobResult', jobId);
    await probe.closed;
    assert.equal(probe.status, 0);
    const left = arrayBuffersAfterGc() - before;
    assert.ok(left < PROOF_BYTES / 2, `after the readers left: ${(left / 2 ** 20).toFixed(1)} MiB`);
  });

  it('a stalled reader blocks neither a fast reader nor other calls', async () => {
    const slow = new RawReader(c.tc.apiAddress, 'WatchJob', jobId);
    await slow.started;
    slow.pause();
    const fast = new RawReader(c.tc.apiAddress, 'WatchJob', jobId);
    await fast.closed;
    assert.equal(fast.status, 0, 'the fast reader finished');
    assert.ok(fast.bytes > PROOF_BYTES);
    // Another call is answered while the slow reader still holds its stream open.
    const other = await submit(c.client, { prove: { hash_id: c.hashId, input: inline(Buffer.alloc(8, 2)), proof_dest: 1 } });
    assert.equal((await waitTerminal(c.client, other)).job_status.status, 'completed');
    assert.ok(slow.bytes < fast.bytes, 'the slow reader is still behind');
    assert.equal(slow.status, undefined, 'and its call is still open');
    slow.resume();
    await slow.closed;
    assert.equal(slow.status, 0);
    assert.equal(slow.digest(), fast.digest(), 'it then gets the same bytes');
    slow.close();
    fast.close();
  });
});

describe('frameWithProof', () => {
  const proof = Buffer.alloc(200_000);
  for (let i = 0; i < proof.length; i++) proof[i] = (i * 7) & 0xff;
  const ts = { seconds: 1_764_236_141, nanos: 7_000_000 };
  const proofWire = {
    proof_id: 'p-1',
    hash_id: 'h'.repeat(64),
    verification_key: Buffer.alloc(32, 3),
    proof_kind: 1,
    data: proof,
    public_inputs: Buffer.alloc(544, 5),
    started_at: ts,
    completed_at: ts,
  };
  const stats = { steps: '123456', duration_nanos: '7000000', cost_per_type: { main: '1', opcode: '0', memory: '0', precompile: '0', tables: '0', other: '0' } };
  const results: JobKindResponseWire[] = [{ prove: { proof: proofWire, stats } }, { wrap: { proof: { ...proofWire, proof_kind: 3 } } }];

  for (const result of results) {
    const kind = Object.keys(result)[0];
    it(`${kind}: head + proof decode to what the generated encoder writes, and the proof is not copied`, () => {
      const withData = (r: JobKindResponseWire, data: Buffer): JobKindResponseWire =>
        'prove' in r ? { prove: { ...r.prove, proof: { ...r.prove.proof, data } } } : 'wrap' in r ? { wrap: { proof: { ...r.wrap.proof, data } } } : r;
      const cases: Array<{ encode: (v: object) => Buffer; decode: (b: Buffer) => unknown; build: (p: Buffer) => object }> = [
        {
          encode: API.WaitJobResult.responseSerialize as (v: object) => Buffer,
          decode: (b) => API.WaitJobResult.responseDeserialize(b),
          build: (p) => ({ job_id: 'job-1', job_status: { completed: {} }, result: withData(result, p) }),
        },
        {
          encode: API.WatchJob.responseSerialize as (v: object) => Buffer,
          decode: (b) => API.WatchJob.responseDeserialize(b),
          build: (p) => ({ completed: { job_id: 'job-1', result: withData(result, p), timestamp: ts } }),
        },
      ];
      for (const { encode, decode, build } of cases) {
        const f = frameWithProof(encode, build, proof);
        assert.ok(f instanceof FramedMessage);
        assert.equal(f.tail, proof, 'the tail is the proof buffer itself');
        assert.equal(f.head[0], 0, 'uncompressed');
        assert.equal(f.head.readUInt32BE(1), f.messageBytes, 'the prefix holds the message length');
        const reference = encode(build(proof));
        assert.equal(f.messageBytes, reference.length, 'same size as the generated encoding');
        assert.deepEqual(decode(f.contiguous()), decode(reference));
        assert.ok(proofDataOf(withData(result, proof))?.equals(proof));
      }
    });
  }
});
