/**
 * Everything that leaves the scheduler: one discriminated union. The main thread handles each kind
 * in one exhaustive switch (src/main/effects.ts), so a kind handled nowhere is a compile error.
 */
import type { ErrorCode } from '../errors';
import type {
  AggregateTask,
  BlobId,
  ContributionTarget,
  EpochMs,
  JobEventBody,
  JobKind,
  JobPhaseName,
  LinkId,
  LogLevelName,
  ReconnectDirective,
  RetryReasonName,
  SetupRef,
  WorkerStateName,
} from './types';

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
  /**
   * An attempt failed and the job is queued again for the next one (the main thread resets the
   * job's relays and local sources; the metric counts it).
   */
  | { type: 'jobRetried'; jobId: string; jobKind: JobKind; reason: RetryReasonName; attempt: number; failedAttempt: string }
  /** Every link that carries this job's data now (input/hints relays fan out to them). */
  | { type: 'jobLinks'; jobId: string; linkIds: LinkId[] }
  | { type: 'jobsEvicted'; jobIds: string[] }
  | { type: 'releaseBlobs'; blobIds: BlobId[] }
  | { type: 'setupCompleted'; hashId: string; withHints: boolean; programName: string; vkHex: string }
  // ---- observability ----
  | { type: 'workerCounts'; counts: Record<WorkerStateName, number>; queueDepth: number }
  | { type: 'phaseFinished'; phase: JobPhaseName; seconds: number }
  | { type: 'workerJobOutcome'; workerId: string; jobKind: JobKind; outcome: 'success' | 'failure' | 'cancelled' }
  /**
   * A parked worker sent no recovery_complete within recovery_timeout_seconds and was released (the
   * warning and metric of docs/decisions.md, Workers).
   */
  | { type: 'recoveryTimedOut'; workerId: string }
  | { type: 'ignoredMessage'; reason: string; linkId: LinkId; detail: string }
  | { type: 'log'; level: LogLevelName; msg: string; fields: Record<string, string | number | boolean | undefined> };

export type EffectType = SchedulerEffect['type'];
export type EffectOf<T extends EffectType> = Extract<SchedulerEffect, { type: T }>;
