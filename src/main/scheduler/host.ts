import * as path from 'node:path';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { randomUUID } from 'node:crypto';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/umd/node-adapter';
import type { LinkId } from '../../shared/scheduler/types';
import type { SchedulerEvent } from '../../shared/scheduler/events';
import type { SchedulerEffect } from '../../shared/scheduler/effects';
import type { SchedulerThreadApi } from '../../threads/scheduler-thread';
import { SchedulerCore, type CoreConfig, type CoreInternals } from '../../threads/scheduler-core';
import { CoreRunner } from '../../threads/core-runner';
import { BatchPacer } from '../../shared/batch-pacer';
import type { LoopStats } from '../observability/metrics';

export type EffectHandler = (effects: SchedulerEffect[]) => void;

/**
 * The main thread's handle on the scheduler, wherever it runs. Events posted in one turn of the
 * event loop leave as one batch, in order, so a client request never overtakes a worker event.
 */
export interface SchedulerHost {
  post(event: SchedulerEvent): void;
  /** Scheduler-thread loop figures (undefined when the core runs on the main thread). */
  loopStats(): Promise<LoopStats | undefined>;
  /** The core's table sizes (undefined in mock mode, which has no core). */
  internals(): Promise<CoreInternals | undefined>;
  close(): Promise<void>;
}

/**
 * Least time between two batches crossing to the scheduler thread, and back (docs/architecture.md,
 * Threads and the channel between them). 1 ms, about one turn of a busy main loop: under load a
 * crossing then carries a turn or two more (bench `throughput`, row `hop`: ~1.3 → ~1.1 crossings per
 * job) for at most a millisecond added; when the channel has been quiet for longer, a batch leaves
 * at once.
 */
export const SCHEDULER_BATCH_GAP_MS = 1;

/** Counts what crosses the channel (the `coordinator_scheduler_batches_total` metric). */
export type BatchCounter = (direction: 'to_scheduler' | 'from_scheduler', items: number) => void;

abstract class BatchingHost implements SchedulerHost {
  private pending: SchedulerEvent[] = [];
  /**
   * `workerAlive` events of the turn, sent as one `workersAlive` at the end of the batch: 10,000
   * heartbeating workers make them most of the traffic, and a list of numbers crosses the thread far
   * cheaper than as many objects. Liveness only needs "seen in this batch", so their place in it
   * does not matter (an alive for a link closed earlier in the batch is ignored either way).
   */
  private aliveLinks: LinkId[] = [];
  private readonly pacer: BatchPacer;

  constructor(batchGapMs: number, private readonly countBatch: BatchCounter | undefined) {
    this.pacer = new BatchPacer(batchGapMs, this.flush, false);
  }

  post(event: SchedulerEvent): void {
    if (event.type === 'workerAlive') this.aliveLinks.push(event.linkId);
    else this.pending.push(event);
    this.pacer.request();
  }

  protected stopPacing(): void {
    this.pacer.cancel();
  }

  private flush = (): void => {
    const batch = this.pending;
    this.pending = [];
    if (this.aliveLinks.length > 0) {
      batch.push({ type: 'workersAlive', linkIds: this.aliveLinks });
      this.aliveLinks = [];
    }
    if (batch.length === 0) return;
    this.countBatch?.('to_scheduler', batch.length);
    this.deliver(batch);
  };

  protected abstract deliver(batch: SchedulerEvent[]): void;
  abstract loopStats(): Promise<LoopStats | undefined>;
  abstract internals(): Promise<CoreInternals | undefined>;
  abstract close(): Promise<void>;
}

/** The core on the main thread: no hop, for `scheduler_thread = false` and for measuring the hop. */
export class InlineSchedulerHost extends BatchingHost {
  private readonly runner: CoreRunner;
  private readonly core: SchedulerCore;

  constructor(config: CoreConfig, onEffects: EffectHandler, countBatch?: BatchCounter) {
    // No thread to wake: a batch per turn, as soon as the turn ends.
    super(0, countBatch);
    this.core = new SchedulerCore(config, { newId: randomUUID });
    this.runner = new CoreRunner(this.core, (effects) => {
      countBatch?.('from_scheduler', effects.length);
      onEffects(effects);
    });
  }

