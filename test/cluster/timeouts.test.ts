/**
 * The remaining timeouts and worker errors end to end (docs/decisions.md, Job states and events), over
 * real gRPC with simulated workers: aggregate-phase, execute, wrap and setup deadlines fail the job with
 * `JobFailure.timeout` (with the phase where there is one), a worker error during an execute or a wrap
 * job fails it at once with `JobFailure.execution{reason}`, and afterwards every worker is Ready again
 * (none computing, none parked). The sims speak the upstream wire: no stream ends in these cases, so
 * the grpc-js wire would only repeat them (flows.test.ts runs both).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SimFaultAction } from '../../src/sim/options';
import { assertAllReady, failureOf, startCluster, type Cluster, type ClusterOptions, type Failure } from '../helpers/cluster';
import { fakeElf, inline, register, submit, waitTerminal, watch, type WaitResult } from '../api/helpers';

const cluster = (workers: number, opts: ClusterOptions = {}): Promise<Cluster> =>
  startCluster(workers, { tag: 'timeouts', ...opts, sim: { wire: 'upstream', ...opts.sim } });

/** A `timeout` failure with this phase (undefined: no phase at all) and a 1 s limit. */
function assertTimeout(f: Failure, phase: number | undefined): void {
  assert.equal(f.kind, 'timeout', JSON.stringify(f));
  assert.equal(f.timeout?.phase, phase, `phase: ${JSON.stringify(f)}`);
  assert.deepEqual(f.timeout?.limit, { seconds: '1', nanos: 0 });
}

/** Runs `submitJob`, waits for its terminal state and returns it with the time it took. */
async function timed(c: Cluster, submitJob: () => Promise<string>, limitMs = 10_000): Promise<{ jobId: string; r: WaitResult; ms: number }> {
  const t0 = Date.now();
  const jobId = await submitJob();
  const r = await waitTerminal(c.client, jobId, limitMs);
  return { jobId, r, ms: Date.now() - t0 };
}

const WRAP_PROOF = { proof_id: '0e9ba1a4-9d1f-5c43-8c1e-3a0c6a54b8f1', proof_kind: 1, data: Buffer.from('a bincode proof') };

function wrap(c: Cluster): Promise<string> {
  return submit(c.client, { wrap: { proof: { ...WRAP_PROOF, hash_id: c.hashId }, proof_dest: 2 } });
}

function execute(c: Cluster): Promise<string> {
  return submit(c.client, { execute: { hash_id: c.hashId, input: inline(Buffer.alloc(8)) } });
}

test('aggregate phase past phase3_timeout_seconds = 1 → timeout{phase: AGGREGATE}', { timeout: 30_000 }, async () => {
  // Only the aggregator gets AGGREGATE tasks; it never finishes them.
  const c = await cluster(2, { coordinator: { phase3_timeout_seconds: 1 }, sim: { aggregateDelayMs: 60_000 } });
  try {
    const jobId = await submit(c.client, { prove: { hash_id: c.hashId, input: inline(Buffer.alloc(64, 1)), proof_dest: 1 } });
    const w = watch(c.client, jobId);
    const r = await waitTerminal(c.client, jobId, 10_000);
    assertTimeout(failureOf(r), 3);
    await w.done;
    const kinds = w.events.map((e) => (e.event === 'progress' ? `progress:${(e.progress as { phase: number }).phase}` : e.event));
    assert.deepEqual(kinds, ['queued', 'started', 'progress:1', 'progress:2', 'progress:3', 'failed']);
    // the timeout counts from the moment all Prove results are in
    const at = (name: string, phase?: number): number => {
      const e = w.events.find((x) => x.event === name && (phase === undefined || (x.progress as { phase: number }).phase === phase));
      const ts = (e?.[name] as { timestamp: { seconds: string; nanos: number } }).timestamp;
      return Number(ts.seconds) * 1000 + ts.nanos / 1e6;
    };
    const aggregateFor = at('failed') - at('progress', 3);
    assert.ok(aggregateFor >= 900 && aggregateFor < 3_000, `failed ${aggregateFor} ms after AGGREGATE began`);
    const aggregator = c.fleet.workers.filter((wk) => wk.aggTasks.some((t) => t.jobId === jobId));
    assert.equal(aggregator.length, 1, 'one aggregator');
    await assertAllReady(c, 2);
    assert.ok(c.fleet.stats().cancelsReceived >= 2, 'both workers were told the job is over');
  } finally {
    await c.close();
  }
});

