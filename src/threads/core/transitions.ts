/**
 * Every status change of a job, and every change of which job a worker is assigned to, in one
 * place. The flows (setup, tasks, worker lifecycle, queue) decide *when*; these functions do the
 * change, emit what the client and the main thread must hear about it, and nothing else.
 *
 * A transition touches only the state. What a change leads to elsewhere (a released worker picking
 * up owed setups, or being marked disconnected because its stream is gone, which may end a setup job
 * in turn) is queued as a follow-up and settled by the core after the current event, so effects
 * always leave cause first: a job's terminal event before whatever its released workers cause.
 *
 * Headers, in the style of one-script-per-transition queues:
 *
 * | transition       | from             | to        | emits                                              |
 * |------------------|------------------|-----------|----------------------------------------------------|
 * | enqueueJob       | (new)            | queued    | queued                                             |
 * | restoreJob       | (stored)         | as stored | (nothing: its history is already recorded)         |
 * | startRun         | queued           | running   | started (+ progress 1 for prove/execute)           |
 * | beginSetup       | (new)            | running   | queued, started                                    |
 * | enterPhase       | running(n)       | running(m)| progress m                                         |
 * | releaseWorker    | worker on job    | free      | (follow-up: workerReleased)                        |
 * | retryJob         | running          | queued    | jobRetried, queued, sendJobCancelled, …            |
 * | completeJob      | queued / running | completed | completed, workerJobOutcome, releaseBlobs          |
 * | failJob          | queued / running | failed    | failed, sendJobCancelled, workerJobOutcome, …      |
 * | cancelJob        | queued / running | cancelled | cancelled, sendJobCancelled, workerJobOutcome, …   |
 */
import { failureText } from '../../shared/job-failure';
import { PHASE_NAMES, type BlobId, type EpochMs, type JobFailure, type JobPhase, type JobResultSummary } from '../../shared/scheduler/types';
import type { Ctx } from './context';
import { setJobTimer } from './deadlines';
import { isTerminal, type JobRec, type RetryReason, type WorkerRec } from './model';
import type { JobStatus } from '../../shared/scheduler/types';

export interface EndOptions {
  /** Parked for recovery: the worker said it is recovering (or its stream dropped mid-task). */
  recovering?: WorkerRec;
  /** The caller finishes this worker's own transition (disconnect, takeover): it is not released here. */
  handled?: WorkerRec;
  /** Infrastructure failed the attempt: another one is made while attempts remain. */
  retry?: RetryReason;
}

/** A prove/execute/wrap job joins the queue; the queue settles (and may start it) after the event. */
export function enqueueJob(ctx: Ctx, job: JobRec): void {
  job.status = 'queued';
  ctx.jobEvent(job, { kind: 'queued' });
  ctx.queue.add(job);
  ctx.newlyQueued.add(job);
  setJobTimer(ctx, job);
  ctx.queueDirty = true;
}

/** A phase's work is all in: its duration goes to the histogram and, with the job's id, to the log. */
export function finishPhase(ctx: Ctx, job: JobRec, phase: JobPhase, since: EpochMs): void {
  const name = PHASE_NAMES[phase];
  const ms = ctx.now - since;
  ctx.emit({ type: 'phaseFinished', phase: name, seconds: ms / 1000 });
  ctx.log('info', `${job.kind} job ${job.id}: ${name} done in ${ms} ms`, { job_id: job.id, phase: name, duration_ms: ms, attempt: job.attempt });
}

/**
 * A job read back from the store at start. Terminal jobs are retired as they were (in termination
 * order, so retention evicts them in that order); queued ones rejoin the queue at its tail (they come
 * in submission order) with their queue timeout counted from now; a job that was running lost its
 * attempt to the restart: it becomes its next attempt, or fails if it cannot be replayed or has no
 * attempt left.
 */
