/**
 * Hand-rolled encoders for `CoordinatorMessage{execute_task}` (proto/zisk_distributed_api.proto).
 *
 * Task messages carry one large part shared by every target (input bytes, the concatenated challenges)
 * and a few per-worker fields (worker_id, rank_id, allocation). The shared part is encoded once; each
 * target's message is one allocation: its own headers, the shared bytes, its own fields
 * (docs/architecture.md, Data plane). Relayed `Challenges` and `ProofList` bytes are copied verbatim,
 * never decoded (docs/decisions.md, Wire contract); their structure was checked when they arrived
 * (docs/protocol.md, Inbound protobuf). Every field appears once, so any protobuf decoder reads the
 * result (no reliance on merge semantics). test/cluster/task-encoding.test.ts decodes the
 * output with the public proto.
 */

import { FieldWriter } from '../../shared/protobuf-wire';

/** CoordinatorMessage.execute_task */
const COORDINATOR_EXECUTE_TASK = 4;
/** ExecuteTaskRequest fields */
const TASK_WORKER_ID = 1;
const TASK_JOB_ID = 2;
const TASK_TYPE = 3;
const TASK_CONTRIBUTION_PARAMS = 4;
const TASK_PROVE_PARAMS = 5;
const TASK_AGG_PARAMS = 6;
const TASK_EXECUTION_PARAMS = 7;
const TASK_WRAP_PARAMS = 8;

export const TASK_TYPE_PARTIAL_CONTRIBUTION = 0;
export const TASK_TYPE_PROVE = 1;
export const TASK_TYPE_AGGREGATE = 2;
export const TASK_TYPE_EXECUTION = 3;
export const TASK_TYPE_WRAP = 4;

function wrapTask(task: FieldWriter): Buffer {
  return new FieldWriter().embedded(COORDINATOR_EXECUTE_TASK, task).finish();
}

export interface ContributionShared {
  jobId: string;
  executionOnly: boolean;
  dataId: string;
  hashId: string;
  /** inline stdin; undefined when the input is streamed or absent */
  inputData?: Buffer;
  /** inline hints bytes */
  hintsData?: Buffer;
  /** hints arrive as `stream_data`; the URI is informational for the worker */
  hintsStreamUri?: string;
}

export interface ContributionPerWorker {
  workerId: string;
  rank: number;
  totalWorkers: number;
  allocation: readonly number[];
  jobComputeUnits: number;
}

/** Encodes the shared part once; call the returned function per target. */
export function contributionTaskEncoder(shared: ContributionShared): (w: ContributionPerWorker) => Buffer {
  const params = new FieldWriter().string(1, shared.dataId);
  if (shared.inputData !== undefined) params.bytes(3, shared.inputData, true);
  if (shared.hintsStreamUri !== undefined) params.string(4, shared.hintsStreamUri, true).bool(5, true);
  if (shared.hintsData !== undefined) params.bytes(10, shared.hintsData, true);
  params.string(11, shared.hashId);
  const paramsField = shared.executionOnly ? TASK_EXECUTION_PARAMS : TASK_CONTRIBUTION_PARAMS;
  const taskType = shared.executionOnly ? TASK_TYPE_EXECUTION : TASK_TYPE_PARTIAL_CONTRIBUTION;

  return (w) => {
    const perWorker = new FieldWriter()
      .uint(6, w.rank)
      .uint(7, w.totalWorkers)
      .packedUint(8, w.allocation)
      .uint(9, w.jobComputeUnits);
    const body = new FieldWriter().append(params).append(perWorker);
    const task = new FieldWriter()
      .string(TASK_WORKER_ID, w.workerId)
      .string(TASK_JOB_ID, shared.jobId)
      .uint(TASK_TYPE, taskType)
      .embedded(paramsField, body);
    return wrapTask(task);
  };
}

/** PROVE tasks: every target gets the same full challenge list (each entry an encoded `Challenges`). */
export function proveTaskEncoder(jobId: string, challenges: readonly Buffer[]): (workerId: string) => Buffer {
  const params = new FieldWriter();
  for (const entry of challenges) params.bytes(1, entry, true);
  return (workerId) =>
    wrapTask(
      new FieldWriter()
        .string(TASK_WORKER_ID, workerId)
        .string(TASK_JOB_ID, jobId)
        .uint(TASK_TYPE, TASK_TYPE_PROVE)
        .embedded(TASK_PROVE_PARAMS, params),
    );
}

/**
 * AGGREGATE task. `proofList` is a contributor's encoded `ProofList`, relayed verbatim; undefined
 * sends an empty list, which must still be present on the wire (the worker rejects its absence).
 */
export function encodeAggregateTask(a: {
  jobId: string;
  workerId: string;
  proofList: Buffer | undefined;
  last: boolean;
  proofType: number;
}): Buffer {
  const params = new FieldWriter()
    .bytes(1, a.proofList ?? Buffer.alloc(0), true)
    .bool(2, a.last)
    .bool(3, a.last)
    .uint(4, a.proofType);
  return wrapTask(
    new FieldWriter()
      .string(TASK_WORKER_ID, a.workerId)
      .string(TASK_JOB_ID, a.jobId)
      .uint(TASK_TYPE, TASK_TYPE_AGGREGATE)
      .embedded(TASK_AGG_PARAMS, params),
  );
}

export function encodeWrapTask(a: { jobId: string; workerId: string; proofData: Buffer; proofDest: 1 | 2 }): Buffer {
  const params = new FieldWriter().bytes(1, a.proofData).uint(2, a.proofDest);
  return wrapTask(
    new FieldWriter()
      .string(TASK_WORKER_ID, a.workerId)
      .string(TASK_JOB_ID, a.jobId)
      .uint(TASK_TYPE, TASK_TYPE_WRAP)
      .embedded(TASK_WRAP_PARAMS, params),
  );
}
