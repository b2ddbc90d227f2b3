/**
 * The hand-rolled task encoders must produce what the PUBLIC proto decodes to the intended task:
 * field numbers, oneof members, per-worker fields, and relayed uint64 arrays bit-exact.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CLUSTER_API_PROTO, CLUSTER_API_SERVICE, serviceDefinition } from '../../src/shared/proto';
import {
  contributionTaskEncoder,
  encodeAggregateTask,
  encodeWrapTask,
  proveTaskEncoder,
} from '../../src/main/cluster/task-encoding';

const stream = serviceDefinition(CLUSTER_API_PROTO, CLUSTER_API_SERVICE).WorkerStream;
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- decoded test fixtures are inspected dynamically
const decode = (buf: Buffer): any => stream.responseDeserialize(buf);
const encodePublic = (obj: object): Buffer => stream.requestSerialize(obj);
const U64_MAX = '18446744073709551615';

test('contribution tasks share the input and carry each worker its own rank and allocation', () => {
  const input = Buffer.alloc(4096, 7);
  const encodeFor = contributionTaskEncoder({
    jobId: 'job-1',
    executionOnly: false,
    dataId: 'data-1',
    hashId: 'ab'.repeat(32),
    inputData: input,
  });
  const a = decode(encodeFor({ workerId: 'w0', rank: 0, totalWorkers: 2, allocation: [0, 2], jobComputeUnits: 6 }));
  const b = decode(encodeFor({ workerId: 'w1', rank: 1, totalWorkers: 2, allocation: [1, 3, 4, 5], jobComputeUnits: 6 }));
  assert.equal(a.payload, 'execute_task');
  assert.equal(a.execute_task.params, 'contribution_params');
  assert.equal(a.execute_task.task_type, 0);
  assert.equal(a.execute_task.worker_id, 'w0');
  assert.equal(a.execute_task.job_id, 'job-1');
  const pa = a.execute_task.contribution_params;
  assert.equal(pa.data_id, 'data-1');
  assert.equal(pa.hash_id, 'ab'.repeat(32));
  assert.equal(pa.input_source, 'input_data');
  assert.ok(Buffer.from(pa.input_data).equals(input));
  assert.deepEqual([pa.rank_id, pa.total_workers, pa.job_compute_units], [0, 2, 6]);
  assert.deepEqual(pa.worker_allocation, [0, 2]);
  assert.equal(pa.hints_stream, false);
  const pb = b.execute_task.contribution_params;
  assert.equal(b.execute_task.worker_id, 'w1');
  assert.deepEqual([pb.rank_id, pb.worker_allocation], [1, [1, 3, 4, 5]]);
});

test('execution tasks use execution_params and EXECUTION; streamed input leaves input_source unset', () => {
  const encodeFor = contributionTaskEncoder({
    jobId: 'job-2',
    executionOnly: true,
    dataId: 'd',
    hashId: 'cd'.repeat(32),
    hintsStreamUri: 'grpc://push',
  });
  const m = decode(encodeFor({ workerId: 'w', rank: 0, totalWorkers: 1, allocation: [0], jobComputeUnits: 1 }));
  assert.equal(m.execute_task.task_type, 3);
  assert.equal(m.execute_task.params, 'execution_params');
  const p = m.execute_task.execution_params;
  assert.equal(p.input_source, undefined);
  assert.equal(p.hints_stream, true);
  assert.equal(p.hints_path, 'grpc://push');
  assert.deepEqual(p.worker_allocation, [0]);
});

test('inline hints ride in hints_data and an empty inline input is still present', () => {
  const encodeFor = contributionTaskEncoder({
    jobId: 'j',
    executionOnly: false,
    dataId: 'd',
    hashId: 'ef'.repeat(32),
    inputData: Buffer.alloc(0),
    hintsData: Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]),
  });
  const p = decode(encodeFor({ workerId: 'w', rank: 0, totalWorkers: 1, allocation: [0], jobComputeUnits: 1 })).execute_task
    .contribution_params;
  assert.equal(p.input_source, 'input_data');
  assert.equal(Buffer.from(p.input_data).length, 0);
  assert.deepEqual([...Buffer.from(p.hints_data)], [1, 2, 3, 4, 5, 6, 7, 8]);
});

test('PROVE tasks relay every Challenges entry verbatim, uint64 bit-exact', () => {
  // Encoded Challenges entries as a worker would send them (public proto), kept as opaque bytes.
  const entry = (rank: number, values: string[]): Buffer => {
    const msg = encodePublic({
      execute_task_response: { challenges: { challenges: [{ worker_index: rank, airgroup_id: 0, challenge: values }] } },
    });
    // Strip the envelope: WorkerMessage(5) → ExecuteTaskResponse(7) → ChallengesList(1) → Challenges.
    const d = (serviceDefinition(CLUSTER_API_PROTO, CLUSTER_API_SERVICE).WorkerStream.requestDeserialize(msg) as {
      execute_task_response: { challenges: { challenges: { worker_index: number }[] } };
    }).execute_task_response.challenges.challenges[0];
    assert.equal(d.worker_index, rank);
    return innerChallenges(msg);
  };
  const e0 = entry(0, [U64_MAX, '1', '2', '3']);
  const e1 = entry(1, ['9223372036854775808', '0', U64_MAX, '42']);
  const encodeFor = proveTaskEncoder('job-3', [e0, e1]);
  const m = decode(encodeFor('w1'));
  assert.equal(m.execute_task.task_type, 1);
  assert.equal(m.execute_task.worker_id, 'w1');
  const ch = m.execute_task.prove_params.challenges;
  assert.equal(ch.length, 2);
  assert.deepEqual(ch[0].challenge, [U64_MAX, '1', '2', '3']);
  assert.deepEqual(ch[1].challenge, ['9223372036854775808', '0', U64_MAX, '42']);
  assert.equal(ch[1].worker_index, 1);
});

test('AGGREGATE tasks always carry agg_proofs, empty or relayed verbatim', () => {
  const own = decode(encodeAggregateTask({ jobId: 'j', workerId: 'agg', proofList: undefined, last: false, proofType: 2 }));
  assert.equal(own.execute_task.task_type, 2);
  assert.equal(own.execute_task.params, 'agg_params');
  assert.deepEqual(own.execute_task.agg_params.agg_proofs, { proofs: [] }, 'present even when empty');
  assert.equal(own.execute_task.agg_params.proof_type, 2);
  assert.equal(own.execute_task.agg_params.last_proof, false);

  const proofList = innerProofList(
    encodePublic({ execute_task_response: { proofs: { proofs: [{ worker_idx: 3, airgroup_id: U64_MAX, values: [U64_MAX, '5'] }] } } }),
  );
  const relayed = decode(encodeAggregateTask({ jobId: 'j', workerId: 'agg', proofList, last: true, proofType: 0 }));
  const p = relayed.execute_task.agg_params;
  assert.equal(p.last_proof, true);
  assert.equal(p.final_proof, true);
  assert.deepEqual(p.agg_proofs.proofs, [{ worker_idx: 3, airgroup_id: U64_MAX, values: [U64_MAX, '5'] }]);
});

test('WRAP tasks carry the proof bytes and the worker-level destination', () => {
  const m = decode(encodeWrapTask({ jobId: 'j', workerId: 'w', proofData: Buffer.from('proof'), proofDest: 2 }));
  assert.equal(m.execute_task.task_type, 4);
  assert.equal(m.execute_task.wrap_params.proof_dest, 2);
  assert.equal(Buffer.from(m.execute_task.wrap_params.proof_data).toString(), 'proof');
});

/** Minimal length-delimited walker to cut test fixtures out of an envelope. */
function field(buf: Buffer, wanted: number): Buffer {
  let i = 0;
  while (i < buf.length) {
    let key = 0;
    let shift = 0;
    for (;;) {
      const b = buf[i++];
      key |= (b & 0x7f) << shift;
      shift += 7;
      if (b < 0x80) break;
    }
    const wire = key & 7;
    const num = key >>> 3;
    if (wire === 0) {
      while (buf[i++] >= 0x80);
      continue;
    }
    assert.equal(wire, 2, 'fixture walker only handles varint and length-delimited fields');
    let len = 0;
    shift = 0;
    for (;;) {
      const b = buf[i++];
      len += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if (b < 0x80) break;
    }
    if (num === wanted) return buf.subarray(i, i + len);
    i += len;
  }
  throw new Error(`field ${wanted} not found`);
}
function innerChallenges(workerMessage: Buffer): Buffer {
  return field(field(field(workerMessage, 5), 7), 1);
}
function innerProofList(workerMessage: Buffer): Buffer {
  return field(field(workerMessage, 5), 8);
}
