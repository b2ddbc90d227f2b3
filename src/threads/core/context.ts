/**
 * Shared state and primitives of the scheduler core. The flows (lifecycle, setup, tasks, failure,
 * queue) are plain functions over one `Ctx`, so every state change funnels through the few helpers
 * here: `sync` (derived worker state, counts, liveness), `park`/`unpark`, and the effect emitters.
 */
import type { CoordinatorConfig, LogLevel } from '../../shared/config/types';
import type { BlobId, JobEventBody, LinkId, LogLevelName, WorkerStateName } from '../../shared/scheduler/types';
import type { SchedulerEffect } from '../../shared/scheduler/effects';
import { JobTable } from './job-table';
import type { FollowUp, JobRec, ProgramKey, RegisteredSetup, TimerTask, WorkerRec } from './model';
import { TimerHeap, type TimerEntry } from './timers';
import { WorkerPool, emptyCounts, type StateCounts } from './worker-pool';

export type CoreConfig = Pick<
  CoordinatorConfig,
  | 'job_ttl_seconds'
  | 'job_monitor_interval_seconds'
  | 'phase1_timeout_seconds'
  | 'phase2_timeout_seconds'
  | 'phase3_timeout_seconds'
  | 'execution_timeout_seconds'
  | 'heartbeat_interval_seconds'
  | 'heartbeat_max_missed'
  | 'stale_disconnected_threshold_seconds'
  | 'reconnect_grace_period_ms'
  | 'default_compute_units'
  | 'min_compute_units'
  | 'max_total_workers'
  | 'max_workers_per_job'
  | 'max_queued_jobs'
  | 'max_job_attempts'
  | 'queue_timeout_seconds'
  | 'setup_timeout_seconds'
  | 'max_retained_jobs'
  | 'handshake_timeout_seconds'
  | 'recovery_timeout_seconds'
  | 'wrap_timeout_seconds'
> & {
  /** The process's log level: lines below it are not emitted at all (undefined: every line). */
  log_level?: LogLevel;
};

const LOG_LEVEL_RANK: Readonly<Record<LogLevel, number>> = { trace: 0, debug: 1, info: 2, warn: 3, error: 4 };

export interface CoreDeps {
  /** UUID v4; injected so the core stays deterministic. */
  newId(): string;
}

type LogFields = Record<string, string | number | boolean | undefined>;

/** `DistributedProofType` PLONK (AggregateTask.proofType). */
const PLONK_PROOF_TYPE = 2;

export class Ctx {
  readonly timers = new TimerHeap<TimerTask>();
  readonly pool = new WorkerPool();
  readonly jobs = new JobTable();
  /** Queued prove/execute/wrap jobs in submission order. */
  readonly queue = new Set<JobRec>();
  /** Completed setups in completion order (the replay order). */
  readonly registry = new Map<ProgramKey, RegisteredSetup>();
  /** Setup jobs still running, in submission order. */
  readonly activeSetups = new Map<string, JobRec>();

  /** Liveness threshold; 0 disables the check. */
  readonly livenessMs: number;
  private minLogRank: number;

  now = 0;
  out: SchedulerEffect[] = [];
  /** Consequences of this event's transitions, settled after it (see transitions.ts). */
  readonly followUps: FollowUp[] = [];
  queueDirty = false;
  /** Jobs that joined the queue since it last settled: those still waiting then say so in the log. */
  readonly newlyQueued = new Set<JobRec>();
  evicted: string[] = [];
  retentionTimer: TimerEntry<TimerTask> | undefined;
  lastSweepAt = Number.NEGATIVE_INFINITY;
  private lastCounts: StateCounts = emptyCounts();
  private lastQueueDepth = 0;

  constructor(
    readonly cfg: CoreConfig,
    readonly deps: CoreDeps,
  ) {
    this.livenessMs = cfg.heartbeat_interval_seconds * cfg.heartbeat_max_missed * 1000;
    this.minLogRank = cfg.log_level === undefined ? 0 : LOG_LEVEL_RANK[cfg.log_level];
  }

