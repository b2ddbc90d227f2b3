/**
 * The typed contract between the main thread (I/O, bytes) and the scheduler core (decisions).
 *
 * Everything that enters the scheduler is a `SchedulerEvent`, sent in order over one channel and
 * batched per turn of the event loop; everything that leaves it is a `SchedulerEffect`. Bulk bytes
 * never cross: the main thread keeps them in its blob store and the scheduler sees blob ids and sizes
 * (decisions D7). uint64 values cross as decimal strings (decisions D1).
 */
import type { ErrorCode } from './errors';

/** Identifies one worker stream (connection) on the main thread; never reused within a process. */
export type LinkId = number;
/** Identifies a byte buffer held by the main thread's blob store. */
export type BlobId = number;
/** Epoch milliseconds. */
export type EpochMs = number;

export type JobKind = 'setup' | 'prove' | 'execute' | 'wrap';
/** Client-visible phases (client-api.md JobPhase numbers). */
export type JobPhase = 1 | 2 | 3; // CONTRIBUTIONS | PROVE | AGGREGATE
export const PHASE_CONTRIBUTIONS: JobPhase = 1;
export const PHASE_PROVE: JobPhase = 2;
export const PHASE_AGGREGATE: JobPhase = 3;

/** Worker states of cluster-protocol.md §0, as the coordinator tracks them. */
export type WorkerStateName = 'idle' | 'setting_up' | 'ready' | 'computing' | 'disconnected';

/** Proof kinds of the client API (`ProofKind` enum numbers 1..3). */
export type ProofKind = 1 | 2 | 3; // STARK | STARK_MINIMAL | PLONK

/** How a prove/execute job receives its input or hints. Paths are already validated on main. */
export type InputSpec =
  | { kind: 'none' }
  | { kind: 'inline'; blobId: BlobId; bytes: number }
  /** fed by PushJobInput / PushJobHintsInput */
  | { kind: 'grpc' }
  /** read by the main thread from an allowed local file or unix socket */
  | { kind: 'local'; uri: string };

export type JobSpec =
  | { kind: 'setup'; hashId: string; withHints: boolean; programName: string }
  | {
      kind: 'prove' | 'execute';
      hashId: string;
      input: InputSpec;
      hints: InputSpec;
      /** PROVE only; 1 (STARK) for execute. */
      proofKind: ProofKind;
      /** The request's own absolute deadline (proof_timeout / execute_timeout), if any. */
      deadline?: EpochMs;
    }
  | {
      kind: 'wrap';
      /** bincode proof bytes to wrap */
      proofBlobId: BlobId;
      /** requested destination: 2 (STARK_MINIMAL) or 3 (PLONK); STARK is refused on main */
      proofDest: ProofKind;
      deadline?: EpochMs;
    };

export type JobFailure =
  | { kind: 'timeout'; phase?: JobPhase; limitSeconds: number }
  | { kind: 'execution'; reason: string }
  | { kind: 'input'; reason: string }
  | { kind: 'internal'; traceId: string; reason: string };

/** What a worker's task result carried, summarised on main after edge validation. */
export type TaskResultSummary =
  /** success=false, or success with no result member */
  | { kind: 'none' }
  /**
   * Phase-1 result. `challengesBlobIds`: one blob per encoded `Challenges` entry (relayed verbatim).
   * `witnessKey`: publics+proof_values packed bytes in a comparable form (consistency check).
   * `publicsBlobId`: the packed publics, kept for public_inputs / public_outputs.
   */
  | {
      kind: 'challenges';
      challengesBlobIds: BlobId[];
      witnessKey: string;
      publicsBlobId: BlobId;
      totalInstances: string;
    }
  | { kind: 'execution'; executedSteps: string; instances: string; publicsBlobId?: BlobId }
  /** Phase-2 result: the encoded `ProofList`, opaque. */
  | { kind: 'proofs'; proofsBlobId: BlobId; bytes: number }
  /** Phase-3 result: empty `proof_data` (blobId undefined) is an intermediate ack. */
  | { kind: 'finalProof'; proofBlobId?: BlobId; bytes: number; executedSteps: string; instances: string }
  | { kind: 'wrap'; proofBlobId: BlobId; bytes: number }
  /** The result failed edge validation (e.g. challenges without witness_info): fails the job at once. */
  | { kind: 'invalid'; reason: string };