export function restoreJob(ctx: Ctx, job: JobRec, status: JobStatus, terminatedAt: EpochMs | undefined): void {
  ctx.jobs.add(job);
  if (status === 'completed' || status === 'failed' || status === 'cancelled') {
    job.status = status;
    job.terminatedAt = terminatedAt ?? job.submittedAt;
    ctx.jobs.retire(job);
    return;
  }
  for (const b of requestBlobs(job)) job.blobs.add(b);
  job.status = status === 'queued' ? 'queued' : 'running';
  if (!job.replayable) {
    // Its pushed data (or socket) went with the old process: no attempt can get it again.
    failJob(ctx, job, { kind: 'internal', traceId: ctx.deps.newId(), reason: 'input stream lost when the coordinator restarted' });
    return;
  }
  if (status === 'queued') {
    job.queuedAt = ctx.now;
    ctx.queue.add(job);
    ctx.newlyQueued.add(job);
    setJobTimer(ctx, job);
    ctx.queueDirty = true;
    return;
  }
  job.startedAt = job.submittedAt;
  failJob(ctx, job, { kind: 'execution', reason: 'the coordinator restarted' }, { retry: 'coordinator_restart' });
}

/** A queued job takes its selected workers, which become Computing it. */
export function startRun(ctx: Ctx, job: JobRec, selected: WorkerRec[]): void {
  ctx.queue.delete(job);
  job.status = 'running';
  job.startedAt = ctx.now;
  job.phaseStartedAt = ctx.now;
  job.workers = selected.map((w) => w.id);
  for (const w of selected) {
    w.job = job;
    ctx.sync(w);
  }
  ctx.jobEvent(job, { kind: 'started' });
  // Prove and execute jobs start in CONTRIBUTIONS; clients see that phase right after `started`.
  if (job.kind === 'prove' || job.kind === 'execute') enterPhase(ctx, job, 1);
}

/** A setup job runs from the moment it is accepted: it is never queued. */
export function beginSetup(ctx: Ctx, job: JobRec): void {
  job.status = 'running';
  job.startedAt = ctx.now;
  job.setup = { targets: new Map(), pending: 0, owed: new Set() };
  ctx.jobEvent(job, { kind: 'queued' });
  ctx.jobEvent(job, { kind: 'started' });
}

export function enterPhase(ctx: Ctx, job: JobRec, phase: JobPhase): void {
  job.phase = phase;
  job.phaseStartedAt = ctx.now;
  ctx.jobEvent(job, { kind: 'progress', phase });
}

/** A worker leaves its job while the job goes on (a non-aggregator whose proofs are in). */
export function releaseWorker(ctx: Ctx, w: WorkerRec): void {
  w.job = undefined;
  ctx.sync(w);
  ctx.followUp({ kind: 'workerReleased', worker: w });
}

function blobsOfResult(result: JobResultSummary): BlobId[] {
  switch (result.kind) {
    case 'setup':
      return [];
    case 'prove':
      return result.publicsBlobId === undefined ? [result.proofBlobId] : [result.proofBlobId, result.publicsBlobId];
    case 'execute':
      return result.publicsBlobId === undefined ? [] : [result.publicsBlobId];
    case 'wrap':
      return [result.proofBlobId];
  }
}

export function completeJob(ctx: Ctx, job: JobRec, result: JobResultSummary): void {
  if (isTerminal(job)) return;
  setStatus(ctx, job, 'completed');
  ctx.jobEvent(job, { kind: 'completed', result });
  const ms = ctx.now - job.submittedAt;
  ctx.log('info', `${job.kind} job ${job.id} completed in ${ms} ms${attemptNote(job)}`, { job_id: job.id, kind: job.kind, duration_ms: ms, attempt: job.attempt });
  endJob(ctx, job, {}, '', blobsOfResult(result));
}

