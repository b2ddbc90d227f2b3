/**
 * Terminal transitions: complete, fail (cluster-protocol.md §4.1 with decisions D3) and cancel (§4.2).
 * One procedure for all three, so every path releases workers, notifies them, reports per-worker
 * outcomes, frees blobs and emits exactly one terminal event.
 */
import type { BlobId, JobFailure, JobResultSummary } from '../../shared/scheduler-protocol';
import type { Ctx } from './context';
import { afterRelease } from './lifecycle';
import { isTerminal, type JobRec, type JobStatus, type WorkerRec } from './model';
import { endSetup } from './setup';

export interface AbortOptions {
  /** Parked for recovery: the recovering variant of §4.1. */
  recovering?: WorkerRec;
  /** The caller finishes this worker's own transition (disconnect, takeover). */
  handled?: WorkerRec;
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

export function failureText(failure: JobFailure): string {
  if (failure.kind !== 'timeout') return failure.reason;
  const phase = failure.phase === undefined ? '' : ` in phase ${failure.phase}`;
  return `timed out${phase} after ${failure.limitSeconds}s`;
}

function endJob(
  ctx: Ctx,
  job: JobRec,
  status: Exclude<JobStatus, 'queued' | 'running'>,
  opts: AbortOptions,
  cancelReason: string,
  keep: BlobId[],
): void {
  if (ctx.queue.delete(job)) ctx.queueDirty = true;
  job.status = status;
  job.terminatedAt = ctx.now;
  ctx.timers.cancel(job.timer);
  job.timer = undefined;

  // Only workers still Computing(this job) change state (bug B6).
  const notifies = status !== 'completed' && job.kind !== 'setup';
  const freed: WorkerRec[] = [];
  const notify: number[] = [];
  for (const id of job.workers) {
    const w = ctx.pool.byId.get(id);
    if (!w) continue;
    if (w.job === job) {
      w.job = undefined;
      if (status === 'cancelled' || w === opts.recovering) ctx.park(w);
      if (w !== opts.handled) freed.push(w);
      if (notifies && w.link) notify.push(w.link.id);
    } else if (notifies && !w.job && w.link) {
      // released earlier (a non-aggregator): it still holds the job context until told otherwise
      notify.push(w.link.id);
    }
  }
  job.owed.clear();
  job.unsent.clear();
  if (notify.length > 0) ctx.emit({ type: 'sendJobCancelled', jobId: job.id, reason: cancelReason, linkIds: notify });
  for (const w of freed) afterRelease(ctx, w);

  const outcome = status === 'completed' ? 'success' : status === 'failed' ? 'failure' : 'cancelled';
  for (const id of job.workers) ctx.emit({ type: 'workerJobOutcome', workerId: id, outcome });
  const kept = new Set(keep);
  ctx.releaseBlobs([...job.blobs].filter((b) => !kept.has(b)));
  job.blobs.clear();
  if (job.kind === 'setup') endSetup(ctx, job);
  ctx.jobs.retire(job);
}

export function completeJob(ctx: Ctx, job: JobRec, result: JobResultSummary): void {
  if (isTerminal(job)) return;
  endJob(ctx, job, 'completed', {}, '', blobsOfResult(result));
  ctx.jobEvent(job, { kind: 'completed', result });
  ctx.log('info', `${job.kind} job completed`, { job_id: job.id, kind: job.kind });
}

export function failJob(ctx: Ctx, job: JobRec, failure: JobFailure, opts: AbortOptions = {}): void {
  if (isTerminal(job)) return;
  const phase = job.phase;
  const text = failureText(failure);
  endJob(ctx, job, 'failed', opts, text, []);
  ctx.jobEvent(job, { kind: 'failed', failure });
  ctx.log('error', `${job.kind} job failed: ${text}`, { job_id: job.id, kind: job.kind, phase });
}

export function cancelJob(ctx: Ctx, job: JobRec): void {
  if (isTerminal(job)) return;
  const phase = job.phase;
  endJob(ctx, job, 'cancelled', {}, 'cancelled by client', []);
  ctx.jobEvent(job, { kind: 'cancelled' });
  ctx.log('info', `${job.kind} job cancelled by client`, { job_id: job.id, kind: job.kind, phase });
}