/** Task types of the cluster protocol (`TaskType` enum numbers). */
export type TaskType = 0 | 1 | 2 | 3 | 4; // PARTIAL_CONTRIBUTION | PROVE | AGGREGATE | EXECUTION | WRAP

// ---------------------------------------------------------------------------------------------
// Events: main → scheduler
// ---------------------------------------------------------------------------------------------

export type SchedulerEvent =
  // ---- worker streams (already validated at the edge) ----
  /** A WorkerStream call was accepted; the handshake timer starts. */
  | { type: 'linkOpened'; linkId: LinkId }
  | {
      type: 'workerHello';
      linkId: LinkId;
      workerId: string;
      computeUnits: number;
      /** true for `reconnect`, false for `register` */
      reconnect: boolean;
      lastKnownJobId?: string;
      /** `ip:port` of the connection, for logs */
      peer?: string;
    }
  /** The stream ended (EOF, error, cancel, or closed by us). */
  | { type: 'workerClosed'; linkId: LinkId }
  /** heartbeat_ack, job_cancelled_ack and every other message that proves liveness */
  | { type: 'workerAlive'; linkId: LinkId }
  /** Several `workerAlive` at once (how the main thread batches them) */
  | { type: 'workersAlive'; linkIds: LinkId[] }
  | {
      type: 'taskResult';
      linkId: LinkId;
      jobId: string;
      taskType: TaskType;
      success: boolean;
      errorMessage: string;
      inRecovery: boolean;
      result: TaskResultSummary;
    }
  /** A `WorkerError` message. */
  | { type: 'workerError'; linkId: LinkId; jobId: string; message: string }
  | {
      type: 'setupAck';
      linkId: LinkId;
      setupJobId: string;
      hashId: string;
      success: boolean;
      errorMessage: string;
      /** lowercase hex of the VK bytes ('' on failure) */
      vkHex: string;
    }
  | { type: 'recoveryComplete'; linkId: LinkId }
  // ---- client API ----
  | { type: 'submitJob'; requestId: number; jobId: string; spec: JobSpec }
  | { type: 'cancelJob'; requestId: number; jobId: string }
  /** The main thread failed a job for a reason it detected (input relay, hints framing, dispatch). */
  | { type: 'failJob'; jobId: string; failure: JobFailure }
  /** A program's ELF is known again after a restart (setups replayed from the cache dir). */
  | { type: 'restoreSetup'; hashId: string; withHints: boolean; programName: string; vkHex: string }
  // ---- lifecycle ----
  /** Shutdown deadline reached: fail every non-terminal job with `internal`. */
  | { type: 'abandonAll'; traceId: string };

// ---------------------------------------------------------------------------------------------
// Effects: scheduler → main
// ---------------------------------------------------------------------------------------------

export type ReconnectDirective = 'KEEP_COMPUTING' | 'CANCEL_STALE_JOB';

export interface SetupRef {
  /** setup job id, or a fresh id for a setup replayed at (re)registration */
  setupJobId: string;
  hashId: string;
  withHints: boolean;
  programName: string;
}

export interface ContributionTarget {
  linkId: LinkId;
  workerId: string;
  rank: number;
  allocation: number[];
}

export interface AggregateTask {
  jobId: string;
  linkId: LinkId;
  workerId: string;
  /** the contributing worker's encoded ProofList; undefined = the aggregator's own (empty list) */
  proofsBlobId?: BlobId;
  last: boolean;
  /** `DistributedProofType`: 0 STARK, 1 STARK_MINIMAL, 2 PLONK */
  proofType: 0 | 1 | 2;
}

