/**
 * Edge validation of inbound `WorkerMessage`s (decoded with the relay view, so relayed arrays are
 * Buffers): every message becomes a typed scheduler event, a hello, or a precise reason to ignore
 * it or end the stream. Nothing here throws on malformed input.
 */
import { isUtf8 } from 'node:buffer';
import { shown } from '../../shared/errors';
import { readVarint, WIRE_I32, WIRE_I64, WIRE_LEN, WIRE_VARINT } from '../../shared/protobuf-wire';
import { MAX_WORKER_COMPUTE_UNITS, MAX_WORKER_ID_BYTES } from '../../shared/wire-limits';
import type { BlobStore } from '../data/blob-store';
import { WORKER_PAYLOADS, type WorkerPayloadName } from '../../shared/worker-payloads';
import type { TaskResultSummary, TaskType } from '../../shared/scheduler/types';
import type { SchedulerEvent } from '../../shared/scheduler/events';

export type { WorkerPayloadName };

/** The relay-view decoding of the fields we read (proto-loader objects; everything optional). */
interface ComputeCapacityMsg {
  compute_units?: number;
}
interface WitnessInfoMsg {
  publics?: Buffer;
  proof_values?: Buffer;
  total_instances?: string;
}
interface ExecuteTaskResponseMsg {
  job_id?: string;
  worker_id?: string;
  task_type?: number;
  success?: boolean;
  error_message?: string;
  worker_in_recovery?: boolean;
  result_data?: 'execution' | 'challenges' | 'proofs' | 'final_proof' | 'wrap_result';
  execution?: { instances?: string; executed_steps?: string; zisk_execution_time?: object | null; witness_info?: WitnessInfoMsg | null };
  challenges?: { challenges?: Buffer[]; witness_info?: WitnessInfoMsg | null; zisk_execution_time?: object | null };
  proofs?: Buffer;
  final_proof?: { proof_data?: Buffer; executed_steps?: string; instances?: string };
  wrap_result?: { proof_data?: Buffer };
}
export interface WorkerMessageView {
  /** The message is not valid protobuf: why (set by the decoder, nothing else is). */
  malformed?: string;
  /** A relayed part (challenge entry, proof list, packed array) is malformed: where and why. */
  relay_error?: string;
  payload?: string;
  heartbeat_ack?: { worker_id?: string };
  error?: { worker_id?: string; job_id?: string; error_message?: string };
  register?: { worker_id?: string; compute_capacity?: ComputeCapacityMsg | null };
  reconnect?: { worker_id?: string; compute_capacity?: ComputeCapacityMsg | null; last_known_job_id?: string };
  execute_task_response?: ExecuteTaskResponseMsg;
  job_cancelled_ack?: { worker_id?: string; job_id?: string };
  setup_program_ack?: {
    job_id?: string;
    worker_id?: string;
    hash_id?: string;
    success?: boolean;
    error_message?: string;
    vk?: Buffer;
  };
  recovery_complete?: { worker_id?: string };
  /**
   * Set on register/reconnect by the stream's deserializer from the raw bytes (`inspectHandshakeBytes`):
   * the decoder turns invalid UTF-8 into U+FFFD, so two different ids could decode to one string.
   */
  worker_id_bytes?: WorkerIdBytes;
}

/** What the raw bytes of a handshake's worker_id(s) are. */
export interface WorkerIdBytes {
  /** The longest worker_id occurrence, in bytes. */
  maxBytes: number;
  /** Every occurrence is valid UTF-8. */
  validUtf8: boolean;
}

/** Every field of a protobuf message as (number, wire type, LEN body); undefined on a malformed message. */
function lenFields(buf: Buffer): { field: number; body: Buffer | undefined }[] | undefined {
  const out: { field: number; body: Buffer | undefined }[] = [];
  let pos = 0;
  try {
    while (pos < buf.length) {
      const key = readVarint(buf, pos);
      pos = key.next;
      const field = Math.floor(key.value / 8);
      const wire = key.value & 7;
      if (wire === WIRE_VARINT) pos = readVarint(buf, pos).next;
      else if (wire === WIRE_I64) pos += 8;
      else if (wire === WIRE_I32) pos += 4;
      else if (wire === WIRE_LEN) {
        const len = readVarint(buf, pos);
        pos = len.next + len.value;
        if (pos > buf.length) return undefined;
        out.push({ field, body: buf.subarray(len.next, pos) });
        continue;
      } else return undefined;
      out.push({ field, body: undefined });
    }
  } catch {
    return undefined;
  }
  return pos === buf.length ? out : undefined;
}

/** WorkerMessage.register / .reconnect, and their worker_id field. */
const HANDSHAKE_FIELDS = new Set([3, 4]);
const WORKER_ID_FIELD = 1;

/**
 * The raw worker_id bytes of a register/reconnect message: every occurrence counts (protobuf merges
 * repeated fields, so any of them may be the one decoded).
 */
