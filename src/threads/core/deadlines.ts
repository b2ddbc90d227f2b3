/**
 * Every job has one deadline timer: the earliest of the limits that apply to it right now
 * (docs/decisions.md, Job states and events). It is recomputed on each transition, so a limit never
 * outlives the phase it belongs to and the timer fires at the deadline itself, not on a sweep.
 */
import type { JobFailure, JobPhase } from '../../shared/scheduler/types';
import type { Ctx } from './context';
import { isTerminal, type JobRec, type RetryReason } from './model';

function timeout(limitSeconds: number, phase?: JobPhase): JobFailure {
  return phase === undefined ? { kind: 'timeout', limitSeconds } : { kind: 'timeout', phase, limitSeconds };
}

/** The request's own timeout, in seconds with ms precision, as measured from submission. */
function requestLimitSeconds(job: JobRec, deadline: number): number {
  return Math.max(0, Math.round(deadline - job.submittedAt)) / 1000;
}

export function setJobTimer(ctx: Ctx, job: JobRec): void {
  ctx.timers.cancel(job.timer);
  job.timer = undefined;
  if (isTerminal(job)) return;
  let bestAt = Number.POSITIVE_INFINITY;
  let bestFailure: JobFailure | undefined;
  let bestRetry: RetryReason | undefined;
  /** A limit of the run itself (phase, execution, wrap): hitting it may be a stuck worker, so it is retried. */
  const consider = (startedAt: number, limitSeconds: number, phase?: JobPhase, retry?: RetryReason): void => {
    // 0 disables a limit (as upstream's phase timeouts)
    if (limitSeconds <= 0) return;
    const at = startedAt + limitSeconds * 1000;
    if (at < bestAt) {
      bestAt = at;
      bestFailure = timeout(limitSeconds, phase);
      bestRetry = retry;
    }
  };
  const cfg = ctx.cfg;
  const deadline = job.spec.kind === 'setup' ? undefined : job.spec.deadline;
  const considerDeadline = (phase?: JobPhase): void => {
    if (deadline === undefined || deadline >= bestAt) return;
    bestAt = deadline;
    bestFailure = timeout(requestLimitSeconds(job, deadline), phase);
    bestRetry = undefined;
  };
  const startedAt = job.startedAt ?? job.submittedAt;

  const run: RetryReason = 'phase_timeout';
  if (job.status === 'queued') {
    consider(job.queuedAt, cfg.queue_timeout_seconds);
    considerDeadline();
  } else if (job.kind === 'setup') {
    consider(startedAt, cfg.setup_timeout_seconds);
  } else if (job.kind === 'wrap') {
    consider(startedAt, cfg.wrap_timeout_seconds, undefined, run);
    considerDeadline();
  } else if (job.kind === 'execute') {
    consider(startedAt, cfg.execution_timeout_seconds, 1, run);
    considerDeadline(1);
  } else {
    const p = job.prove;
    if (job.phase === 1 || !p) consider(job.phaseStartedAt, cfg.phase1_timeout_seconds, 1, run);
    else if (p.allProofsAt === undefined) consider(p.proveStartedAt, cfg.phase2_timeout_seconds, 2, run);
    else consider(p.allProofsAt, cfg.phase3_timeout_seconds, 3, run);
    considerDeadline(job.phase);
  }
  if (bestFailure) job.timer = ctx.schedule(bestAt, { kind: 'jobDeadline', job, failure: bestFailure, retry: bestRetry });
}
