/**
 * The vocabulary shared by the scheduler's events (`events.ts`) and effects (`effects.ts`): ids, job
 * specs, results and failures. Bulk bytes never cross the thread boundary: the main thread keeps them
 * in its blob store and the scheduler sees blob ids and sizes; uint64 values cross as decimal strings
 * (docs/architecture.md, "Threads and the channel between them").
 */

/** Identifies one worker stream (connection) on the main thread; never reused within a process. */
export type LinkId = number;
/** Identifies a byte buffer held by the main thread's blob store. */
export type BlobId = number;
/** Epoch milliseconds. */
export type EpochMs = number;

export type JobKind = 'setup' | 'prove' | 'execute' | 'wrap';
/** A job's status, as the scheduler holds it and the client sees it. */
export type JobStatus = 'queued' | 'running' | 'completed' | 'failed' | 'cancelled';
/** Client-visible phases (the `JobPhase` numbers of proto/zisk_coordinator_api.proto). */
export type JobPhase = 1 | 2 | 3; // CONTRIBUTIONS | PROVE | AGGREGATE
export type JobPhaseName = 'contributions' | 'prove' | 'aggregate';
/** Logs and metrics name phases; the wire numbers them. */
export const PHASE_NAMES: Readonly<Record<JobPhase, JobPhaseName>> = { 1: 'contributions', 2: 'prove', 3: 'aggregate' };

/** Worker states as the coordinator tracks them (docs/decisions.md, Workers). */
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

/** Why an attempt was retried (the `reason` label of `coordinator_job_retries_total`). */
export type RetryReasonName = 'worker_lost' | 'phase_timeout' | 'coordinator_restart';

export type LogLevelName = 'debug' | 'info' | 'warn' | 'error';
