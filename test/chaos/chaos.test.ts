/**
 * Chaos: nothing is lost, as figures. The real coordinator binary (embedded store, short timeouts so
 * faults resolve in seconds) runs prove jobs on 50 simulated workers speaking upstream's wire while a
 * seeded schedule kills workers (a new process registers afresh), drops their connections (back
 * within the reconnect grace or not), silences them (no heartbeats, inbound ignored: some long enough
 * to be declared lost, some only long enough to lose a task), stops them reading (HTTP/2 pushes back)
 * and makes them report task errors (a failed response or a WorkerError). Faults are drawn per job
 * submitted, so a slower machine sees the same number of them.
 *
 * Checked at the end, by observing (no sleeps):
 * - every job reaches a terminal state, and every attempt of it (its `started` event to the next
 *   `queued` or the terminal one, by the coordinator's own event timestamps) ends within the sum of
 *   the phase timeouts plus slack: no job hangs past its deadlines;
 * - a failure is either a task error a worker reported (never retried: no `retrying` log line names
 *   one) or the attempts running out (`failed after N attempts`, N = max_job_attempts); nothing else;
 * - the pool returns to the truth: `coordinator_workers{state}` shows every sim worker ready and none
 *   computing, setting up (parked), idle or disconnected; no job active or queued; the coordinator's
 *   `coordinator_jobs_total` counts every job once;
 * - the coordinator's RSS ends below its RSS before the jobs + 100 MiB (a leak guard, not a measure).
 *
 * Outcomes per category are reported as test diagnostics. `CHAOS_JOBS` (default 500), `CHAOS_SEED`
 * (default 1) and `CHAOS_WORKERS` (default 50) change the run, e.g. `CHAOS_JOBS=5000 CHAOS_SEED=7 node
 * --test dist/test/chaos/chaos.test.js`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { SimFleet } from '../../src/sim/fleet';
import type { SimPhase } from '../../src/sim/options';
import { freePort, spawnCoordinator, stopCoordinator, tempDir, type SpawnedCoordinator } from '../helpers/spawn-coordinator';
import { apiClient, fakeElf, inline, register, sample, submit, waitTerminal, watch, type WatchedEvent } from '../api/helpers';
import { seededRandom } from '../helpers/seeded-random';

function envInt(name: string, dflt: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new RangeError(`${name} must be a positive integer (got ${v})`);
  return n;
}

const SEED = envInt('CHAOS_SEED', 1);
const JOBS = envInt('CHAOS_JOBS', 500);
const WORKERS = envInt('CHAOS_WORKERS', 50);
/** Jobs submitted and not yet terminal at any time: a little more than the pool runs at once (50 / 3). */
const IN_FLIGHT = 24;
/** A fault is drawn with this probability at each job submission. */
const FAULT_RATE = 0.3;

const ATTEMPTS = 3;
const PHASE_TIMEOUT_S = 3;
const HEARTBEAT_S = 1;
const MAX_MISSED = 2;
/** An attempt ends within its three phase timeouts; the slack covers timer and event-loop lag. */
const ATTEMPT_LIMIT_MS = 3 * PHASE_TIMEOUT_S * 1000 + 5_000;
const RSS_BOUND = 100 * 1024 * 1024;

const TASK_ERROR = 'chaos task error';
const WORKER_ERROR = 'chaos worker error';

type FaultKind =
  | 'taskError'
  | 'workerError'
  | 'killOnTask'
  | 'killNow'
  | 'disconnectOnTask'
  | 'disconnectNow'
  | 'silenceOnTask'
  | 'silenceNow'
  | 'slowReadNow';

const FAULT_WEIGHTS: ReadonlyArray<[FaultKind, number]> = [
  ['taskError', 12],
  ['workerError', 4],
  ['killOnTask', 14],
  ['killNow', 8],
  ['disconnectOnTask', 12],
  ['disconnectNow', 12],
  ['silenceOnTask', 6],
  ['silenceNow', 10],
  ['slowReadNow', 22],
];

const TASK_PHASES: readonly SimPhase[] = ['contribution', 'prove', 'aggregate'];

class Chaos {
  readonly injected = new Map<FaultKind, number>();
  private readonly total = FAULT_WEIGHTS.reduce((a, [, w]) => a + w, 0);

  constructor(
    private readonly rand: () => number,
    private readonly fleet: SimFleet,
  ) {}

