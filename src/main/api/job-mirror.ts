/**
 * The main thread's job table: a mirror of job states built from the scheduler's `jobEvent` effects
 * (docs/decisions.md, Job states and events). The scheduler decides; this table remembers what the
 * client sees — the recorded history with original timestamps, the current status, the result built
 * once — and who is waiting for it (WaitJobResult waiters, WatchJob watchers).
 */
import type { BlobId, EpochMs, JobFailure, JobKind, JobPhase, JobStatus } from '../../shared/scheduler/types';
import { failureWire, timestampOf, type BuiltResult, type JobFailureWire, type JobKindResponseWire, type RequestMeta, type TimestampWire } from './results';
import type { JobRelay } from '../data/relays';
import type { Spool } from '../state/job-files';

export type JobEventWire =
  | { queued: { job_id: string; timestamp: TimestampWire } }
  | { started: { job_id: string; timestamp: TimestampWire } }
  | { progress: { job_id: string; phase: number; timestamp: TimestampWire } }
  | { completed: { job_id: string; result: JobKindResponseWire; timestamp: TimestampWire } }
  | { failed: { job_id: string; failure: JobFailureWire; timestamp: TimestampWire } }
  | { cancelled: { job_id: string; timestamp: TimestampWire } };

export type RecordedKind = 'queued' | 'started' | 'progress' | 'completed' | 'failed' | 'cancelled';

export interface RecordedEvent {
  kind: RecordedKind;
  at: EpochMs;
  phase?: JobPhase;
  terminal: boolean;
  wire: JobEventWire;
}

export type JobStatusWire =
  | { queued: Record<string, never> }
  | { running: { phase?: number } }
  | { completed: Record<string, never> }
  | { failed: { failure: JobFailureWire } }
  | { cancelled: Record<string, never> };

/** How a job takes its input or hints (Push RPCs are accepted only for `grpc`). */
export type DataMode = { kind: 'none' } | { kind: 'inline'; blobId: BlobId } | { kind: 'grpc'; uri: string } | { kind: 'local'; uri: string };

/** A pushed stream held whole on disk (a file of the state store), so it can be replayed. */
export interface SpooledStream {
  file: string;
  bytes: number;
}

/** A local source as validated at JobRequest. */
export interface LocalSourceRef {
  path: string;
  source: 'file' | 'unix';
}

/** Receives a job's recorded events in order (WatchJob streams). */
export interface JobObserver {
  push(event: RecordedEvent): void;
}

export class JobRecord {
  state: JobStatus = 'queued';
  phase: JobPhase | undefined;
  /** true once the scheduler accepted the submit */
  accepted = false;
  startedAt: EpochMs | undefined;
  terminalAt: EpochMs | undefined;
  readonly history: RecordedEvent[] = [];
  result: BuiltResult | undefined;
  failure: JobFailure | undefined;
  readonly observers = new Set<JobObserver>();
  /** Called once when the job becomes terminal (or the service closes). */
  readonly waiters = new Set<() => void>();
  /** Request blobs (inline input/hints, the proof to wrap); freed when the job ends. */
  readonly requestBlobIds: BlobId[] = [];
  relays: { input?: JobRelay; hints?: JobRelay } = {};
  /** Open Push streams, one per kind at a time. */
  readonly pushOpen = { input: false, hints: false };
  /**
   * Stops local (file/unix) sources when the job ends; created only for jobs that have one, since
   * aborting builds a DOMException and most jobs never read a local source.
   */
  sourceAbort: AbortController | undefined;
  /** The `file://` / `unix://` sources it reads, kept so a new attempt can read them again. */
  localSources: { input?: LocalSourceRef; hints?: LocalSourceRef } = {};
  /** The request's own deadline (proof_timeout and the like), if it set one. */
  deadline: EpochMs | undefined;
  /** The proof a wrap job wraps, as submitted (for the durable record). */
  wrapProof: Buffer | undefined;
  /** Attempt the job is on, and why the earlier ones failed (docs/decisions.md, Retries). */
  attempt = 1;
  readonly failedAttempts: string[] = [];
  /** Files of the state store that hold this job's bulk bytes, by what they hold. */
  readonly files: { input?: string; hints?: string; wrapProof?: string; proof?: string } = {};
  /** Pushed streams being copied to disk, and those held whole. */
  readonly spools: { input?: Spool; hints?: Spool } = {};
  readonly spooled: { input?: SpooledStream; hints?: SpooledStream } = {};
  /** A terminal event waiting for its record to be durable before clients see it. */
  pendingTerminal: Promise<void> | undefined;
  terminalEvent: { at: EpochMs; event: IncomingEvent } | undefined;
  /** Evicted while its terminal event was being written: dropped once that is done. */
  evictWhenRecorded = false;

