/**
 * The job table and its retention (docs/decisions.md, Job states and events): terminal jobs stay
 * `job_ttl_seconds` and at most `max_retained_jobs`, oldest evicted first. Termination order is time
 * order, so the retained set is a FIFO and both limits only ever look at its head.
 */
import type { InputSpec, JobSpec } from '../../shared/scheduler/types';
import type { JobRec } from './model';

/** Input a new attempt can get again: inline bytes stay in the blob store, files are read again. */
function replayableInput(input: InputSpec): boolean {
  return input.kind === 'none' || input.kind === 'inline' || (input.kind === 'local' && input.uri.startsWith('file://'));
}

export function newJobRec(id: string, spec: JobSpec, now: number): JobRec {
  return {
    id,
    kind: spec.kind,
    spec,
    status: 'queued',
    attempt: 1,
    failedAttempts: [],
    queuedAt: now,
    replayable: spec.kind === 'wrap' || (spec.kind !== 'setup' && replayableInput(spec.input) && replayableInput(spec.hints)),
    phase: undefined,
    submittedAt: now,
    startedAt: undefined,
    terminatedAt: undefined,
    workers: [],
    blobs: new Set(),
    timer: undefined,
    owed: new Map(),
    unsent: new Set(),
    phaseStartedAt: now,
    prove: undefined,
    exec: undefined,
    setup: undefined,
  };
}

export class JobTable {
  readonly byId = new Map<string, JobRec>();
  /** Terminal jobs in termination order. */
  private readonly retired = new Map<string, JobRec>();

  get retainedCount(): number {
    return this.retired.size;
  }

  add(job: JobRec): void {
    this.byId.set(job.id, job);
  }

  retire(job: JobRec): void {
    this.retired.set(job.id, job);
  }

  /** Termination time of the oldest retained job. */
  oldestTerminatedAt(): number | undefined {
    for (const job of this.retired.values()) return job.terminatedAt;
    return undefined;
  }

  evictOverCap(max: number, into: string[]): void {
    while (this.retired.size > max) this.evictOldest(into);
  }

  evictExpired(now: number, ttlMs: number, into: string[]): void {
    for (const job of this.retired.values()) {
      if ((job.terminatedAt ?? 0) + ttlMs > now) return;
      this.evictOldest(into);
    }
  }

  private evictOldest(into: string[]): void {
    for (const [id] of this.retired) {
      this.retired.delete(id);
      this.byId.delete(id);
      into.push(id);
      return;
    }
  }
}
