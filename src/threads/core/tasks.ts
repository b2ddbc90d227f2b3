/**
 * Running jobs on workers: dispatch, and the handling of execute, prove, aggregate and wrap results
 * (docs/decisions.md, Scheduling) — membership, task-type and phase checks on every result
 * (docs/decisions.md: No membership checks), one AGGREGATE in flight (Aggregation race), and every
 * invalid result failing the job at once (Invalid results hang jobs).
 */
import type { AggregateTask, BlobId, JobResultSummary, TaskResultSummary, TaskType } from '../../shared/scheduler/types';
import type { Ctx } from './context';
import { allocateUnits } from './allocation';
import { setJobTimer } from './deadlines';
import { isTerminal, programKey, type AggStep, type EventOf, type JobRec, type WorkerRec } from './model';
import { completeJob, enterPhase, failJob, finishPhase, releaseWorker, startRun } from './transitions';

export const TASK = {
  CONTRIBUTION: 0,
  PROVE: 1,
  AGGREGATE: 2,
  EXECUTION: 3,
  WRAP: 4,
} as const satisfies Record<string, TaskType>;

const TASK_NAMES: Record<TaskType, string> = {
  0: 'contribution',
  1: 'prove',
  2: 'aggregate',
  3: 'execution',
  4: 'wrap',
};

/** The result member each task must answer with. */
const RESULT_OF: Record<TaskType, TaskResultSummary['kind']> = {
  0: 'challenges',
  1: 'proofs',
  2: 'finalProof',
  3: 'execution',
  4: 'wrap',
};

/** Selected workers are free, and a free worker always has a stream. */
function linkIdOf(w: WorkerRec): number {
  return w.link ? w.link.id : -1;
}

export function blobsOfTaskResult(result: TaskResultSummary): BlobId[] {
  switch (result.kind) {
    case 'challenges':
      return [...result.challengesBlobIds, result.publicsBlobId];
    case 'execution':
      return result.publicsBlobId === undefined ? [] : [result.publicsBlobId];
    case 'proofs':
      return [result.proofsBlobId];
    case 'finalProof':
      return result.proofBlobId === undefined ? [] : [result.proofBlobId];
    case 'wrap':
      return [result.proofBlobId];
    default:
      return [];
  }
}

function linksOnJob(ctx: Ctx, job: JobRec): number[] {
  const links: number[] = [];
  for (const id of job.workers) {
    const w = ctx.pool.byId.get(id);
    if (w?.job === job && w.link) links.push(w.link.id);
  }
  return links;
}

/** Starts a queued job on the workers the queue selected, and sends them their first tasks. */
export function dispatchJob(ctx: Ctx, job: JobRec, selected: WorkerRec[]): void {
  startRun(ctx, job, selected);
  const spec = job.spec;
  if (spec.kind === 'wrap') {
    const w = selected[0];
    job.owed.set(w.id, TASK.WRAP);
    ctx.emit({
      type: 'dispatchWrap',
      jobId: job.id,
      linkId: linkIdOf(w),
      workerId: w.id,
      proofBlobId: spec.proofBlobId,
      proofDest: spec.proofDest === 3 ? 2 : 1,
    });
    setJobTimer(ctx, job);
    ctx.log('info', `wrap job ${job.id} started on worker ${w.id} after ${ctx.now - job.queuedAt} ms in the queue`, {
      job_id: job.id,
      worker_id: w.id,
      queued_ms: ctx.now - job.queuedAt,
      attempt: job.attempt,
    });
    return;
  }
  if (spec.kind === 'setup') return;
  const executionOnly = spec.kind === 'execute';
  if (executionOnly) job.exec = { results: new Map() };
  else {
    job.prove = {
      contributions: new Map(),
      proveResults: 0,
      proveStartedAt: 0,
      allProofsAt: undefined,
      aggregator: undefined,
      aggregateStartedAt: 0,
      inFlight: undefined,
      aggQueue: [],
      replayedSteps: 0,
    };
  }
  const allocation = allocateUnits(selected.map((w) => w.capacity));
  let units = 0;
  for (const w of selected) units += w.capacity;
  const task = executionOnly ? TASK.EXECUTION : TASK.CONTRIBUTION;
  for (const w of selected) job.owed.set(w.id, task);
  ctx.emit({
    type: 'dispatchContributions',
    jobId: job.id,
    executionOnly,
    dataId: ctx.deps.newId(),
    totalWorkers: selected.length,
    // the units actually allocated, so no allocation references a unit beyond it (docs/decisions.md:
    // Units mismatch)
    jobComputeUnits: units,
    targets: selected.map((w, rank) => ({ linkId: linkIdOf(w), workerId: w.id, rank, allocation: allocation[rank] })),
  });
  ctx.emit({ type: 'jobLinks', jobId: job.id, linkIds: selected.map(linkIdOf) });
  setJobTimer(ctx, job);
  ctx.log('info', `${spec.kind} job ${job.id} started on ${selected.length} worker(s) after ${ctx.now - job.queuedAt} ms in the queue`, {
    job_id: job.id,
    workers: selected.length,
    compute_units: units,
    queued_ms: ctx.now - job.queuedAt,
    attempt: job.attempt,
  });
}

