/**
 * The scheduler core under seeded random sequences of events and clock steps: workers come, go,
 * reconnect and fall silent; clients submit, cancel and set up; workers answer right, wrong, late or
 * not at all. After every step the invariants below must hold; at the end, with nobody answering,
 * every job must reach a terminal state within its deadlines. A failing seed is printed: rerun it
 * with `RANDOM_CORE_SEED=<seed>`.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SchedulerEffect } from '../../src/shared/scheduler/effects';
import type { WorkerStateName } from '../../src/shared/scheduler/types';
import type { CoreConfig } from '../../src/threads/scheduler-core';
import { AGGREGATE, CONTRIBUTION, EXECUTION, HASH, HASH2, Harness, PROVE, WRAP } from './harness';
import { seededRandom } from '../helpers/seeded-random';

const CONFIG: Partial<CoreConfig> = {
  phase1_timeout_seconds: 60,
  phase2_timeout_seconds: 60,
  phase3_timeout_seconds: 60,
  execution_timeout_seconds: 60,
  setup_timeout_seconds: 60,
  wrap_timeout_seconds: 60,
  queue_timeout_seconds: 120,
  heartbeat_interval_seconds: 10,
  heartbeat_max_missed: 3,
  reconnect_grace_period_ms: 500,
  recovery_timeout_seconds: 100,
  handshake_timeout_seconds: 10,
  job_ttl_seconds: 300,
  max_retained_jobs: 40,
  stale_disconnected_threshold_seconds: 200,
  max_queued_jobs: 20,
  max_job_attempts: 3,
};
/** Past every limit above (queue, then the longest phase chain, then grace and recovery), for every attempt. */
const SETTLE_MS = 3 * (120 + 3 * 60 + 100 + 60) * 1000;

const WORKERS = ['w0', 'w1', 'w2', 'w3', 'w4'];
const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

interface PendingSetup {
  workerId: string;
  setupJobId: string;
  hashId: string;
}

class RandomRun {
  readonly h: Harness;
  private readonly r: () => number;
  private readonly connected = new Set<string>();
  private pendingSetups: PendingSetup[] = [];
  private readonly jobIds: string[] = [];
  /** Every jobEvent seen, per job. */
  private readonly events = new Map<string, string[]>();
  private lastCounts: Record<WorkerStateName, number> | undefined;
  private lastQueueDepth = 0;
  readonly trace: string[] = [];

  constructor(readonly seed: number) {
    this.r = seededRandom(seed);
    const units = [0, 10, 20][Math.floor(this.r() * 3)];
    this.h = new Harness({ ...CONFIG, default_compute_units: units });
  }

  private pick<T>(list: readonly T[]): T | undefined {
    return list.length === 0 ? undefined : list[Math.floor(this.r() * list.length)];
  }

  private take(out: SchedulerEffect[]): void {
    for (const e of out) {
      if (e.type === 'acceptWorker') {
        this.connected.add(e.workerId);
        for (const s of e.setups) this.pendingSetups.push({ workerId: e.workerId, setupJobId: s.setupJobId, hashId: s.hashId });
      } else if (e.type === 'sendSetup') {
        for (const linkId of e.linkIds) {
          const workerId = this.h.workerOn(linkId);
          this.pendingSetups.push({ workerId, setupJobId: e.setup.setupJobId, hashId: e.setup.hashId });
        }
      } else if (e.type === 'closeWorker') {
        const w = this.workerOnLink(e.linkId);
        if (w) this.disconnected(w);
      } else if (e.type === 'jobEvent') {
        const list = this.events.get(e.jobId) ?? [];
        list.push(e.event.kind);
        this.events.set(e.jobId, list);
      } else if (e.type === 'workerCounts') {
        this.lastCounts = e.counts;
        this.lastQueueDepth = e.queueDepth;
      }
    }
  }

  private workerOnLink(linkId: number): string | undefined {
    for (const [w, l] of this.h.linkOf) if (l === linkId && this.connected.has(w)) return w;
    return undefined;
  }

  private disconnected(w: string): void {
    this.connected.delete(w);
    this.pendingSetups = this.pendingSetups.filter((p) => p.workerId !== w);
  }