export type JobResultSummary =
  | { kind: 'setup'; vkHex: string }
  | {
      kind: 'prove';
      proofBlobId: BlobId;
      executedSteps: string;
      vkHex: string;
      /** first contribution's packed publics, for public_inputs */
      publicsBlobId?: BlobId;
      /** when the job was dispatched (started) */
      startedAt: EpochMs;
    }
  | { kind: 'execute'; executedSteps: string; publicsBlobId?: BlobId; startedAt: EpochMs }
  | { kind: 'wrap'; proofBlobId: BlobId; startedAt: EpochMs };

export type JobEventBody =
  | { kind: 'queued' }
  | { kind: 'started' }
  | { kind: 'progress'; phase: JobPhase }
  | { kind: 'completed'; result: JobResultSummary }
  | { kind: 'failed'; failure: JobFailure }
  | { kind: 'cancelled' };

export type LogLevelName = 'debug' | 'info' | 'warn' | 'error';

export type SchedulerEffect =
  // ---- worker streams ----
  | {
      type: 'acceptWorker';
      linkId: LinkId;
      workerId: string;
      message: string;
      directive?: ReconnectDirective;
      /** first goes into register_response.setup_program, the rest follow as setup_program messages */
      setups: SetupRef[];
      /** an in-flight AGGREGATE task replayed to a KEEP_COMPUTING aggregator, sent before the setups */
      replayAggregate?: AggregateTask;
    }
  | { type: 'rejectWorker'; linkId: LinkId; workerId: string; message: string; delayMs: number }
  /** End a stream: `status` is a gRPC status code name; 'OK' ends it cleanly. */
  | {
      type: 'closeWorker';
      linkId: LinkId;
      status: 'OK' | 'UNAVAILABLE' | 'INVALID_ARGUMENT' | 'DEADLINE_EXCEEDED';
      message: string;
    }
  | { type: 'sendSetup'; setup: SetupRef; linkIds: LinkId[] }
  | {
      type: 'dispatchContributions';
      jobId: string;
      executionOnly: boolean;
      dataId: string;
      totalWorkers: number;
      jobComputeUnits: number;
      targets: ContributionTarget[];
    }
  | {
      type: 'dispatchProve';
      jobId: string;
      targets: { linkId: LinkId; workerId: string }[];
      /** every worker's Challenges entries, in rank order */
      challengesBlobIds: BlobId[];
    }
  | { type: 'dispatchAggregate'; task: AggregateTask }
  | { type: 'dispatchWrap'; jobId: string; linkId: LinkId; workerId: string; proofBlobId: BlobId; proofDest: 1 | 2 }
  | { type: 'sendJobCancelled'; jobId: string; reason: string; linkIds: LinkId[] }
  // ---- client API ----
  | { type: 'submitResult'; requestId: number; jobId: string; ok: true }
  | { type: 'submitResult'; requestId: number; jobId: string; ok: false; code: ErrorCode; message: string }
  | { type: 'cancelResult'; requestId: number; jobId: string; found: boolean; cancelled: boolean }
  /** A job transition, exactly once each, with the time it happened. */
  | { type: 'jobEvent'; jobId: string; jobKind: JobKind; at: EpochMs; event: JobEventBody }
  /** Every link that carries this job's data now (input/hints relays fan out to them). */
  | { type: 'jobLinks'; jobId: string; linkIds: LinkId[] }
  | { type: 'jobsEvicted'; jobIds: string[] }
  | { type: 'releaseBlobs'; blobIds: BlobId[] }
  | { type: 'setupCompleted'; hashId: string; withHints: boolean; programName: string; vkHex: string }
  // ---- observability ----
  | { type: 'workerCounts'; counts: Record<WorkerStateName, number>; queueDepth: number }
  | { type: 'phaseFinished'; phase: 'contributions' | 'prove' | 'aggregate'; seconds: number }
  | { type: 'workerJobOutcome'; workerId: string; outcome: 'success' | 'failure' | 'cancelled' }
  /** A parked worker sent no recovery_complete within recovery_timeout_seconds and was released (D5 metric). */
  | { type: 'recoveryTimedOut'; workerId: string }
  | { type: 'ignoredMessage'; reason: string; linkId: LinkId; detail: string }
  | { type: 'log'; level: LogLevelName; msg: string; fields: Record<string, string | number | boolean | undefined> };