/**
 * A late response for a job that is already over. Ending a job releases every worker still on it, so
 * the sender is either idle or busy elsewhere: a worker that says it is recovering is parked only if it
 * has not moved on (docs/decisions.md: Late response clobbers state).
 */
function lateResponse(ctx: Ctx, w: WorkerRec, job: JobRec, ev: EventOf<'taskResult'>): void {
  if (!ev.inRecovery || w.job !== undefined || w.parked || w.disconnectedAt !== undefined) return;
  if (!job.workers.includes(w.id)) return;
  ctx.park(w);
  ctx.sync(w);
  ctx.log('info', `worker ${w.id} is recovering from job ${job.id}; parked`, { worker_id: w.id, job_id: job.id });
}

export function onTaskResult(ctx: Ctx, ev: EventOf<'taskResult'>): void {
  const blobs = blobsOfTaskResult(ev.result);
  const w = ctx.pool.workerOfLink(ev.linkId);
  const detail = `${TASK_NAMES[ev.taskType]} result for job ${ev.jobId}`;
  if (!w) {
    ctx.ignore('unregistered_link', ev.linkId, detail, blobs);
    return;
  }
  w.lastSeen = ctx.now;
  const job = ctx.jobs.byId.get(ev.jobId);
  if (!job) {
    ctx.ignore('unknown_job', ev.linkId, `${detail} from worker ${w.id}`, blobs);
    return;
  }
  if (isTerminal(job)) {
    lateResponse(ctx, w, job, ev);
    ctx.ignore('terminal_job', ev.linkId, `${detail} from worker ${w.id}`, blobs);
    return;
  }
  if (w.job !== job) {
    const reason = job.workers.includes(w.id) ? 'not_computing' : 'not_member';
    ctx.ignore(reason, ev.linkId, `${detail} from worker ${w.id}`, blobs);
    return;
  }
  const expected = job.owed.get(w.id);
  if (expected === undefined) {
    ctx.ignore('duplicate', ev.linkId, `${detail} from worker ${w.id}`, blobs);
    return;
  }
  if (expected !== ev.taskType) {
    const reason = ev.taskType === TASK.AGGREGATE && job.prove?.aggregator !== w.id ? 'not_aggregator' : 'wrong_task';
    ctx.ignore(reason, ev.linkId, `${detail} from worker ${w.id}, expected ${TASK_NAMES[expected]}`, blobs);
    return;
  }
  job.owed.delete(w.id);
  if (!ev.success) {
    ctx.releaseBlobs(blobs);
    const reason = `Task execution failed on worker ${w.id}: ${ev.errorMessage || '(no detail)'}`;
    failJob(ctx, job, { kind: 'execution', reason }, ev.inRecovery ? { recovering: w } : {});
    return;
  }
  const r = ev.result;
  if (r.kind === 'invalid') {
    ctx.releaseBlobs(blobs);
    failJob(ctx, job, {
      kind: 'execution',
      reason: `Invalid ${TASK_NAMES[expected]} result from worker ${w.id}: ${r.reason}`,
    });
    return;
  }
  if (r.kind !== RESULT_OF[expected]) {
    ctx.releaseBlobs(blobs);
    failJob(ctx, job, {
      kind: 'execution',
      reason: `Worker ${w.id} returned ${r.kind === 'none' ? 'no result' : `a ${r.kind} result`} for its ${TASK_NAMES[expected]} task`,
    });
    return;
  }
  switch (r.kind) {
    case 'challenges':
      onContribution(ctx, job, w, r);
      return;
    case 'proofs':
      onProofs(ctx, job, w, r);
      return;
    case 'finalProof':
      onFinalProof(ctx, job, w, r);
      return;
    case 'execution':
      onExecution(ctx, job, w, r);
      return;
    case 'wrap':
      job.blobs.add(r.proofBlobId);
      completeJob(ctx, job, { kind: 'wrap', proofBlobId: r.proofBlobId, startedAt: job.startedAt ?? ctx.now });
      return;
  }
}

