/** Unit tests of the client API building blocks: error details, UUIDs, results, the job table, watchers. */
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import * as protobuf from 'protobufjs';
import { apiErrors } from '../../src/shared/errors';
import { PROTO_DIR } from '../../src/shared/proto';
import { API_ERROR_TYPE_URL, STATUS_DETAILS_KEY, apiErrorOf, toServiceError } from '../../src/main/api/grpc-errors';
import { JobRecord, JobMirror, type JobEventWire, type RecordedEvent } from '../../src/main/api/job-mirror';
import { parseUuid } from '../../src/main/api/job-ids';
import { JobWatcher } from '../../src/main/api/job-watcher';
import { BlobStore } from '../../src/main/data/blob-store';
import { buildResult, publicsLayout, timestampOf } from '../../src/main/api/results';
import { webhookBody, webhookUrlFor } from '../../src/main/api/webhook';

describe('grpc-status-details-bin', () => {
  it('decodes with protobufjs from proto/google/rpc/status.proto and the public ApiError', async () => {
    const root = new protobuf.Root();
    root.resolvePath = (_origin, target) => (target.startsWith('google/protobuf/') ? target : path.join(PROTO_DIR, target));
    await root.load(['google/rpc/status.proto', 'zisk_coordinator_api.proto'], { keepCase: true });
    const Status = root.lookupType('google.rpc.Status');
    const ApiError = root.lookupType('zisk.coordinator.v1.ApiError');

    const err = toServiceError(apiErrors.programNotFound('ab'.repeat(32)));
    assert.equal(err.code, 5);
    assert.equal(err.details, `Program not found: ${'ab'.repeat(32)}`);
    const raw = err.metadata.get(STATUS_DETAILS_KEY)[0] as Buffer;
    const status = Status.toObject(Status.decode(raw)) as { code: number; message: string; details: { type_url: string; value: Uint8Array }[] };
    assert.equal(status.code, 5);
    assert.equal(status.message, err.details);
    assert.equal(status.details.length, 1);
    assert.equal(status.details[0].type_url, API_ERROR_TYPE_URL);
    const api = ApiError.toObject(ApiError.decode(status.details[0].value)) as { code: number; name: string; message: string };
    assert.deepEqual(api, { code: 1002, name: 'PROGRAM_NOT_FOUND', message: err.details });
    assert.deepEqual(apiErrorOf(err.metadata), api);
  });

  it('INTERNAL keeps the fixed text; the trace id is in the ApiError message', () => {
    const err = toServiceError(apiErrors.internal('trace-123'));
    assert.equal(err.code, 13);
    assert.equal(err.details, 'An internal error occurred');
    assert.deepEqual(apiErrorOf(err.metadata), { code: 3001, name: 'INTERNAL', message: 'An internal error occurred (trace id trace-123)' });
  });
});

describe('parseUuid (the uuid crate forms)', () => {
  const id = '0e9ba1a4-9d1f-5c43-8c1e-3a0c6a54b8f1';
  it('accepts hyphenated, simple, urn and braced forms in any case; answers canonically', () => {
    for (const form of [id, id.toUpperCase(), id.replace(/-/g, ''), `urn:uuid:${id}`, `URN:UUID:${id.toUpperCase()}`, `{${id}}`]) {
      assert.deepEqual(parseUuid(form), { ok: true, uuid: id }, form);
    }
  });
  it('explains failures as the uuid crate does', () => {
    const detail = (s: string): string => {
      const r = parseUuid(s);
      assert.equal(r.ok, false);
      return r.ok ? '' : r.detail;
    };
    assert.equal(detail('abc'), 'invalid length: expected length 32 for simple format, found 3');
    assert.equal(detail('g'), 'invalid character: expected an optional prefix of `urn:uuid:` followed by [0-9a-fA-F-], found `g` at 1');
    assert.equal(detail(`{${id.replace(/-/g, '')}}`), 'invalid group count: expected 5, found 1');
    assert.equal(detail('0e9ba1a-49d1f-5c43-8c1e-3a0c6a54b8f1'), 'invalid group length in group 0: expected 8, found 7');
    assert.equal(detail('a-b'), 'invalid group count: expected 5, found 2');
  });
});

