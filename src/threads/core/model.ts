/**
 * The scheduler core's internal records. They never leave the core: the outside world sees effects and
 * `snapshot()` only, so these can hold object references (worker ↔ link ↔ job) for O(1) hot paths.
 */
import type { AggregateTask, BlobId, EpochMs, JobFailure, JobKind, JobPhase, JobSpec, JobStatus, LinkId, RetryReasonName, SetupRef, TaskResultSummary, TaskType, WorkerStateName } from '../../shared/scheduler/types';
import type { SchedulerEvent } from '../../shared/scheduler/events';
import type { TimerEntry } from './timers';

export type EventOf<T extends SchedulerEvent['type']> = Extract<SchedulerEvent, { type: T }>;

/** A program as a worker sets it up: hints and no-hints are distinct setups (docs/decisions.md, Scheduling). */
export type ProgramKey = string;

export function programKey(hashId: string, withHints: boolean): ProgramKey {
  return `${hashId}|${withHints ? 1 : 0}`;
}

export function programKeyOfRef(ref: SetupRef): ProgramKey {
  return programKey(ref.hashId, ref.withHints);
}

/** A completed setup: replayed to every (re)registering worker. */
export interface RegisteredSetup {
  hashId: string;
  withHints: boolean;
  programName: string;
  vkHex: string;
}

export interface LinkRec {
  readonly id: LinkId;
  /** Set once a hello on this link was accepted; cleared when the link is detached (takeover, close). */
  worker: WorkerRec | undefined;
  handshake: TimerEntry<TimerTask> | undefined;
  /** The peer's address as the main thread saw it, for logs that must find the process. */
  peer?: string;
}

export interface WorkerRec {
  readonly id: string;
  /** Registration order (first accepted hello); selection and ranks follow it (docs/decisions.md, Scheduling). */
  readonly order: number;
  capacity: number;
  /** Current stream. Without one a worker is either Disconnected or Computing inside its grace period. */
  link: LinkRec | undefined;
  generation: number;
  /** Derived from the fields below by `Ctx.sync`; cached so the state counts stay O(1) to maintain. */
  state: WorkerStateName;
  /** The job it is Computing, if any. */
  job: JobRec | undefined;
  /**
   * Programs it acked a successful setup of on this connection → the VK it reported. Changed only
   * through the pool (`setProgram`, `deleteProgram`, `clearPrograms`), which indexes free workers by it.
   */
  readonly programs: ReadonlyMap<ProgramKey, string>;
  /** Setups sent on this connection and not acked yet, by the setup job id the ack will echo. */
  pendingSetups: Map<string, SetupRef>;
  /**
   * Setups it must get once it stops computing (never sent to a computing worker — docs/decisions.md:
   * Setup clobbers computing workers), by setup job id.
   */
  owedSetups: Map<string, SetupRef>;
  /** Parked until `recovery_complete` (upstream's pending_recovery): SettingUp and never selected. */
  parked: boolean;
  /**
   * Jobs it was told `job_cancelled` for and has not acknowledged yet. Its results for such a job
   * until then belong to the cancelled attempt, so it takes no part in the job's next attempt before
   * the acknowledgement (docs/decisions.md, Retries).
   */
  cancelPending: Set<string>;
  /** Start of the current silence window: its last message, or the end of a liveness exemption. */
  lastSeen: EpochMs;
  /** Whether silence is currently excused (SettingUp, or running a wrap). */
  exempt: boolean;
  disconnectedAt: EpochMs | undefined;
  livenessTimer: TimerEntry<TimerTask> | undefined;
  graceTimer: TimerEntry<TimerTask> | undefined;
  purgeTimer: TimerEntry<TimerTask> | undefined;
  recoveryTimer: TimerEntry<TimerTask> | undefined;
  /** When its live stream was taken over by another one, within the flapping window (oldest first). */
  takeovers: EpochMs[];
}


/**
 * Why an attempt failed, when infrastructure failed it and another attempt may succeed (the label of
 * `coordinator_job_retries_total`). A task sent to a stream that vanished is a worker lost: the
 * stream's close starts the worker's grace period. Failures without a reason (a worker's own error, an
 * invalid result, a cancel, the client's deadline, the queue timeout, the drain) are final.
 */
