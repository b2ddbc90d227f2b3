/**
 * Shapes of the cluster messages as the simulated worker sees them through the INTERNAL relay view
 * (`proto/internal/cluster_relay_view.proto`, decoded with `LOADER_OPTIONS`): uint64 scalars are
 * decimal strings, bytes are Buffers, and the relayed uint64 arrays / sub-lists are opaque Buffers
 * (encoded with `src/sim/wire.ts`). Only the members the simulator reads or writes are typed.
 */
import { WORKER_PAYLOADS, type WorkerPayloadName } from '../shared/worker-payloads';

export const TaskType = {
  PARTIAL_CONTRIBUTION: 0,
  PROVE: 1,
  AGGREGATE: 2,
  EXECUTION: 3,
  WRAP: 4,
} as const;
export type TaskTypeValue = (typeof TaskType)[keyof typeof TaskType];

export const StreamType = { START: 0, DATA: 1, END: 2 } as const;

export const ReconnectionAction = { IDLE: 0, KEEP_COMPUTING: 1, CANCEL_STALE_JOB: 2 } as const;

export const TASK_TYPE_NAMES: Record<number, string> = {
  0: 'PARTIAL_CONTRIBUTION',
  1: 'PROVE',
  2: 'AGGREGATE',
  3: 'EXECUTION',
  4: 'WRAP',
};

export interface ProtoTimestamp {
  seconds: string;
  nanos: number;
}

// ---------------------------------------------------------------- coordinator → worker (inbound)

export interface SetupProgramIn {
  job_id: string;
  elf_bytes: Buffer;
  hash_id: string;
  with_hints: boolean;
  program_name: string;
}

export interface RegisterResponseIn {
  worker_id: string;
  accepted: boolean;
  message: string;
  registered_at: ProtoTimestamp | null;
  directive?: { action: number } | null;
  setup_program?: SetupProgramIn | null;
}

export interface ContributionParamsIn {
  data_id: string;
  input_path?: string;
  input_data?: Buffer;
  input_source?: 'input_path' | 'input_data';
  hints_path?: string;
  hints_stream: boolean;
  hints_data?: Buffer;
  rank_id: number;
  total_workers: number;
  worker_allocation: number[];
  job_compute_units: number;
  hash_id: string;
}

export interface ProveParamsIn {
  /** Each element is one encoded `Challenges` message. */
  challenges: Buffer[];
}

export interface AggParamsIn {
  /** Encoded `ProofList`; absent when the coordinator did not put the field on the wire. */
  agg_proofs?: Buffer;
  last_proof: boolean;
  final_proof: boolean;
  proof_type: number;
}

export interface WrapParamsIn {
  proof_data: Buffer;
  proof_dest: number;
}

export interface ExecuteTaskIn {
  worker_id: string;
  job_id: string;
  task_type: number;
  contribution_params?: ContributionParamsIn;
  prove_params?: ProveParamsIn;
  agg_params?: AggParamsIn;
  execution_params?: ContributionParamsIn;
  wrap_params?: WrapParamsIn;
  params?: 'contribution_params' | 'prove_params' | 'agg_params' | 'execution_params' | 'wrap_params';
}

export interface StreamDataIn {
  job_id: string;
  stream_type: number;
  payload?: { sequence_number: number; payload: Buffer } | null;
}

export interface InputStreamDataIn {
  job_id: string;
  payload: Buffer;
}

export type CoordinatorPayloadKind =
  | 'heartbeat'
  | 'shutdown'
  | 'register_response'
  | 'execute_task'
  | 'job_cancelled'
  | 'stream_data'
  | 'setup_program'
  | 'input_stream_data';

export interface CoordinatorMessageIn {
  payload?: CoordinatorPayloadKind;
  heartbeat?: { timestamp: ProtoTimestamp | null };
  shutdown?: { reason: string; grace_period_seconds: number };
  register_response?: RegisterResponseIn;
  execute_task?: ExecuteTaskIn;
  job_cancelled?: { job_id: string; reason: string };
  stream_data?: StreamDataIn;
  setup_program?: SetupProgramIn;
  input_stream_data?: InputStreamDataIn;
}

// ---------------------------------------------------------------- worker → coordinator (outbound)

export interface ComputeCapacityOut {
  compute_units: number;
}

export interface ZiskExecuteTimeOut {
  total_duration?: number;
  execution_duration?: number;
  count_and_plan_duration?: number;
  count_and_plan_mo_duration?: number;
  asm_execution_duration?: { time: number; mhz: number };
  task_received_time?: number;
}

export interface WitnessExecInfoOut {
  witness_time?: number;
  /** Packed uint64 varints. */
  publics?: Buffer;
  /** Packed uint64 varints. */
  proof_values?: Buffer;
  summary_info?: string;
  total_instances?: string;
}

export interface ExecuteTaskResponseOut {
  job_id: string;
  worker_id: string;
  task_type: number;
  success: boolean;
  error_message?: string;
  execution?: {
    instances: string;
    executed_steps: string;
    zisk_execution_time: ZiskExecuteTimeOut;
    witness_info?: WitnessExecInfoOut;
  };
  challenges?: {
    /** Each element is one encoded `Challenges` message. */
    challenges: Buffer[];
    witness_info: WitnessExecInfoOut;
    zisk_execution_time: ZiskExecuteTimeOut;
  };
  /** Encoded `ProofList`. */
  proofs?: Buffer;
  final_proof?: { proof_data: Buffer; executed_steps?: string; instances?: string };
  wrap_result?: { proof_data: Buffer };
  worker_in_recovery?: boolean;
}

export type WorkerPayloadKind = WorkerPayloadName;

/** Exactly one member should be set (it is a `oneof` on the wire). */
export interface WorkerMessageOut {
  heartbeat_ack?: { worker_id: string };
  error?: { worker_id: string; job_id: string; error_message: string };
  register?: { worker_id: string; compute_capacity?: ComputeCapacityOut };
  reconnect?: { worker_id: string; compute_capacity?: ComputeCapacityOut; last_known_job_id?: string };
  execute_task_response?: ExecuteTaskResponseOut;
  job_cancelled_ack?: { worker_id: string; job_id: string };
  setup_program_ack?: {
    job_id: string;
    worker_id: string;
    hash_id: string;
    success: boolean;
    error_message: string;
    vk: Buffer;
  };
  recovery_complete?: { worker_id: string };
}

export function workerPayloadKind(msg: WorkerMessageOut): WorkerPayloadKind | undefined {
  for (const k of WORKER_PAYLOADS) if (msg[k] !== undefined) return k;
  return undefined;
}
