/**
 * One worker stream's outbound side: a single ordered queue that honours grpc-js backpressure, a byte
 * bound that relay producers wait on, and a process-wide budget for large messages (grpc-js copies every
 * message it writes, so fan-out of big payloads must be paced — docs/architecture.md, Data plane).
 */
import type { ServerDuplexStream } from '@grpc/grpc-js';
import type { LinkId } from '../../shared/scheduler/types';
import type { BytesKind, OutboundMessage } from '../data/outbound';
import { WORKER_MAX_MESSAGE_BYTES } from '../../shared/wire-limits';
import { http2StreamOf, resetAfterStatus } from './stream-reset';


/** Messages at least this big count against the global egress budget. */
export const LARGE_MESSAGE_BYTES = 1 << 20;
/** Bytes handed to grpc-js per stream before we wait for its write callbacks. */
const WRITE_WINDOW_BYTES = 4 << 20;
/** Large-message bytes handed to grpc-js in one event-loop turn, across all streams (one message if bigger). */
export const TURN_LARGE_BYTES = 16 << 20;


type Waiter = () => void;

/** Process-wide bound on large-message bytes encoded but not yet written out. */
export class EgressBudget {
  private used = 0;
  private readonly waiters: Waiter[] = [];
  private turnBytes = 0;
  private turnResetScheduled = false;
  private readonly nextTurnWaiters: Waiter[] = [];

  constructor(
    private readonly limit: number,
    private readonly perTurnBytes = TURN_LARGE_BYTES,
  ) {}

  /**
   * grpc-js copies a message when it is written, and a large one is encoded just before: this bounds
   * what one turn of the event loop copies, so fanning out a 100 MiB ELF or a 64 MiB inline input lets
   * heartbeats and client calls through between messages instead of stalling the loop for seconds.
   */
  tryTakeTurn(bytes: number): boolean {
    if (this.turnBytes > 0 && this.turnBytes + bytes > this.perTurnBytes) return false;
    this.turnBytes += bytes;
    this.scheduleTurnReset();
    return true;
  }

  /** Runs `waiter` on the next turn, when `tryTakeTurn` starts from zero again. */
  onNextTurn(waiter: Waiter): void {
    this.nextTurnWaiters.push(waiter);
    this.scheduleTurnReset();
  }

  private scheduleTurnReset(): void {
    if (this.turnResetScheduled) return;
    this.turnResetScheduled = true;
    setImmediate(() => {
      this.turnResetScheduled = false;
      this.turnBytes = 0;
      const ready = this.nextTurnWaiters.splice(0);
      for (const w of ready) w();
    });
  }

  /** Reserve now if possible; a message bigger than the whole budget passes when nothing else is out. */
  tryAcquire(bytes: number): boolean {
    if (this.used > 0 && this.used + bytes > this.limit) return false;
    this.used += bytes;
    return true;
  }

  release(bytes: number): void {
    this.used -= bytes;
    const ready = this.waiters.splice(0);
    for (const w of ready) w();
  }

  onRelease(waiter: Waiter): void {
    this.waiters.push(waiter);
  }

  get bytesInUse(): number {
    return this.used;
  }
}


export interface LinkCounters {
  bytesSent(kind: BytesKind, n: number): void;
  /** A message over the send limit was not written (its producer was told through `refuse`). */
  messageRefused?(kind: BytesKind, bytes: number, limit: number): void;
}

export class WorkerLink {
  workerId: string | undefined;
  /** true once the scheduler accepted the hello */
  registered = false;
  /** a delayed `accepted=false` response is pending; the stream ends after it */
  rejecting = false;
  /** The connection's address (`ip:port`), for logs that must find the process. */
  readonly peer: string;
  /** when this link's last `workerAlive` event went to the scheduler (performance.now() ms) */
  lastAlivePostedAt = -Infinity;
  private readonly queue: OutboundMessage[] = [];
  private queuedBytes = 0;
  private inFlightBytes = 0;
  /** Large messages handed to grpc-js whose budget share is still held. */
  private readonly inFlightLarge = new Set<OutboundMessage>();
  private waitingForBudget = false;
  private waitingForTurn = false;
  private closedFlag = false;
  private ending = false;
  private readonly roomWaiters: Waiter[] = [];

