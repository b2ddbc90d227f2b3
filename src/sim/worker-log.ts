/** The sim worker's message log: the host clock, one entry per message read or written, bounded lists. */
import { performance } from 'node:perf_hooks';
import { workerPayloadKind, type CoordinatorMessageIn, type WorkerMessageOut } from './messages';

/** Host wall clock in ms with sub-ms resolution, comparable across workers and processes on one host. */
export function hostNow(): number {
  return performance.timeOrigin + performance.now();
}

export interface LogEntry {
  /** `hostNow()` when the message was read from / written to the stream. */
  at: number;
  dir: 'in' | 'out';
  /** `CoordinatorMessage` / `WorkerMessage` payload member name. */
  kind: string;
  jobId?: string;
  taskType?: number;
  success?: boolean;
  /** Payload length for data messages. */
  bytes?: number;
}

/** The entry of a message read from the stream now. */
export function inboundEntry(msg: CoordinatorMessageIn): LogEntry {
  const entry: LogEntry = { at: hostNow(), dir: 'in', kind: msg.payload ?? 'empty' };
  const t = msg.execute_task;
  if (t) {
    entry.jobId = t.job_id;
    entry.taskType = t.task_type;
  } else {
    const jobId = msg.job_cancelled?.job_id ?? msg.stream_data?.job_id ?? msg.input_stream_data?.job_id ?? msg.setup_program?.job_id;
    if (jobId !== undefined) entry.jobId = jobId;
    if (msg.input_stream_data) entry.bytes = msg.input_stream_data.payload.length;
    if (msg.stream_data?.payload) entry.bytes = msg.stream_data.payload.payload.length;
  }
  return entry;
}

/** The entry of a message (or pre-encoded bytes) written to the stream now. */
export function outboundEntry(msg: WorkerMessageOut | Buffer): LogEntry {
  const entry: LogEntry = { at: hostNow(), dir: 'out', kind: 'raw' };
  if (Buffer.isBuffer(msg)) return entry;
  entry.kind = workerPayloadKind(msg) ?? 'empty';
  const r = msg.execute_task_response;
  if (r) {
    entry.jobId = r.job_id;
    entry.taskType = r.task_type;
    entry.success = r.success;
  } else {
    const jobId = msg.error?.job_id ?? msg.job_cancelled_ack?.job_id ?? msg.setup_program_ack?.job_id;
    if (jobId !== undefined) entry.jobId = jobId;
    if (msg.setup_program_ack) entry.success = msg.setup_program_ack.success;
  }
  return entry;
}

/** Appends `item`, keeping at least the last `keep` items and at most twice that (trimming in batches is cheap). */
export function appendBounded<T>(list: T[], item: T, keep: number): void {
  list.push(item);
  if (list.length > 2 * keep) list.splice(0, list.length - keep);
}
