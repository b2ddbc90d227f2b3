/**
 * Entry point of the scheduler worker thread. comlink carries the request/response calls (start,
 * loop stats); the hot path is a dedicated MessagePort handed over at start: one message per batch
 * of events in, one per batch of effects out (paced like the main thread's, src/shared/batch-pacer.ts),
 * in order, with no reply traffic.
 */
import { parentPort, type MessagePort } from 'node:worker_threads';
import { randomUUID } from 'node:crypto';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/umd/node-adapter';
import type { SchedulerEvent } from '../shared/scheduler/events';
import type { SchedulerEffect } from '../shared/scheduler/effects';
import { SchedulerCore, type CoreConfig, type CoreInternals } from './scheduler-core';
import { CoreRunner, coalesceCounts } from './core-runner';
import { LoopStatsSampler, type LoopStats } from '../shared/loop-stats';
import { BatchPacer } from '../shared/batch-pacer';

export interface SchedulerThreadApi {
  /**
   * `batches` receives `SchedulerEvent[]` messages and carries `SchedulerEffect[]` messages back, at
   * least `batchGapMs` apart under load (src/shared/batch-pacer.ts).
   */
  start(config: CoreConfig, batchGapMs: number, batches: MessagePort): void;
  loopStats(): LoopStats;
  internals(): CoreInternals;
}

let core: SchedulerCore | undefined;
// 50 ms, not the main thread's 10: this thread sleeps between batches and every tick wakes it
// (100 wake-ups a second at 10 ms, a third of an idle coordinator's); its lag alert is at 100 ms.
const sampler = new LoopStatsSampler(50);
sampler.start();

const api: SchedulerThreadApi = {
  start(config, batchGapMs, batches) {
    if (core) throw new Error('scheduler thread already started');
    core = new SchedulerCore(config, { newId: randomUUID });
    let pending: SchedulerEffect[] = [];
    const pacer = new BatchPacer(
      batchGapMs,
      () => {
        const out = pending;
        pending = [];
        batches.postMessage(coalesceCounts(out));
      },
      true,
    );
    const runner = new CoreRunner(core, (effects: SchedulerEffect[]) => {
      if (pending.length === 0) pending = effects;
      else for (const effect of effects) pending.push(effect);
      pacer.request();
    });
    // A throw here (a bug in the core) is an uncaught exception: the thread dies and the main
    // thread's supervisor stops the process, since the core's state can no longer be trusted.
    batches.on('message', (events: SchedulerEvent[]) => runner.push(events));
  },
  loopStats() {
    return sampler.sample();
  },
  internals() {
    if (!core) throw new Error('scheduler thread not started');
    return core.internals();
  },
};

if (!parentPort) throw new Error('scheduler-thread must run as a worker thread');
Comlink.expose(api, nodeEndpoint(parentPort));