test('an execute-only job past execution_timeout_seconds = 1 → timeout{phase: CONTRIBUTIONS}', { timeout: 30_000 }, async () => {
  const c = await cluster(2, { coordinator: { execution_timeout_seconds: 1 }, sim: { executeDelayMs: 60_000 } });
  try {
    const { r, ms } = await timed(c, () => execute(c));
    assertTimeout(failureOf(r), 1);
    assert.ok(ms >= 900 && ms < 4_000, `failed after ${ms} ms`);
    await assertAllReady(c, 2);
  } finally {
    await c.close();
  }
});

test('a wrap job past wrap_timeout_seconds = 1 → timeout without a phase', { timeout: 30_000 }, async () => {
  // The sim blocks its loop while wrapping, as the real worker does.
  const c = await cluster(2, { coordinator: { wrap_timeout_seconds: 1 }, sim: { wrapDelayMs: 60_000 } });
  try {
    const { r, ms } = await timed(c, () => wrap(c));
    assertTimeout(failureOf(r), undefined);
    assert.ok(ms >= 900 && ms < 4_000, `failed after ${ms} ms`);
    assert.equal(c.fleet.stats().tasksReceived.wrap, 1, 'one worker wrapped');
    await assertAllReady(c, 2);
  } finally {
    await c.close();
  }
});

test('a setup job whose workers never ack within setup_timeout_seconds = 1 → failed timeout; late acks only add eligibility', { timeout: 30_000 }, async () => {
  const c = await cluster(2, { coordinator: { setup_timeout_seconds: 1 } });
  try {
    const other = await register(c.client, fakeElf('timeouts-other'));
    // The acks come 3 s late (the sim's loop is blocked meanwhile, like the real worker's).
    for (const wk of c.fleet.workers) wk.inject('setup', { delayMs: 3_000, times: 1 });
    const acksBefore = c.fleet.stats().setupAcks;
    const t0 = Date.now();
    const setupId = await submit(c.client, { setup: { hash_id: other, with_hints: false, program_name: 'other' } });
    const w = watch(c.client, setupId);
    const r = await waitTerminal(c.client, setupId, 10_000);
    const ms = Date.now() - t0;
    assertTimeout(failureOf(r), undefined);
    assert.ok(ms >= 900 && ms < 2_900, `failed after ${ms} ms`);
    await w.done;
    assert.deepEqual(w.events.map((e) => e.event), ['queued', 'started', 'failed']);
    assert.equal(c.fleet.stats().setupAcks, acksBefore, 'the setup failed before any ack');
    // The workers keep their earlier program and are Ready at once.
    await assertAllReady(c, 2);

    // The late acks make the workers eligible for the program after all.
    await c.fleet.waitUntil(() => c.fleet.stats().setupAcks === acksBefore + 2, 5_000, () => 'the late setup acks');
    await assertAllReady(c, 2);
    const job = await submit(c.client, { execute: { hash_id: other, input: inline(Buffer.alloc(8)) } });
    const done = await waitTerminal(c.client, job);
    assert.equal(done.job_status.status, 'completed', JSON.stringify(done.job_status));
    await assertAllReady(c, 2);
  } finally {
    await c.close();
  }
});

const ERROR_ACTIONS: Array<[SimFaultAction, string]> = [
  ['workerError', 'a WorkerError message'],
  ['error', 'a failed task response'],
];

for (const [action, what] of ERROR_ACTIONS) {
  test(`${what} during an execute job → execution{reason} at once`, { timeout: 30_000 }, async () => {
    const message = `execute exploded (${action})`;
    const c = await cluster(2, {
      sim: { executeDelayMs: 200, perWorker: (i) => (i === 1 ? { faults: { execute: { action, message } } } : undefined) },
    });
    try {
      const { r, ms } = await timed(c, () => execute(c));
      const f = failureOf(r);
      assert.equal(f.kind, 'execution', JSON.stringify(f));
      assert.match(String(f.execution?.reason), new RegExp(message.replace(/[()]/g, '\\$&')));
      assert.ok(ms < 5_000, `failed after ${ms} ms, not at a timeout`);
      await assertAllReady(c, 2);
    } finally {
      await c.close();
    }
  });

  test(`${what} during a wrap job → execution{reason} at once`, { timeout: 30_000 }, async () => {
    const message = `wrap exploded (${action})`;
    // Every worker carries the fault: the wrap goes to one of them.
    const c = await cluster(2, { sim: { wrapDelayMs: 200, faults: { wrap: { action, message } } } });
    try {
      const { r, ms } = await timed(c, () => wrap(c));
      const f = failureOf(r);
      assert.equal(f.kind, 'execution', JSON.stringify(f));
      assert.match(String(f.execution?.reason), new RegExp(message.replace(/[()]/g, '\\$&')));
      assert.ok(ms < 5_000, `failed after ${ms} ms, not at a timeout`);
      assert.equal(c.fleet.stats().tasksReceived.wrap, 1);
      await assertAllReady(c, 2);
    } finally {
      await c.close();
    }
  });
}