export function inspectHandshakeBytes(buf: Buffer): WorkerIdBytes {
  const result: WorkerIdBytes = { maxBytes: 0, validUtf8: true };
  for (const outer of lenFields(buf) ?? []) {
    if (!HANDSHAKE_FIELDS.has(outer.field) || !outer.body) continue;
    for (const inner of lenFields(outer.body) ?? []) {
      if (inner.field !== WORKER_ID_FIELD || !inner.body) continue;
      result.maxBytes = Math.max(result.maxBytes, inner.body.length);
      if (!isUtf8(inner.body)) result.validUtf8 = false;
    }
  }
  return result;
}

const PAYLOADS: ReadonlySet<string> = new Set<WorkerPayloadName>(WORKER_PAYLOADS);

export type Hello =
  | { ok: true; workerId: string; computeUnits: number; reconnect: boolean; lastKnownJobId?: string }
  /** `workerId` is cut for logs and the response when it is what was refused; `limit` names a limit hit. */
  | { ok: false; workerId: string; message: string; limit?: 'worker_id' | 'compute_units' };

export type HandshakeOutcome =
  | { kind: 'hello'; hello: Hello }
  | { kind: 'protocolError'; message: string };

export function payloadName(msg: WorkerMessageView): WorkerPayloadName | undefined {
  return msg.payload && PAYLOADS.has(msg.payload) ? (msg.payload as WorkerPayloadName) : undefined;
}

/** The first message of a stream must be register or reconnect (docs/decisions.md, Workers). */
export function readHandshake(msg: WorkerMessageView): HandshakeOutcome {
  const name = payloadName(msg);
  if (name !== 'register' && name !== 'reconnect') {
    return { kind: 'protocolError', message: 'First message must be registration or reconnection' };
  }
  const body = name === 'register' ? msg.register : msg.reconnect;
  const workerId = body?.worker_id ?? '';
  if (workerId === '') return { kind: 'hello', hello: { ok: false, workerId, message: 'Registration rejected: worker_id must not be empty' } };
  // An unbounded id would be logged whole and become a metric label (docs/operations.md, Limits).
  const raw = msg.worker_id_bytes ?? { maxBytes: Buffer.byteLength(workerId, 'utf8'), validUtf8: true };
  if (raw.maxBytes > MAX_WORKER_ID_BYTES) {
    return {
      kind: 'hello',
      hello: {
        ok: false,
        workerId: shown(workerId),
        limit: 'worker_id',
        message: `Registration rejected: worker_id is ${raw.maxBytes} bytes, over the limit of ${MAX_WORKER_ID_BYTES} bytes`,
      },
    };
  }
  if (!raw.validUtf8) {
    return {
      kind: 'hello',
      hello: { ok: false, workerId, limit: 'worker_id', message: 'Registration rejected: worker_id is not valid UTF-8' },
    };
  }
  const units = body?.compute_capacity?.compute_units;
  if (!body?.compute_capacity) {
    return { kind: 'hello', hello: { ok: false, workerId, message: 'Registration rejected: compute_capacity must be set' } };
  }
  if (!units || units < 1) {
    return {
      kind: 'hello',
      hello: { ok: false, workerId, message: 'Registration rejected: compute_capacity.compute_units must be at least 1' },
    };
  }
  // Each unit is an entry of the worker's task allocation and a step of the allocation loop.
  if (units > MAX_WORKER_COMPUTE_UNITS) {
    return {
      kind: 'hello',
      hello: {
        ok: false,
        workerId,
        limit: 'compute_units',
        message: `Registration rejected: compute_capacity.compute_units is ${units}, over the limit of ${MAX_WORKER_COMPUTE_UNITS}`,
      },
    };
  }
  const lastKnownJobId = name === 'reconnect' && msg.reconnect?.last_known_job_id !== undefined ? msg.reconnect.last_known_job_id : undefined;
  return {
    kind: 'hello',
    hello: { ok: true, workerId, computeUnits: units, reconnect: name === 'reconnect', ...(lastKnownJobId !== undefined ? { lastKnownJobId } : {}) },
  };
}

export type Classified =
  | { kind: 'event'; event: SchedulerEvent }
  | { kind: 'ignore'; reason: string; detail: string }
  | { kind: 'protocolError'; message: string };

/**
 * Classifies a message received after the handshake. `blobs` receives the bulk parts of task
 * results; the scheduler decides when they are released.
 */