export function failJob(ctx: Ctx, job: JobRec, failure: JobFailure, opts: EndOptions = {}): void {
  if (isTerminal(job)) return;
  const phase = job.phase;
  if (opts.retry && canRetry(ctx, job)) {
    retryJob(ctx, job, failure, opts.retry, opts);
    return;
  }
  const final = finalFailure(job, failure);
  const text = failureText(final);
  setStatus(ctx, job, 'failed');
  ctx.jobEvent(job, { kind: 'failed', failure: final });
  const ms = ctx.now - job.submittedAt;
  ctx.log('error', `${job.kind} job ${job.id} failed after ${ms} ms${attemptNote(job)}: ${text}`, {
    job_id: job.id,
    kind: job.kind,
    phase: phase !== undefined ? PHASE_NAMES[phase] : undefined,
    duration_ms: ms,
    attempt: job.attempt,
  });
  endJob(ctx, job, opts, final.kind === 'internal' ? final.reason : text, []);
}

/** Only worth saying once a job needed more than one. */
function attemptNote(job: JobRec): string {
  return job.attempt > 1 ? ` (attempt ${job.attempt})` : '';
}

function canRetry(ctx: Ctx, job: JobRec): boolean {
  return job.status === 'running' && job.kind !== 'setup' && job.replayable && job.attempt < ctx.cfg.max_job_attempts;
}

/** What a failed attempt was, for the final failure text: the reason and where it happened. */
function attemptText(job: JobRec, failure: JobFailure): string {
  const text = failureText(failure);
  return job.phase !== undefined && failure.kind !== 'timeout' ? `${text} (phase ${job.phase})` : text;
}

/** After more than one attempt, the failure names them all, the last one last. */
function finalFailure(job: JobRec, failure: JobFailure): JobFailure {
  if (job.failedAttempts.length === 0 || failure.kind === 'internal') return failure;
  const last = attemptText(job, failure);
  const earlier = job.failedAttempts.map((t, i) => `attempt ${i + 1}: ${t}`).join('; ');
  return { kind: 'execution', reason: `failed after ${job.attempt} attempts: ${last} (last; ${earlier})` };
}

/**
 * An attempt failed for a reason another attempt may not meet (docs/decisions.md, Retries): its
 * workers are released as on a failure, the attempt's results are dropped, and the job goes back to
 * the head of the queue to start again from phase 1 on whatever workers are eligible then. Clients
 * see `queued`, then `started` again.
 */
function retryJob(ctx: Ctx, job: JobRec, failure: JobFailure, reason: RetryReason, opts: EndOptions): void {
  const text = attemptText(job, failure);
  ctx.timers.cancel(job.timer);
  job.timer = undefined;
  releaseMembers(ctx, job, opts, 'failure', `attempt ${job.attempt} failed: ${text}; retrying`);
  // The request's own blobs (inline input and hints, the proof to wrap) serve the next attempt too.
  const kept = new Set(requestBlobs(job));
  ctx.releaseBlobs([...job.blobs].filter((b) => !kept.has(b)));
  job.blobs = kept;
  job.failedAttempts.push(text);
  job.attempt++;
  job.status = 'queued';
  job.phase = undefined;
  job.startedAt = undefined;
  job.workers = [];
  job.prove = undefined;
  job.exec = undefined;
  job.queuedAt = ctx.now;
  ctx.emit({ type: 'jobRetried', jobId: job.id, jobKind: job.kind, reason, attempt: job.attempt, failedAttempt: text });
  ctx.log('warn', `${job.kind} job ${job.id} attempt ${job.attempt - 1} failed: ${text}; retrying (attempt ${job.attempt} of ${ctx.cfg.max_job_attempts})`, {
    job_id: job.id,
    kind: job.kind,
    attempt: job.attempt,
    reason,
  });
  ctx.jobEvent(job, { kind: 'queued' });
  // Back at the head: it was first, and its workers have just been freed for it.
  const rest = [...ctx.queue];
  ctx.queue.clear();
  ctx.queue.add(job);
  for (const other of rest) ctx.queue.add(other);
  ctx.newlyQueued.add(job);
  setJobTimer(ctx, job);
  ctx.queueDirty = true;
}

function requestBlobs(job: JobRec): BlobId[] {
  const spec = job.spec;
  if (spec.kind === 'setup') return [];
  if (spec.kind === 'wrap') return [spec.proofBlobId];
  const out: BlobId[] = [];
  if (spec.input.kind === 'inline') out.push(spec.input.blobId);
  if (spec.hints.kind === 'inline') out.push(spec.hints.blobId);
  return out;
}

