/**
 * The pure, deterministic scheduler core (docs/architecture.md, Threads and the channel between them):
 * `(state, event, now) → effects`. No I/O, no clock, no randomness beyond the injected `newId`. The
 * thread wrapper feeds it events and timer wake-ups and applies the effects it returns.
 *
 * The flows live beside it in `core/`: worker lifecycle, setup, queue and selection, tasks, outcomes,
 * deadlines; this class routes events and timers to them and settles the queue, retention and counts
 * once per call.
 */
import { apiErrors, type ApiErrorData } from '../shared/errors';
import type { BlobId, InputSpec, JobKind, JobPhase, JobSpec, LinkId, WorkerStateName } from '../shared/scheduler/types';
import type { SchedulerEvent } from '../shared/scheduler/events';
import type { SchedulerEffect } from '../shared/scheduler/effects';
import { Ctx, type CoreConfig, type CoreDeps } from './core/context';
import { newJobRec } from './core/job-table';
import { afterRelease, onHello, onLinkOpened, onRecoveryComplete, onWorkerClosed, onWorkerTimer } from './core/worker-connections';
import { isTerminal, programKey, type EventOf, type JobRec, type TimerTask } from './core/model';
import type { JobStatus } from '../shared/scheduler/types';
import { pump, wouldStartNow } from './core/queue';
import { anyLiveWorkerCanRun, onSetupAck, startSetupJob } from './core/setup';
import { onTaskResult, onWorkerError } from './core/tasks';
import type { TimerEntry } from './core/timers';
import { cancelJob, enqueueJob, failJob, restoreJob } from './core/transitions';

export type { CoreConfig, CoreDeps } from './core/context';

export interface WorkerSnapshot {
  id: string;
  state: WorkerStateName;
  linkId: LinkId | undefined;
  generation: number;
  capacity: number;
  /** programs it acked a successful setup of, in ack order */
  programs: { hashId: string; withHints: boolean }[];
  parked: boolean;
  jobId: string | undefined;
}

export interface JobSnapshot {
  id: string;
  kind: JobKind;
  status: JobStatus;
  phase: JobPhase | undefined;
  workers: string[];
}

/** Sizes of the core's tables, for leak checks: what a test expects to be back at zero. */
export interface CoreInternals {
  links: number;
  workers: number;
  jobs: number;
  queued: number;
  /** Live timers (cancelled ones not counted). */
  timers: number;
}

export interface CoreSnapshot {
  /** in registration order */
  workers: WorkerSnapshot[];
  jobs: JobSnapshot[];
  /** queued job ids, in queue order */
  queue: string[];
}

function blobsOfSpec(spec: JobSpec): BlobId[] {
  if (spec.kind === 'setup') return [];
  if (spec.kind === 'wrap') return [spec.proofBlobId];
  const blobs: BlobId[] = [];
  if (spec.input.kind === 'inline') blobs.push(spec.input.blobId);
  if (spec.hints.kind === 'inline') blobs.push(spec.hints.blobId);
  return blobs;
}

export class SchedulerCore {
  private readonly ctx: Ctx;

  constructor(config: CoreConfig, deps: CoreDeps) {
    this.ctx = new Ctx(config, deps);
  }