export type RetryReason = RetryReasonName;

export function isTerminal(job: JobRec): boolean {
  return job.status === 'completed' || job.status === 'failed' || job.status === 'cancelled';
}

/** An AGGREGATE task before it is addressed: the aggregator's link may change (KEEP_COMPUTING). */
export type AggStep = Omit<AggregateTask, 'linkId'>;

export interface ProveState {
  contributions: Map<string, Extract<TaskResultSummary, { kind: 'challenges' }>>;
  proveResults: number;
  proveStartedAt: EpochMs;
  /**
   * When every Prove result was in: the phase-3 timeout counts from here (docs/decisions.md: Early
   * phase-3 timer).
   */
  allProofsAt: EpochMs | undefined;
  aggregator: string | undefined;
  aggregateStartedAt: EpochMs;
  /** At most one AGGREGATE task in flight (docs/decisions.md: Aggregation race); the rest wait in FIFO order. */
  inFlight: AggStep | undefined;
  aggQueue: AggStep[];
  /**
   * AGGREGATE tasks sent again to a reconnected aggregator whose first copy may still be answered:
   * that many extra empty answers may arrive (docs/decisions.md, Scheduling: replayed AGGREGATE).
   */
  replayedSteps: number;
}

export interface ExecState {
  results: Map<string, Extract<TaskResultSummary, { kind: 'execution' }>>;
}

export type SetupTargetState = 'pending' | { ok: boolean; vkHex: string };

export interface SetupState {
  /** Workers the SetupProgram was sent to while this job runs, and what they answered. */
  targets: Map<string, SetupTargetState>;
  /** How many targets are still 'pending', so an ack is O(1) with thousands of targets. */
  pending: number;
  /** Workers that were computing at submission and get the setup when they free. */
  owed: Set<string>;
}

export interface JobRec {
  readonly id: string;
  readonly kind: JobKind;
  readonly spec: JobSpec;
  status: JobStatus;
  /** 1 for the first run; each retry adds one (docs/decisions.md, Retries). */
  attempt: number;
  /** Why each earlier attempt failed, oldest first. */
  failedAttempts: string[];
  /** When it last entered the queue (the queue timeout counts from here). */
  queuedAt: EpochMs;
  /** Whether its input and hints can be sent again to a new set of workers. */
  replayable: boolean;
  /** Client-visible phase of a running prove/execute job. */
  phase: JobPhase | undefined;
  readonly submittedAt: EpochMs;
  startedAt: EpochMs | undefined;
  terminatedAt: EpochMs | undefined;
  /** Rank order for prove/execute; the wrap worker; the setup targets. */
  workers: string[];
  /** Blobs the job holds on main until it is terminal. */
  blobs: Set<BlobId>;
  /** The one deadline timer of the job (queue, phase, request, setup or wrap limit, whichever is next). */
  timer: TimerEntry<TimerTask> | undefined;
  /**
   * The task type each worker owes a result for; anything else from it is ignored (docs/decisions.md: No
   * membership checks).
   */
  owed: Map<string, TaskType>;
  /** Workers whose current task could not be sent (no stream): sent on a KEEP_COMPUTING reconnect. */
  unsent: Set<string>;
  phaseStartedAt: EpochMs;
  prove: ProveState | undefined;
  exec: ExecState | undefined;
  setup: SetupState | undefined;
}

/**
 * What a transition leads to elsewhere, settled by the core after the current event (cause first):
 * a released worker picks up owed setups, or is marked disconnected if its stream is already gone.
 */
export type FollowUp = { kind: 'workerReleased'; worker: WorkerRec };

export type TimerTask =
  | { kind: 'handshake'; link: LinkRec }
  | { kind: 'liveness'; worker: WorkerRec }
  | { kind: 'grace'; worker: WorkerRec; generation: number }
  | { kind: 'purge'; worker: WorkerRec }
  | { kind: 'recovery'; worker: WorkerRec }
  | { kind: 'jobDeadline'; job: JobRec; failure: JobFailure; retry: RetryReason | undefined }
  | { kind: 'retention' };
