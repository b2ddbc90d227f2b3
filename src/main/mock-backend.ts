/**
 * `[backend] mode = "mock"` (decisions D10): jobs run without workers on upstream's mock timings
 * (client-api.md §2.8, §4.10) with synthetic results. It stands in for the scheduler, so the client
 * API, watchers, metrics and retention behave exactly as in real mode.
 */
import type { BlobStore } from './blob-store';
import type { EffectHandler, SchedulerHost } from './scheduler-host';
import type { JobEventBody, JobKind, JobSpec, SchedulerEvent } from '../shared/scheduler-protocol';
import type { LoopStats } from './metrics';

/** Upstream mock timeline, milliseconds after submission. */
export const MOCK_TIMINGS = {
  started: 20,
  contributions: 60,
  prove: 100,
  completed: 2_020,
  proveCompleted: 2_100,
  retention: 300_000,
} as const;

interface MockJob {
  kind: JobKind;
  spec: JobSpec;
  timers: NodeJS.Timeout[];
  terminal: boolean;
  startedAt?: number;
}

export class MockSchedulerHost implements SchedulerHost {
  private readonly jobs = new Map<string, MockJob>();
  private readonly evictions = new Set<NodeJS.Timeout>();

  constructor(private readonly blobs: BlobStore, private readonly emit: EffectHandler) {}

  post(event: SchedulerEvent): void {
    // Asynchronous like the real host, so callers never see effects re-entrantly.
    setImmediate(() => this.handle(event));
  }

  async loopStats(): Promise<LoopStats | undefined> {
    return undefined;
  }

  async close(): Promise<void> {
    for (const job of this.jobs.values()) job.timers.forEach(clearTimeout);
    for (const t of this.evictions) clearTimeout(t);
    this.evictions.clear();
  }

  private handle(event: SchedulerEvent): void {
    switch (event.type) {
      case 'submitJob':
        return this.submit(event.requestId, event.jobId, event.spec);
      case 'cancelJob': {
        const job = this.jobs.get(event.jobId);
        const cancelled = job !== undefined && !job.terminal;
        if (job && cancelled) this.finish(event.jobId, job, { kind: 'cancelled' });
        this.emit([{ type: 'cancelResult', requestId: event.requestId, jobId: event.jobId, found: job !== undefined, cancelled }]);
        return;
      }
      case 'failJob': {
        const job = this.jobs.get(event.jobId);
        if (job && !job.terminal) this.finish(event.jobId, job, { kind: 'failed', failure: event.failure });
        return;
      }
      case 'abandonAll':
        for (const [id, job] of this.jobs) {
          if (!job.terminal) {
            this.finish(id, job, { kind: 'failed', failure: { kind: 'internal', traceId: event.traceId, reason: 'coordinator shutting down' } });
          }
        }
        return;
      default:
        return; // no workers in mock mode
    }
  }

  private submit(requestId: number, jobId: string, spec: JobSpec): void {
    const job: MockJob = { kind: spec.kind, spec, timers: [], terminal: false };
    this.jobs.set(jobId, job);
    this.emit([
      { type: 'submitResult', requestId, jobId, ok: true },
      { type: 'jobEvent', jobId, jobKind: spec.kind, at: Date.now(), event: { kind: 'queued' } },
    ]);
    const at = (ms: number, fn: () => void): void => {
      job.timers.push(setTimeout(() => !job.terminal && fn(), ms));
    };
    at(MOCK_TIMINGS.started, () => {
      job.startedAt = Date.now();
      this.event(jobId, job, { kind: 'started' });
    });
    if (spec.kind === 'prove') {
      at(MOCK_TIMINGS.contributions, () => this.event(jobId, job, { kind: 'progress', phase: 1 }));
      at(MOCK_TIMINGS.prove, () => this.event(jobId, job, { kind: 'progress', phase: 2 }));
    }
    at(spec.kind === 'prove' ? MOCK_TIMINGS.proveCompleted : MOCK_TIMINGS.completed, () =>
      this.finish(jobId, job, { kind: 'completed', result: this.result(spec, job.startedAt ?? Date.now()) }),
    );
  }

  private result(spec: JobSpec, startedAt: number): Extract<JobEventBody, { kind: 'completed' }>['result'] {
    switch (spec.kind) {
      case 'setup':
        return { kind: 'setup', vkHex: '' };
      case 'prove':
        return {
          kind: 'prove',
          proofBlobId: this.blobs.put(Buffer.alloc(64, 0x01)),
          executedSteps: '0',
          vkHex: '00'.repeat(32),
          startedAt,
        };
      case 'execute':
        return { kind: 'execute', executedSteps: '0', startedAt };
      case 'wrap':
        return { kind: 'wrap', proofBlobId: spec.proofBlobId, startedAt };
    }
  }

  private event(jobId: string, job: MockJob, event: JobEventBody): void {
    this.emit([{ type: 'jobEvent', jobId, jobKind: job.kind, at: Date.now(), event }]);
  }

  private finish(jobId: string, job: MockJob, event: JobEventBody): void {
    job.terminal = true;
    job.timers.forEach(clearTimeout);
    job.timers = [];
    this.event(jobId, job, event);
    const evict = setTimeout(() => {
      this.evictions.delete(evict);
      this.jobs.delete(jobId);
      this.emit([{ type: 'jobsEvicted', jobIds: [jobId] }]);
    }, MOCK_TIMINGS.retention);
    evict.unref();
    this.evictions.add(evict);
  }
}