  /** One random step. */
  step(): void {
    const h = this.h;
    const roll = this.r();
    const live = [...this.connected];
    const running = h.core
      .snapshot()
      .jobs.filter((j) => j.status === 'running')
      .map((j) => j);
    if (roll < 0.12) {
      const w = this.pick(WORKERS.filter((x) => !this.connected.has(x)));
      if (!w) return;
      const held = h.core.snapshot().workers.find((x) => x.id === w)?.jobId;
      const reconnect = held !== undefined && this.r() < 0.7;
      this.trace.push(`${reconnect ? 'reconnect' : 'register'} ${w}`);
      this.take(h.hello(w, reconnect ? { reconnect: true, lastKnownJobId: held } : {}));
    } else if (roll < 0.18) {
      const w = this.pick(live);
      if (!w) return;
      this.trace.push(`close ${w}`);
      this.take(h.close(w));
      this.disconnected(w);
    } else if (roll < 0.3) {
      const ms = Math.floor(this.r() * 20_000);
      this.trace.push(`advance ${ms}`);
      // Most workers heartbeat; one in five stays silent this round.
      for (const w of live) if (this.r() < 0.8) this.take(h.alive(w));
      this.take(h.advance(ms));
    } else if (roll < 0.42) {
      const kind = this.pick(['prove', 'execute', 'wrap', 'setup'] as const) ?? 'prove';
      const hashId = this.r() < 0.8 ? HASH : HASH2;
      this.trace.push(`submit ${kind}`);
      let out: SchedulerEffect[];
      let jobId: string;
      if (kind === 'setup') ({ jobId, effects: out } = h.submit({ kind: 'setup', hashId, withHints: false, programName: 'g' }));
      else if (kind === 'wrap') ({ jobId, effects: out } = h.wrap({ proofDest: this.r() < 0.5 ? 2 : 3 }));
      else if (kind === 'execute') ({ jobId, effects: out } = h.execute({ hashId }));
      else ({ jobId, effects: out } = h.prove({ hashId, proofKind: this.r() < 0.5 ? 1 : 3 }));
      this.jobIds.push(jobId);
      this.take(out);
    } else if (roll < 0.47) {
      const jobId = this.pick(this.jobIds);
      if (!jobId) return;
      this.trace.push(`cancel ${jobId}`);
      this.take(h.cancel(jobId));
    } else if (roll < 0.62) {
      const p = this.pick(this.pendingSetups);
      if (!p || !this.connected.has(p.workerId)) return;
      this.pendingSetups = this.pendingSetups.filter((x) => x !== p);
      const success = this.r() < 0.9;
      this.trace.push(`setupAck ${p.workerId} ${p.setupJobId} ${success}`);
      this.take(h.ackSetup(p.workerId, p.setupJobId, { hashId: p.hashId, success }));
    } else {
      const job = this.pick(running);
      if (!job || job.kind === 'setup') return;
      const w = this.pick(job.workers.filter((x) => this.connected.has(x)));
      if (!w) return;
      this.trace.push(`result ${w} ${job.id} phase ${job.phase}`);
      this.take(this.answer(w, job.id, job.kind, job.phase));
    }
  }

  /** What a worker on `jobId` might send now: usually the right result, sometimes a failure or a wrong one. */
  private answer(w: string, jobId: string, kind: string, phase: number | undefined): SchedulerEffect[] {
    const h = this.h;
    const roll = this.r();
    if (roll < 0.06) return h.fail(w, jobId, this.pick([CONTRIBUTION, PROVE, AGGREGATE, EXECUTION, WRAP]) ?? PROVE, { inRecovery: this.r() < 0.5 });
    if (roll < 0.1) return h.send({ type: 'workerError', linkId: h.link(w), jobId, message: 'worker error' });
    if (roll < 0.15) return h.proofs(w, jobId); // possibly the wrong task: must be ignored or handled
    if (kind === 'wrap') return h.wrapped(w, jobId);
    if (kind === 'execute') return h.executed(w, jobId);
    if (phase === 1) return h.contribute(w, jobId);
    if (phase === 2) return h.proofs(w, jobId);
    return this.r() < 0.5 ? h.aggAck(w, jobId) : h.finalProof(w, jobId);
  }