  private int(lo: number, hi: number): number {
    return lo + Math.floor(this.rand() * (hi - lo + 1));
  }

  private pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.rand() * xs.length)];
  }

  maybeInject(): void {
    if (this.rand() >= FAULT_RATE) return;
    let r = this.rand() * this.total;
    let kind: FaultKind = FAULT_WEIGHTS[0][0];
    for (const [k, w] of FAULT_WEIGHTS) {
      if (r < w) {
        kind = k;
        break;
      }
      r -= w;
    }
    const w = this.pick(this.fleet.workers);
    const phase = this.pick(TASK_PHASES);
    this.injected.set(kind, (this.injected.get(kind) ?? 0) + 1);
    switch (kind) {
      case 'taskError':
        return w.inject(phase, { action: 'error', message: TASK_ERROR, workerInRecovery: this.rand() < 0.5 });
      case 'workerError':
        return w.inject(phase, { action: 'workerError', message: WORKER_ERROR });
      case 'killOnTask':
        return w.inject(phase, { action: 'kill', atMs: this.int(0, 20), reconnectAfterMs: this.int(20, 400) });
      case 'killNow':
        return w.kill(this.int(20, 400));
      case 'disconnectOnTask':
        // Half come back within the reconnect grace (300 ms) and carry on, half do not.
        return w.inject(phase, { action: 'disconnect', atMs: this.int(0, 20), reconnectAfterMs: this.int(0, 600) });
      case 'disconnectNow':
        return w.disconnect(this.int(0, 600));
      case 'silenceOnTask':
        // Shorter than the liveness limit (2 s): the task is lost and a phase timeout ends the attempt.
        return w.inject(phase, { action: 'silence', durationMs: this.int(300, 1_500) });
      case 'silenceNow':
        // Some outlast the liveness limit: declared lost, then back with a new stream.
        return w.silence(this.int(300, 3_500));
      case 'slowReadNow':
        return w.pauseReading(this.int(100, 1_500));
    }
  }

  /** Ends every fault: armed ones are disarmed, silences and paused reads end now. */
  calm(): void {
    for (const w of this.fleet.workers) {
      w.clearFaults();
      if (w.isSilent) w.unsilence();
      w.resumeReading();
    }
  }
}

interface JobRecord {
  id: string;
  events: WatchedEvent[];
}

type Outcome =
  | 'completedFirstTry'
  | 'completedAfterRetry'
  | 'failedByWorkerError'
  | 'failedAfterAttempts'
  | 'staleResultAfterRetry'
  | 'aggregateReplayDuplicate'
  | 'cancelled'
  | 'other';

/**
 * Two races this test found, counted apart (the last test asserts there are none) so their failures
 * are named when they come back:
 * - A result a worker sent for attempt N reaching the coordinator after attempt N+1 gave that worker
 *   the same job again would be taken as attempt N+1's (the wire has no attempt number); the worker
 *   now takes no part in the next attempt before acknowledging the cancel (docs/decisions.md, Retries).
 * - An AGGREGATE re-sent on a KEEP_COMPUTING reconnect is computed twice; the duplicate (empty) answer
 *   of a non-final step arriving where the final proof is expected is now ignored (docs/decisions.md,
 *   Scheduling).
 */
const KNOWN_RACES: ReadonlyArray<[Outcome, RegExp]> = [
  // The worker refuses the next task: still computing, or challenges for the old attempt's ranks.
  ['staleResultAfterRetry', /^Task execution failed on worker \S+: (Job \S+ is still computing |Challenge check failed: )/],
  ['aggregateReplayDuplicate', /returned an empty proof for the final aggregation step/],
];

function eventTime(e: WatchedEvent): number | undefined {
  const body = e[e.event] as { timestamp?: { seconds?: string; nanos?: number } } | undefined;
  const ts = body?.timestamp;
  if (!ts?.seconds) return undefined;
  return Number(ts.seconds) * 1000 + (ts.nanos ?? 0) / 1e6;
}

function failureReason(e: WatchedEvent): string {
  const f = (e.failed as { failure?: { execution?: { reason?: string } } } | undefined)?.failure;
  return f?.execution?.reason ?? JSON.stringify(f ?? {});
}