describe('results', () => {
  function packed(values: bigint[]): Buffer {
    const out: number[] = [];
    for (let v of values) {
      while (v > 0x7fn) {
        out.push(Number(v & 0x7fn) | 0x80);
        v >>= 7n;
      }
      out.push(Number(v));
    }
    return Buffer.from(out);
  }

  it('public outputs: 32 zero bytes + 64 little-endian u64 when exactly 64 publics, else empty', () => {
    const values = Array.from({ length: 64 }, (_, i) => (i === 63 ? 0xffff_ffff_ffff_ffffn : BigInt(i * 1000)));
    const out = publicsLayout(packed(values));
    assert.equal(out.length, 544);
    assert.deepEqual(out.subarray(0, 32), Buffer.alloc(32));
    assert.equal(out.readBigUInt64LE(32 + 8 * 5), 5000n);
    assert.equal(out.readBigUInt64LE(32 + 8 * 63), 0xffff_ffff_ffff_ffffn);
    assert.equal(publicsLayout(packed(values.slice(0, 63))).length, 0);
    assert.equal(publicsLayout(packed([...values, 1n])).length, 0);
    assert.equal(publicsLayout(Buffer.from([0x80])).length, 0); // truncated varint
    assert.equal(publicsLayout(undefined).length, 0);
  });

  it('public outputs keep every uint64 bit-exact, across every varint length', () => {
    let x = 0x9e3779b97f4a7c15n;
    const values = Array.from({ length: 64 }, (_, i) => {
      x = (x * 6364136223846793005n + 1442695040888963407n) & 0xffff_ffff_ffff_ffffn;
      return x >> BigInt(i % 64); // 64 down to 1 significant bits: every varint length 1..10
    });
    const out = publicsLayout(packed(values));
    assert.equal(out.length, 544);
    values.forEach((v, i) => assert.equal(out.readBigUInt64LE(32 + 8 * i), v, `value ${i}`));
  });

  it('prove results: stable fields, asked kind, VK, stats (uint64 as strings)', () => {
    const blobs = new BlobStore();
    const proofBlobId = blobs.put(Buffer.from('proof-bytes'));
    const built = buildResult(
      { kind: 'prove', hashId: 'ab'.repeat(32), proofKind: 2 },
      { kind: 'prove', proofBlobId, executedSteps: '18446744073709551615', vkHex: '0a0b', startedAt: 1_000 },
      3_500,
      blobs,
      () => 'fixed-id',
    );
    assert.ok('prove' in built.response);
    const { proof, stats } = built.response.prove;
    assert.equal(proof.proof_id, 'fixed-id');
    assert.equal(proof.proof_kind, 2);
    assert.deepEqual(proof.verification_key, Buffer.from([10, 11]));
    assert.deepEqual(proof.started_at, timestampOf(1_000));
    assert.deepEqual(proof.completed_at, { seconds: 3, nanos: 500_000_000 });
    assert.equal(stats.steps, '18446744073709551615');
    assert.equal(stats.duration_nanos, '2500000000');
    assert.deepEqual(built.blobIds, [proofBlobId]);
  });
});

describe('job table', () => {
  const rec = (kind: 'prove' | 'execute' | 'setup' | 'wrap'): JobRecord =>
    new JobRecord('0e9ba1a4-9d1f-4c43-8c1e-3a0c6a54b8f1', kind, kind === 'prove' ? { kind, hashId: 'h', proofKind: 1 } : { kind: 'execute', hashId: 'h' }, { kind: 'none' }, { kind: 'none' }, 0);
  const names = (events: RecordedEvent[]): string[] => events.map((e) => (e.phase ? `${e.kind}(${e.phase})` : e.kind));

  it('records what the scheduler says, as it says it, and nothing after the terminal event', () => {
    const t = new JobMirror();
    const r = rec('prove');
    t.apply(r, 1, { kind: 'queued' });
    t.apply(r, 2, { kind: 'started' });
    t.apply(r, 2, { kind: 'progress', phase: 1 });
    t.apply(r, 4, { kind: 'progress', phase: 2 });
    t.apply(r, 6, { kind: 'progress', phase: 3 });
    t.apply(r, 7, { kind: 'cancelled' });
    t.apply(r, 8, { kind: 'failed', failure: { kind: 'execution', reason: 'late' } });
    assert.deepEqual(names(r.history), ['queued', 'started', 'progress(1)', 'progress(2)', 'progress(3)', 'cancelled']);
    assert.deepEqual(r.history.map((e) => e.at), [1, 2, 2, 4, 6, 7]);
    assert.equal(r.state, 'cancelled');
    assert.deepEqual(r.status(), { cancelled: {} });
  });

  it('invents nothing: no queued or started the scheduler did not send, no progress of its own', () => {
    const t = new JobMirror();
    const w = rec('wrap');
    t.apply(w, 1, { kind: 'started' });
    assert.deepEqual(names(w.history), ['started']);
    assert.deepEqual(w.status(), { running: {} });
    const e = rec('execute');
    t.apply(e, 1, { kind: 'queued' });
    t.apply(e, 2, { kind: 'started' });
    assert.deepEqual(names(e.history), ['queued', 'started']);
    assert.deepEqual(e.status(), { running: {} });
  });

  it('a retried job is queued and started again, and its status follows', () => {
    const t = new JobMirror();
    const r = rec('prove');
    for (const [at, ev] of [
      [1, { kind: 'queued' }],
      [2, { kind: 'started' }],
      [2, { kind: 'progress', phase: 1 }],
      [3, { kind: 'progress', phase: 2 }],
      [4, { kind: 'queued' }],
    ] as const) t.apply(r, at, ev);
    assert.deepEqual(r.status(), { queued: {} });
    t.apply(r, 5, { kind: 'started' });
    t.apply(r, 5, { kind: 'progress', phase: 1 });
    assert.deepEqual(r.status(), { running: { phase: 1 } });
    assert.deepEqual(names(r.history), ['queued', 'started', 'progress(1)', 'progress(2)', 'queued', 'started', 'progress(1)']);
  });
});

