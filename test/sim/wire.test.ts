import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CLUSTER_API_PROTO, CLUSTER_API_SERVICE, serviceDefinition } from '../../src/shared/proto';
import { workerStreamMethod } from '../../src/sim/worker';
import {
  countVarints,
  decodeChallenges,
  decodePackedUint64,
  encodeChallenges,
  encodeProofList,
  packUint64,
  walkProofList,
} from '../../src/sim/wire';
import {
  U64_MAX,
  encodedSimChallenges,
  expectedProofStarkValues,
  packedProofStarkValues,
  packedSimPublics,
  packedSimWitnessProofValues,
  proofStarkValueAt,
  simChallenges,
  simPublics,
  simVk,
  simWitnessProofValues,
} from '../../src/sim/data';
import type { PubWorkerMessage } from '../helpers/fake-cluster-server';

const publicMethod = serviceDefinition(CLUSTER_API_PROTO, CLUSTER_API_SERVICE).WorkerStream;

/** Encodes through the sim's relay view, decodes through the PUBLIC proto. */
function roundTrip(msg: Parameters<ReturnType<typeof workerStreamMethod>['serialize']>[0]): PubWorkerMessage {
  return publicMethod.requestDeserialize(workerStreamMethod().serialize(msg)) as PubWorkerMessage;
}

describe('sim wire codec', () => {
  test('packed uint64 round-trips edge values', () => {
    const values = [0n, 1n, 127n, 128n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 63n, U64_MAX - 1n, U64_MAX];
    assert.deepEqual(decodePackedUint64(packUint64(values)), values);
    assert.equal(countVarints(packUint64(values)), values.length);
    assert.throws(() => packUint64([U64_MAX + 1n]), RangeError);
  });

  test('Challenges decode accepts packed and unpacked forms', () => {
    const ch = [U64_MAX, 5n, 2n ** 40n];
    assert.deepEqual(decodeChallenges(encodeChallenges(3, 1, ch)), { workerIndex: 3, airgroupId: 1, challenge: ch });
    // Unpacked: one varint field 3 per value (a legal encoding peers may use).
    const unpacked = Buffer.concat([Buffer.from([0x08, 0x03]), ...ch.map((v) => Buffer.concat([Buffer.from([0x18]), packUint64([v])]))]);
    assert.deepEqual(decodeChallenges(unpacked).challenge, ch);
  });

  test('sim challenges include 2^64-1 and differ per rank', () => {
    assert.equal(simChallenges('job', 0)[0], U64_MAX);
    assert.equal(simChallenges('job', 3)[0], U64_MAX - 3n);
    assert.notDeepEqual(simChallenges('job', 1), simChallenges('job', 2));
    assert.deepEqual(decodeChallenges(encodedSimChallenges('job', 2)).challenge, simChallenges('job', 2));
  });

  test('VK is 32 bytes and depends on hash and hints', () => {
    assert.equal(simVk('h', false).length, 32);
    assert.notDeepEqual(simVk('h', false), simVk('h', true));
    assert.deepEqual(simVk('h', true), simVk('h', true));
  });

  test('a Prove result written through the view decodes with the PUBLIC proto to the exact uint64 strings', () => {
    const k = 1024;
    const proofs = encodeProofList([
      { workerIdx: 2, airgroupId: 0, packedValues: packedProofStarkValues(k) },
      { workerIdx: 2, airgroupId: 1, packedValues: packedProofStarkValues(k) },
    ]);
    const pub = roundTrip({ execute_task_response: { job_id: 'j', worker_id: 'w', task_type: 1, success: true, proofs } });
    const r = pub.execute_task_response;
    assert.ok(r?.proofs);
    assert.equal(r.proofs.proofs.length, 2);
    assert.equal(r.proofs.proofs[0].worker_idx, 2);
    assert.equal(r.proofs.proofs[1].airgroup_id, '1');
    const expected = expectedProofStarkValues(k);
    assert.equal(expected[0], '18446744073709551615');
    assert.deepEqual(r.proofs.proofs[0].values, expected);
    assert.deepEqual(r.proofs.proofs[1].values, expected);
  });

  test('a contribution result decodes with the PUBLIC proto (challenges, publics, proof_values)', () => {
    const pub = roundTrip({
      execute_task_response: {
        job_id: 'job-x',
        worker_id: 'w',
        task_type: 0,
        success: true,
        challenges: {
          challenges: [encodedSimChallenges('job-x', 0)],
          witness_info: { publics: packedSimPublics('job-x'), proof_values: packedSimWitnessProofValues('job-x'), total_instances: '7' },
          zisk_execution_time: { task_received_time: 1.5 },
        },
      },
    });
    const c = pub.execute_task_response?.challenges;
    assert.ok(c?.witness_info);
    assert.deepEqual(c.challenges, [{ worker_index: 0, airgroup_id: 0, challenge: simChallenges('job-x', 0).map(String) }]);
    assert.deepEqual(c.witness_info.publics, simPublics('job-x').map(String));
    assert.equal(c.witness_info.publics.length, 64);
    assert.deepEqual(c.witness_info.proof_values, simWitnessProofValues('job-x').map(String));
    assert.equal(c.witness_info.total_instances, '7');
  });

  test('packed publics and proof values are the packed words of simPublics / simWitnessProofValues', () => {
    for (const job of ['job-x', 'job-y', '0b6f0e8e-7a0c-4a59-9f5c-2b1f7a3c9d10']) {
      const publics = simPublics(job);
      assert.equal(publics[0], U64_MAX);
      assert.equal(publics[1], 0n);
      assert.ok(packedSimPublics(job).equals(packUint64(publics)), job);
      const values = simWitnessProofValues(job);
      assert.equal(values[7], U64_MAX - 1n);
      assert.ok(packedSimWitnessProofValues(job).equals(packUint64(values)), job);
    }
    assert.notDeepEqual(simPublics('job-x'), simPublics('job-y'));
  });

  test('a million proof values are built as packed bytes and walk back without decoding', () => {
    const k = 1_000_000;
    const packed = packedProofStarkValues(k);
    const list = encodeProofList([{ workerIdx: 0, airgroupId: 0, packedValues: packed }]);
    const [view] = walkProofList(list);
    assert.equal(view.valueCount, k);
    assert.ok(view.packedValues?.equals(packed));
    // Spot-check the first 40 values through the generic decoder (cut after the 40th varint).
    let end = 0;
    for (let n = 0; n < 40; end++) if ((packed[end] & 0x80) === 0) n++;
    const head = decodePackedUint64(packed.subarray(0, end));
    assert.deepEqual(head, Array.from({ length: 40 }, (_, i) => proofStarkValueAt(i)));
  });

  test('walkProofList falls back to decoding unpacked values', () => {
    const vals = [U64_MAX, 1n, 2n];
    const body = Buffer.concat([Buffer.from([0x08, 0x01]), ...vals.map((v) => Buffer.concat([Buffer.from([0x18]), packUint64([v])]))]);
    const list = Buffer.concat([Buffer.from([0x0a, body.length]), body]);
    const [p] = walkProofList(list);
    assert.equal(p.workerIdx, 1);
    assert.deepEqual(p.unpackedValues, vals);
    assert.equal(p.valueCount, 3);
  });
});
