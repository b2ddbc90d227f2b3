/**
 * The queue (docs/decisions.md, Queue) over real gRPC with simulated workers: capacity per job, FIFO
 * starts, "all eligible workers" never starting short, the queue timeout, the queue bound, the two
 * UNAVAILABLE refusals, cancel of a queued job, and `coordinator_queue_depth`.
 *
 * Jobs that must stay running while the test looks at the queue are *held*: they carry a
 * `grpc://` hints stream, and a sim contribution/execution completes only once its hints END has
 * arrived (`waitForHintsEnd`), so the test releases each job by pushing `CTRL_START, CTRL_END`.
 * Which queued job takes a freed worker is then the coordinator's choice alone, and no assertion
 * depends on how fast this (possibly loaded) machine runs. The remaining phases take a few hundred
 * ms, so the tests stay a few seconds each.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { SimFleet } from '../../src/sim/fleet';
import { TaskType } from '../../src/sim/messages';
import { FAST_SIM, assertAllReady, startCluster, type Cluster, type ClusterOptions } from '../helpers/cluster';
import { startTestCoordinator } from '../helpers/coordinator';
import {
  apiClient,
  assertError,
  callError,
  fakeElf,
  inline,
  pushStream,
  register,
  sample,
  scrape,
  sleep,
  submit,
  unary,
  wait,
  waitTerminal,
  watch,
  type WaitResult,
  type WatchHandle,
} from './helpers';

/** The program is set up with hints: the held jobs below carry a hints stream. */
const cluster = (workers: number, opts: ClusterOptions = {}): Promise<Cluster> =>
  startCluster(workers, { tag: 'queue', setups: [true], ...opts });

const HINTS = { stream_uri: 'grpc://hints' };

/** A prove / execute job that stays in its first phase until `release`. */
const heldProve = (c: Cluster): Promise<string> =>
  submit(c.client, { prove: { hash_id: c.hashId, input: inline(Buffer.alloc(64, 1)), hints: HINTS, proof_dest: 1 } });
const heldExecute = (c: Cluster): Promise<string> =>
  submit(c.client, { execute: { hash_id: c.hashId, input: inline(Buffer.alloc(8)), hints: HINTS } });

/**
 * Pushes an empty hints stream (CTRL_START, CTRL_END). The push of a queued job is held by the
 * coordinator until the job starts, so the promise resolves once the hints are on their way.
 */
function release(c: Cluster, jobId: string): Promise<object> {
  const words = Buffer.alloc(16);
  words.writeBigUInt64LE(1n << 32n, 8); // CTRL_END; CTRL_START is all zeros
  return pushStream(c.client, 'PushJobHintsInput', [{ job_id: jobId, chunk: { data: words } }], { deadlineMs: 20_000 }).result;
}

/** The job's status; only used on states that cannot change meanwhile (the hold is 1 s). */
async function statusOf(c: Cluster, jobId: string): Promise<WaitResult['job_status']> {
  return (await wait(c.client, jobId, 1)).job_status;
}

type Ts = { seconds: string; nanos: number };
const msOf = (ts: Ts): number => Number(ts.seconds) * 1000 + ts.nanos / 1e6;

/** Host time (ms) of a WatchJob event, from its own timestamp. */
function eventAt(w: WatchHandle, name: string): number | undefined {
  const e = w.events.find((x) => x.event === name);
  return e ? msOf((e[name] as { timestamp: Ts }).timestamp) : undefined;
}

const names = (w: WatchHandle): string[] => w.events.map((e) => e.event);
const hasStarted = (w: WatchHandle): boolean => w.events.some((e) => e.event === 'started');

