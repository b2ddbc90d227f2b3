/**
 * Per-job relays of streamed inputs and hints to the job's workers (docs/decisions.md, Data plane).
 * One relay per job and kind; fed by PushJobInput / PushJobHintsInput or by a local source.
 *
 * Memory: a message is produced only when every target link has room, and it is encoded once and the
 * same bytes are queued on every link, so at most one message per link beyond the links' own bound is
 * ever held, and a slow worker pauses the producer (the client's push stream) rather than growing a
 * queue. Pushes are processed strictly in call order; a caller that does not await its pushes holds
 * its own chunks.
 *
 * Decisions beyond what docs/decisions.md (Data plane) states:
 * - Target links that are unknown or closed are skipped; when none is live the message is dropped:
 *   the scheduler owns the worker's disconnect, and the old link's queue was dropped anyway.
 * - Input: `end()` sends nothing (the end is inside the data) and later pushes are still accepted,
 *   because upstream lets a client append with a second PushJobInput stream.
 * - Hints: a push after `end()` is rejected without failing the job (it is a second stream, not bad
 *   data); data after `CTRL_END` before `end()` is a framing violation and fails the job.
 * - Hints DATA messages are never split: a worker may rely on batch boundaries (a large hint repeats
 *   its header at each transport chunk). So a batch must fit in one `stream_data` message to a
 *   worker: a bigger one fails the job (`maxHintsBatchBytes`, docs/operations.md, Limits).
 * - After `abort()` (job terminal) pending and later pushes reject with a `RelayError`; `onFailure` is
 *   not called because the job is already over.
 */
import type { LinkId } from '../../shared/scheduler/types';
import { HintsFramingError, HintsFramingValidator, type HintsBatchInfo } from './hints-framing';
import type { OutboundMessage } from './outbound';

/** The part of a worker link a relay writes to (WorkerLink satisfies it). */
export interface RelayTarget {
  send(msg: OutboundMessage): void;
  hasRoom(): boolean;
  waitForRoom(): Promise<void>;
  readonly closed: boolean;
}

export class RelayError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'RelayError';
  }
}

export type RelayKind = 'input' | 'hints';

export interface JobRelayOptions {
  jobId: string;
  kind: RelayKind;
  /** Encodes a `CoordinatorMessage` object (the cluster service's `encodeMessage`). */
  encode(m: Record<string, unknown>): Buffer;
  target(linkId: LinkId): RelayTarget | undefined;
  /** Invalid data or a source error: the job must fail with this reason. Called at most once. */
  onFailure(reason: string): void;
  /** Largest hints batch whose `stream_data` message fits what the worker port may send. */
  maxHintsBatchBytes?: number;
  /** A batch was over `maxHintsBatchBytes` (for the limits metric). */
  onBatchTooLarge?(): void;
}

/** Largest `input_stream_data` payload: one huge message would stall the event loop while encoding and writing. */
export const MAX_INPUT_MESSAGE_BYTES = 4 << 20;

const STREAM_TYPE_START = 0;
const STREAM_TYPE_DATA = 1;
const STREAM_TYPE_END = 2;

const EMPTY = Buffer.alloc(0);

export class JobRelay {
  private links: LinkId[] | undefined;
  private readonly validator: HintsFramingValidator | undefined;
  private seq = 0;
  private endCalled = false;
  private stopped: RelayError | undefined;
  private tail: Promise<void> = Promise.resolve();
  private wakers: Array<() => void> = [];

  constructor(private readonly opts: JobRelayOptions) {
    this.validator = opts.kind === 'hints' ? new HintsFramingValidator() : undefined;
  }

  get ended(): boolean {
    return this.endCalled;
  }

  /** The links carrying the job now (each `jobLinks` effect). Data is held until the first call. */
  setLinks(linkIds: LinkId[]): void {
    this.links = [...new Set(linkIds)];
    this.wake();
  }

  push(chunk: Buffer): Promise<void> {
    if (this.stopped) return Promise.reject(this.stopped);
    if (this.validator && this.endCalled) {
      return Promise.reject(new RelayError(`hints stream of job ${this.opts.jobId} already ended`));
    }
    const p = this.tail.then(() => (this.validator ? this.pushHints(chunk) : this.pushInput(chunk)));
    this.tail = p.catch(() => undefined);
    return p;
  }

  end(): void {
    if (this.endCalled) return;
    this.endCalled = true;
    const validator = this.validator;
    if (!validator) return;
    // After the pushes already accepted, so a CTRL_END still in flight counts.
    this.tail = this.tail.then(() => {
      if (this.stopped) return;
      try {
        validator.finish();
      } catch (e) {
        this.fail(`invalid hints stream: ${e instanceof HintsFramingError ? e.reason : String(e)}`);
      }
    });
  }

