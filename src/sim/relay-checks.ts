/** Checks that what the coordinator relayed between workers arrived bit-exact: challenges and aggregated proofs. */
import { packedProofStarkValues, proofStarkValueAt, simChallenges } from './data';
import type { AggParamsIn } from './messages';
import { decodeChallenges, decodePackedUint64, packUint64, scanChallenges, walkProofList } from './wire';
import { hostNow } from './worker-log';
import type { AggTaskRecord } from './worker-types';

const expectedChallengeCache = new Map<string, Buffer[]>();

/** Packed challenge bodies of every rank of a job, computed once per process and shared by all workers. */
function expectedPackedChallenges(jobId: string, total: number): Buffer[] {
  let list = expectedChallengeCache.get(jobId);
  if (!list || list.length < total) {
    list = [];
    for (let r = 0; r < total; r++) list.push(packUint64(simChallenges(jobId, r)));
    if (expectedChallengeCache.size >= 16) expectedChallengeCache.delete(expectedChallengeCache.keys().next().value as string);
    expectedChallengeCache.set(jobId, list);
  }
  return list;
}

/** Verifies the concatenated challenge lists of a Prove task; returns a description of the first problem. */
export function challengeProblem(jobId: string, total: number, list: Buffer[]): string | undefined {
  if (list.length !== total) return `expected ${total} challenge entries, got ${list.length}`;
  const expected = expectedPackedChallenges(jobId, total);
  const seen = new Set<number>();
  for (const buf of list) {
    let scan;
    try {
      scan = scanChallenges(buf);
    } catch (e) {
      return `undecodable Challenges: ${(e as Error).message}`;
    }
    const idx = scan.workerIndex;
    if (idx >= total) return `challenge worker_index ${idx} out of range (${total} workers)`;
    if (scan.airgroupId !== 0) return `worker ${idx}: airgroup_id ${scan.airgroupId}, expected 0`;
    if (seen.has(idx)) return `duplicate challenges of worker ${idx}`;
    seen.add(idx);
    // Packed bodies compare byte for byte (varints are canonical); anything else is decoded.
    if (scan.packed?.equals(expected[idx])) continue;
    const got = scan.irregular ? decodeChallenges(buf).challenge : scan.packed ? decodePackedUint64(scan.packed) : [];
    const want = simChallenges(jobId, idx);
    if (got.length !== want.length || got.some((v, i) => v !== want[i])) {
      return `worker ${idx}: challenge [${got.join(',')}] != [${want.join(',')}]`;
    }
  }
  return undefined;
}

/** What an AGGREGATE task carried, stamped now; undefined when `agg_proofs` does not decode. */
export function inspectAggTask(jobId: string, p: AggParamsIn): AggTaskRecord | undefined {
  let views;
  try {
    views = walkProofList(p.agg_proofs ?? Buffer.alloc(0));
  } catch {
    return undefined;
  }
  let intact = true;
  let valueCount = 0;
  for (const v of views) {
    valueCount += v.valueCount;
    if (v.packedValues) {
      if (!v.packedValues.equals(packedProofStarkValues(v.valueCount))) intact = false;
    } else if (v.unpackedValues) {
      if (v.unpackedValues.some((x, i) => x !== proofStarkValueAt(i))) intact = false;
    }
  }
  return {
    at: hostNow(),
    jobId,
    proofCount: views.length,
    sourceWorkers: views.map((v) => v.workerIdx),
    valueCount,
    valuesIntact: intact,
    lastProof: p.last_proof,
    finalProof: p.final_proof,
    proofType: p.proof_type,
  };
}