function onContribution(
  ctx: Ctx,
  job: JobRec,
  w: WorkerRec,
  r: Extract<TaskResultSummary, { kind: 'challenges' }>,
): void {
  const p = job.prove;
  if (!p) return;
  if (r.challengesBlobIds.length === 0) {
    ctx.releaseBlobs(blobsOfTaskResult(r));
    failJob(ctx, job, { kind: 'execution', reason: `Worker ${w.id} returned an empty challenges list` });
    return;
  }
  for (const b of blobsOfTaskResult(r)) job.blobs.add(b);
  p.contributions.set(w.id, r);
  if (p.contributions.size < job.workers.length) return;

  const rank0 = job.workers[0];
  const first = p.contributions.get(rank0);
  for (let rank = 1; rank < job.workers.length; rank++) {
    const id = job.workers[rank];
    if (p.contributions.get(id)?.witnessKey !== first?.witnessKey) {
      failJob(ctx, job, {
        kind: 'execution',
        reason: `Witness info mismatch: worker ${id} (rank ${rank}) reported publics/proof_values that differ from worker ${rank0} (rank 0)`,
      });
      return;
    }
  }
  finishPhase(ctx, job, 1, job.phaseStartedAt);
  enterPhase(ctx, job, 2);
  p.proveStartedAt = ctx.now;
  const challengesBlobIds = job.workers.flatMap((id) => p.contributions.get(id)?.challengesBlobIds ?? []);
  const targets: { linkId: number; workerId: string }[] = [];
  for (const id of job.workers) {
    job.owed.set(id, TASK.PROVE);
    const m = ctx.pool.byId.get(id);
    if (m?.link) targets.push({ linkId: m.link.id, workerId: id });
    else job.unsent.add(id);
  }
  ctx.emit({ type: 'dispatchProve', jobId: job.id, targets, challengesBlobIds });
  setJobTimer(ctx, job);
  ctx.log('debug', 'prove phase started', { job_id: job.id, phase: 'prove' });
}

function sendAggregate(ctx: Ctx, job: JobRec, step: AggStep): void {
  const p = job.prove;
  if (!p) return;
  // the slot is taken before anything is sent, so two results can never both dispatch
  // (docs/decisions.md: Aggregation race)
  p.inFlight = step;
  job.owed.set(step.workerId, TASK.AGGREGATE);
  const w = ctx.pool.byId.get(step.workerId);
  if (w) ctx.sync(w); // a final PLONK step exempts the aggregator from the silence check
  if (w?.link) ctx.emit({ type: 'dispatchAggregate', task: { ...step, linkId: w.link.id } });
  else job.unsent.add(step.workerId);
}

