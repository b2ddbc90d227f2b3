/** The results a sim worker answers its tasks with, derived deterministically from the job (see `./data`). */
import {
  encodedSimChallenges,
  packedProofStarkValues,
  packedSimPublics,
  packedSimWitnessProofValues,
  simExecutedSteps,
  simFinalProof,
  simInstances,
  simVk,
  simWrapProof,
} from './data';
import type { ExecuteTaskResponseOut, SetupProgramIn, WorkerMessageOut, ZiskExecuteTimeOut } from './messages';
import { encodeProofList, type ProofStarkParts } from './wire';

/** A successful task response body. */
type Success = Partial<ExecuteTaskResponseOut> & { success: true };
type SetupAck = NonNullable<WorkerMessageOut['setup_program_ack']>;

/** `zisk_execution_time` of a contribution or execution that took `elapsed` ms. */
function executeTime(elapsed: number, receivedAt: number): ZiskExecuteTimeOut {
  return {
    total_duration: elapsed,
    execution_duration: elapsed * 0.6,
    count_and_plan_duration: elapsed * 0.2,
    count_and_plan_mo_duration: elapsed * 0.1,
    task_received_time: receivedAt,
  };
}

export function executionResult(jobId: string, elapsed: number, receivedAt: number): Success {
  return {
    success: true,
    execution: {
      instances: simInstances(jobId).toString(),
      executed_steps: simExecutedSteps(jobId).toString(),
      zisk_execution_time: executeTime(elapsed, receivedAt),
      witness_info: { publics: packedSimPublics(jobId) },
    },
  };
}

export function contributionResult(jobId: string, rank: number, workerId: string, elapsed: number, receivedAt: number): Success {
  return {
    success: true,
    challenges: {
      challenges: [encodedSimChallenges(jobId, rank)],
      witness_info: {
        witness_time: elapsed * 0.3,
        publics: packedSimPublics(jobId),
        proof_values: packedSimWitnessProofValues(jobId),
        summary_info: `sim worker ${workerId} rank ${rank}`,
        total_instances: simInstances(jobId).toString(),
      },
      zisk_execution_time: executeTime(elapsed, receivedAt),
    },
  };
}

/** `proofsPerTask` proofs of `proofValues` values each, one per airgroup, from worker `rank`. */
export function proveResult(rank: number, proofValues: number, proofsPerTask: number): Success {
  const values = packedProofStarkValues(proofValues);
  const proofs: ProofStarkParts[] = [];
  for (let a = 0; a < proofsPerTask; a++) proofs.push({ workerIdx: rank, airgroupId: a, packedValues: values });
  return { success: true, proofs: encodeProofList(proofs) };
}

/** An intermediate aggregation step answers with an empty proof; the last one with the final proof. */
export function aggregateResult(jobId: string, last: boolean, finalProofBytes: number): Success {
  if (!last) return { success: true, final_proof: { proof_data: Buffer.alloc(0) } };
  return {
    success: true,
    final_proof: {
      proof_data: simFinalProof(jobId, finalProofBytes),
      executed_steps: simExecutedSteps(jobId).toString(),
      instances: simInstances(jobId).toString(),
    },
  };
}

export function wrapResult(proofData: Buffer, proofDest: number, wrapProofBytes: number): Success {
  return { success: true, wrap_result: { proof_data: simWrapProof(proofData, proofDest, wrapProofBytes) } };
}

export function setupAck(sp: SetupProgramIn, workerId: string): SetupAck {
  return { job_id: sp.job_id, worker_id: workerId, hash_id: sp.hash_id, success: true, error_message: '', vk: simVk(sp.hash_id, sp.with_hints) };
}