describe('JobWatcher', () => {
  function fakeSink(): { written: JobEventWire[]; callbacks: (() => void)[]; ended: boolean; sink: ConstructorParameters<typeof JobWatcher>[0] } {
    const state = { written: [] as JobEventWire[], callbacks: [] as (() => void)[], ended: false };
    return {
      ...state,
      get ended() {
        return state.ended;
      },
      sink: {
        write: (e, done) => {
          state.written.push(e);
          state.callbacks.push(done);
        },
        end: () => {
          state.ended = true;
        },
      },
    };
  }
  const ev = (kind: RecordedEvent['kind'], phase?: 1 | 2 | 3): RecordedEvent => ({
    kind,
    at: 0,
    phase,
    terminal: kind === 'completed' || kind === 'failed' || kind === 'cancelled',
    wire: { queued: { job_id: `${kind}${phase ?? ''}`, timestamp: timestampOf(0) } },
  });
  const ids = (w: JobEventWire[]): string[] => w.map((e) => ('queued' in e ? e.queued.job_id : '?'));

  it('a watcher that stops reading sheds intermediate progress first and still gets the terminal event', () => {
    const f = fakeSink();
    let finished = false;
    const w = new JobWatcher(f.sink, () => (finished = true), 3, 1);
    for (const e of [ev('queued'), ev('started'), ev('progress', 1), ev('progress', 2), ev('progress', 3)]) w.push(e);
    // one write in flight (the client is not reading); four buffered, limit 3
    assert.deepEqual(ids(f.written), ['queued']);
    w.push(ev('failed'));
    assert.ok(w.dropped >= 2);
    // the client reads again
    while (f.callbacks.length > 0) (f.callbacks.shift() as () => void)();
    assert.deepEqual(ids(f.written), ['queued', 'started', 'progress3', 'failed']);
    assert.ok(f.ended);
    assert.ok(finished);
  });

  it('a cancelled watcher writes nothing more', () => {
    const f = fakeSink();
    const w = new JobWatcher(f.sink, () => undefined, 4, 1);
    w.push(ev('queued'));
    w.cancel();
    w.push(ev('completed'));
    assert.deepEqual(ids(f.written), ['queued']);
    assert.equal(f.ended, false);
  });
});

describe('webhook body and url', () => {
  it('substitutes {$job_id} or appends /<job_id>', () => {
    assert.equal(webhookUrlFor('http://h/hook?id={$job_id}', 'J'), 'http://h/hook?id=J');
    assert.equal(webhookUrlFor('http://h/hook/', 'J'), 'http://h/hook/J');
    assert.equal(webhookUrlFor('http://h/hook', 'J'), 'http://h/hook/J');
  });
  it('writes upstream fields; u64 steps stay exact', () => {
    const body = webhookBody({ jobId: 'J', success: true, durationMs: 12.4, executedSteps: '18446744073709551615', at: 0, proofData: Buffer.from([1, 2]) });
    assert.equal(
      body,
      '{"job_id":"J","success":true,"duration_ms":12,"executed_steps":18446744073709551615,"timestamp":"1970-01-01T00:00:00.000Z","error":null,"proof_data":[1,2]}',
    );
    const failed = JSON.parse(webhookBody({ jobId: 'J', success: false, durationMs: 1, executedSteps: null, at: 0, errorMessage: 'x' })) as Record<string, unknown>;
    assert.deepEqual(failed.error, { code: 'JOB_FAILED', message: 'x' });
    assert.equal(failed.executed_steps, null);
    assert.equal('proof_data' in failed, false);
  });
});