function queueAggregate(ctx: Ctx, job: JobRec, proofsBlobId: BlobId | undefined, last: boolean): void {
  const p = job.prove;
  if (!p || p.aggregator === undefined || job.spec.kind !== 'prove') return;
  const step: AggStep = {
    jobId: job.id,
    workerId: p.aggregator,
    last,
    proofType: (job.spec.proofKind - 1) as AggStep['proofType'],
  };
  if (proofsBlobId !== undefined) step.proofsBlobId = proofsBlobId;
  if (p.inFlight) p.aggQueue.push(step);
  else sendAggregate(ctx, job, step);
}

function onProofs(ctx: Ctx, job: JobRec, w: WorkerRec, r: Extract<TaskResultSummary, { kind: 'proofs' }>): void {
  const p = job.prove;
  if (!p) return;
  p.proveResults++;
  const allIn = p.proveResults === job.workers.length;
  if (allIn) {
    // from here on the phase-3 timeout applies (docs/decisions.md: Early phase-3 timer)
    p.allProofsAt = ctx.now;
    finishPhase(ctx, job, 2, p.proveStartedAt);
  }
  if (p.aggregator === undefined) {
    p.aggregator = w.id;
    enterPhase(ctx, job, 3);
    p.aggregateStartedAt = ctx.now;
    // the aggregator's own partial proofs stay on the worker (agg_proofs is empty for it)
    ctx.releaseBlobs([r.proofsBlobId]);
    ctx.log('debug', `worker ${w.id} is the aggregator`, { job_id: job.id, worker_id: w.id, phase: 'aggregate' });
    queueAggregate(ctx, job, undefined, allIn);
  } else {
    job.blobs.add(r.proofsBlobId);
    releaseWorker(ctx, w);
    queueAggregate(ctx, job, r.proofsBlobId, allIn);
  }
  setJobTimer(ctx, job);
}

function onFinalProof(
  ctx: Ctx,
  job: JobRec,
  w: WorkerRec,
  r: Extract<TaskResultSummary, { kind: 'finalProof' }>,
): void {
  const p = job.prove;
  const step = p?.inFlight;
  if (!p || !step || job.spec.kind !== 'prove') return;
  if (r.proofBlobId === undefined && step.last && p.replayedSteps > 0) {
    // The first copy of a replayed step answered as well: non-final steps answer empty, so this is
    // the extra answer, not the final step's (which carries the proof).
    p.replayedSteps--;
    job.owed.set(w.id, TASK.AGGREGATE); // the last step is still owed
    ctx.ignore('replayed_aggregate_duplicate', w.link?.id ?? -1, `second answer of a replayed AGGREGATE from ${w.id} for job ${job.id}`);
    return;
  }
  p.inFlight = undefined;
  if (step.proofsBlobId !== undefined && job.blobs.delete(step.proofsBlobId)) {
    // consumed by the aggregator: nothing will send it again
    ctx.releaseBlobs([step.proofsBlobId]);
  }
  if (r.proofBlobId === undefined) {
    if (step.last) {
      failJob(ctx, job, {
        kind: 'execution',
        reason: `Aggregator ${w.id} returned an empty proof for the final aggregation step`,
      });
      return;
    }
    const next = p.aggQueue.shift();
    if (next) sendAggregate(ctx, job, next);
    return;
  }
  if (!step.last) {
    ctx.releaseBlobs([r.proofBlobId]);
    failJob(ctx, job, {
      kind: 'execution',
      reason: `Aggregator ${w.id} returned a final proof before the last aggregation step`,
    });
    return;
  }
  job.blobs.add(r.proofBlobId);
  finishPhase(ctx, job, 3, p.aggregateStartedAt);
  const key = programKey(job.spec.hashId, job.spec.hints.kind !== 'none');
  const vkHex = ctx.registry.get(key)?.vkHex ?? w.programs.get(key) ?? '';
  const publicsBlobId = p.contributions.get(job.workers[0])?.publicsBlobId;
  const result: Extract<JobResultSummary, { kind: 'prove' }> = {
    kind: 'prove',
    proofBlobId: r.proofBlobId,
    executedSteps: r.executedSteps,
    vkHex,
    startedAt: job.startedAt ?? ctx.now,
  };
  if (publicsBlobId !== undefined) result.publicsBlobId = publicsBlobId;
  completeJob(ctx, job, result);
}