  constructor(
    readonly id: LinkId,
    private readonly call: ServerDuplexStream<unknown, Buffer>,
    private readonly maxQueueBytes: number,
    private readonly egress: EgressBudget,
    private readonly counters: LinkCounters,
    /** The cluster server's grpc-js send limit: a bigger write would end this whole stream. */
    private readonly maxSendBytes: number = WORKER_MAX_MESSAGE_BYTES,
  ) {
    this.peer = call.getPeer();
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  /** Bytes queued or being written on this stream. */
  get pendingBytes(): number {
    return this.queuedBytes;
  }

  send(message: OutboundMessage): void {
    if (this.closedFlag) return;
    this.queue.push(message);
    this.queuedBytes += message.bytes;
    this.pump();
  }

  sendBuffer(buf: Buffer, kind: BytesKind, refuse?: OutboundMessage['refuse']): void {
    const n = buf.length;
    // Heartbeats and small tasks on an idle stream go straight to grpc-js: no queue entry, no
    // encode closure (10,000 workers get one every second).
    if (!this.closedFlag && this.queue.length === 0 && n < LARGE_MESSAGE_BYTES && this.inFlightBytes < WRITE_WINDOW_BYTES) {
      this.queuedBytes += n;
      this.inFlightBytes += n;
      this.call.write(buf, () => this.wrote(n, kind));
      return;
    }
    this.send({ bytes: n, kind, encode: () => buf, ...(refuse ? { refuse } : {}) });
  }

  hasRoom(): boolean {
    return this.closedFlag || this.queuedBytes < this.maxQueueBytes;
  }

  /** Resolves when this link can take more relay data (or is closed). */
  waitForRoom(): Promise<void> {
    if (this.hasRoom()) return Promise.resolve();
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  /**
   * Ends the stream after the queued messages with a status (OK = clean end), then resets it
   * (docs/protocol.md, "Ending a worker stream"): upstream's worker only notices a dead stream when a
   * send fails, and a stream that ended with trailers but no RST_STREAM stays writable for it, so a
   * replaced worker would heartbeat into it forever and never reconnect.
   */
  end(code: number, details: string): void {
    if (this.closedFlag || this.ending) return;
    this.ending = true;
    const stream = http2StreamOf(this.call);
    if (stream) resetAfterStatus(stream);
    if (code === 0) this.call.end();
    else this.call.emit('error', { code, details });
  }

  /** The stream is gone: drop what is queued and wake anyone waiting. */
  markClosed(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    this.queue.length = 0;
    this.queuedBytes = 0;
    // A cancelled call may never run its write callbacks: give the budget back now.
    for (const msg of this.inFlightLarge) this.egress.release(msg.bytes);
    this.inFlightLarge.clear();
    this.wakeRoomWaiters();
  }

  private pump(): void {
    while (!this.closedFlag && this.queue.length > 0) {
      if (this.inFlightBytes > 0 && this.inFlightBytes >= WRITE_WINDOW_BYTES) return;
      const head = this.queue[0];
      const large = head.bytes >= LARGE_MESSAGE_BYTES;
      if (large && !this.egress.tryTakeTurn(head.bytes)) {
        if (!this.waitingForTurn) {
          this.waitingForTurn = true;
          this.egress.onNextTurn(() => {
            this.waitingForTurn = false;
            this.pump();
          });
        }
        return;
      }
      if (large && !this.egress.tryAcquire(head.bytes)) {
        if (!this.waitingForBudget) {
          this.waitingForBudget = true;
          this.egress.onRelease(() => {
            this.waitingForBudget = false;
            this.pump();
          });
        }
        return;
      }
      this.queue.shift();
      const buf = head.encode();
      if (buf.length > this.maxSendBytes) {
        this.refuse(head, buf.length, large);
        continue;
      }
      this.inFlightBytes += head.bytes;
      if (large) this.inFlightLarge.add(head);
      this.call.write(buf, () => this.written(head));
    }
  }

  /**
   * grpc-js would end the stream with RESOURCE_EXHAUSTED (and the worker would get every later
   * message of every job on a new stream, or never): the message is dropped and its producer fails
   * the one job it belongs to instead (docs/operations.md, Limits).
   */
  private refuse(msg: OutboundMessage, bytes: number, budgetTaken: boolean): void {
    if (budgetTaken) this.egress.release(msg.bytes);
    this.queuedBytes -= msg.bytes;
    this.counters.messageRefused?.(msg.kind, bytes, this.maxSendBytes);
    msg.refuse?.(bytes, this.maxSendBytes);
    if (this.hasRoom()) this.wakeRoomWaiters();
  }

  private written(msg: OutboundMessage): void {
    if (this.inFlightLarge.delete(msg)) this.egress.release(msg.bytes);
    this.wrote(msg.bytes, msg.kind);
  }

  private wrote(bytes: number, kind: BytesKind): void {
    this.inFlightBytes -= bytes;
    if (!this.closedFlag) {
      this.queuedBytes -= bytes;
      this.counters.bytesSent(kind, bytes);
      if (this.hasRoom()) this.wakeRoomWaiters();
      this.pump();
    }
  }

  private wakeRoomWaiters(): void {
    const ready = this.roomWaiters.splice(0);
    for (const w of ready) w();
  }
}
