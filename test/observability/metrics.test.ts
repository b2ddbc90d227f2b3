import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setImmediate as nextImmediate, setTimeout as sleep } from 'node:timers/promises';
import { CoordinatorMetrics, DURATION_BUCKETS, LoopStatsSampler, type FinishedJob, type MetricsOptions } from '../../src/main/observability/metrics';

const T0 = 1_700_000_000_000;

/** A job accepted at T0 that ended `seconds` later, never started unless `startedAt` is given. */
function finished(kind: FinishedJob['kind'], outcome: FinishedJob['outcome'], seconds: number, startedAt?: number, id = `${kind}-${outcome}-${seconds}`): FinishedJob {
  return { id, kind, outcome, acceptedAt: T0, at: T0 + seconds * 1000, ...(startedAt !== undefined ? { startedAt } : {}) };
}

/** Metrics docs/metrics.md lists, with their type (the test below holds the doc to the registry). */
const DOCUMENTED: ReadonlyArray<[name: string, type: string]> = [
  ['coordinator_requests_total', 'counter'],
  ['coordinator_request_duration_seconds', 'histogram'],
  ['coordinator_active_jobs', 'gauge'],
  ['coordinator_jobs_total', 'counter'],
  ['coordinator_job_duration_seconds', 'histogram'],
  ['coordinator_worker_jobs_total', 'counter'],
  ['coordinator_registered_programs_total', 'gauge'],
  ['coordinator_workers_connected', 'gauge'],
  ['coordinator_queue_depth', 'gauge'],
  ['coordinator_workers', 'gauge'],
  ['coordinator_phase_duration_seconds', 'histogram'],
  ['coordinator_worker_messages_total', 'counter'],
  ['coordinator_ignored_worker_messages_total', 'counter'],
  ['coordinator_recovery_timeouts_total', 'counter'],
  ['coordinator_job_retries_total', 'counter'],
  ['coordinator_bytes_sent_total', 'counter'],
  ['coordinator_event_loop_delay_seconds', 'gauge'],
  ['coordinator_event_loop_utilization', 'gauge'],
  ['coordinator_build_info', 'gauge'],
  ['coordinator_running_jobs', 'gauge'],
  ['coordinator_oldest_running_job_seconds', 'gauge'],
  ['coordinator_jobs_submitted_total', 'counter'],
  ['coordinator_jobs_finished_total', 'counter'],
  ['coordinator_job_latency_seconds', 'histogram'],
  ['coordinator_queue_wait_seconds', 'histogram'],
  ['coordinator_phase_timeout_seconds', 'gauge'],
  ['coordinator_job_timeout_seconds', 'gauge'],
  ['coordinator_worker_registrations_total', 'counter'],
  ['coordinator_worker_disconnects_total', 'counter'],
  ['coordinator_state_store_errors_total', 'counter'],
  ['coordinator_scheduler_batches_total', 'counter'],
  ['coordinator_scheduler_batch_items_total', 'counter'],
];

