/** Public-proto coordinator messages for driving sim workers from a fake coordinator. */
import type { PubChallenges, PubCoordinatorMessage, PubProofStark, PubTaskResponse, Received } from './fake-cluster-server';

export const HASH = 'ab'.repeat(32);

export interface ContributionExtra {
  hints_stream?: boolean;
  hints_path?: string;
  input_data?: Buffer;
  hash_id?: string;
}

function contributionParams(rank: number, total: number, extra: ContributionExtra): object {
  return {
    data_id: 'data-1',
    rank_id: rank,
    total_workers: total,
    worker_allocation: [rank],
    job_compute_units: total,
    hash_id: extra.hash_id ?? HASH,
    ...extra,
  };
}

export function contributionTask(workerId: string, jobId: string, rank: number, total: number, extra: ContributionExtra = {}): PubCoordinatorMessage {
  return { execute_task: { worker_id: workerId, job_id: jobId, task_type: 0, contribution_params: contributionParams(rank, total, extra) } };
}

export function executionTask(workerId: string, jobId: string, rank: number, total: number, extra: ContributionExtra = {}): PubCoordinatorMessage {
  return { execute_task: { worker_id: workerId, job_id: jobId, task_type: 3, execution_params: contributionParams(rank, total, extra) } };
}

export function proveTask(workerId: string, jobId: string, challenges: PubChallenges[]): PubCoordinatorMessage {
  return { execute_task: { worker_id: workerId, job_id: jobId, task_type: 1, prove_params: { challenges } } };
}

/** `proofs` undefined leaves `agg_proofs` off the wire (which the worker must refuse). */
export function aggTask(workerId: string, jobId: string, proofs: PubProofStark[] | undefined, last: boolean): PubCoordinatorMessage {
  const agg: Record<string, unknown> = { last_proof: last, final_proof: last, proof_type: 0 };
  if (proofs) agg.agg_proofs = { proofs };
  return { execute_task: { worker_id: workerId, job_id: jobId, task_type: 2, agg_params: agg } };
}

export function wrapTask(workerId: string, jobId: string, proofData: Buffer, dest = 1): PubCoordinatorMessage {
  return { execute_task: { worker_id: workerId, job_id: jobId, task_type: 4, wrap_params: { proof_data: proofData, proof_dest: dest } } };
}

export function setupProgram(jobId: string, hashId = HASH, withHints = false): object {
  return { job_id: jobId, elf_bytes: Buffer.from('\x7fELF sim'), hash_id: hashId, with_hints: withHints, program_name: 'sim-program' };
}

export function jobCancelled(jobId: string, reason = 'cancelled by client'): PubCoordinatorMessage {
  return { job_cancelled: { job_id: jobId, reason } };
}

export function inputChunk(jobId: string, payload: Buffer): PubCoordinatorMessage {
  return { input_stream_data: { job_id: jobId, payload } };
}

export function hints(jobId: string, type: 0 | 1 | 2, seq: number, payload: Buffer = Buffer.alloc(0)): PubCoordinatorMessage {
  return { stream_data: { job_id: jobId, stream_type: type, payload: { sequence_number: seq, payload } } };
}

/** Matches an `execute_task_response` of `jobId` (and of `workerId` when given). */
export function responseOf(jobId: string, workerId?: string): (r: Pick<Received, 'msg' | 'workerId'>) => boolean {
  return (r) => r.msg.execute_task_response?.job_id === jobId && (workerId === undefined || r.workerId === workerId);
}

export function resp(r: Received): PubTaskResponse {
  const x = r.msg.execute_task_response;
  if (!x) throw new Error(`not an execute_task_response: ${r.msg.payload}`);
  return x;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
