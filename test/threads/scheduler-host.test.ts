/**
 * The scheduler thread host: batches reach the core in order and effects come back; when the thread
 * dies, pending calls are rejected (comlink alone would leave them pending) and the death is reported.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Worker } from 'node:worker_threads';
import { defaultConfig } from '../../src/shared/config/schema';
import type { SchedulerEvent } from '../../src/shared/scheduler/events';
import type { SchedulerEffect } from '../../src/shared/scheduler/effects';
import { InlineSchedulerHost, ThreadSchedulerHost } from '../../src/main/scheduler/host';

test('events go through the thread in order and effects come back in batches', async () => {
  const effects: SchedulerEffect[] = [];
  const host = ThreadSchedulerHost.spawn(defaultConfig().coordinator, (batch) => effects.push(...batch), () => undefined);
  try {
    await host.ready;
    host.post({ type: 'linkOpened', linkId: 1 });
    host.post({ type: 'workerHello', linkId: 1, workerId: 'w1', computeUnits: 2, reconnect: false });
    host.post({ type: 'submitJob', requestId: 7, jobId: '00000000-0000-4000-8000-000000000001', spec: { kind: 'wrap', proofBlobId: 1, proofDest: 3 } });
    const end = Date.now() + 5_000;
    while (!effects.some((e) => e.type === 'submitResult') && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    const accepted = effects.findIndex((e) => e.type === 'acceptWorker');
    const submitted = effects.findIndex((e) => e.type === 'submitResult');
    assert.ok(accepted >= 0, 'the hello was accepted');
    assert.ok(submitted > accepted, 'the submit was handled after the hello posted before it');
    const result = effects[submitted];
    assert.ok(result.type === 'submitResult' && result.ok && result.requestId === 7);
    const stats = await host.loopStats();
    assert.ok(stats && stats.utilization >= 0);
  } finally {
    await host.close();
  }
});

test('under load, events of turns within the gap cross as one batch each way, in order', async () => {
  const crossings: { direction: string; items: number }[] = [];
  const effects: SchedulerEffect[] = [];
  // A gap far longer than three turns of an idle loop, so the test does not depend on the machine's speed.
  const host = ThreadSchedulerHost.spawn(defaultConfig().coordinator, (batch) => effects.push(...batch), () => undefined, {
    batchGapMs: 500,
    countBatch: (direction, items) => crossings.push({ direction, items }),
  });
  try {
    await host.ready;
    host.post({ type: 'linkOpened', linkId: 1 });
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(crossings, [{ direction: 'to_scheduler', items: 1 }], 'after a quiet spell the first batch leaves at the end of its turn');
    host.post({ type: 'workerHello', linkId: 1, workerId: 'w1', computeUnits: 2, reconnect: false });
    await new Promise((r) => setImmediate(r));
    host.post({ type: 'submitJob', requestId: 7, jobId: '00000000-0000-4000-8000-000000000001', spec: { kind: 'wrap', proofBlobId: 1, proofDest: 3 } });
    const end = Date.now() + 5_000;
    while (!effects.some((e) => e.type === 'submitResult') && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    const sent = crossings.filter((c) => c.direction === 'to_scheduler');
    assert.deepEqual(sent, [{ direction: 'to_scheduler', items: 1 }, { direction: 'to_scheduler', items: 2 }], 'the hello and the submit of two later turns went together');
    assert.ok(effects.findIndex((e) => e.type === 'acceptWorker') < effects.findIndex((e) => e.type === 'submitResult'), 'in order');
    // The thread paces too: the linkOpened produced no effect (no crossing back); the hello's and
    // the submit's effects, made within one gap, come back as one batch.
    assert.equal(crossings.filter((c) => c.direction === 'from_scheduler').length, 1);
  } finally {
    await host.close();
  }
});

test('a dead scheduler thread rejects pending calls and reports its death', async () => {
  let death: Error | undefined;
  const host = ThreadSchedulerHost.spawn(defaultConfig().coordinator, () => undefined, (err) => (death = err));
  await host.ready;
  const internals = host as unknown as { worker: Worker; remote: { loopStats: () => Promise<unknown> } };
  // What comlink does for a call whose answer never comes (the thread died first): never settle.
  internals.remote = { loopStats: () => new Promise(() => undefined) };
  const pending = host.loopStats();
  await internals.worker.terminate();
  await assert.rejects(pending, /scheduler thread/);
  assert.match(String(death?.message), /scheduler thread exited/);
  assert.equal(await host.loopStats(), undefined, 'no figures from a dead thread');
  host.post({ type: 'linkOpened', linkId: 1 }); // ignored, never throws
  // The post is delivered on the next check phase; an immediate queued after it runs once that
  // delivery has run (immediates run in order), so a throw there would have surfaced by then.
  await new Promise((r) => setImmediate(r));
});

test("a turn's workerAlive events leave as one workersAlive at the end of its batch, the rest in order", async () => {
  const batches: SchedulerEvent[][] = [];
  class RecordingHost extends InlineSchedulerHost {
    protected override deliver(batch: SchedulerEvent[]): void {
      batches.push(batch);
      super.deliver(batch);
    }
  }
  const host = new RecordingHost(defaultConfig().coordinator, () => undefined);
  try {
    host.post({ type: 'linkOpened', linkId: 1 });
    host.post({ type: 'workerAlive', linkId: 1 });
    host.post({ type: 'linkOpened', linkId: 2 });
    host.post({ type: 'workerAlive', linkId: 2 });
    host.post({ type: 'workerAlive', linkId: 1 });
    await new Promise((r) => setImmediate(r));
    host.post({ type: 'workerClosed', linkId: 2 });
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(batches, [
      [
        { type: 'linkOpened', linkId: 1 },
        { type: 'linkOpened', linkId: 2 },
        { type: 'workersAlive', linkIds: [1, 2, 1] },
      ],
      [{ type: 'workerClosed', linkId: 2 }],
    ]);
  } finally {
    await host.close();
  }
});