  async internals(): Promise<CoreInternals> {
    return this.core.internals();
  }

  protected deliver(batch: SchedulerEvent[]): void {
    this.runner.push(batch);
  }

  async loopStats(): Promise<LoopStats | undefined> {
    return undefined;
  }

  async close(): Promise<void> {
    this.stopPacing();
    this.runner.stop();
  }
}

/**
 * The core on its own worker thread. Batches travel on a dedicated MessagePort (one message per batch
 * each way, nothing awaited); comlink carries the few request/response calls. comlink leaves a call
 * pending forever when the thread dies, so those calls are tracked and rejected by the supervisor,
 * which then reports the death through `onDeath` (the app logs it and exits 70).
 */
export class ThreadSchedulerHost extends BatchingHost {
  private readonly worker: Worker;
  private readonly remote: Comlink.Remote<SchedulerThreadApi>;
  private readonly batches: MessagePort;
  private readonly inFlight = new Set<(err: Error) => void>();
  private closing = false;
  private dead = false;
  /** Resolves once the thread runs the core; batches posted before then wait in the port, in order. */
  readonly ready: Promise<void>;

  private constructor(
    config: CoreConfig,
    onEffects: EffectHandler,
    private readonly onDeath: (err: Error) => void,
    countBatch: BatchCounter | undefined,
    batchGapMs: number,
  ) {
    super(batchGapMs, countBatch);
    this.worker = new Worker(path.join(__dirname, '../../threads/scheduler-thread.js'));
    this.remote = Comlink.wrap<SchedulerThreadApi>(nodeEndpoint(this.worker));
    this.worker.on('error', (err) => this.died(err));
    this.worker.on('exit', (code) => {
      if (!this.closing) this.died(new Error(`scheduler thread exited with code ${code}`));
    });
    const { port1, port2 } = new MessageChannel();
    this.batches = port1;
    port1.on('message', (effects: SchedulerEffect[]) => {
      countBatch?.('from_scheduler', effects.length);
      onEffects(effects);
    });
    this.ready = this.track(this.remote.start(config, batchGapMs, Comlink.transfer(port2, [port2])));
    // A failed start is reported through `ready`; this keeps it from also surfacing as unhandled.
    this.ready.catch(() => undefined);
  }

  static spawn(
    config: CoreConfig,
    onEffects: EffectHandler,
    onDeath: (err: Error) => void,
    opts: { countBatch?: BatchCounter; batchGapMs?: number } = {},
  ): ThreadSchedulerHost {
    return new ThreadSchedulerHost(config, onEffects, onDeath, opts.countBatch, opts.batchGapMs ?? SCHEDULER_BATCH_GAP_MS);
  }

  protected deliver(batch: SchedulerEvent[]): void {
    // Stream-close events keep arriving while the servers shut down; nobody needs them then.
    if (this.dead || this.closing) return;
    this.batches.postMessage(batch);
  }

  async loopStats(): Promise<LoopStats | undefined> {
    if (this.dead) return undefined;
    return this.track(this.remote.loopStats());
  }

  async internals(): Promise<CoreInternals | undefined> {
    if (this.dead) return undefined;
    return this.track(this.remote.internals());
  }

  async close(): Promise<void> {
    this.closing = true;
    this.stopPacing();
    this.batches.close();
    this.remote[Comlink.releaseProxy]();
    await this.worker.terminate();
  }

  private track<T>(call: Promise<T>): Promise<T> {
    if (this.dead) return Promise.reject(new Error('scheduler thread is not running'));
    return new Promise<T>((resolve, reject) => {
      this.inFlight.add(reject);
      call.then(
        (value) => {
          this.inFlight.delete(reject);
          resolve(value);
        },
        (err: unknown) => {
          this.inFlight.delete(reject);
          reject(err instanceof Error ? err : new Error(String(err)));
        },
      );
    });
  }

  private died(err: Error): void {
    if (this.dead) return;
    this.dead = true;
    const pending = [...this.inFlight];
    this.inFlight.clear();
    for (const reject of pending) reject(new Error(`scheduler thread died: ${err.message}`));
    this.onDeath(err);
  }
}