function onExecution(
  ctx: Ctx,
  job: JobRec,
  w: WorkerRec,
  r: Extract<TaskResultSummary, { kind: 'execution' }>,
): void {
  const e = job.exec;
  if (!e) return;
  if (r.publicsBlobId !== undefined) job.blobs.add(r.publicsBlobId);
  e.results.set(w.id, r);
  if (e.results.size < job.workers.length) return;
  finishPhase(ctx, job, 1, job.phaseStartedAt);
  const rank0 = e.results.get(job.workers[0]);
  const result: Extract<JobResultSummary, { kind: 'execute' }> = {
    kind: 'execute',
    executedSteps: rank0?.executedSteps ?? '0',
    startedAt: job.startedAt ?? ctx.now,
  };
  if (rank0?.publicsBlobId !== undefined) result.publicsBlobId = rank0.publicsBlobId;
  completeJob(ctx, job, result);
}

export function onWorkerError(ctx: Ctx, ev: EventOf<'workerError'>): void {
  const w = ctx.pool.workerOfLink(ev.linkId);
  if (!w) {
    ctx.ignore('unregistered_link', ev.linkId, `worker error for job ${ev.jobId}`);
    return;
  }
  w.lastSeen = ctx.now;
  const job = ctx.jobs.byId.get(ev.jobId);
  let reason: string | undefined;
  if (!job) reason = 'unknown_job';
  else if (isTerminal(job)) reason = 'terminal_job';
  else if (w.job !== job) reason = job.workers.includes(w.id) ? 'not_computing' : 'not_member';
  if (!job || reason !== undefined) {
    ctx.ignore(reason ?? 'unknown_job', ev.linkId, `worker error from ${w.id} for job ${ev.jobId}: ${ev.message}`);
    return;
  }
  failJob(ctx, job, { kind: 'execution', reason: ev.message || `Worker ${w.id} reported an error without a message` });
}

/** The in-flight AGGREGATE task, re-addressed to a KEEP_COMPUTING aggregator's new stream. */
export function replayAggregateFor(job: JobRec, w: WorkerRec): AggregateTask | undefined {
  const p = job.prove;
  if (!p || p.aggregator !== w.id || !p.inFlight || !w.link) return undefined;
  // Unless it never reached the worker, the first copy is answered too.
  if (!job.unsent.delete(w.id)) p.replayedSteps++;
  return { ...p.inFlight, linkId: w.link.id };
}

/** After a KEEP_COMPUTING reconnect: send a task the worker missed, and re-point the relays. */
export function resumeJobOn(ctx: Ctx, job: JobRec, w: WorkerRec): void {
  if (w.link && job.unsent.delete(w.id) && job.owed.get(w.id) === TASK.PROVE && job.prove) {
    const p = job.prove;
    ctx.emit({
      type: 'dispatchProve',
      jobId: job.id,
      targets: [{ linkId: w.link.id, workerId: w.id }],
      challengesBlobIds: job.workers.flatMap((id) => p.contributions.get(id)?.challengesBlobIds ?? []),
    });
  }
  ctx.emit({ type: 'jobLinks', jobId: job.id, linkIds: linksOnJob(ctx, job) });
}
