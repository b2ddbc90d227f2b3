/** The sim worker's public shapes: counters, per-job records, state, and the events it emits. */
import type { CoordinatorMessageIn, ExecuteTaskIn, RegisterResponseIn, WorkerMessageOut } from './messages';
import type { SimPhase } from './options';
import type { LogEntry } from './worker-log';

export interface AggTaskRecord {
  at: number;
  jobId: string;
  /** Number of `ProofStark` entries in `agg_proofs`. */
  proofCount: number;
  /** `worker_idx` of each of them. */
  sourceWorkers: number[];
  /** Total uint64 values across them. */
  valueCount: number;
  /** Every proof's values equal the sim derivation (i.e. the relay kept them bit-exact). */
  valuesIntact: boolean;
  lastProof: boolean;
  finalProof: boolean;
  proofType: number;
}

export interface JobStreamCounters {
  inputBytes: number;
  inputChunks: number;
  inputRejected: number;
  hintsStarted: boolean;
  hintsEnded: boolean;
  /** DATA bytes applied in sequence order. */
  hintsBytes: number;
  hintsMessages: number;
  /** Next DATA sequence number expected. */
  hintsNextSeq: number;
  errors: string[];
}

export interface SimWorkerStats {
  connects: number;
  connectErrors: number;
  /** Response streams that ended with status OK (on the `upstream` wire that alone is no disconnect). */
  cleanEnds: number;
  /** Writes that found the stream gone (`upstream` wire): the real worker's only cue after an OK end. */
  sendFailures: number;
  registrations: number;
  reconnectsSent: number;
  rejections: number;
  heartbeatsSent: number;
  heartbeatsReceived: number;
  setupsReceived: number;
  setupAcks: number;
  tasksReceived: Record<Exclude<SimPhase, 'setup'>, number>;
  responsesSent: number;
  failuresSent: number;
  dispatchFailures: number;
  workerErrorsSent: number;
  cancelsReceived: number;
  recoveriesSent: number;
  /** Times the worker process was killed (`kill()`, a `kill` fault). */
  kills: number;
  challengeEntriesChecked: number;
  challengeMismatches: number;
  streamErrors: number;
  aggOverlaps: number;
  messagesReceived: number;
  messagesSent: number;
}

/** All counters at zero (a worker's starting point, and the fleet's sum). */
export function emptyWorkerStats(): SimWorkerStats {
  return {
    connects: 0,
    connectErrors: 0,
    cleanEnds: 0,
    sendFailures: 0,
    registrations: 0,
    reconnectsSent: 0,
    rejections: 0,
    heartbeatsSent: 0,
    heartbeatsReceived: 0,
    setupsReceived: 0,
    setupAcks: 0,
    tasksReceived: { contribution: 0, prove: 0, aggregate: 0, execute: 0, wrap: 0 },
    responsesSent: 0,
    failuresSent: 0,
    dispatchFailures: 0,
    workerErrorsSent: 0,
    cancelsReceived: 0,
    recoveriesSent: 0,
    kills: 0,
    challengeEntriesChecked: 0,
    challengeMismatches: 0,
    streamErrors: 0,
    aggOverlaps: 0,
    messagesReceived: 0,
    messagesSent: 0,
  };
}

export interface JobContextInfo {
  jobId: string;
  rank: number;
  totalWorkers: number;
  hashId: string;
  /** Phase currently computing, if any. */
  running: SimPhase | null;
}

export type SimWorkerState = 'new' | 'connecting' | 'handshaking' | 'ready' | 'disconnected' | 'stopped';

/**
 * Why a stream was given up:
 * - `connectFailed`: no response headers (connection refused, the call failed, a trailers-only error);
 * - `headersTimeout`: response headers did not come within `headersTimeoutMs`;
 * - `status`: the response ended with a status (`grpc-js` wire: any; `upstream` wire: not OK);
 * - `streamError`: `upstream` wire, response still open: the stream was reset, the connection was
 *   lost, or a message broke the framing or the size limit;
 * - `sendFailed`: `upstream` wire: a write found the stream gone (after an OK end, that is the only cue);
 * - `rejected`: `accepted=false`;
 * - `dropped`: the sim's own doing (`disconnect()`, a `disconnect` fault);
 * - `killed`: the worker process died (`kill()`, a `kill` fault).
 */
export type DisconnectReason = 'connectFailed' | 'headersTimeout' | 'status' | 'streamError' | 'sendFailed' | 'rejected' | 'dropped' | 'killed';

export interface DisconnectInfo {
  code: number;
  details: string;
  /** Status OK (or dropped by the sim itself). */
  clean: boolean;
  /** Response headers had been received (else: a connect error). */
  hadHeaders: boolean;
  reason: DisconnectReason;
}

/** The response side ended with this status while the request side stays open (`upstream` wire). */
export interface ResponseEndInfo {
  code: number;
  details: string;
}

export interface SimWorkerEvents {
  received: [entry: LogEntry, msg: CoordinatorMessageIn];
  sent: [entry: LogEntry, msg: WorkerMessageOut | Buffer];
  registered: [response: RegisterResponseIn];
  rejected: [response: RegisterResponseIn];
  disconnected: [info: DisconnectInfo];
  /** `upstream` wire: the response ended OK; the worker carries on as if nothing happened. */
  responseEnded: [info: ResponseEndInfo];
  task: [task: ExecuteTaskIn];
  streamError: [jobId: string, message: string];
  challengeMismatch: [jobId: string, message: string];
}

