/**
 * Bounded retries over real gRPC with simulated workers (docs/decisions.md, Retries): a worker killed
 * in any phase costs an attempt, not the job; attempts run out with every one named; a worker's own
 * error is final; a cancel during a retry wins. WatchJob shows each attempt's `queued` and `started`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SimWorker } from '../../src/sim/worker';
import { startCluster, failureOf, type Cluster } from '../helpers/cluster';
import { inline, sample, scrape, submit, unary, waitTerminal, watch } from '../api/helpers';

const RETRYING = { max_job_attempts: 3, reconnect_grace_period_ms: 200 };
const TASK = { contribution: 0, prove: 1, aggregate: 2 } as const;

const prove = (c: Cluster): Promise<string> =>
  submit(c.client, { prove: { hash_id: c.hashId, input: inline(Buffer.alloc(64, 3)), proof_dest: 1 } });

/**
 * Stops (kills, no reconnect) the first worker that receives a task of `taskType`. Set it up before
 * the job is submitted: the first tasks go out in the same turn as the answer to the JobRequest.
 */
function killOnTask(c: Cluster, taskType: number): Promise<SimWorker> {
  return new Promise((resolve) => {
    for (const w of c.fleet.workers) {
      const onTask = (entry: { kind: string; taskType?: number }): void => {
        if (entry.kind !== 'execute_task' || entry.taskType !== taskType) return;
        for (const other of c.fleet.workers) other.removeAllListeners('received');
        void w.stop();
        resolve(w);
      };
      w.on('received', onTask);
    }
  });
}

for (const [phase, taskType] of Object.entries(TASK)) {
  test(`a worker killed in its ${phase} task: the job completes on the others in attempt 2`, { timeout: 30_000 }, async (t) => {
    const c = await startCluster(3, { coordinator: RETRYING, tag: `retry-${phase}` });
    t.after(() => c.close());
    const kill = killOnTask(c, taskType);
    const jobId = await prove(c);
    const events = watch(c.client, jobId);
    const killed = await kill;
    const r = await waitTerminal(c.client, jobId);
    assert.equal(r.job_status.status, 'completed', JSON.stringify(r.job_status));
    await events.done;
    const names = events.events.map((e) => e.event);
    assert.deepEqual(names.filter((n) => n === 'queued' || n === 'started'), ['queued', 'started', 'queued', 'started']);
    assert.equal(names[names.length - 1], 'completed');
    const text = await scrape(c.tc);
    assert.equal(sample(text, 'coordinator_job_retries_total{kind="prove",reason="worker_lost"}'), 1);
    const retriedLine = c.tc.logs.find((l) => l.job_id === jobId && typeof l.msg === 'string' && l.msg.startsWith(`prove job ${jobId} attempt 1 failed`));
    assert.ok(retriedLine, 'the retry is logged');
    assert.equal(retriedLine.attempt, 2);
    assert.match(String(retriedLine.msg), new RegExp(killed.id));
  });
}

test('workers killed until the attempts run out: failed, naming every attempt', { timeout: 30_000 }, async (t) => {
  const c = await startCluster(3, { coordinator: RETRYING, tag: 'retry-out' });
  t.after(() => c.close());
  const first = killOnTask(c, TASK.contribution);
  const jobId = await prove(c);
  await first;
  for (let attempt = 1; attempt < 3; attempt++) {
    // One worker per attempt: arm the next kill once this attempt has failed.
    await c.tc.waitForLog((l) => l.job_id === jobId && typeof l.msg === 'string' && l.msg.startsWith(`prove job ${jobId} attempt ${attempt} failed`));
    await killOnTask(c, TASK.contribution);
  }
  const failure = failureOf(await waitTerminal(c.client, jobId));
  assert.match(failure.execution?.reason ?? '', /^failed after 3 attempts: .+ \(last; attempt 1: .+; attempt 2: .+\)$/);
});

test('a worker-reported error is not retried', { timeout: 30_000 }, async (t) => {
  const c = await startCluster(2, {
    coordinator: RETRYING,
    tag: 'retry-error',
    sim: { perWorker: (i) => (i === 0 ? { faults: { contribution: { action: 'error', message: 'guest panicked' } } } : undefined) },
  });
  t.after(() => c.close());
  const jobId = await prove(c);
  const failure = failureOf(await waitTerminal(c.client, jobId));
  assert.match(failure.execution?.reason ?? '', /guest panicked/);
  assert.doesNotMatch(failure.execution?.reason ?? '', /attempts/);
  assert.equal(sample(await scrape(c.tc), 'coordinator_job_retries_total{kind="prove",reason="worker_lost"}'), 0);
});

test('a cancel during the retry wins', { timeout: 30_000 }, async (t) => {
  const c = await startCluster(3, { coordinator: RETRYING, tag: 'retry-cancel', sim: { contributionDelayMs: 60_000 } });
  t.after(() => c.close());
  const kill = killOnTask(c, TASK.contribution);
  const jobId = await prove(c);
  await kill;
  // Attempt 2 starts on the two workers left (each gets its contribution task again).
  await c.fleet.waitUntil(
    () => c.fleet.workers.filter((w) => w.log.filter((e) => e.kind === 'execute_task' && e.jobId === jobId).length >= 2).length === 2,
    10_000,
    () => 'attempt 2 dispatched',
  );
  const res = await unary<{ cancelled: boolean }>(c.client, 'CancelJob', { job_id: jobId });
  assert.equal(res.cancelled, true);
  assert.equal((await waitTerminal(c.client, jobId)).job_status.status, 'cancelled');
});