  /** Fails the job with `reason` (source errors); pending pushes reject. No-op once stopped. */
  fail(reason: string): void {
    this.failWith(reason);
  }

  /** The job is terminal: drop everything; pending pushes reject promptly. */
  abort(): void {
    if (this.stopped) return;
    this.stopped = new RelayError(`job ${this.opts.jobId} is terminal: ${this.opts.kind} relay stopped`);
    this.wake();
  }

  private async pushInput(chunk: Buffer): Promise<void> {
    this.throwIfStopped();
    const len = chunk.length;
    if (len === 0) return;
    if (len % 8 !== 0) throw this.failWith(`invalid input stream: chunk length ${len} is not a multiple of 8`);
    const jobId = this.opts.jobId;
    for (let off = 0; off < len; off += MAX_INPUT_MESSAGE_BYTES) {
      const payload = off === 0 && len <= MAX_INPUT_MESSAGE_BYTES ? chunk : chunk.subarray(off, off + MAX_INPUT_MESSAGE_BYTES);
      await this.deliver(() => this.opts.encode({ input_stream_data: { job_id: jobId, payload } }));
    }
  }

  private async pushHints(chunk: Buffer): Promise<void> {
    this.throwIfStopped();
    if (chunk.length === 0) return;
    const max = this.opts.maxHintsBatchBytes;
    if (max !== undefined && chunk.length > max) {
      this.opts.onBatchTooLarge?.();
      throw this.failWith(
        `invalid hints stream: a batch of ${chunk.length} bytes is over the limit of ${max} bytes (one batch is relayed to workers as one message; send smaller batches)`,
      );
    }
    const validator = this.validator as HintsFramingValidator;
    let info: HintsBatchInfo;
    try {
      info = validator.feed(chunk);
    } catch (e) {
      if (!(e instanceof HintsFramingError)) throw e;
      throw this.failWith(`invalid hints stream: ${e.reason}`);
    }
    if (info.hasStart) await this.deliverStream(STREAM_TYPE_START, EMPTY);
    await this.deliverStream(STREAM_TYPE_DATA, chunk);
    if (info.hasEnd) await this.deliverStream(STREAM_TYPE_END, EMPTY);
  }

  private deliverStream(streamType: number, payload: Buffer): Promise<void> {
    // The number is taken when the message is produced, so it stays dense whatever links come and go.
    const sequence_number = this.seq++;
    const job_id = this.opts.jobId;
    return this.deliver(() =>
      this.opts.encode({ stream_data: { job_id, stream_type: streamType, payload: { sequence_number, payload } } }),
    );
  }

  /** Waits until the job has links and every live one has room, then queues one encoding on all of them. */
  private async deliver(encode: () => Buffer): Promise<void> {
    for (;;) {
      this.throwIfStopped();
      const linkIds = this.links;
      if (linkIds === undefined) {
        await this.nextWake();
        continue;
      }
      const targets: RelayTarget[] = [];
      let blocked: RelayTarget | undefined;
      for (const id of linkIds) {
        const t = this.opts.target(id);
        if (!t || t.closed) continue;
        targets.push(t);
        if (!blocked && !t.hasRoom()) blocked = t;
      }
      if (blocked) {
        await this.roomOrWake(blocked);
        continue;
      }
      if (targets.length === 0) return;
      const bytes = encode();
      const msg: OutboundMessage = {
        bytes: bytes.length,
        kind: this.opts.kind,
        encode: () => bytes,
        refuse: (n, limit) => this.failWith(`${this.opts.kind} message of ${n} bytes is over the worker message limit of ${limit} bytes`),
      };
      for (const t of targets) t.send(msg);
      return;
    }
  }

  /** The first failure wins; the returned error is the one every pending and later push rejects with. */
  private failWith(reason: string): RelayError {
    if (this.stopped) return this.stopped;
    const err = new RelayError(reason);
    this.stopped = err;
    this.wake();
    this.opts.onFailure(reason);
    return err;
  }

  private throwIfStopped(): void {
    if (this.stopped) throw this.stopped;
  }

  /** Resolves on the next link change, failure or abort. */
  private nextWake(): Promise<void> {
    return new Promise((resolve) => this.wakers.push(resolve));
  }

  /**
   * Room on `target`, or a link change / stop. The waker is removed when room comes first, so a long
   * stream that waits on every chunk does not pile up stale wakers.
   */
  private roomOrWake(target: RelayTarget): Promise<void> {
    return new Promise((resolve) => {
      let done = false;
      const finish = (): void => {
        if (done) return;
        done = true;
        const i = this.wakers.indexOf(finish);
        if (i >= 0) this.wakers.splice(i, 1);
        resolve();
      };
      this.wakers.push(finish);
      target.waitForRoom().then(finish, finish);
    });
  }

  private wake(): void {
    const ready = this.wakers;
    this.wakers = [];
    for (const w of ready) w();
  }
}
