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
import { programKey, type JobRec, type ProgramKey, type WorkerRec } from './model';
import { anyLiveWorkerCanRun } from './setup';
import { dispatchJob } from './tasks';
import { failJob } from './transitions';

/**
 * A job either starts on `start`, or waits and claims `waitFor`: the Idle and Ready workers it could
 * use, so no later job in the walk takes them (claiming a busy worker would change nothing, so only
 * those are listed). `noneEligible`: no live worker at all, free or busy, could ever run it.
 */
type Plan = { start: WorkerRec[] } | { waitFor: WorkerRec[]; noneEligible: boolean };

/** Jobs with the same key plan alike: same eligible workers, same selection rule. */
type PlanKey = ProgramKey | 'wrap';

function planKeyOf(job: JobRec): PlanKey | undefined {
  const spec = job.spec;
  if (spec.kind === 'setup') return undefined;
  return spec.kind === 'wrap' ? 'wrap' : programKey(spec.hashId, spec.hints.kind !== 'none');
}

/** Eligible: live, not parked for recovery, and (prove/execute) set up for this exact program. */
function isEligible(w: WorkerRec, key: PlanKey): boolean {
  if (w.state === 'disconnected' || w.parked) return false;
  return key === 'wrap' || w.programs.has(key);
}

function isFree(w: WorkerRec, key: PlanKey): boolean {
  if (!w.link) return false;
  return w.state === 'ready' || (key === 'wrap' && w.state === 'idle');
}

function anyEligible(ctx: Ctx, key: PlanKey): boolean {
  for (const w of ctx.pool.byId.values()) if (isEligible(w, key)) return true;
  return false;
}

const byRegistration = (a: WorkerRec, b: WorkerRec): number => a.order - b.order;

/**
 * Takes workers in registration order until `enough` says so (or none is left). A job takes a few
 * of possibly thousands of free workers: picking the next lowest each time beats sorting them all.
 */
function takeInOrder(workers: WorkerRec[], enough: (taken: WorkerRec) => boolean): WorkerRec[] {
  const taken: WorkerRec[] = [];
  let remaining = workers.length;
  while (remaining > 0) {
    let lowest = 0;
    for (let i = 1; i < remaining; i++) if (workers[i].order < workers[lowest].order) lowest = i;
    const w = workers[lowest];
    // swap-remove: order among the rest does not matter, the next pass looks for the lowest again
    workers[lowest] = workers[remaining - 1];
    remaining--;
    taken.push(w);
    if (enough(w)) break;
  }
  return taken;
}

/**
 * One walk of the queue in order (docs/decisions.md, Scheduling and Queue). Planning a job looks at
 * the free workers holding its program only (the pool's index), and once a job of some program waits,
 * every later job of that program waits too (the first one claimed every free worker they could use),
 * so each walk costs about queued jobs + the free workers of the programs queued, not queued jobs ×
 * workers.
 */
class QueueWalk {
  private readonly claimed = new Set<WorkerRec>();
  /** Keys whose job waited in this walk → whether no live worker could ever run them. */
  private readonly waiting = new Map<PlanKey, boolean>();
  /** Idle or Ready workers claimed so far, by a start or a wait. */
  claimedFree = 0;

  constructor(private readonly ctx: Ctx) {}

  /** Plans `job` against what is still unclaimed, and claims what it starts on or waits for. */
  plan(job: JobRec): Plan {
    const key = planKeyOf(job);
    if (key === undefined) return { waitFor: [], noneEligible: true };
    const known = this.waiting.get(key);
    if (known !== undefined) return { waitFor: [], noneEligible: known };
    const plan = this.planFresh(job, key);
    if ('start' in plan) this.claim(plan.start);
    else {
      this.claim(plan.waitFor);
      this.waiting.set(key, plan.noneEligible);
    }
    return plan;
  }

  private claim(workers: readonly WorkerRec[]): void {
    for (const w of workers) {
      if (this.claimed.has(w)) continue;
      this.claimed.add(w);
      this.claimedFree++;
    }
  }

  private planFresh(job: JobRec, key: PlanKey): Plan {
    const ctx = this.ctx;
    // Idle and Ready workers that could run it; `usable` leaves out those without a stream, those an
    // earlier job claimed and those that have not acknowledged the cancel of this job's previous attempt.
    const candidates: WorkerRec[] = [];
    for (const w of key === 'wrap' ? ctx.pool.free : ctx.pool.freeHolding(key)) if (isEligible(w, key)) candidates.push(w);
    const usable = candidates.filter((w) => isFree(w, key) && !this.claimed.has(w) && !w.cancelPending.has(job.id));
    const wait = (): Plan => ({ waitFor: candidates, noneEligible: candidates.length === 0 && !anyEligible(ctx, key) });
    // Selection follows registration order (docs/decisions.md, Scheduling).
    if (key === 'wrap') return usable.length > 0 ? { start: takeInOrder(usable, () => true) } : wait();

    const cfg = ctx.cfg;
    const cap = cfg.max_workers_per_job;
    const wanted = cfg.default_compute_units;
    let selected: WorkerRec[];
    if (wanted === 0) {
      // every eligible worker (up to the cap), and never short: wait while any of them is busy
      let eligible = 0;
      for (const w of ctx.pool.byId.values()) if (isEligible(w, key)) eligible++;
      const count = cap > 0 ? Math.min(cap, eligible) : eligible;
      if (count === 0 || usable.length < count) return wait();
      selected = usable.sort(byRegistration).slice(0, count);
    } else {
      let units = 0;
      let count = 0;
      selected = takeInOrder(usable, (w) => {
        units += w.capacity;
        count++;
        return units >= wanted || (cap > 0 && count >= cap);
      });
    }
    let units = 0;
    for (const w of selected) units += w.capacity;
    const floor = wanted === 0 ? cfg.min_compute_units : Math.min(cfg.min_compute_units, wanted);
    if (selected.length === 0 || units < floor) return wait();
    return { start: selected };
  }
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
  walkQueue(
    ctx,
    (job, workers) => dispatchJob(ctx, job, workers),
    (job) => failIfUnrunnable(ctx, job),
  );
  ctx.queueDirty = false;
  logWaiting(ctx);
}

/**
 * The decisions of one pump, in queue order: which jobs start on which workers, and which jobs no
 * live worker could run. `start` is called before the next job is planned (it makes the workers
 * Computing; the walk has claimed them either way).
 */
export function walkQueue(ctx: Ctx, start: (job: JobRec, workers: WorkerRec[]) => void, noneEligible: (job: JobRec) => void): void {
  const counts = ctx.pool.counts;
  // Every job needs at least one free worker; once none is left unclaimed the rest of the queue waits.
  const freeAtStart = counts.idle + counts.ready;
  const walk = new QueueWalk(ctx);
  for (const job of [...ctx.queue]) {
    if (freeAtStart - walk.claimedFree <= 0) break;
    const plan = walk.plan(job);
    if ('start' in plan) start(job, plan.start);
    else if (plan.noneEligible) noneEligible(job);
  }
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
  // is free at all: answer that in O(1) rather than plan the queue.
  const counts = ctx.pool.counts;
  if (counts.idle + counts.ready === 0) return false;
  const walk = new QueueWalk(ctx);
  for (const queued of ctx.queue) walk.plan(queued);
  return 'start' in walk.plan(job);
}