  constructor(
    readonly id: string,
    readonly kind: JobKind,
    readonly meta: RequestMeta,
    readonly input: DataMode,
    readonly hints: DataMode,
    readonly createdAt: EpochMs,
  ) {}

  get terminal(): boolean {
    return this.state === 'completed' || this.state === 'failed' || this.state === 'cancelled';
  }

  get hashId(): string {
    return this.meta.hashId;
  }

  status(): JobStatusWire {
    switch (this.state) {
      case 'queued':
        return { queued: {} };
      case 'running':
        return { running: this.phase !== undefined ? { phase: this.phase } : {} };
      case 'completed':
        return { completed: {} };
      case 'failed':
        return { failed: { failure: failureWire(this.failure ?? { kind: 'execution', reason: 'unknown failure' }) } };
      case 'cancelled':
        return { cancelled: {} };
    }
  }

  /** upstream's Debug-style status name, for `Invalid job state` messages */
  statusName(): string {
    return { queued: 'Queued', running: 'Running', completed: 'Completed', failed: 'Failed', cancelled: 'Cancelled' }[this.state];
  }
}

/** What the scheduler reported, in the protocol's terms. */
export type IncomingEvent =
  | { kind: 'queued' }
  | { kind: 'started' }
  | { kind: 'progress'; phase: JobPhase }
  | { kind: 'completed'; result: BuiltResult }
  | { kind: 'failed'; failure: JobFailure }
  | { kind: 'cancelled' };

export class JobMirror {
  private readonly jobs = new Map<string, JobRecord>();

  add(record: JobRecord): void {
    this.jobs.set(record.id, record);
  }

  get(id: string): JobRecord | undefined {
    return this.jobs.get(id);
  }

  delete(id: string): JobRecord | undefined {
    const r = this.jobs.get(id);
    this.jobs.delete(id);
    return r;
  }

  values(): IterableIterator<JobRecord> {
    return this.jobs.values();
  }

  /** Accepted jobs that are queued or running (the drain waits for these). */
  activeCount(): number {
    let n = 0;
    for (const r of this.jobs.values()) if (r.accepted && !r.terminal) n++;
    return n;
  }

  /**
   * Records one scheduler event as the client will see it and returns what it added to the history.
   * The scheduler is the one source of job truth: every event it emits is recorded as it came (a
   * retried job is `queued` and `started` again), and nothing is invented here. The only rule of
   * its own is that nothing follows the terminal event.
   */
  apply(record: JobRecord, at: EpochMs, event: IncomingEvent): RecordedEvent[] {
    if (record.terminal) return [];
    let recorded: RecordedEvent;
    switch (event.kind) {
      case 'queued':
        record.state = 'queued';
        record.phase = undefined;
        record.startedAt = undefined;
        recorded = this.simple(record, 'queued', at);
        break;
      case 'started':
        record.state = 'running';
        record.startedAt = at;
        recorded = this.simple(record, 'started', at);
        break;
      case 'progress':
        record.phase = event.phase;
        recorded = this.progress(record, event.phase, at);
        break;
      case 'completed':
        record.state = 'completed';
        record.result = event.result;
        recorded = {
          kind: 'completed',
          at,
          terminal: true,
          wire: { completed: { job_id: record.id, result: event.result.response, timestamp: timestampOf(at) } },
        };
        break;
      case 'failed':
        record.state = 'failed';
        record.failure = event.failure;
        recorded = {
          kind: 'failed',
          at,
          terminal: true,
          wire: { failed: { job_id: record.id, failure: failureWire(event.failure), timestamp: timestampOf(at) } },
        };
        break;
      case 'cancelled':
        record.state = 'cancelled';
        recorded = this.simple(record, 'cancelled', at);
        break;
    }
    record.history.push(recorded);
    if (record.terminal) record.terminalAt = at;
    return [recorded];
  }

  private simple(record: JobRecord, kind: 'queued' | 'started' | 'cancelled', at: EpochMs): RecordedEvent {
    const body = { job_id: record.id, timestamp: timestampOf(at) };
    const wire: JobEventWire =
      kind === 'queued' ? { queued: body } : kind === 'started' ? { started: body } : { cancelled: body };
    return { kind, at, terminal: kind === 'cancelled', wire };
  }

  private progress(record: JobRecord, phase: JobPhase, at: EpochMs): RecordedEvent {
    return {
      kind: 'progress',
      at,
      phase,
      terminal: false,
      wire: { progress: { job_id: record.id, phase, timestamp: timestampOf(at) } },
    };
  }
}

