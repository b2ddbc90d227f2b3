/** The runner that drives the pure core with real time. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultConfig } from '../../src/shared/config/schema';
import type { SchedulerEffect } from '../../src/shared/scheduler/effects';
import { SchedulerCore } from '../../src/threads/scheduler-core';
import { CoreRunner } from '../../src/threads/core-runner';

test('heartbeats that arrive with an overdue liveness deadline (after a stall) keep the worker', () => {
  const cfg = { ...defaultConfig().coordinator, heartbeat_interval_seconds: 1, heartbeat_max_missed: 2 };
  let now = 1_000_000;
  const effects: SchedulerEffect[] = [];
  const runner = new CoreRunner(new SchedulerCore(cfg, { newId: () => 'id' }), (e) => effects.push(...e), () => now);
  try {
    runner.push([
      { type: 'linkOpened', linkId: 1 },
      { type: 'workerHello', linkId: 1, workerId: 'w1', computeUnits: 1, reconnect: false },
    ]);
    // The process stalls for 5 s (liveness is 2 s); the ack read after the stall comes in one batch
    // with the overdue timer.
    now += 5_000;
    runner.push([{ type: 'workerAlive', linkId: 1 }]);
    assert.equal(effects.filter((e) => e.type === 'closeWorker').length, 0, JSON.stringify(effects.map((e) => e.type)));
    // Real silence still disconnects.
    now += 2_500;
    runner.push([]);
    assert.equal(effects.filter((e) => e.type === 'closeWorker').length, 1);
  } finally {
    runner.stop();
  }
});