  emit(effect: SchedulerEffect): void {
    this.out.push(effect);
  }

  followUp(f: FollowUp): void {
    this.followUps.push(f);
  }

  setLogLevel(level: LogLevel): void {
    this.minLogRank = LOG_LEVEL_RANK[level];
  }

  log(level: LogLevelName, msg: string, fields: LogFields = {}): void {
    // A log effect crosses the thread boundary: debug lines a production level drops never leave.
    if (LOG_LEVEL_RANK[level] < this.minLogRank) return;
    this.out.push({ type: 'log', level, msg, fields });
  }

  jobEvent(job: JobRec, event: JobEventBody): void {
    this.out.push({ type: 'jobEvent', jobId: job.id, jobKind: job.kind, at: this.now, event });
  }

  releaseBlobs(blobIds: BlobId[]): void {
    if (blobIds.length > 0) this.out.push({ type: 'releaseBlobs', blobIds });
  }

  ignore(reason: string, linkId: LinkId, detail: string, blobIds: BlobId[] = []): void {
    this.out.push({ type: 'ignoredMessage', reason, linkId, detail });
    this.releaseBlobs(blobIds);
  }

  schedule(at: number, task: TimerTask): TimerEntry<TimerTask> {
    return this.timers.schedule(at, task);
  }

  /** After any change to a worker's fields: refresh its state, counts and liveness timer. */
  sync(w: WorkerRec): void {
    if (this.pool.refresh(w)) this.queueDirty = true;
    const exempt = this.livenessExempt(w);
    // Silence during an exemption is excused: the window restarts when it ends, even when it ends
    // without a message from the worker (a wrap or setup timing out, a recovery released).
    if (w.exempt && !exempt && this.now > w.lastSeen) w.lastSeen = this.now;
    w.exempt = exempt;
    this.armLiveness(w);
  }

  /**
   * Silence is not checked while the real worker's event loop is blocked and sends nothing: while
   * SettingUp, running a wrap, or running the final AGGREGATE of a PLONK proof, whose wrap runs
   * inside that step (docs/protocol.md, "Liveness"). The phase deadlines still apply.
   */
  livenessExempt(w: WorkerRec): boolean {
    if (w.state === 'setting_up' || w.job?.kind === 'wrap') return true;
    const step = w.job?.prove?.inFlight;
    return step !== undefined && step.workerId === w.id && step.last && step.proofType === PLONK_PROOF_TYPE;
  }

  /**
   * A heartbeat only moves `lastSeen`; the timer is re-armed lazily when it fires, so an ack costs
   * O(1) and the heap holds at most one liveness entry per worker.
   */
  armLiveness(w: WorkerRec): void {
    if (this.livenessMs <= 0 || w.livenessTimer || !w.link || w.exempt) return;
    w.livenessTimer = this.schedule(w.lastSeen + this.livenessMs, { kind: 'liveness', worker: w });
  }

  park(w: WorkerRec): void {
    w.parked = true;
    this.timers.cancel(w.recoveryTimer);
    w.recoveryTimer =
      this.cfg.recovery_timeout_seconds > 0
        ? this.schedule(this.now + this.cfg.recovery_timeout_seconds * 1000, { kind: 'recovery', worker: w })
        : undefined;
  }

  unpark(w: WorkerRec): void {
    w.parked = false;
    this.timers.cancel(w.recoveryTimer);
    w.recoveryTimer = undefined;
  }

  /** Emits `workerCounts` when the counts or the queue depth differ from the last ones sent. */
  flushCounts(): void {
    const counts = this.pool.counts;
    const last = this.lastCounts;
    const depth = this.queue.size;
    const same =
      depth === this.lastQueueDepth &&
      (Object.keys(counts) as WorkerStateName[]).every((k) => counts[k] === last[k]);
    if (same) return;
    this.lastCounts = { ...counts };
    this.lastQueueDepth = depth;
    this.out.push({ type: 'workerCounts', counts: { ...counts }, queueDepth: depth });
  }
}
