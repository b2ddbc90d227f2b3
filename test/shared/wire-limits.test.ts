/**
 * The client-side size limits leave room for every message built from what a client submits: the
 * worst case (every other field at its bound) is encoded with the PUBLIC proto and with the
 * coordinator's own task encoders, and must fit in what the worker port may send.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CLUSTER_API_PROTO, CLUSTER_API_SERVICE, CLUSTER_VIEW_PROTO, serviceDefinition } from '../../src/shared/proto';
import {
  HASH_ID_BYTES,
  MAX_PROGRAM_NAME_BYTES,
  MAX_REGISTER_MESSAGE_BYTES,
  MAX_STREAM_URI_BYTES,
  MAX_WORKER_COMPUTE_UNITS,
  MAX_WORKER_ID_BYTES,
  WORKER_MAX_MESSAGE_BYTES,
  clientSizeLimits,
} from '../../src/shared/wire-limits';
import { contributionTaskEncoder, encodeWrapTask } from '../../src/main/cluster/task-encoding';

const MiB = 1 << 20;
const publicEncode = serviceDefinition(CLUSTER_API_PROTO, CLUSTER_API_SERVICE).WorkerStream.responseSerialize;
const viewEncode = serviceDefinition(CLUSTER_VIEW_PROTO, CLUSTER_API_SERVICE).WorkerStream.responseSerialize;

const uuid = 'ffffffff-ffff-ffff-ffff-ffffffffffff';
const hashId = 'f'.repeat(HASH_ID_BYTES);
const workerId = 'w'.repeat(MAX_WORKER_ID_BYTES);

function registerWithSetup(elf: number): Buffer {
  return publicEncode({
    register_response: {
      worker_id: workerId,
      accepted: true,
      message: 'm'.repeat(MAX_REGISTER_MESSAGE_BYTES),
      registered_at: { seconds: '253402300799', nanos: 999_999_999 },
      directive: { action: 2 },
      setup_program: { job_id: uuid, elf_bytes: Buffer.alloc(elf), hash_id: hashId, with_hints: true, program_name: 'p'.repeat(MAX_PROGRAM_NAME_BYTES) },
    },
  });
}

test('the largest ELF accepted fits a registration carrying its setup, to within a few bytes', () => {
  for (const send of [MiB, WORKER_MAX_MESSAGE_BYTES]) {
    const limits = clientSizeLimits(send);
    const size = registerWithSetup(limits.elfBytes).length;
    assert.ok(size <= send, `${size} > ${send}`);
    // The bound is tight: only the widest varints (a negative int64/int32) are not reached here.
    assert.ok(send - size <= 32, `slack ${send - size}`);
  }
  // The ELF of the defect report (128 MiB − 64 B) no longer gets in.
  assert.ok(clientSizeLimits(WORKER_MAX_MESSAGE_BYTES).elfBytes < WORKER_MAX_MESSAGE_BYTES - 64);
});

test('the largest inline input fits every contribution task, whatever the worker and its units', () => {
  const send = 2 * MiB;
  const limits = clientSizeLimits(send);
  const encodeFor = contributionTaskEncoder({
    jobId: uuid,
    executionOnly: false,
    dataId: uuid,
    hashId,
    inputData: Buffer.alloc(limits.inlineBytes),
    hintsStreamUri: 'u'.repeat(MAX_STREAM_URI_BYTES),
  });
  const allocation = Array.from({ length: MAX_WORKER_COMPUTE_UNITS }, (_, i) => 0xffff_ffff - i);
  const buf = encodeFor({ workerId, rank: 0xffff_ffff, totalWorkers: 0xffff_ffff, allocation, jobComputeUnits: 0xffff_ffff });
  assert.ok(buf.length <= send, `${buf.length} > ${send}`);
  // Inline input and hints share the bound.
  const both = contributionTaskEncoder({
    jobId: uuid,
    executionOnly: true,
    dataId: uuid,
    hashId,
    inputData: Buffer.alloc(limits.inlineBytes - 1000),
    hintsData: Buffer.alloc(1000),
  })({ workerId, rank: 1, totalWorkers: 2, allocation, jobComputeUnits: 3 });
  assert.ok(both.length <= send);
});

test('the largest wrap proof fits its task, and the largest hints batch its stream_data message', () => {
  const send = MiB;
  const limits = clientSizeLimits(send);
  const wrap = encodeWrapTask({ jobId: uuid, workerId, proofData: Buffer.alloc(limits.wrapProofBytes), proofDest: 2 });
  assert.ok(wrap.length <= send && send - wrap.length <= 32, `wrap ${wrap.length}`);
  const hints = viewEncode({
    stream_data: { job_id: uuid, stream_type: 2, payload: { sequence_number: 0xffff_ffff, payload: Buffer.alloc(limits.hintsBatchBytes) } },
  });
  assert.ok(hints.length <= send && send - hints.length <= 32, `hints ${hints.length}`);
});
