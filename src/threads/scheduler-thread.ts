/**
 * Entry point of the scheduler worker thread: exposes the core over comlink. Events arrive in
 * batches on one ordered channel; effects leave in batches through a callback proxy.
 */
import { parentPort } from 'node:worker_threads';
import { randomUUID } from 'node:crypto';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/umd/node-adapter';
import type { SchedulerEffect, SchedulerEvent } from '../shared/scheduler-protocol';
import { SchedulerCore, type CoreConfig } from './scheduler-core';
import { CoreRunner } from './core-runner';
import { LoopStatsSampler, type LoopStats } from '../shared/loop-stats';

export interface SchedulerThreadApi {
  start(config: CoreConfig, onEffects: (effects: SchedulerEffect[]) => void): void;
  push(events: SchedulerEvent[]): void;
  loopStats(): LoopStats;
  snapshotCounts(): { workers: number; jobs: number };
}

let runner: CoreRunner | undefined;
let core: SchedulerCore | undefined;
const sampler = new LoopStatsSampler();
sampler.start();

const api: SchedulerThreadApi = {
  start(config, onEffects) {
    core = new SchedulerCore(config, { newId: randomUUID });
    runner = new CoreRunner(core, (effects) => {
      // Fire and forget: awaiting each batch would serialise the thread on main's event loop.
      void onEffects(effects);
    });
  },
  push(events) {
    if (!runner) throw new Error('scheduler thread not started');
    runner.push(events);
  },
  loopStats() {
    return sampler.sample();
  },
  snapshotCounts() {
    const snap = core?.snapshot();
    return { workers: snap?.workers.length ?? 0, jobs: snap?.jobs.length ?? 0 };
  },
};

if (!parentPort) throw new Error('scheduler-thread must run as a worker thread');
Comlink.expose(api, nodeEndpoint(parentPort));