/** The last attempt's failure text: a `failed after N attempts: <last> (last; …)` reason names it first. */
function lastAttemptText(reason: string): { attempts: number; last: string } {
  const m = /^failed after (\d+) attempts: (.*) \(last; attempt 1: /s.exec(reason);
  return m ? { attempts: Number(m[1]), last: m[2] } : { attempts: 1, last: reason };
}

function classify(job: JobRecord): { outcome: Outcome; detail: string } {
  const terminal = job.events[job.events.length - 1];
  const starts = job.events.filter((e) => e.event === 'started').length;
  if (terminal?.event === 'completed') return { outcome: starts > 1 ? 'completedAfterRetry' : 'completedFirstTry', detail: '' };
  if (terminal?.event === 'cancelled') return { outcome: 'cancelled', detail: '' };
  if (terminal?.event !== 'failed') return { outcome: 'other', detail: `ended with ${terminal?.event ?? 'nothing'}` };
  const reason = failureReason(terminal);
  const { attempts, last } = lastAttemptText(reason);
  if (last.includes(TASK_ERROR) || last.includes(WORKER_ERROR)) return { outcome: 'failedByWorkerError', detail: reason };
  if (attempts === ATTEMPTS) return { outcome: 'failedAfterAttempts', detail: reason };
  for (const [outcome, re] of KNOWN_RACES) {
    if (re.test(last) && (outcome !== 'staleResultAfterRetry' || attempts > 1)) return { outcome, detail: reason };
  }
  return { outcome: 'other', detail: reason };
}

/** Each attempt's span by the coordinator's clock: `started` to the next `queued` or terminal event. */
function attemptSpans(job: JobRecord): number[] {
  const spans: number[] = [];
  let startedAt: number | undefined;
  for (const e of job.events) {
    const t = eventTime(e);
    if (e.event === 'started') startedAt = t;
    else if ((e.event === 'queued' || e.event === 'completed' || e.event === 'failed' || e.event === 'cancelled') && startedAt !== undefined && t !== undefined) {
      spans.push(t - startedAt);
      startedAt = undefined;
    }
  }
  return spans;
}

function vmRss(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

const WORKER_STATES = ['idle', 'setting_up', 'ready', 'computing', 'disconnected'] as const;

interface PoolSnapshot {
  states: Record<(typeof WORKER_STATES)[number], number>;
  connected: number;
  active: number;
  queued: number;
  text: string;
}

async function poolSnapshot(metricsPort: number): Promise<PoolSnapshot> {
  const text = await fetch(`http://127.0.0.1:${metricsPort}/metrics`).then((r) => r.text());
  const states = Object.fromEntries(WORKER_STATES.map((s) => [s, sample(text, `coordinator_workers{state="${s}"}`)])) as PoolSnapshot['states'];
  return {
    states,
    connected: sample(text, 'coordinator_workers_connected'),
    active: sample(text, 'coordinator_active_jobs'),
    queued: sample(text, 'coordinator_queue_depth'),
    text,
  };
}

function atRest(p: PoolSnapshot): boolean {
  return (
    p.states.ready === WORKERS &&
    p.states.idle === 0 &&
    p.states.setting_up === 0 &&
    p.states.computing === 0 &&
    p.states.disconnected === 0 &&
    p.connected === WORKERS &&
    p.active === 0 &&
    p.queued === 0
  );
}

/** Polls /metrics until the pool is at rest (each scrape is an observation); fails with the last one. */
async function waitAtRest(metricsPort: number, limitMs: number): Promise<PoolSnapshot> {
  const end = Date.now() + limitMs;
  for (;;) {
    const p = await poolSnapshot(metricsPort);
    if (atRest(p)) return p;
    if (Date.now() > end) {
      throw new Error(`pool not at rest after ${limitMs} ms: ${JSON.stringify({ states: p.states, connected: p.connected, active: p.active, queued: p.queued })}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function runJob(client: grpc.Client, hashId: string, n: number): Promise<JobRecord> {
  const id = await submit(client, { prove: { hash_id: hashId, input: inline(Buffer.alloc(32, n & 0xff)), proof_dest: 1 } });
  // WatchJob replays the job's history first, so nothing is missed between the submit and the watch.
  const w = watch(client, id, 600_000);
  const status = await w.done;
  assert.equal(status.code, 0, `WatchJob of ${id} ended with ${status.code} ${status.details}`);
  return { id, events: w.events };
}

/** Jobs lost to the known races (filled by the chaos run, read by the todo test after it). */
const races: string[] = [];
let chaosRan = false;

test(`chaos: ${JOBS} prove jobs on ${WORKERS} workers through kills, disconnects, silences, slow reads and task errors (seed ${SEED})`, { timeout: 600_000 }, async (t) => {
  const t0 = performance.now();
  const dir = tempDir('zisk-chaos-');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const ports = { api: await freePort(), cluster: await freePort(), metrics: await freePort() };
  const c: SpawnedCoordinator = await spawnCoordinator({
    args: ['--api-port', String(ports.api), '--cluster-port', String(ports.cluster), '--metrics-port', String(ports.metrics)],
    env: {
      ZISK_COORDINATOR_SERVER_HOST: '127.0.0.1',
      ZISK_COORDINATOR_METRICS_HOST: '127.0.0.1',
      ZISK_COORDINATOR_STATE_DIR: path.join(dir, 'state'),
      ZISK_COORDINATOR_COORDINATOR_CACHE_DIR: path.join(dir, 'cache'),
      ZISK_COORDINATOR_COORDINATOR_DEFAULT_COMPUTE_UNITS: '3',
      ZISK_COORDINATOR_COORDINATOR_MAX_JOB_ATTEMPTS: String(ATTEMPTS),
      ZISK_COORDINATOR_COORDINATOR_PHASE1_TIMEOUT_SECONDS: String(PHASE_TIMEOUT_S),
      ZISK_COORDINATOR_COORDINATOR_PHASE2_TIMEOUT_SECONDS: String(PHASE_TIMEOUT_S),
      ZISK_COORDINATOR_COORDINATOR_PHASE3_TIMEOUT_SECONDS: String(PHASE_TIMEOUT_S),
      ZISK_COORDINATOR_COORDINATOR_HEARTBEAT_INTERVAL_SECONDS: String(HEARTBEAT_S),
      ZISK_COORDINATOR_COORDINATOR_HEARTBEAT_MAX_MISSED: String(MAX_MISSED),
      ZISK_COORDINATOR_COORDINATOR_RECONNECT_GRACE_PERIOD_MS: '300',
      ZISK_COORDINATOR_COORDINATOR_RECOVERY_TIMEOUT_SECONDS: '2',
    },
  });
  t.after(() => stopCoordinator(c));
  // CHAOS_LOG=<file>: keep the coordinator's log (JSON lines) to read a failure.
  const keepLog = process.env.CHAOS_LOG;
  const simLog: string[] = [];
  if (keepLog) {
    t.after(() => {
      fs.writeFileSync(keepLog, c.lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
      fs.writeFileSync(`${keepLog}.sims`, simLog.join('\n') + '\n');
    });
  }
  const pid = c.child.pid as number;

  const rand = seededRandom(SEED);
  const delay = (lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1));
  const fleet = new SimFleet({
    coordinator: `127.0.0.1:${ports.cluster}`,
    workers: WORKERS,
    wire: 'upstream',
    computeUnits: 1,
    heartbeatIntervalMs: 400,
    reconnectIntervalMs: 200,
    setupDelayMs: 5,
    recoveryDelayMs: 20,
    proofValues: 16,
    finalProofBytes: 256,
    maxLogEntries: 50,
    ...(keepLog ? { logger: (line: string) => simLog.push(`${new Date().toISOString()} ${line}`) } : {}),
    perWorker: () => ({ contributionDelayMs: delay(2, 20), proveDelayMs: delay(2, 20), aggregateDelayMs: delay(1, 10) }),
  }).start();
  t.after(() => fleet.stop());
  const client = apiClient(`127.0.0.1:${ports.api}`);
  t.after(() => client.close());
  await fleet.waitAllRegistered(30_000);
  const hashId = await register(client, fakeElf('chaos'));
  const setup = await submit(client, { setup: { hash_id: hashId, with_hints: false, program_name: 'chaos' } });
  assert.equal((await waitTerminal(client, setup, 30_000)).job_status.status, 'completed');
  await waitAtRest(ports.metrics, 30_000);
  const rssStart = vmRss(pid);

  // The jobs, IN_FLIGHT at a time, a fault drawn at each submission.
  const chaos = new Chaos(rand, fleet);
  const jobs: JobRecord[] = [];
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < JOBS) {
      const n = next++;
      chaos.maybeInject();
      jobs.push(await runJob(client, hashId, n));
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
  const jobsDone = performance.now();
  chaos.calm();

  // Every sim worker back and registered, then the coordinator's pool back to the truth.
  await fleet.waitAllRegistered(30_000);
  const rest = await waitAtRest(ports.metrics, 30_000);
  const rssEnd = vmRss(pid);

  // Outcomes.
  const counts: Record<Outcome, number> = {
    completedFirstTry: 0,
    completedAfterRetry: 0,
    failedByWorkerError: 0,
    failedAfterAttempts: 0,
    staleResultAfterRetry: 0,
    aggregateReplayDuplicate: 0,
    cancelled: 0,
    other: 0,
  };
  const others: string[] = [];
  races.length = 0;
  const overdue: string[] = [];
  let longest = 0;
  for (const j of jobs) {
    const { outcome, detail } = classify(j);
    counts[outcome]++;
    if (outcome === 'other') others.push(`${j.id}: ${detail}`);
    if (outcome === 'staleResultAfterRetry' || outcome === 'aggregateReplayDuplicate') races.push(`${j.id}: ${detail}`);
    for (const span of attemptSpans(j)) {
      longest = Math.max(longest, span);
      if (span > ATTEMPT_LIMIT_MS) overdue.push(`${j.id}: an attempt took ${Math.round(span)} ms`);
    }
  }
  const stats = fleet.stats();
  const retryLines = c.lines.filter((l) => typeof l.msg === 'string' && l.msg.includes('; retrying (attempt'));
  const retriedWorkerErrors = retryLines.filter((l) => String(l.msg).includes(TASK_ERROR) || String(l.msg).includes(WORKER_ERROR));

  t.diagnostic(`seed ${SEED}, ${JOBS} jobs, ${WORKERS} workers, ${IN_FLIGHT} in flight; jobs took ${((jobsDone - t0) / 1000).toFixed(1)} s from spawn`);
  t.diagnostic(`outcomes: ${JSON.stringify(counts)}`);
  t.diagnostic(`faults drawn: ${JSON.stringify(Object.fromEntries(chaos.injected))}`);
  t.diagnostic(
    `sims: kills ${stats.kills}, connects ${stats.connects}, registrations ${stats.registrations}, reconnects ${stats.reconnectsSent}, failed responses ${stats.failuresSent}, worker errors ${stats.workerErrorsSent}, recoveries ${stats.recoveriesSent}`,
  );
  t.diagnostic(`coordinator: ${retryLines.length} retries logged; longest attempt ${Math.round(longest)} ms; RSS ${(rssStart / 2 ** 20).toFixed(0)} → ${(rssEnd / 2 ** 20).toFixed(0)} MiB`);

  chaosRan = true;
  assert.equal(jobs.length, JOBS, 'every job submitted and followed to its end');
  assert.deepEqual(others, [], 'every failure is a worker-reported task error or the attempts running out');
  assert.deepEqual(overdue, [], `every attempt ends within ${ATTEMPT_LIMIT_MS} ms`);
  assert.deepEqual(retriedWorkerErrors.map((l) => l.msg), [], 'a task error reported by a worker is never retried');
  assert.equal(counts.cancelled, 0);
  // The coordinator counts each job once, by its outcome.
  assert.equal(sample(rest.text, 'coordinator_jobs_total{kind="prove",outcome="success"}'), counts.completedFirstTry + counts.completedAfterRetry);
  assert.equal(
    sample(rest.text, 'coordinator_jobs_total{kind="prove",outcome="failure"}'),
    counts.failedByWorkerError + counts.failedAfterAttempts + counts.staleResultAfterRetry + counts.aggregateReplayDuplicate,
  );
  assert.ok(rssEnd < rssStart + RSS_BOUND, `RSS ${rssEnd} must end below ${rssStart} + 100 MiB`);
  if (JOBS >= 200) {
    // The run exercised what it claims to: each kind of fault happened, and had each kind of effect.
    assert.ok(stats.kills > 0 && stats.failuresSent > 0 && stats.workerErrorsSent > 0, JSON.stringify(stats));
    assert.ok(counts.completedAfterRetry > 0, 'some jobs completed after a retry');
    assert.ok(counts.failedByWorkerError > 0, 'some jobs failed by a worker error');
  }
});

test('chaos: no job is lost to a race (a stale result after a retry, a replayed AGGREGATE)', () => {
  assert.ok(chaosRan, 'the chaos run finished');
  assert.deepEqual(races, []);
});
