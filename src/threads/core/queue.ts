/**
 * The queue and worker selection (docs/decisions.md, Scheduling and Queue).
 *
 * Selection and reservation are one step (docs/decisions.md: Double booking): a plan's workers become
 * Computing before the next job is planned. The queue is FIFO among jobs that could use the same
 * workers: walking it in order, a job that cannot start claims every worker it is waiting for, so a
 * later job can only start on workers no earlier job wants (no starvation), while a job of another
 * program with free workers still goes.
 */
import type { Ctx } from './context';
import { programKey, type JobRec, type WorkerRec } from './model';
import { anyLiveWorkerCanRun } from './setup';
import { dispatchJob } from './tasks';
import { failJob } from './transitions';

export type Plan = { start: WorkerRec[] } | { waitFor: WorkerRec[] };

function isFree(w: WorkerRec, forWrap: boolean): boolean {
  if (!w.link) return false;
  return w.state === 'ready' || (forWrap && w.state === 'idle');
}

export function planJob(ctx: Ctx, job: JobRec, claimed: ReadonlySet<WorkerRec>): Plan {
  const spec = job.spec;
  if (spec.kind === 'setup') return { waitFor: [] };
  const forWrap = spec.kind === 'wrap';
  const key = spec.kind === 'wrap' ? undefined : programKey(spec.hashId, spec.hints.kind !== 'none');
  // eligible: live, not parked for recovery, and (prove/execute) set up for this exact program
  const eligible: WorkerRec[] = [];
  const free: WorkerRec[] = [];
  for (const w of ctx.pool.byId.values()) {
    if (w.state === 'disconnected' || w.parked) continue;
    if (key !== undefined && !w.programs.has(key)) continue;
    eligible.push(w);
    // Eligible but not free until it acknowledged the cancel of this job's previous attempt.
    if (isFree(w, forWrap) && !claimed.has(w) && !w.cancelPending.has(job.id)) free.push(w);
  }
  if (forWrap) return free.length > 0 ? { start: [free[0]] } : { waitFor: eligible };

  const cfg = ctx.cfg;
  const cap = cfg.max_workers_per_job;
  const wanted = cfg.default_compute_units;
  let selected: WorkerRec[];
  if (wanted === 0) {
    // every eligible worker (up to the cap), and never short: wait while any of them is busy
    const count = cap > 0 ? Math.min(cap, eligible.length) : eligible.length;
    if (count === 0 || free.length < count) return { waitFor: eligible };
    selected = free.slice(0, count);
  } else {
    selected = [];
    let units = 0;
    for (const w of free) {
      selected.push(w);
      units += w.capacity;
      if (units >= wanted || (cap > 0 && selected.length >= cap)) break;
    }
  }
  let units = 0;
  for (const w of selected) units += w.capacity;
  const floor = wanted === 0 ? cfg.min_compute_units : Math.min(cfg.min_compute_units, wanted);
  if (selected.length === 0 || units < floor) return { waitFor: eligible };
  return { start: selected };
}

/**
 * A job accepted while its program was being set up can never run once that setup failed everywhere
 * and no completed setup will be replayed: fail it rather than let it wait forever.
 */
function failIfUnrunnable(ctx: Ctx, job: JobRec): boolean {
  const spec = job.spec;
  if (spec.kind !== 'prove' && spec.kind !== 'execute') return false;
  const key = programKey(spec.hashId, spec.hints.kind !== 'none');
  if (ctx.registry.has(key) || anyLiveWorkerCanRun(ctx, key)) return false;
  failJob(ctx, job, {
    kind: 'execution',
    reason: `Program ${spec.hashId} is not set up on any connected worker: its setup failed`,
  });
  return true;
}

/** Starts every queued job that can start now, in queue order. */
export function pump(ctx: Ctx): void {
  ctx.queueDirty = false;
  if (ctx.queue.size === 0) {
    ctx.newlyQueued.clear();
    return;
  }
  const counts = ctx.pool.counts;
  // Every job needs at least one free worker; once none is left unclaimed the rest of the queue waits.
  let freeLeft = counts.idle + counts.ready;
  const claimed = new Set<WorkerRec>();
  for (const job of [...ctx.queue]) {
    if (freeLeft <= 0) break;
    const plan = planJob(ctx, job, claimed);
    if ('start' in plan) {
      dispatchJob(ctx, job, plan.start);
      freeLeft -= plan.start.length;
      continue;
    }
    if (plan.waitFor.length === 0 && failIfUnrunnable(ctx, job)) continue;
    for (const w of plan.waitFor) {
      if (claimed.has(w)) continue;
      claimed.add(w);
      if (w.state === 'idle' || w.state === 'ready') freeLeft--;
    }
  }
  ctx.queueDirty = false;
  logWaiting(ctx);
}

/** A job that could not start when it joined the queue says where it stands, once per attempt. */
function logWaiting(ctx: Ctx): void {
  if (ctx.newlyQueued.size === 0) return;
  let position = 0;
  for (const job of ctx.queue) {
    position++;
    if (!ctx.newlyQueued.has(job)) continue;
    const counts = ctx.pool.counts;
    ctx.log('info', `${job.kind} job ${job.id} queued at position ${position} of ${ctx.queue.size} (${counts.idle + counts.ready} worker(s) free)`, {
      job_id: job.id,
      kind: job.kind,
      position,
      queue_depth: ctx.queue.size,
      attempt: job.attempt,
    });
  }
  ctx.newlyQueued.clear();
}

/** Whether a new job would start at once, given the queue (which is settled: nothing in it can start). */
export function wouldStartNow(ctx: Ctx, job: JobRec): boolean {
  // This runs for each submit while the queue is full, i.e. under overload, when usually no worker
  // is free at all: answer that in O(1) rather than plan every queued job against every worker.
  const counts = ctx.pool.counts;
  if (counts.idle + counts.ready === 0) return false;
  const claimed = new Set<WorkerRec>();
  for (const queued of ctx.queue) {
    const plan = planJob(ctx, queued, claimed);
    if ('waitFor' in plan) for (const w of plan.waitFor) claimed.add(w);
  }
  return 'start' in planJob(ctx, job, claimed);
}
