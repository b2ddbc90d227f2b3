/**
 * The main thread's job table: a mirror of job states built from the scheduler's `jobEvent`
 * effects (decisions D4). The scheduler decides; this table remembers what the client sees — the
 * recorded history with original timestamps, the current status, the result built once — and who
 * is waiting for it (WaitJobResult waiters, WatchJob watchers).
 */
import type { BlobId, EpochMs, JobFailure, JobKind, JobPhase } from '../../shared/scheduler/types';
import { failureWire, timestampOf, type BuiltResult, type JobFailureWire, type JobKindResponseWire, type RequestMeta, type TimestampWire } from './results';
import type { JobRelay } from '../data/relays';

// ---------------------------------------------------------------------------------------------
// UUIDs as the Rust `uuid` crate parses them (client-api.md §2.0)
// ---------------------------------------------------------------------------------------------

export type UuidParse = { ok: true; uuid: string } | { ok: false; detail: string };

const HYPHENATED = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const SIMPLE = /^[0-9a-fA-F]{32}$/;
const URN_PREFIX = 'urn:uuid:';

/**
 * Accepts hyphenated, 32-hex simple, `urn:uuid:` and `{braced}` forms in any case; returns the
 * canonical lowercase hyphenated form, or the parser's explanation (worded as the uuid crate's).
 */
export function parseUuid(input: string): UuidParse {
  let body = input;
  let offset = 0;
  let simpleAllowed = true;
  if (body.length >= 2 && body.startsWith('{') && body.endsWith('}')) {
    body = body.slice(1, -1);
    offset = 1;
    simpleAllowed = false;
  } else if (body.slice(0, URN_PREFIX.length).toLowerCase() === URN_PREFIX) {
    body = body.slice(URN_PREFIX.length);
    offset = URN_PREFIX.length;
    simpleAllowed = false;
  }
  if (HYPHENATED.test(body)) return { ok: true, uuid: body.toLowerCase() };
  if (simpleAllowed && SIMPLE.test(body)) {
    const s = body.toLowerCase();
    return { ok: true, uuid: `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20)}` };
  }
  return { ok: false, detail: uuidErrorDetail(input, body, offset, simpleAllowed) };
}

function uuidErrorDetail(input: string, body: string, offset: number, simple: boolean): string {
  const bytes = Buffer.from(body, 'utf8');
  const hyphens: number[] = [];
  let index = 0;
  for (const ch of body) {
    if (ch === '-') hyphens.push(index);
    else if (!/^[0-9a-fA-F]$/.test(ch)) {
      return `invalid character: expected an optional prefix of \`urn:uuid:\` followed by [0-9a-fA-F-], found \`${ch}\` at ${index + offset + 1}`;
    }
    index += Buffer.byteLength(ch, 'utf8');
  }
  if (hyphens.length === 0 && simple) {
    return `invalid length: expected length 32 for simple format, found ${Buffer.byteLength(input, 'utf8')}`;
  }
  if (hyphens.length !== 4) return `invalid group count: expected 5, found ${hyphens.length + 1}`;
  const starts = [0, 9, 14, 19, 24];
  const expected = [8, 4, 4, 4, 12];
  for (let g = 0; g < 4; g++) {
    if (hyphens[g] !== starts[g + 1] - 1) {
      return `invalid group length in group ${g}: expected ${expected[g]}, found ${hyphens[g] - starts[g]}`;
    }
  }
  return `invalid group length in group 4: expected 12, found ${bytes.length - starts[4]}`;
}

// ---------------------------------------------------------------------------------------------
// Client-visible events
// ---------------------------------------------------------------------------------------------

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

export type JobState = 'queued' | 'running' | 'completed' | 'failed' | 'cancelled';

export type JobStatusWire =
  | { queued: Record<string, never> }
  | { running: { phase?: number } }
  | { completed: Record<string, never> }
  | { failed: { failure: JobFailureWire } }
  | { cancelled: Record<string, never> };

/** How a job takes its input or hints (Push RPCs are accepted only for `grpc`). */
export type DataMode = { kind: 'none' } | { kind: 'inline'; blobId: BlobId } | { kind: 'grpc'; uri: string } | { kind: 'local'; uri: string };

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
  state: JobState = 'queued';
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

export class JobTable {
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

// ---------------------------------------------------------------------------------------------
// WatchJob streams
// ---------------------------------------------------------------------------------------------

/** The part of a grpc-js server stream a watcher writes to. */
export interface WatchSink {
  /** `done` runs once the message has been handed to the transport. */
  write(event: JobEventWire, done: () => void): void;
  /** Ends the stream with status OK. */
  end(): void;
}

/** Events a stalled watcher keeps before it starts dropping (intermediate progress first). */
export const WATCH_BUFFER_EVENTS = 4;
/** Writes handed to grpc-js and not yet flushed: beyond this the watcher buffers itself. */
export const WATCH_MAX_IN_FLIGHT = 2;

/**
 * One WatchJob subscriber. It writes events in order, at most `WATCH_MAX_IN_FLIGHT` unflushed at a
 * time (grpc-js flushes only as the client reads, so this is the client's pace); behind that it
 * keeps a small buffer that sheds intermediate progress events first, then the oldest non-terminal
 * ones. The terminal event is never dropped; the stream ends right after it. Nothing here ever
 * waits on the scheduler or on other watchers.
 */
export class JobWatcher implements JobObserver {
  private readonly pending: RecordedEvent[] = [];
  private inFlight = 0;
  private finished = false;
  dropped = 0;

  constructor(
    private readonly sink: WatchSink,
    private readonly onFinished: () => void,
    private readonly bufferLimit = WATCH_BUFFER_EVENTS,
    private readonly maxInFlight = WATCH_MAX_IN_FLIGHT,
  ) {}

  get done(): boolean {
    return this.finished;
  }

  push(event: RecordedEvent): void {
    if (this.finished) return;
    this.pending.push(event);
    this.shed();
    this.flush();
  }

  /** The client went away (or the service closes): stop without writing more. */
  cancel(): void {
    if (this.finished) return;
    this.finished = true;
    this.pending.length = 0;
    this.onFinished();
  }

  private shed(): void {
    while (this.pending.length > this.bufferLimit) {
      let i = this.pending.findIndex((e) => e.kind === 'progress');
      if (i < 0) i = this.pending.findIndex((e) => !e.terminal);
      if (i < 0) return;
      this.pending.splice(i, 1);
      this.dropped++;
    }
  }

  private flush(): void {
    while (!this.finished && this.inFlight < this.maxInFlight && this.pending.length > 0) {
      const e = this.pending.shift() as RecordedEvent;
      this.inFlight++;
      this.sink.write(e.wire, () => {
        this.inFlight--;
        this.flush();
      });
      if (e.terminal) {
        this.finished = true;
        this.pending.length = 0;
        this.sink.end();
        this.onFinished();
      }
    }
  }
}
