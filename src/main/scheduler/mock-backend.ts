/**
 * `[backend] mode = "mock"` (docs/decisions.md, Mock backend): jobs run without workers on
 * upstream's mock timings with synthetic results. It stands in for the scheduler, so the client
 * API, watchers, metrics and retention behave exactly as in real mode.
 */
import type { BlobStore } from '../data/blob-store';
import type { EffectHandler, SchedulerHost } from './host';
import type { JobEventBody, JobKind, JobPhase, JobSpec } from '../../shared/scheduler/types';
import type { SchedulerEvent } from '../../shared/scheduler/events';
import type { LoopStats } from '../observability/metrics';

/** A client-visible step of a mock job, this many milliseconds after submission. */
interface TimedStep {
  atMs: number;
  step: 'started' | 'completed' | { progress: JobPhase };
}

/**
 * Each kind's timeline after `queued` (upstream's mock: about 20 ms to `started`, about 2 s to
 * `completed`), written out as the client sees it: the events here are all there is.
 */
const TIMELINES: Readonly<Record<JobKind, readonly TimedStep[]>> = {
  setup: [
    { atMs: 20, step: 'started' },
    { atMs: 2_020, step: 'completed' },
  ],
  prove: [
    { atMs: 20, step: 'started' },
    { atMs: 20, step: { progress: 1 } },
    { atMs: 100, step: { progress: 2 } },
    { atMs: 2_100, step: 'completed' },
  ],
  execute: [
    { atMs: 20, step: 'started' },
    { atMs: 20, step: { progress: 1 } },
    { atMs: 2_020, step: 'completed' },
  ],
  wrap: [
    { atMs: 20, step: 'started' },
    { atMs: 2_020, step: 'completed' },
  ],
};

/** Terminal mock jobs are forgotten after this long, as upstream's mock. */
const MOCK_RETENTION_MS = 300_000;

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

  async internals(): Promise<undefined> {
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
    for (const { atMs, step } of TIMELINES[spec.kind]) {
      job.timers.push(
        setTimeout(() => {
          if (job.terminal) return;
          if (step === 'started') {
            job.startedAt = Date.now();
            this.event(jobId, job, { kind: 'started' });
          } else if (step === 'completed') {
            this.finish(jobId, job, { kind: 'completed', result: this.result(spec, job.startedAt ?? Date.now()) });
          } else {
            this.event(jobId, job, { kind: 'progress', phase: step.progress });
          }
        }, atMs),
      );
    }
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
    }, MOCK_RETENTION_MS);
    evict.unref();
    this.evictions.add(evict);
  }
}