  /** Apply one event at time `now` (epoch ms). Returns the effects it caused, in order. */
  handle(event: SchedulerEvent, now: number): SchedulerEffect[] {
    const ctx = this.ctx;
    ctx.now = now;
    switch (event.type) {
      case 'linkOpened':
        onLinkOpened(ctx, event.linkId);
        break;
      case 'workerHello':
        onHello(ctx, event);
        break;
      case 'workerClosed':
        onWorkerClosed(ctx, event.linkId);
        break;
      case 'workerAlive': {
        // the hot path: O(1), the liveness timer re-arms itself lazily
        const w = ctx.pool.workerOfLink(event.linkId);
        if (w) w.lastSeen = now;
        break;
      }
      case 'jobCancelledAck': {
        const w = ctx.pool.workerOfLink(event.linkId);
        if (!w) break;
        w.lastSeen = now;
        // it may now take part in that job's next attempt
        if (w.cancelPending.delete(event.jobId)) ctx.queueDirty = true;
        break;
      }
      case 'workersAlive':
        for (const linkId of event.linkIds) {
          const w = ctx.pool.workerOfLink(linkId);
          if (w) w.lastSeen = now;
        }
        break;
      case 'taskResult':
        onTaskResult(ctx, event);
        break;
      case 'workerError':
        onWorkerError(ctx, event);
        break;
      case 'setupAck': {
        const w = ctx.pool.workerOfLink(event.linkId);
        if (!w) {
          ctx.ignore('unregistered_link', event.linkId, `setup ack for ${event.setupJobId}`);
          break;
        }
        w.lastSeen = now;
        onSetupAck(ctx, w, event);
        break;
      }
      case 'recoveryComplete': {
        const w = ctx.pool.workerOfLink(event.linkId);
        if (!w) break;
        w.lastSeen = now;
        onRecoveryComplete(ctx, w);
        break;
      }
      case 'submitJob':
        this.submit(event);
        break;
      case 'cancelJob':
        this.cancel(event);
        break;
      case 'failJob': {
        const job = ctx.jobs.byId.get(event.jobId);
        if (job && !isTerminal(job)) failJob(ctx, job, event.failure);
        break;
      }
      case 'restoreSetup': {
        const { hashId, withHints, programName, vkHex } = event;
        ctx.registry.set(programKey(hashId, withHints), { hashId, withHints, programName, vkHex });
        break;
      }
      case 'restoreJob': {
        if (ctx.jobs.byId.has(event.jobId)) break;
        const job = newJobRec(event.jobId, event.spec, event.submittedAt);
        job.attempt = event.attempt;
        job.failedAttempts = [...event.failedAttempts];
        job.replayable = event.replayable;
        restoreJob(ctx, job, event.status, event.terminatedAt);
        break;
      }
      case 'jobReplayable': {
        const job = ctx.jobs.byId.get(event.jobId);
        if (job) job.replayable = event.replayable;
        break;
      }
      case 'abandonAll':
        for (const job of [...ctx.jobs.byId.values()]) {
          if (isTerminal(job)) continue;
          failJob(ctx, job, { kind: 'internal', traceId: event.traceId, reason: 'coordinator shutting down' });
        }
        break;
      case 'setLogLevel':
        ctx.setLogLevel(event.level);
        break;
    }
    return this.settle();
  }

  /**
   * Fire every timer due at or before `now`. Each runs at its own deadline (never before the last
   * time seen), so what a timer causes does not depend on how late the host timer woke us.
   */
  advance(now: number): SchedulerEffect[] {
    const ctx = this.ctx;
    for (let entry = ctx.timers.popDue(now); entry; entry = ctx.timers.popDue(now)) {
      ctx.now = Math.max(ctx.now, entry.at);
      this.fire(entry);
    }
    ctx.now = Math.max(ctx.now, now);
    return this.settle();
  }

  /** Earliest pending timer, or undefined; the wrapper sets one host timer for it. */
  nextDeadline(): number | undefined {
    return this.ctx.timers.peek();
  }

  internals(): CoreInternals {
    const ctx = this.ctx;
    return {
      links: ctx.pool.links.size,
      workers: ctx.pool.byId.size,
      jobs: ctx.jobs.byId.size,
      queued: ctx.queue.size,
      timers: ctx.timers.size,
    };
  }

  /** Read-only view for tests, logs and the scheduler thread's metrics. */
  snapshot(): CoreSnapshot {
    const ctx = this.ctx;
    const workers: WorkerSnapshot[] = [...ctx.pool.byId.values()].map((w) => ({
      id: w.id,
      state: w.state,
      linkId: w.link?.id,
      generation: w.generation,
      capacity: w.capacity,
      programs: [...w.programs.keys()].map((key) => {
        const sep = key.lastIndexOf('|');
        return { hashId: key.slice(0, sep), withHints: key.slice(sep + 1) === '1' };
      }),
      parked: w.parked,
      jobId: w.job?.id,
    }));
    const jobs: JobSnapshot[] = [...ctx.jobs.byId.values()].map((j) => ({
      id: j.id,
      kind: j.kind,
      status: j.status,
      phase: j.phase,
      workers: [...j.workers],
    }));
    return { workers, jobs, queue: [...ctx.queue].map((j) => j.id) };
  }

  private submit(ev: EventOf<'submitJob'>): void {
    const ctx = this.ctx;
    const { requestId, jobId, spec } = ev;
    // A refused request's blobs stay main's to drop: the job never existed here.
    const reject = (err: ApiErrorData): void => {
      ctx.emit({ type: 'submitResult', requestId, jobId, ok: false, code: err.code, message: err.message });
    };
    if (ctx.jobs.byId.has(jobId)) return reject(apiErrors.invalidArgument(`duplicate job id ${jobId}`));
    if (ctx.pool.liveCount === 0) return reject(apiErrors.noWorkersConnected());
    if (
      (spec.kind === 'prove' || spec.kind === 'execute') &&
      !anyLiveWorkerCanRun(ctx, programKey(spec.hashId, spec.hints.kind !== 'none'))
    ) {
      return reject(apiErrors.setupNotDone());
    }
    const job = newJobRec(jobId, spec, ctx.now);
    const max = ctx.cfg.max_queued_jobs;
    if (spec.kind !== 'setup' && ctx.queue.size >= max && !wouldStartNow(ctx, job)) {
      return reject(apiErrors.queueFull(max));
    }
    ctx.jobs.add(job);
    for (const blob of blobsOfSpec(spec)) job.blobs.add(blob);
    ctx.emit({ type: 'submitResult', requestId, jobId, ok: true });
    logSubmitted(ctx, job);
    if (spec.kind === 'setup') {
      startSetupJob(ctx, job);
      return;
    }
    // dispatch, if capacity is there now, happens in this same call when the queue settles
    enqueueJob(ctx, job);
  }

