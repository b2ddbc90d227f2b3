/**
 * The decoder of inbound `WorkerMessage`s (proto/zisk_distributed_api.proto): the relay view's
 * objects (relayed arrays and sub-lists as raw bytes, docs/decisions.md, Wire contract), decoded
 * strictly (docs/protocol.md, Inbound protobuf). The tables mirror the public proto field by field;
 * test/cluster/worker-decode.test.ts pins them against it.
 */
import { decodeStrict, message, type MessageSpec } from '../../shared/protobuf-decode';
import { WireError } from '../../shared/protobuf-wire';
import type { WorkerMessageView } from './worker-inbound';

const ComputeCapacity = message('ComputeCapacity', { 1: { name: 'compute_units', kind: 'uint32' } });

const Challenges: MessageSpec = message('Challenges', {
  1: { name: 'worker_index', kind: 'uint32' },
  2: { name: 'airgroup_id', kind: 'uint32' },
  3: { name: 'challenge', kind: 'packedUint64' },
});
const ProofStark: MessageSpec = message('ProofStark', {
  1: { name: 'worker_idx', kind: 'uint32' },
  2: { name: 'airgroup_id', kind: 'uint64' },
  3: { name: 'values', kind: 'packedUint64' },
});
const ProofList: MessageSpec = message('ProofList', {
  1: { name: 'proofs', kind: 'message', type: () => ProofStark, repeated: true },
});

const WitnessExecInfo = message('WitnessExecInfo', {
  1: { name: 'witness_time', kind: 'float' },
  2: { name: 'publics', kind: 'packedUint64' },
  3: { name: 'proof_values', kind: 'packedUint64' },
  4: { name: 'summary_info', kind: 'string' },
  5: { name: 'total_instances', kind: 'uint64' },
});
const AsmExecuteInfo = message('AsmExecuteInfo', {
  1: { name: 'time', kind: 'float' },
  2: { name: 'mhz', kind: 'float' },
});
const ZiskExecuteTime = message('ZiskExecuteTime', {
  1: { name: 'total_duration', kind: 'float' },
  2: { name: 'execution_duration', kind: 'float' },
  3: { name: 'count_and_plan_duration', kind: 'float' },
  4: { name: 'count_and_plan_mo_duration', kind: 'float' },
  5: { name: 'asm_execution_duration', kind: 'message', type: () => AsmExecuteInfo, oneof: '_asm_execution_duration' },
  6: { name: 'task_received_time', kind: 'double' },
});
const ChallengesList = message('ChallengesList', {
  1: { name: 'challenges', kind: 'opaque', type: () => Challenges, repeated: true },
  2: { name: 'witness_info', kind: 'message', type: () => WitnessExecInfo },
  3: { name: 'zisk_execution_time', kind: 'message', type: () => ZiskExecuteTime },
});
const Execution = message('Execution', {
  1: { name: 'instances', kind: 'uint64' },
  2: { name: 'executed_steps', kind: 'uint64' },
  3: { name: 'zisk_execution_time', kind: 'message', type: () => ZiskExecuteTime },
  4: { name: 'witness_info', kind: 'message', type: () => WitnessExecInfo, oneof: '_witness_info' },
});
const FinalProof = message('FinalProof', {
  1: { name: 'proof_data', kind: 'bytes' },
  2: { name: 'executed_steps', kind: 'uint64' },
  3: { name: 'instances', kind: 'uint64' },
});
const WrapResult = message('WrapResult', { 1: { name: 'proof_data', kind: 'bytes' } });
const ExecuteTaskResponse = message('ExecuteTaskResponse', {
  1: { name: 'job_id', kind: 'string' },
  2: { name: 'worker_id', kind: 'string' },
  3: { name: 'task_type', kind: 'enum' },
  4: { name: 'success', kind: 'bool' },
  5: { name: 'error_message', kind: 'string' },
  6: { name: 'execution', kind: 'message', type: () => Execution, oneof: 'result_data' },
  7: { name: 'challenges', kind: 'message', type: () => ChallengesList, oneof: 'result_data' },
  8: { name: 'proofs', kind: 'opaque', type: () => ProofList, oneof: 'result_data' },
  9: { name: 'final_proof', kind: 'message', type: () => FinalProof, oneof: 'result_data' },
  10: { name: 'wrap_result', kind: 'message', type: () => WrapResult, oneof: 'result_data' },
  11: { name: 'worker_in_recovery', kind: 'bool' },
});