  /** Checked after every step. */
  checkInvariants(): void {
    const snap = this.h.core.snapshot();
    const jobs = new Map(snap.jobs.map((j) => [j.id, j]));
    const counts: Record<WorkerStateName, number> = { idle: 0, setting_up: 0, ready: 0, computing: 0, disconnected: 0 };
    for (const w of snap.workers) {
      counts[w.state]++;
      if (w.jobId === undefined) {
        assert.notEqual(w.state, 'computing', `${w.id} computing without a job`);
        continue;
      }
      const job = jobs.get(w.jobId);
      assert.ok(job, `${w.id} holds job ${w.jobId}, which the core does not know`);
      assert.equal(job.status, 'running', `${w.id} left on job ${job.id}, which is ${job.status}`);
      assert.ok(job.workers.includes(w.id), `${w.id} holds ${job.id} without being one of its workers`);
    }
    for (const job of snap.jobs) {
      if (job.status === 'running' && job.kind !== 'setup') {
        const holders = snap.workers.filter((w) => w.jobId === job.id);
        assert.ok(holders.length > 0, `running ${job.kind} job ${job.id} has no worker on it`);
      }
      if (job.status === 'queued') assert.ok(snap.queue.includes(job.id), `queued job ${job.id} not in the queue`);
    }
    for (const id of snap.queue) assert.equal(jobs.get(id)?.status, 'queued', `queue holds ${id}, which is not queued`);
    if (this.lastCounts) {
      assert.deepEqual(this.lastCounts, counts, 'workerCounts gauges equal the workers by state');
      assert.equal(this.lastQueueDepth, snap.queue.length, 'queue depth gauge equals the queue');
    }
    for (const [id, list] of this.events) {
      const end = list.findIndex((k) => TERMINAL.has(k));
      assert.ok(end < 0 || end === list.length - 1, `job ${id}: events after its terminal event: ${list.join(',')}`);
      assert.equal(list[0], 'queued', `job ${id} starts with queued: ${list.join(',')}`);
    }
  }

  /** Nobody answers any more (workers keep heartbeating): every job ends within its deadlines. */
  settle(): void {
    const h = this.h;
    for (let t = 0; t < SETTLE_MS; t += 5_000) {
      for (const w of this.connected) this.take(h.alive(w));
      this.take(h.advance(5_000));
      this.checkInvariants();
    }
    const snap = h.core.snapshot();
    for (const id of this.jobIds) {
      const job = snap.jobs.find((j) => j.id === id);
      // Evicted jobs were terminal; the rest must be now.
      if (job) assert.ok(TERMINAL.has(job.status), `job ${id} (${job.kind}) still ${job.status} after every deadline`);
      const list = this.events.get(id) ?? [];
      const refused = list.length === 0;
      assert.ok(refused || TERMINAL.has(list[list.length - 1]), `job ${id} has no terminal event: ${list.join(',')}`);
    }
    assert.ok(snap.workers.every((w) => w.state !== 'computing'), 'no worker left computing');
  }
}

/** How often each terminal kind and each phase was reached over all seeds: the walk must get there. */
const reached = new Map<string, number>();
function tally(run: RandomRun): void {
  for (const e of run.h.all) {
    if (e.type === 'jobRetried') reached.set('retried', (reached.get('retried') ?? 0) + 1);
    if (e.type !== 'jobEvent') continue;
    const key = e.event.kind === 'progress' ? `progress:${e.event.phase}` : `${e.jobKind}:${e.event.kind}`;
    reached.set(key, (reached.get(key) ?? 0) + 1);
  }
}

const SEEDS = process.env.RANDOM_CORE_SEED ? [Number(process.env.RANDOM_CORE_SEED)] : Array.from({ length: 150 }, (_, i) => i + 1);
const STEPS = 250;

describe('random event sequences against the core invariants', () => {
  it(`${SEEDS.length} seeds × ${STEPS} steps, then every deadline`, () => {
    for (const seed of SEEDS) {
      const run = new RandomRun(seed);
      try {
        for (let i = 0; i < STEPS; i++) {
          run.step();
          run.checkInvariants();
        }
        run.settle();
        tally(run);
      } catch (err) {
        const tail = run.trace.slice(-15).join('\n  ');
        throw new Error(`seed ${seed} failed: ${(err as Error).message}\n  last steps:\n  ${tail}`, { cause: err });
      }
    }
    if (SEEDS.length > 1) {
      // The invariants only mean something if the walk reaches these states.
      for (const key of ['prove:completed', 'execute:completed', 'wrap:completed', 'setup:completed', 'prove:failed', 'prove:cancelled', 'progress:3', 'retried']) {
        assert.ok((reached.get(key) ?? 0) >= 5, `the random walk reached ${key} only ${reached.get(key) ?? 0} times`);
      }
    }
  });
});