/** Value of the sample whose name+labels text is exactly `series`, or undefined if absent. */
function sample(body: string, series: string): number | undefined {
  for (const line of body.split('\n')) {
    if (line.startsWith(series + ' ')) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

/** The main-thread sampler's tick, in ms (`CoordinatorMetrics` samples its loop every 10 ms). */
const MAIN_RESOLUTION_MS = 10;

/**
 * Resolves after the next tick of a loop sampler of `resolutionMs`, which measures any stall before
 * it: a timer set now is due later than the tick already scheduled (at most `resolutionMs` after the
 * previous one, by the same clock), and Node runs timers in the order they fall due.
 */
const afterNextTick = (resolutionMs: number): Promise<unknown> => sleep(resolutionMs + 1);

async function withMetrics(fn: (m: CoordinatorMetrics) => Promise<void>, opts: MetricsOptions = {}): Promise<void> {
  const m = new CoordinatorMetrics(opts);
  try {
    await fn(m);
  } finally {
    m.stop();
  }
}

test('every documented metric is rendered with HELP and TYPE before any observation', () =>
  withMetrics(async (m) => {
    const { contentType, body } = await m.render();
    assert.equal(contentType, 'text/plain; version=0.0.4; charset=utf-8');
    for (const [name, type] of DOCUMENTED) {
      assert.match(body, new RegExp(`^# HELP ${name} \\S.{10,}$`, 'm'), `HELP for ${name}`);
      assert.match(body, new RegExp(`^# TYPE ${name} ${type}$`, 'm'), `TYPE for ${name}`);
    }
  }));

test('closed label sets start at zero so dashboards see every series', () =>
  withMetrics(async (m) => {
    const { body } = await m.render();
    for (const state of ['idle', 'setting_up', 'ready', 'computing', 'disconnected']) {
      assert.equal(sample(body, `coordinator_workers{state="${state}"}`), 0, state);
    }
    for (const kind of ['elf', 'input', 'hints', 'task', 'other']) {
      assert.equal(sample(body, `coordinator_bytes_sent_total{kind="${kind}"}`), 0, kind);
    }
    for (const kind of ['setup', 'prove', 'execute', 'wrap']) {
      for (const outcome of ['success', 'failure', 'cancelled']) {
        assert.equal(sample(body, `coordinator_jobs_finished_total{kind="${kind}",outcome="${outcome}"}`), 0);
      }
      assert.equal(sample(body, `coordinator_running_jobs{kind="${kind}"}`), 0);
      assert.equal(sample(body, `coordinator_jobs_submitted_total{kind="${kind}"}`), 0);
    }
    for (const outcome of ['success', 'failure', 'cancelled']) {
      assert.equal(sample(body, `coordinator_jobs_total{kind="prove",outcome="${outcome}"}`), 0);
      assert.equal(sample(body, `coordinator_job_duration_seconds_count{outcome="${outcome}"}`), 0);
    }
    assert.doesNotMatch(body, /^coordinator_jobs_total\{kind="(setup|execute|wrap)"/m, 'upstream counted prove jobs only');
    for (const thread of ['main', 'scheduler']) {
      for (const stat of ['p50', 'p99', 'max']) {
        assert.notEqual(sample(body, `coordinator_event_loop_delay_seconds{thread="${thread}",stat="${stat}"}`), undefined);
      }
      assert.notEqual(sample(body, `coordinator_event_loop_utilization{thread="${thread}"}`), undefined);
    }
    for (const name of ['coordinator_active_jobs', 'coordinator_queue_depth', 'coordinator_workers_connected', 'coordinator_registered_programs_total']) {
      assert.equal(sample(body, name), 0, name);
    }
  }));

test('duration histograms use the documented buckets up to 7200 s', () =>
  withMetrics(async (m) => {
    assert.deepEqual(DURATION_BUCKETS, [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1200, 3600, 7200]);
    m.jobFinished(finished('prove', 'success', 5400, T0));
    m.phaseFinished('aggregate', 0.3);
    m.recordRequest('WaitJobResult', 'OK', 0.002);
    const { body } = await m.render();

    const bucketsOf = (prefix: string): string[] =>
      body
        .split('\n')
        .filter((l) => l.startsWith(prefix))
        .map((l) => /le="([^"]+)"/.exec(l)![1]!);
    const d8 = [...DURATION_BUCKETS.map(String), '+Inf'];
    // Each labelled series lists its buckets in order; the first series shows the layout.
    assert.deepEqual(bucketsOf('coordinator_job_duration_seconds_bucket{').slice(0, 15), d8);
    assert.deepEqual(bucketsOf('coordinator_phase_duration_seconds_bucket{').slice(0, 15), d8);
    const request = bucketsOf('coordinator_request_duration_seconds_bucket{');
    assert.equal(request[0], '0.001');
    assert.deepEqual(request.slice(-15), d8);

    assert.equal(sample(body, 'coordinator_job_duration_seconds_bucket{le="3600",outcome="success"}'), 0);
    assert.equal(sample(body, 'coordinator_job_duration_seconds_bucket{le="7200",outcome="success"}'), 1);
    assert.equal(sample(body, 'coordinator_job_latency_seconds_bucket{le="7200",kind="prove",outcome="success"}'), 1);
    assert.equal(sample(body, 'coordinator_phase_duration_seconds_bucket{le="0.5",phase="aggregate"}'), 1);
    assert.equal(sample(body, 'coordinator_phase_duration_seconds_count{phase="aggregate"}'), 1);
    assert.equal(sample(body, 'coordinator_request_duration_seconds_bucket{le="0.001",method="WaitJobResult"}'), 0);
    assert.equal(sample(body, 'coordinator_request_duration_seconds_bucket{le="0.005",method="WaitJobResult"}'), 1);
  }));

test('requests are labelled by method and gRPC code name, numeric codes included', () =>
  withMetrics(async (m) => {
    m.recordRequest('JobRequest', 'INVALID_ARGUMENT', 0.001);
    m.recordRequest('JobRequest', 5, 0.001);
    m.recordRequest('JobRequest', 0, 0.001);
    m.recordRequest('JobRequest', 0, 0.001);
    m.recordRequest('CancelJob', 99, 0.001);
    const { body } = await m.render();
    assert.equal(sample(body, 'coordinator_requests_total{method="JobRequest",status="INVALID_ARGUMENT"}'), 1);
    assert.equal(sample(body, 'coordinator_requests_total{method="JobRequest",status="NOT_FOUND"}'), 1);
    assert.equal(sample(body, 'coordinator_requests_total{method="JobRequest",status="OK"}'), 2);
    assert.equal(sample(body, 'coordinator_requests_total{method="CancelJob",status="UNKNOWN"}'), 1);
    assert.equal(sample(body, 'coordinator_request_duration_seconds_count{method="JobRequest"}'), 4);
  }));

test('gauges go down as well as up', () =>
  withMetrics(async (m) => {
    const now = Date.now();
    m.jobQueued('p1', now - 3000);
    m.jobStarted('p1', 'prove', now - 1000);
    m.jobStarted('e1', 'execute', now - 2000);
    m.jobStarted('w1', 'wrap', now - 500);
    m.jobStarted('s1', 'setup', now - 100);
    m.jobFinished({ id: 'e1', kind: 'execute', outcome: 'success', acceptedAt: now - 2000, startedAt: now - 2000, at: now });
    m.jobFinished({ id: 'q1', kind: 'prove', outcome: 'failure', acceptedAt: now - 10, at: now });
    m.setQueueDepth(4);
    m.setQueueDepth(1);
    m.setWorkerStates({ idle: 1, setting_up: 0, ready: 3, computing: 2, disconnected: 0 });
    m.setWorkerStates({ idle: 0, setting_up: 1, ready: 1, computing: 0, disconnected: 2 });
    let { body } = await m.render();
    assert.equal(sample(body, 'coordinator_active_jobs'), 1, 'prove and execute jobs, as upstream; a job that never started is not one');
    assert.equal(sample(body, 'coordinator_running_jobs{kind="prove"}'), 1);
    assert.equal(sample(body, 'coordinator_running_jobs{kind="wrap"}'), 1);
    assert.equal(sample(body, 'coordinator_running_jobs{kind="setup"}'), 1);
    assert.equal(sample(body, 'coordinator_running_jobs{kind="execute"}'), 0);
    assert.ok(sample(body, 'coordinator_oldest_running_job_seconds{kind="prove"}')! >= 1);
    assert.equal(sample(body, 'coordinator_oldest_running_job_seconds{kind="execute"}'), 0);
    assert.equal(sample(body, 'coordinator_queue_wait_seconds_count{kind="prove"}'), 1);
    assert.equal(sample(body, 'coordinator_queue_wait_seconds_sum{kind="prove"}'), 2);
    assert.equal(sample(body, 'coordinator_queue_depth'), 1);
    assert.equal(sample(body, 'coordinator_workers{state="ready"}'), 1);
    assert.equal(sample(body, 'coordinator_workers{state="computing"}'), 0);
    assert.equal(sample(body, 'coordinator_workers{state="disconnected"}'), 2);
    assert.equal(sample(body, 'coordinator_workers_connected'), 2, 'all but disconnected');
    assert.equal(sample(body, 'coordinator_jobs_finished_total{kind="execute",outcome="success"}'), 1);
    assert.equal(sample(body, 'coordinator_jobs_finished_total{kind="prove",outcome="failure"}'), 1);
    assert.equal(sample(body, 'coordinator_jobs_total{kind="prove",outcome="failure"}'), 1);
    assert.equal(sample(body, 'coordinator_job_duration_seconds_count{outcome="failure"}'), 0, 'not observed for a job that never started, as upstream');
    assert.equal(sample(body, 'coordinator_job_latency_seconds_count{kind="prove",outcome="failure"}'), 1);

    m.jobRetried('p1', 'prove', 'worker_lost');
    m.jobFinished({ id: 'w1', kind: 'wrap', outcome: 'cancelled', acceptedAt: now - 500, startedAt: now - 500, at: now });
    m.jobFinished({ id: 'w1', kind: 'wrap', outcome: 'cancelled', acceptedAt: now - 500, startedAt: now - 500, at: now });
    ({ body } = await m.render());
    assert.equal(sample(body, 'coordinator_active_jobs'), 0, 'a retried attempt is not running');
    assert.equal(sample(body, 'coordinator_running_jobs{kind="wrap"}'), 0, 'never below zero');
    assert.equal(sample(body, 'coordinator_job_retries_total{kind="prove",reason="worker_lost"}'), 1);
  }));

test('upstream names count prove jobs only; every kind is in our own names', () =>
  withMetrics(async (m) => {
    const startedAt = T0 + 4000;
    m.jobSubmitted('setup');
    m.jobSubmitted('prove');
    m.jobFinished(finished('setup', 'success', 3, T0));
    m.jobFinished(finished('execute', 'failure', 2, T0));
    m.jobFinished(finished('wrap', 'success', 9, T0));
    m.jobFinished(finished('prove', 'success', 10, startedAt));
    m.workerJob('w-1', 'success', 'prove');
    m.workerJob('w-1', 'success', 'setup');
    m.workerJob('w-1', 'failure', 'execute');
    const { body } = await m.render();
    assert.equal(sample(body, 'coordinator_jobs_total{kind="prove",outcome="success"}'), 1);
    assert.equal(sample(body, 'coordinator_jobs_total{kind="prove",outcome="failure"}'), 0);
    assert.doesNotMatch(body, /^coordinator_jobs_total\{kind="(setup|execute|wrap)"/m);
    // Upstream's duration runs from the start of the contributions phase, not from acceptance.
    assert.equal(sample(body, 'coordinator_job_duration_seconds_sum{outcome="success"}'), 6);
    assert.equal(sample(body, 'coordinator_job_duration_seconds_count{outcome="success"}'), 1);
    assert.equal(sample(body, 'coordinator_job_latency_seconds_sum{kind="prove",outcome="success"}'), 10);
    assert.equal(sample(body, 'coordinator_job_latency_seconds_sum{kind="wrap",outcome="success"}'), 9);
    assert.equal(sample(body, 'coordinator_jobs_finished_total{kind="setup",outcome="success"}'), 1);
    assert.equal(sample(body, 'coordinator_jobs_finished_total{kind="execute",outcome="failure"}'), 1);
    assert.equal(sample(body, 'coordinator_jobs_submitted_total{kind="prove"}'), 1);
    assert.equal(sample(body, 'coordinator_worker_jobs_total{worker_id="w-1",outcome="success"}'), 1);
    assert.equal(sample(body, 'coordinator_worker_jobs_total{worker_id="w-1",outcome="failure"}'), undefined);
  }));

test('build info, timeouts, worker churn and the state disk', () =>
  withMetrics(
    async (m) => {
      m.setTimeouts({ phase: { contributions: 300, prove: 600, aggregate: 100 }, job: { setup: 600, prove: 1000, execute: 300, wrap: 0 } });
      m.workerRegistered();
      m.workerRegistered();
      m.workerDisconnected();
      let { body } = await m.render();
      assert.equal(sample(body, 'coordinator_build_info{version="1.2.3"}'), 1);
      assert.equal(sample(body, 'coordinator_phase_timeout_seconds{phase="prove"}'), 600);
      assert.equal(sample(body, 'coordinator_job_timeout_seconds{kind="prove"}'), 1000);
      assert.equal(sample(body, 'coordinator_job_timeout_seconds{kind="wrap"}'), 0);
      assert.equal(sample(body, 'coordinator_worker_registrations_total'), 2);
      assert.equal(sample(body, 'coordinator_worker_disconnects_total'), 1);
      assert.doesNotMatch(body, /coordinator_state_disk_free_bytes/, 'only exported with the embedded store');
      m.stateDiskFree(5e9, 512 * 1024 * 1024);
      ({ body } = await m.render());
      assert.equal(sample(body, 'coordinator_state_disk_free_bytes'), 5e9);
      assert.equal(sample(body, 'coordinator_state_min_free_bytes'), 512 * 1024 * 1024);
    },
    { version: '1.2.3' },
  ));

test('worker, message, byte and program counters', () =>
  withMetrics(async (m) => {
    m.workerJob('worker-a', 'success', 'prove');
    m.workerJob('worker-a', 'success', 'prove');
    m.workerJob('worker-b', 'failure', 'prove');
    m.workerMessage('heartbeat_ack');
    m.workerMessage('heartbeat_ack');
    m.workerMessage('execute_task_response');
    m.ignoredWorkerMessage('late_result');
    m.bytesSent('elf', 1024);
    m.bytesSent('elf', 1024);
    m.bytesSent('task', 10);
    m.programRegistered();
    m.programRegistered();
    const { body } = await m.render();
    assert.equal(sample(body, 'coordinator_worker_jobs_total{worker_id="worker-a",outcome="success"}'), 2);
    assert.equal(sample(body, 'coordinator_worker_jobs_total{worker_id="worker-b",outcome="failure"}'), 1);
    assert.equal(sample(body, 'coordinator_worker_messages_total{type="heartbeat_ack"}'), 2);
    assert.equal(sample(body, 'coordinator_worker_messages_total{type="execute_task_response"}'), 1);
    assert.equal(sample(body, 'coordinator_ignored_worker_messages_total{reason="late_result"}'), 1);
    assert.equal(sample(body, 'coordinator_bytes_sent_total{kind="elf"}'), 2048);
    assert.equal(sample(body, 'coordinator_bytes_sent_total{kind="task"}'), 10);
    assert.equal(sample(body, 'coordinator_bytes_sent_total{kind="input"}'), 0);
    assert.equal(sample(body, 'coordinator_registered_programs_total'), 2);
    // Per-message counts are tallied between scrapes: a second scrape neither loses nor repeats them.
    m.workerMessage('heartbeat_ack');
    m.bytesSent('task', 5);
    const again = (await m.render()).body;
    assert.equal(sample(again, 'coordinator_worker_messages_total{type="heartbeat_ack"}'), 3);
    assert.equal(sample(again, 'coordinator_worker_messages_total{type="execute_task_response"}'), 1);
    assert.equal(sample(again, 'coordinator_bytes_sent_total{kind="task"}'), 15);
    assert.equal(sample((await m.render()).body, 'coordinator_worker_messages_total{type="heartbeat_ack"}'), 3);
    m.setRegisteredPrograms(5);
    assert.equal(sample((await m.render()).body, 'coordinator_registered_programs_total'), 5);
  }));

test('scheduler channel crossings: batches and the items they carried, by direction', () =>
  withMetrics(async (m) => {
    const first = (await m.render()).body;
    for (const direction of ['to_scheduler', 'from_scheduler']) {
      assert.equal(sample(first, `coordinator_scheduler_batches_total{direction="${direction}"}`), 0, direction);
      assert.equal(sample(first, `coordinator_scheduler_batch_items_total{direction="${direction}"}`), 0, direction);
    }
    m.schedulerBatch('to_scheduler', 3);
    m.schedulerBatch('to_scheduler', 2);
    m.schedulerBatch('from_scheduler', 7);
    const body = (await m.render()).body;
    assert.equal(sample(body, 'coordinator_scheduler_batches_total{direction="to_scheduler"}'), 2);
    assert.equal(sample(body, 'coordinator_scheduler_batch_items_total{direction="to_scheduler"}'), 5);
    assert.equal(sample(body, 'coordinator_scheduler_batches_total{direction="from_scheduler"}'), 1);
    assert.equal(sample(body, 'coordinator_scheduler_batch_items_total{direction="from_scheduler"}'), 7);
  }));

test('bad numbers are clamped instead of throwing into the caller', () =>
  withMetrics(async (m) => {
    m.recordRequest('JobRequest', 'OK', Number.NaN);
    m.jobFinished(finished('prove', 'success', -3, T0));
    m.phaseFinished('prove', Number.POSITIVE_INFINITY);
    m.bytesSent('other', -10);
    m.setQueueDepth(Number.NaN);
    m.setSchedulerLoopStats({ p50: Number.NaN, p99: -1, max: 0.2, utilization: 0.5 });
    const { body } = await m.render();
    assert.equal(sample(body, 'coordinator_bytes_sent_total{kind="other"}'), 0);
    assert.equal(sample(body, 'coordinator_queue_depth'), 0);
    assert.equal(sample(body, 'coordinator_request_duration_seconds_sum{method="JobRequest"}'), 0);
  }));

test('scheduler loop stats are reported as given', () =>
  withMetrics(async (m) => {
    m.setSchedulerLoopStats({ p50: 0.001, p99: 0.02, max: 0.15, utilization: 0.42 });
    const { body } = await m.render();
    assert.equal(sample(body, 'coordinator_event_loop_delay_seconds{thread="scheduler",stat="p50"}'), 0.001);
    assert.equal(sample(body, 'coordinator_event_loop_delay_seconds{thread="scheduler",stat="p99"}'), 0.02);
    assert.equal(sample(body, 'coordinator_event_loop_delay_seconds{thread="scheduler",stat="max"}'), 0.15);
    assert.equal(sample(body, 'coordinator_event_loop_utilization{thread="scheduler"}'), 0.42);
  }));

test('main-thread loop figures cover fixed windows: a scrape does not reset them', () =>
  withMetrics(
    async (m) => {
      const maxOf = async (): Promise<number> => sample((await m.render()).body, 'coordinator_event_loop_delay_seconds{thread="main",stat="max"}')!;
      // ELU only counts once the event loop is running; an immediate runs only inside the loop.
      await nextImmediate();
      const until = Date.now() + 120;
      while (Date.now() < until) {
        // Block the loop so the delay monitor sees a stall.
      }
      let max = 0;
      for (const deadline = Date.now() + 3000; max < 0.08 && Date.now() < deadline; ) {
        await afterNextTick(MAIN_RESOLUTION_MS);
        max = await maxOf();
      }
      assert.ok(max >= 0.08 && max < 1, `max delay ${max}`);
      const util = sample((await m.render()).body, 'coordinator_event_loop_utilization{thread="main"}')!;
      assert.ok(util > 0.1 && util <= 1, `utilization ${util}`);
      // A second scraper right after the first sees the same window, not an empty one.
      assert.equal(await maxOf(), max);
      for (const deadline = Date.now() + 3000; max >= 0.08 && Date.now() < deadline; ) {
        await afterNextTick(MAIN_RESOLUTION_MS);
        max = await maxOf();
      }
      // The next window has ticks of its own (an empty one reports 0) and not the stall.
      assert.ok(max > 0 && max < 0.08, `next window ${max}`);
    },
    { loopWindowMs: 300 },
  ));

test('one event-loop delay metric: prom-client\'s scrape-reset ones are not exported', () =>
  withMetrics(async (m) => {
    const { body } = await m.render();
    assert.doesNotMatch(body, /nodejs_eventloop_lag/);
    assert.match(body, /^# TYPE coordinator_event_loop_delay_seconds gauge$/m);
  }));

test('Node default metrics are in the same registry', () =>
  withMetrics(async (m) => {
    const { body } = await m.render();
    assert.match(body, /^# TYPE process_cpu_user_seconds_total counter$/m);
    assert.match(body, /^nodejs_heap_size_used_bytes \d/m);
  }));

test('instances are independent (private registries)', async () => {
  const a = new CoordinatorMetrics();
  const b = new CoordinatorMetrics();
  try {
    a.setQueueDepth(3);
    assert.equal(sample((await a.render()).body, 'coordinator_queue_depth'), 3);
    assert.equal(sample((await b.render()).body, 'coordinator_queue_depth'), 0);
  } finally {
    a.stop();
    b.stop();
  }
});

test('LoopStatsSampler: zeros before start and after stop, real figures in between', async () => {
  const s = new LoopStatsSampler(10);
  assert.deepEqual(s.sample(), { p50: 0, p99: 0, max: 0, utilization: 0 });
  s.start();
  s.start(); // idempotent
  await afterNextTick(10);
  const idle = s.sample();
  assert.ok(idle.max > 0, 'a tick was recorded');
  assert.ok(idle.p50 >= 0 && idle.p50 < 0.05, `idle p50 ${idle.p50} (resolution subtracted)`);
  assert.ok(idle.utilization >= 0 && idle.utilization <= 1);
  const until = Date.now() + 60;
  while (Date.now() < until) {
    // stall
  }
  await afterNextTick(10);
  const busy = s.sample();
  assert.ok(busy.max >= 0.04, `busy max ${busy.max}`);
  assert.ok(busy.p99 <= busy.max + 1e-9);
  s.stop();
  assert.deepEqual(s.sample(), { p50: 0, p99: 0, max: 0, utilization: 0 });
});

test('docs/metrics.md has a row for every coordinator metric, with its type, and no row for one that is not', () =>
  withMetrics(async (m) => {
    m.stateDiskFree(1, 1);
    const { body } = await m.render();
    const registered = new Map([...body.matchAll(/^# TYPE (coordinator_\S+) (\S+)$/gm)].map((x) => [x[1]!, x[2]!]));
    const doc = fs.readFileSync(path.join(__dirname, '../../../docs/metrics.md'), 'utf8');
    const rows = new Map([...doc.matchAll(/^\| `(coordinator_[a-z0-9_]+)` \| (\w+) \|/gm)].map((x) => [x[1]!, x[2]!]));
    assert.deepEqual([...rows.keys()].sort(), [...registered.keys()].sort());
    for (const [name, type] of registered) assert.equal(rows.get(name), type, name);
  }));