async function until(what: string, pred: () => boolean | Promise<boolean>, limitMs = 5_000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!(await pred())) {
    if (Date.now() > end) assert.fail(`timed out after ${limitMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

async function queueDepth(c: Cluster): Promise<number> {
  return sample(await scrape(c.tc), 'coordinator_queue_depth');
}

/** Job ids in the order the sims first received a task of this type for them. */
function startOrder(c: Cluster, taskType: number): string[] {
  const seen: string[] = [];
  for (const e of c.fleet.entries({ dir: 'in', kind: 'execute_task', taskType })) {
    if (e.jobId !== undefined && !seen.includes(e.jobId)) seen.push(e.jobId);
  }
  return seen;
}

test('default_compute_units = 1, 2 workers of 1 unit: 2 jobs run, 3 queue, they start in submission order and all complete', { timeout: 30_000 }, async () => {
  const c = await cluster(2, {
    coordinator: { default_compute_units: 1 },
    sim: { computeUnits: 1, contributionDelayMs: 100, proveDelayMs: 200, aggregateDelayMs: 100 },
  });
  try {
    const jobs: string[] = [];
    const watches: WatchHandle[] = [];
    for (let i = 0; i < 5; i++) {
      const id = await heldProve(c);
      jobs.push(id);
      watches.push(watch(c.client, id));
    }

    const statuses = await Promise.all(jobs.map((id) => statusOf(c, id)));
    assert.deepEqual(
      statuses.map((s) => s.status),
      ['running', 'running', 'queued', 'queued', 'queued'],
      JSON.stringify(statuses),
    );
    for (const s of statuses.slice(0, 2)) assert.equal(s.running?.phase, 1, 'a running prove job reports CONTRIBUTIONS');
    for (const w of watches.slice(2)) assert.deepEqual(names(w), ['queued'], 'a queued job has a queued event and no started event');
    assert.equal(await queueDepth(c), 3, 'coordinator_queue_depth counts the three queued jobs');

    // Each freed worker goes to the oldest queued job.
    const pushes: Array<Promise<object>> = [];
    for (const [freed, next] of [[0, 2], [1, 3], [2, 4]]) {
      pushes.push(release(c, jobs[freed]));
      await until(`job ${next} started after job ${freed} finished`, () => hasStarted(watches[next]));
      for (let later = next + 1; later < jobs.length; later++) {
        assert.ok(!hasStarted(watches[later]), `job ${later} must not start before job ${next}: ${JSON.stringify(names(watches[later]))}`);
      }
      await until(`queue depth ${jobs.length - 1 - next}`, async () => (await queueDepth(c)) === jobs.length - 1 - next, 2_000);
    }
    pushes.push(release(c, jobs[3]), release(c, jobs[4]));
    for (const p of pushes) assert.deepEqual(await p, {});

    const results = await Promise.all(jobs.map((id) => waitTerminal(c.client, id, 20_000)));
    for (const r of results) assert.equal(r.job_status.status, 'completed', JSON.stringify(r.job_status));
    await Promise.all(watches.map((w) => w.done));

    // Start order, by the `started` timestamps and by the order the sims received the tasks.
    const started = watches.map((w) => eventAt(w, 'started'));
    assert.ok(started.every((t) => t !== undefined), 'every job was started');
    for (let i = 2; i < started.length; i++) {
      assert.ok((started[i] as number) >= (started[i - 1] as number), `job ${i} started after job ${i - 1}: ${JSON.stringify(started)}`);
    }
    // a queued job started only once a worker freed: after the completion of the job it replaced
    for (const [freed, next] of [[0, 2], [1, 3], [2, 4]]) {
      const done = eventAt(watches[freed], 'completed') as number;
      assert.ok((started[next] as number) >= done, `job ${next} started at ${started[next]}, job ${freed} completed at ${done}`);
    }
    const order = startOrder(c, TaskType.PARTIAL_CONTRIBUTION);
    assert.deepEqual(order.slice(2), jobs.slice(2), 'the sims received the queued jobs\' tasks in submission order');
    assert.deepEqual([...order.slice(0, 2)].sort(), [...jobs.slice(0, 2)].sort());
    // one unit per job: each job ran on exactly one worker
    for (const id of jobs) {
      assert.equal(c.fleet.entries({ dir: 'in', kind: 'execute_task', taskType: TaskType.PARTIAL_CONTRIBUTION, jobId: id }).length, 1, id);
    }
    await until('the queue depth back to 0', async () => (await queueDepth(c)) === 0, 2_000);
    await assertAllReady(c, 2);
  } finally {
    await c.close();
  }
});

test('default_compute_units = 0: a second job waits for every eligible worker and never starts short', { timeout: 30_000 }, async () => {
  // A long aggregate phase: the non-aggregator is released first, and one free worker of two must
  // not be enough to start the next job.
  const c = await cluster(2, { sim: { contributionDelayMs: 50, proveDelayMs: 100, aggregateDelayMs: 500 } });
  try {
    const first = await heldProve(c);
    const second = await heldProve(c);
    const w1 = watch(c.client, first);
    const w2 = watch(c.client, second);
    const [s1, s2] = await Promise.all([statusOf(c, first), statusOf(c, second)]);
    assert.equal(s1.status, 'running');
    assert.equal(s2.status, 'queued');
    const pushes = [release(c, first), release(c, second)];

    // While the first job aggregates, one worker is free and the second job still waits.
    await until('the first job in AGGREGATE', () => w1.events.some((e) => e.event === 'progress' && (e.progress as { phase: number }).phase === 3));
    await until('the non-aggregator released', async () => sample(await scrape(c.tc), 'coordinator_workers{state="ready"}') === 1 || w1.events.some((e) => e.event === 'completed'));
    assert.ok(!w1.events.some((e) => e.event === 'completed'), 'the window closed too early to look at it (machine overloaded?)');
    assert.ok(!hasStarted(w2), 'one free worker of two is not enough');
    assert.equal(await queueDepth(c), 1);

    const [r1, r2] = await Promise.all([waitTerminal(c.client, first), waitTerminal(c.client, second)]);
    assert.equal(r1.job_status.status, 'completed', JSON.stringify(r1.job_status));
    assert.equal(r2.job_status.status, 'completed', JSON.stringify(r2.job_status));
    for (const p of pushes) assert.deepEqual(await p, {});
    await Promise.all([w1.done, w2.done]);
    const firstDone = eventAt(w1, 'completed') as number;
    const secondStarted = eventAt(w2, 'started') as number;
    assert.ok(secondStarted >= firstDone, `second started at ${secondStarted}, first completed at ${firstDone}`);
    // both ran on both workers
    for (const id of [first, second]) {
      const tasks = c.fleet.entries({ dir: 'in', kind: 'execute_task', taskType: TaskType.PARTIAL_CONTRIBUTION, jobId: id });
      assert.deepEqual(tasks.map((t) => t.workerId).sort(), ['sim-0', 'sim-1'], id);
    }
    await assertAllReady(c, 2);
  } finally {
    await c.close();
  }
});

test('queue_timeout_seconds = 1: a job that cannot start within 1 s fails with a timeout and no phase', { timeout: 30_000 }, async () => {
  const c = await cluster(1, { coordinator: { queue_timeout_seconds: 1 } });
  try {
    const busy = await heldExecute(c);
    const t0 = Date.now();
    const late = await heldProve(c);
    const w = watch(c.client, late);
    const r = await waitTerminal(c.client, late, 10_000);
    const elapsed = Date.now() - t0;
    assert.equal(r.job_status.status, 'failed', JSON.stringify(r.job_status));
    const failure = r.job_status.failed?.failure as { kind: string; timeout?: { phase?: number; limit?: { seconds: string; nanos: number } } };
    assert.equal(failure.kind, 'timeout');
    assert.equal(failure.timeout?.phase, undefined, `no phase for a queue timeout: ${JSON.stringify(failure)}`);
    assert.deepEqual(failure.timeout?.limit, { seconds: '1', nanos: 0 });
    assert.ok(elapsed >= 900, `failed after ${elapsed} ms`);
    await w.done;
    assert.deepEqual(names(w), ['queued', 'failed']);
    assert.equal(c.fleet.entries({ jobId: late, dir: 'in' }).length, 0, 'no worker ever heard of the timed-out job');
    // the running job is untouched by the queue timeout (it is older than 1 s by now)
    assert.equal((await statusOf(c, busy)).status, 'running');
    assert.equal(await queueDepth(c), 0);
    assert.deepEqual(await release(c, busy), {});
    assert.equal((await waitTerminal(c.client, busy)).job_status.status, 'completed');
    await assertAllReady(c, 1);
  } finally {
    await c.close();
  }
});

test('max_queued_jobs = 2: the job beyond gets RESOURCE_EXHAUSTED and leaves nothing behind', { timeout: 30_000 }, async () => {
  const c = await cluster(1, { coordinator: { max_queued_jobs: 2 } });
  try {
    const running = await heldExecute(c);
    const queued = [await heldExecute(c), await heldExecute(c)];
    await until('queue depth 2', async () => (await queueDepth(c)) === 2, 2_000);
    const e = await callError(c.client, 'JobRequest', { job_kind: { execute: { hash_id: c.hashId, input: inline(Buffer.alloc(8)), hints: HINTS } } });
    assertError(e, grpc.status.RESOURCE_EXHAUSTED, 'Queue full (2 jobs)', 2002);
    assert.equal(e.apiError?.name, 'QUEUE_FULL');
    const e2 = await callError(c.client, 'JobRequest', { job_kind: { prove: { hash_id: c.hashId, input: inline(), hints: HINTS, proof_dest: 1 } } });
    assertError(e2, grpc.status.RESOURCE_EXHAUSTED, 'Queue full (2 jobs)', 2002);

    const text = await scrape(c.tc);
    assert.equal(sample(text, 'coordinator_queue_depth'), 2, 'the refused jobs are not queued');
    assert.equal(sample(text, 'coordinator_active_jobs'), 1);
    assert.equal(sample(text, 'coordinator_requests_total{method="JobRequest",status="RESOURCE_EXHAUSTED"}'), 2);

    const pushes = [running, ...queued].map((id) => release(c, id));
    for (const id of [running, ...queued]) {
      const r = await waitTerminal(c.client, id, 10_000);
      assert.equal(r.job_status.status, 'completed', JSON.stringify(r.job_status));
    }
    for (const p of pushes) assert.deepEqual(await p, {});
    // Only the three accepted jobs ever ran; the sims saw nothing else.
    const executed = new Set(c.fleet.entries({ dir: 'in', kind: 'execute_task' }).map((x) => x.jobId));
    assert.deepEqual([...executed].sort(), [running, ...queued].sort());
    await until('the queue depth back to 0', async () => (await queueDepth(c)) === 0, 2_000);
    const after = await scrape(c.tc);
    assert.equal(sample(after, 'coordinator_jobs_finished_total{kind="execute",outcome="success"}'), 3);
    assert.equal(sample(after, 'coordinator_active_jobs'), 0);
    // room again: a new job is accepted
    const again = await heldExecute(c);
    assert.deepEqual(await release(c, again), {});
    assert.equal((await waitTerminal(c.client, again)).job_status.status, 'completed');
    await assertAllReady(c, 1);
  } finally {
    await c.close();
  }
});

test('no worker connected and no setup done: UNAVAILABLE with the upstream texts', { timeout: 30_000 }, async () => {
  const tc = await startTestCoordinator();
  const client = apiClient(tc.apiAddress);
  let fleet: SimFleet | undefined;
  try {
    const hashId = await register(client, fakeElf('queue-unavailable'));
    const kinds: Array<[string, object]> = [
      ['prove', { prove: { hash_id: hashId, input: inline(), proof_dest: 1 } }],
      ['execute', { execute: { hash_id: hashId, input: inline() } }],
    ];
    for (const [name, kind] of kinds) {
      const e = await callError(client, 'JobRequest', { job_kind: kind });
      assertError(e, grpc.status.UNAVAILABLE, 'Cluster unavailable: no workers connected', 2001);
      assert.equal(e.apiError?.name, 'CLUSTER_UNAVAILABLE', name);
    }

    fleet = new SimFleet({ coordinator: tc.clusterAddress, workers: 2, ...FAST_SIM }).start();
    await fleet.waitAllRegistered(10_000);
    for (const [, kind] of kinds) {
      const e = await callError(client, 'JobRequest', { job_kind: kind });
      assertError(e, grpc.status.UNAVAILABLE, 'Cluster unavailable: workers connected but setup not done; call setup() first', 2001);
    }
    // set up without hints only: a job with hints is refused the same way
    const setupId = await submit(client, { setup: { hash_id: hashId, with_hints: false, program_name: 'queue' } });
    assert.equal((await waitTerminal(client, setupId)).job_status.status, 'completed');
    const e = await callError(client, 'JobRequest', {
      job_kind: { prove: { hash_id: hashId, input: inline(), hints: { stream_uri: 'grpc://hints' }, proof_dest: 1 } },
    });
    assertError(e, grpc.status.UNAVAILABLE, 'Cluster unavailable: workers connected but setup not done; call setup() first', 2001);
    const text = await scrape(tc);
    assert.equal(sample(text, 'coordinator_queue_depth'), 0);
    assert.equal(sample(text, 'coordinator_requests_total{method="JobRequest",status="UNAVAILABLE"}'), 5);
  } finally {
    await fleet?.stop();
    client.close();
    await tc.stop();
  }
});

test('cancel of a queued job: cancelled at once, no worker involved, and the queue moves on', { timeout: 30_000 }, async () => {
  const c = await cluster(1);
  try {
    const running = await heldExecute(c);
    const victim = await heldExecute(c);
    const next = await heldExecute(c);
    const w = watch(c.client, victim);
    const wNext = watch(c.client, next);
    const [sRunning, sVictim] = await Promise.all([statusOf(c, running), statusOf(c, victim)]);
    assert.equal(sRunning.status, 'running');
    assert.equal(sVictim.status, 'queued');
    assert.equal(await queueDepth(c), 2);

    const res = await unary<{ job_id: string; cancelled: boolean }>(c.client, 'CancelJob', { job_id: victim });
    assert.deepEqual(res, { job_id: victim, cancelled: true });
    assert.equal((await wait(c.client, victim)).job_status.status, 'cancelled');
    await w.done;
    assert.deepEqual(names(w), ['queued', 'cancelled']);
    assert.equal(await queueDepth(c), 1);
    assert.equal((await statusOf(c, running)).status, 'running', 'the running job is untouched');
    assert.ok(!hasStarted(wNext), 'the next job still waits for the busy worker');

    const pushes = [release(c, running), release(c, next)];
    for (const id of [running, next]) {
      const r = await waitTerminal(c.client, id, 10_000);
      assert.equal(r.job_status.status, 'completed', JSON.stringify(r.job_status));
    }
    for (const p of pushes) assert.deepEqual(await p, {});
    assert.deepEqual(startOrder(c, TaskType.EXECUTION), [running, next]);
    assert.equal(c.fleet.entries({ jobId: victim }).length, 0, 'the cancelled job never reached a worker');
    assert.equal(c.fleet.stats().cancelsReceived, 0, 'nothing to cancel on a worker');
    await until('the queue depth back to 0', async () => (await queueDepth(c)) === 0, 2_000);
    await assertAllReady(c, 1);
  } finally {
    await c.close();
  }
});
