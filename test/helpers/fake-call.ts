/**
 * A fake grpc-js server stream for the real `WorkerLink` (src/main/cluster/worker-link.ts): the part
 * of `ServerDuplexStream` the link writes to, recording every write.
 *
 * grpc-js runs a write's callback once it has handed the bytes on; until then the link counts them as
 * queued, which is its backpressure. So does this call: while `held` (a peer that stopped reading),
 * callbacks wait for `complete()`; otherwise each one runs on a later turn of the event loop, as
 * grpc-js's do.
 */
import type { ServerDuplexStream } from '@grpc/grpc-js';
import { EgressBudget, WorkerLink, type LinkCounters } from '../../src/main/cluster/worker-link';

export class FakeCall {
  /** Every buffer written, in order. */
  readonly writes: Buffer[] = [];
  private readonly pending: Array<() => void> = [];

  constructor(
    readonly linkId = 0,
    /** Callbacks wait for `complete()` (the peer takes nothing meanwhile). */
    public held = true,
  ) {}

  write(buf: Buffer, cb: () => void): boolean {
    this.writes.push(buf);
    if (this.held) this.pending.push(cb);
    else setImmediate(cb);
    return true;
  }

  /** Runs the callbacks of held writes, oldest first: all of them, or the first `count`. */
  complete(count = Number.POSITIVE_INFINITY): void {
    const ready = this.pending.splice(0, count);
    for (const cb of ready) cb();
  }

  /** Writes whose callback has not run yet. */
  get heldWrites(): number {
    return this.pending.length;
  }

  getPeer(): string {
    return `127.0.0.1:${40000 + this.linkId}`;
  }
}

export interface FakeLinkOptions {
  /** The link's `max_worker_queue_bytes` (default 1 GiB: never full). */
  maxQueueBytes?: number;
  /** Shared by the links of one test (default: a budget of its own, 1 GiB). */
  egress?: EgressBudget;
  /** Write callbacks wait for `call.complete()` (default true). */
  held?: boolean;
  counters?: LinkCounters;
  /** The link's send limit (default: the worker's 128 MiB). */
  maxSendBytes?: number;
}

/** A real WorkerLink over a FakeCall. */
export function fakeLink(id: number, opts: FakeLinkOptions = {}): { link: WorkerLink; call: FakeCall } {
  const call = new FakeCall(id, opts.held ?? true);
  const link = new WorkerLink(
    id,
    call as unknown as ServerDuplexStream<unknown, Buffer>,
    opts.maxQueueBytes ?? 1 << 30,
    opts.egress ?? new EgressBudget(1 << 30),
    opts.counters ?? { bytesSent: () => undefined },
    opts.maxSendBytes,
  );
  return { link, call };
}