const HeartbeatAck = message('HeartbeatAck', { 1: { name: 'worker_id', kind: 'string' } });
const WorkerError = message('WorkerError', {
  1: { name: 'worker_id', kind: 'string' },
  2: { name: 'job_id', kind: 'string' },
  3: { name: 'error_message', kind: 'string' },
});
const WorkerRegisterRequest = message('WorkerRegisterRequest', {
  1: { name: 'worker_id', kind: 'string' },
  2: { name: 'compute_capacity', kind: 'message', type: () => ComputeCapacity },
});
const WorkerReconnectRequest = message('WorkerReconnectRequest', {
  1: { name: 'worker_id', kind: 'string' },
  2: { name: 'compute_capacity', kind: 'message', type: () => ComputeCapacity },
  3: { name: 'last_known_job_id', kind: 'string', oneof: '_last_known_job_id' },
});
const JobCancelledAck = message('JobCancelledAck', {
  1: { name: 'worker_id', kind: 'string' },
  2: { name: 'job_id', kind: 'string' },
});
const SetupProgramAck = message('SetupProgramAck', {
  1: { name: 'job_id', kind: 'string' },
  2: { name: 'worker_id', kind: 'string' },
  3: { name: 'hash_id', kind: 'string' },
  4: { name: 'success', kind: 'bool' },
  5: { name: 'error_message', kind: 'string' },
  6: { name: 'vk', kind: 'bytes' },
});
const WorkerRecoveryComplete = message('WorkerRecoveryComplete', { 1: { name: 'worker_id', kind: 'string' } });

const WorkerMessage = message('WorkerMessage', {
  1: { name: 'heartbeat_ack', kind: 'message', type: () => HeartbeatAck, oneof: 'payload' },
  2: { name: 'error', kind: 'message', type: () => WorkerError, oneof: 'payload' },
  3: { name: 'register', kind: 'message', type: () => WorkerRegisterRequest, oneof: 'payload' },
  4: { name: 'reconnect', kind: 'message', type: () => WorkerReconnectRequest, oneof: 'payload' },
  5: { name: 'execute_task_response', kind: 'message', type: () => ExecuteTaskResponse, oneof: 'payload' },
  6: { name: 'job_cancelled_ack', kind: 'message', type: () => JobCancelledAck, oneof: 'payload' },
  7: { name: 'setup_program_ack', kind: 'message', type: () => SetupProgramAck, oneof: 'payload' },
  8: { name: 'recovery_complete', kind: 'message', type: () => WorkerRecoveryComplete, oneof: 'payload' },
});

/** Every table, by the public proto's message name (for the test that pins them). */
export const WORKER_MESSAGE_SPECS: readonly MessageSpec[] = [
  WorkerMessage, HeartbeatAck, WorkerError, WorkerRegisterRequest, WorkerReconnectRequest, ComputeCapacity,
  ExecuteTaskResponse, Execution, ChallengesList, WitnessExecInfo, ZiskExecuteTime, AsmExecuteInfo, FinalProof,
  WrapResult, JobCancelledAck, SetupProgramAck, WorkerRecoveryComplete, Challenges, ProofList, ProofStark,
];

/**
 * Decodes one inbound WorkerMessage; never throws. Malformed structure becomes `malformed` (the
 * stream ends with the reason); a malformed relayed part (a challenge entry, a proof list, packed
 * publics) becomes `relay_error` on an otherwise decoded message, so the job fails naming its sender
 * and nothing malformed reaches the other workers.
 */
export function decodeWorkerMessage(buf: Buffer): WorkerMessageView {
  try {
    const d = decodeStrict(WorkerMessage, buf);
    const view = d.value as WorkerMessageView;
    if (d.relayError) view.relay_error = d.relayError.message;
    return view;
  } catch (e) {
    if (e instanceof WireError) return { malformed: e.message };
    throw e;
  }
}