export function classifyWorkerMessage(
  msg: WorkerMessageView,
  linkId: number,
  registeredId: string,
  blobs: BlobStore,
): Classified {
  const name = payloadName(msg);
  if (!name) return { kind: 'ignore', reason: 'missing_payload', detail: 'message without a payload' };
  if (name === 'register' || name === 'reconnect') {
    return { kind: 'protocolError', message: 'Already registered on this stream' };
  }
  const body = msg[name] as { worker_id?: string } | undefined;
  const claimed = body?.worker_id ?? '';
  if (claimed !== registeredId) {
    return { kind: 'ignore', reason: 'worker_id_mismatch', detail: `${name} claims worker_id "${shown(claimed)}" on the stream of "${registeredId}"` };
  }
  switch (name) {
    case 'heartbeat_ack':
      return { kind: 'event', event: { type: 'workerAlive', linkId } };
    case 'job_cancelled_ack':
      return { kind: 'event', event: { type: 'jobCancelledAck', linkId, jobId: msg.job_cancelled_ack?.job_id ?? '' } };
    case 'recovery_complete':
      return { kind: 'event', event: { type: 'recoveryComplete', linkId } };
    case 'error': {
      const e = msg.error ?? {};
      return { kind: 'event', event: { type: 'workerError', linkId, jobId: e.job_id ?? '', message: e.error_message ?? '' } };
    }
    case 'setup_program_ack': {
      const a = msg.setup_program_ack ?? {};
      const success = a.success === true;
      return {
        kind: 'event',
        event: {
          type: 'setupAck',
          linkId,
          setupJobId: a.job_id ?? '',
          hashId: a.hash_id ?? '',
          success,
          errorMessage: a.error_message ?? '',
          vkHex: success && a.vk ? a.vk.toString('hex') : '',
        },
      };
    }
    case 'execute_task_response':
      return { kind: 'event', event: taskResultEvent(msg.execute_task_response ?? {}, linkId, blobs, msg.relay_error) };
  }
}

function taskResultEvent(r: ExecuteTaskResponseMsg, linkId: number, blobs: BlobStore, relayError: string | undefined): SchedulerEvent {
  const taskType = (r.task_type !== undefined && r.task_type >= 0 && r.task_type <= 4 ? r.task_type : 0) as TaskType;
  const success = r.success === true;
  // Malformed relayed bytes are never stored, so they can reach no other worker; the job fails naming
  // this result's sender (docs/protocol.md, Inbound protobuf).
  if (success && relayError !== undefined) {
    return {
      type: 'taskResult',
      linkId,
      jobId: r.job_id ?? '',
      taskType,
      success,
      errorMessage: '',
      inRecovery: r.worker_in_recovery === true,
      result: { kind: 'invalid', reason: `malformed relayed data (${relayError})` },
    };
  }
  return {
    type: 'taskResult',
    linkId,
    jobId: r.job_id ?? '',
    taskType,
    success,
    errorMessage: r.error_message ?? '',
    inRecovery: r.worker_in_recovery === true,
    // A failed task's payload is irrelevant; nothing is stored for it.
    result: success ? summarise(r, blobs) : { kind: 'none' },
  };
}

function witnessKey(w: WitnessInfoMsg): string {
  return `${(w.publics ?? Buffer.alloc(0)).toString('base64')}:${(w.proof_values ?? Buffer.alloc(0)).toString('base64')}`;
}

function summarise(r: ExecuteTaskResponseMsg, blobs: BlobStore): TaskResultSummary {
  switch (r.result_data) {
    case 'challenges': {
      const c = r.challenges ?? {};
      if (!c.witness_info) return { kind: 'invalid', reason: 'contribution result without witness_info' };
      if (!c.zisk_execution_time) return { kind: 'invalid', reason: 'contribution result without zisk_execution_time' };
      const entries = c.challenges ?? [];
      return {
        kind: 'challenges',
        challengesBlobIds: entries.map((entry) => blobs.put(entry)),
        witnessKey: witnessKey(c.witness_info),
        publicsBlobId: blobs.put(c.witness_info.publics ?? Buffer.alloc(0)),
        totalInstances: c.witness_info.total_instances ?? '0',
      };
    }
    case 'execution': {
      const e = r.execution ?? {};
      if (!e.zisk_execution_time) return { kind: 'invalid', reason: 'execution result without zisk_execution_time' };
      const publics = e.witness_info?.publics;
      return {
        kind: 'execution',
        executedSteps: e.executed_steps ?? '0',
        instances: e.instances ?? '0',
        ...(publics !== undefined ? { publicsBlobId: blobs.put(publics) } : {}),
      };
    }
    case 'proofs': {
      const proofs = r.proofs ?? Buffer.alloc(0);
      return { kind: 'proofs', proofsBlobId: blobs.put(proofs), bytes: proofs.length };
    }
    case 'final_proof': {
      const f = r.final_proof ?? {};
      const data = f.proof_data ?? Buffer.alloc(0);
      return {
        kind: 'finalProof',
        ...(data.length > 0 ? { proofBlobId: blobs.put(data) } : {}),
        bytes: data.length,
        executedSteps: f.executed_steps ?? '0',
        instances: f.instances ?? '0',
      };
    }
    case 'wrap_result': {
      const data = r.wrap_result?.proof_data ?? Buffer.alloc(0);
      if (data.length === 0) return { kind: 'invalid', reason: 'wrap result with empty proof_data' };
      return { kind: 'wrap', proofBlobId: blobs.put(data), bytes: data.length };
    }
    default:
      return { kind: 'none' };
  }
}