  private cancel(ev: EventOf<'cancelJob'>): void {
    const ctx = this.ctx;
    const job = ctx.jobs.byId.get(ev.jobId);
    const result = { type: 'cancelResult', requestId: ev.requestId, jobId: ev.jobId } as const;
    if (!job) {
      ctx.emit({ ...result, found: false, cancelled: false });
      return;
    }
    if (isTerminal(job)) {
      ctx.emit({ ...result, found: true, cancelled: false });
      return;
    }
    cancelJob(ctx, job);
    ctx.emit({ ...result, found: true, cancelled: true });
  }

  private fire(entry: TimerEntry<TimerTask>): void {
    const ctx = this.ctx;
    const task = entry.task;
    if (task.kind === 'jobDeadline') {
      const job = task.job;
      if (job.timer !== entry) return;
      job.timer = undefined;
      failJob(ctx, job, task.failure, { retry: task.retry });
      return;
    }
    if (task.kind === 'retention') {
      if (ctx.retentionTimer !== entry) return;
      ctx.retentionTimer = undefined;
      ctx.lastSweepAt = ctx.now;
      ctx.jobs.evictExpired(ctx.now, ctx.cfg.job_ttl_seconds * 1000, ctx.evicted);
      return;
    }
    onWorkerTimer(ctx, entry);
  }

  /**
   * Once per call: settle the transitions' follow-ups (which may cause more), start what can start,
   * apply retention, report counts, hand the effects over.
   */
  private settle(): SchedulerEffect[] {
    const ctx = this.ctx;
    for (;;) {
      for (let f = ctx.followUps.shift(); f; f = ctx.followUps.shift()) afterRelease(ctx, f.worker);
      if (!ctx.queueDirty) break;
      pump(ctx);
    }
    ctx.jobs.evictOverCap(ctx.cfg.max_retained_jobs, ctx.evicted);
    if (!ctx.retentionTimer) {
      const oldest = ctx.jobs.oldestTerminatedAt();
      if (oldest !== undefined) {
        // job_monitor_interval_seconds only paces these sweeps (docs/decisions.md, Job states and events)
        const at = Math.max(
          oldest + ctx.cfg.job_ttl_seconds * 1000,
          ctx.lastSweepAt + ctx.cfg.job_monitor_interval_seconds * 1000,
        );
        ctx.retentionTimer = ctx.schedule(at, { kind: 'retention' });
      }
    }
    if (ctx.evicted.length > 0) {
      ctx.emit({ type: 'jobsEvicted', jobIds: ctx.evicted });
      ctx.evicted = [];
    }
    ctx.flushCounts();
    const out = ctx.out;
    ctx.out = [];
    return out;
  }
}

/** The first line of a job's story in the log: what was asked (docs/operations.md, Logs). */
function logSubmitted(ctx: Ctx, job: JobRec): void {
  const spec = job.spec;
  const fields: Record<string, string | number | boolean | undefined> = { job_id: job.id, kind: spec.kind };
  let what = '';
  if (spec.kind !== 'wrap') {
    fields.hash_id = spec.hashId;
    what = ` for program ${spec.hashId.slice(0, 12)}…`;
  }
  if (spec.kind === 'prove' || spec.kind === 'execute') {
    fields.input = describeInput(spec.input);
    what += `, input ${fields.input}`;
    if (spec.hints.kind !== 'none') {
      fields.hints = describeInput(spec.hints);
      what += `, hints ${fields.hints}`;
    }
  }
  ctx.log('info', `${spec.kind} job ${job.id} submitted${what}`, fields);
}

function describeInput(input: InputSpec): string {
  switch (input.kind) {
    case 'none':
      return 'none';
    case 'inline':
      return `${input.bytes} bytes inline`;
    case 'grpc':
      return 'pushed by the client';
    case 'local':
      return `read from ${input.uri.length > 80 ? `${input.uri.slice(0, 80)}…` : input.uri}`;
  }
}
