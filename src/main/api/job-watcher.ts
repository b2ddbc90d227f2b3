/** One WatchJob subscriber's pacing: in order, bounded in flight, shedding progress first when the client is slow. */
import type { JobEventWire, JobObserver, RecordedEvent } from './job-mirror';

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