export function cancelJob(ctx: Ctx, job: JobRec): void {
  if (isTerminal(job)) return;
  const phase = job.phase;
  setStatus(ctx, job, 'cancelled');
  ctx.jobEvent(job, { kind: 'cancelled' });
  ctx.log('info', `${job.kind} job ${job.id} cancelled by the client`, { job_id: job.id, kind: job.kind, phase: phase !== undefined ? PHASE_NAMES[phase] : undefined });
  endJob(ctx, job, {}, 'cancelled by client', []);
}

function setStatus(ctx: Ctx, job: JobRec, status: Exclude<JobStatus, 'queued' | 'running'>): void {
  if (ctx.queue.delete(job)) ctx.queueDirty = true;
  job.status = status;
  job.terminatedAt = ctx.now;
  ctx.timers.cancel(job.timer);
  job.timer = undefined;
}

/**
 * What every terminal transition does after its event: frees the workers still on the job (only
 * those: a worker that moved on is never touched), tells them, reports per-worker outcomes, frees
 * the job's blobs and retires it.
 */
function endJob(ctx: Ctx, job: JobRec, opts: EndOptions, cancelReason: string, keep: BlobId[]): void {
  const status = job.status;
  const outcome = status === 'completed' ? 'success' : status === 'failed' ? 'failure' : 'cancelled';
  releaseMembers(ctx, job, opts, outcome, status !== 'completed' && job.kind !== 'setup' ? cancelReason : undefined);
  const kept = new Set(keep);
  ctx.releaseBlobs([...job.blobs].filter((b) => !kept.has(b)));
  job.blobs.clear();
  if (job.kind === 'setup') endSetup(ctx, job);
  ctx.jobs.retire(job);
}

/**
 * Frees the workers still on the job (only those: a worker that moved on is never touched), tells
 * them and the job's released members to drop it (`cancelReason`, unless undefined), and reports
 * each worker's outcome.
 */
function releaseMembers(
  ctx: Ctx,
  job: JobRec,
  opts: EndOptions,
  outcome: 'success' | 'failure' | 'cancelled',
  cancelReason: string | undefined,
): void {
  const notify: number[] = [];
  for (const id of job.workers) {
    const w = ctx.pool.byId.get(id);
    if (!w) continue;
    if (w.job === job) {
      w.job = undefined;
      if (outcome === 'cancelled' || w === opts.recovering) ctx.park(w);
      ctx.sync(w);
      if (w !== opts.handled) ctx.followUp({ kind: 'workerReleased', worker: w });
      if (cancelReason !== undefined && w.link) {
        notify.push(w.link.id);
        w.cancelPending.add(job.id);
      }
    } else if (cancelReason !== undefined && !w.job && w.link) {
      // released earlier (a non-aggregator): it still holds the job context until told otherwise
      notify.push(w.link.id);
      w.cancelPending.add(job.id);
    }
  }
  job.owed.clear();
  job.unsent.clear();
  if (notify.length > 0 && cancelReason !== undefined) {
    ctx.emit({ type: 'sendJobCancelled', jobId: job.id, reason: cancelReason, linkIds: notify });
  }
  for (const id of job.workers) ctx.emit({ type: 'workerJobOutcome', workerId: id, jobKind: job.kind, outcome });
}

/** A setup job is over: workers it kept SettingUp are let go unless it completed (their acks count). */
function endSetup(ctx: Ctx, job: JobRec): void {
  ctx.activeSetups.delete(job.id);
  const st = job.setup;
  if (!st || job.status === 'completed') return;
  for (const id of st.targets.keys()) {
    const w = ctx.pool.byId.get(id);
    if (w?.pendingSetups.delete(job.id)) ctx.sync(w);
  }
  for (const id of st.owed) ctx.pool.byId.get(id)?.owedSetups.delete(job.id);
}
