/**
 * Everything that enters the scheduler: one discriminated union, sent in order over one channel and
 * batched per turn of the main thread's event loop, so a client request never overtakes a worker
 * event posted before it. Worker messages arrive here already validated at the edge.
 */
import type { LogLevel } from '../config/types';
import type { EpochMs, JobFailure, JobSpec, JobStatus, LinkId, TaskResultSummary, TaskType } from './types';

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
  /** heartbeat_ack and every other message that proves liveness */
  | { type: 'workerAlive'; linkId: LinkId }
  /** job_cancelled_ack: alive, and done with that job's cancelled attempt */
  | { type: 'jobCancelledAck'; linkId: LinkId; jobId: string }
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
  // ---- durable state (docs/decisions.md, Durable jobs) ----
  /**
   * A job from the store, at start (before any worker connects), in an order that keeps the queue's
   * and retention's: terminal jobs by termination time first, then the others by submission. Terminal
   * jobs come back as they ended; queued ones go back to the queue; a running one lost its attempt to
   * the restart and becomes its next attempt (or fails when it cannot be replayed or has none left).
   */
  | {
      type: 'restoreJob';
      jobId: string;
      spec: JobSpec;
      status: JobStatus;
      attempt: number;
      failedAttempts: string[];
      submittedAt: EpochMs;
      terminatedAt?: EpochMs;
      /** Whether its data can be sent to workers again (inline, a file, a pushed stream spooled whole). */
      replayable: boolean;
    }
  /** Every byte of the job's pushed data is on disk (another attempt can replay it), or no longer is. */
  | { type: 'jobReplayable'; jobId: string; replayable: boolean }
  // ---- lifecycle ----
  /** Shutdown deadline reached: fail every non-terminal job with `internal`. */
  | { type: 'abandonAll'; traceId: string }
  /** SIGHUP re-read the log level: the scheduler's lines follow it too. */
  | { type: 'setLogLevel'; level: LogLevel };
