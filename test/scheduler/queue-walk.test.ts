/**
 * The queue walk against its definition (docs/decisions.md, Queue): the straightforward walk that
 * plans every queued job against every worker of the pool, in registration order, with the claims of
 * the jobs before it. The core's walk looks at free workers only and skips a program once one of its
 * jobs waited; on seeded random pools and queues it must take exactly the same decisions. A failing
 * seed is printed: rerun it with `QUEUE_WALK_SEED=<seed>`.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { JobSpec } from '../../src/shared/scheduler/types';
import { Ctx, type CoreConfig } from '../../src/threads/core/context';
import { newJobRec } from '../../src/threads/core/job-table';
import { programKey, type JobRec, type LinkRec, type WorkerRec } from '../../src/threads/core/model';
import { walkQueue } from '../../src/threads/core/queue';
import { DEFAULTS } from './harness';
import { seededRandom } from '../helpers/seeded-random';

const HASHES = ['h0', 'h1', 'h2'];

interface Decisions {
  started: string[];
  noneEligible: string[];
}

/** The definition: every queued job planned against the whole pool, in order. */
function referenceWalk(ctx: Ctx): Decisions {
  const out: Decisions = { started: [], noneEligible: [] };
  const cfg = ctx.cfg;
  let freeLeft = ctx.pool.counts.idle + ctx.pool.counts.ready;
  const claimed = new Set<WorkerRec>();
  for (const job of ctx.queue) {
    if (freeLeft <= 0) break;
    const spec = job.spec;
    if (spec.kind === 'setup') {
      out.noneEligible.push(job.id);
      continue;
    }
    const forWrap = spec.kind === 'wrap';
    const key = forWrap ? undefined : programKey(spec.hashId, spec.hints.kind !== 'none');
    const eligible: WorkerRec[] = [];
    const free: WorkerRec[] = [];
    for (const w of ctx.pool.byId.values()) {
      if (w.state === 'disconnected' || w.parked) continue;
      if (key !== undefined && !w.programs.has(key)) continue;
      eligible.push(w);
      const isFree = w.link !== undefined && (w.state === 'ready' || (forWrap && w.state === 'idle'));
      if (isFree && !claimed.has(w) && !w.cancelPending.has(job.id)) free.push(w);
    }
    let start: WorkerRec[] | undefined;
    if (forWrap) {
      if (free.length > 0) start = [free[0]];
    } else {
      const cap = cfg.max_workers_per_job;
      const wanted = cfg.default_compute_units;
      let selected: WorkerRec[] = [];
      if (wanted === 0) {
        const count = cap > 0 ? Math.min(cap, eligible.length) : eligible.length;
        if (count > 0 && free.length >= count) selected = free.slice(0, count);
      } else {
        let units = 0;
        for (const w of free) {
          selected.push(w);
          units += w.capacity;
          if (units >= wanted || (cap > 0 && selected.length >= cap)) break;
        }
      }
      let units = 0;
      for (const w of selected) units += w.capacity;
      const floor = wanted === 0 ? cfg.min_compute_units : Math.min(cfg.min_compute_units, wanted);
      if (selected.length > 0 && units >= floor) start = selected;
    }
    if (start) {
      out.started.push(`${job.id}→${start.map((w) => w.id).join(',')}`);
      // the real walk makes them Computing; here they stay claimed
      for (const w of start) claimed.add(w);
      freeLeft -= start.length;
      continue;
    }
    if (eligible.length === 0) out.noneEligible.push(job.id);
    for (const w of eligible) {
      if (claimed.has(w)) continue;
      claimed.add(w);
      if (w.state === 'idle' || w.state === 'ready') freeLeft--;
    }
  }
  return out;
}

function coreWalk(ctx: Ctx): Decisions {
  const out: Decisions = { started: [], noneEligible: [] };
  walkQueue(
    ctx,
    (job, workers) => out.started.push(`${job.id}→${workers.map((w) => w.id).join(',')}`),
    (job) => out.noneEligible.push(job.id),
  );
  return out;
}

/** A random pool (with removals and state changes that exercise the free set) and a random queue. */
function randomState(seed: number): Ctx {
  const r = seededRandom(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const cfg: CoreConfig = {
    ...DEFAULTS,
    default_compute_units: pick([0, 1, 2, 4]),
    min_compute_units: pick([1, 2, 3]),
    max_workers_per_job: pick([0, 1, 3]),
  };
  const ctx = new Ctx(cfg, { newId: () => 'unused' });
  const jobs: JobRec[] = [];
  const jobCount = Math.floor(r() * 14);
  for (let i = 0; i < jobCount; i++) {
    const kind = pick(['prove', 'prove', 'execute', 'wrap', 'setup'] as const);
    const hashId = pick(HASHES);
    let spec: JobSpec;
    if (kind === 'wrap') spec = { kind, proofBlobId: i, proofDest: 2 };
    else if (kind === 'setup') spec = { kind, hashId, withHints: false, programName: 'p' };
    else spec = { kind, hashId, input: { kind: 'none' }, hints: r() < 0.2 ? { kind: 'grpc' } : { kind: 'none' }, proofKind: 1 };
    const job = newJobRec(`j${i}`, spec, 0);
    jobs.push(job);
    ctx.queue.add(job);
  }
  const running = newJobRec('running', { kind: 'wrap', proofBlobId: 999, proofDest: 2 }, 0);
  const workerCount = 1 + Math.floor(r() * 12);
  const workers: WorkerRec[] = [];
  for (let i = 0; i < workerCount; i++) workers.push(ctx.pool.create(`w${i}`, 1 + Math.floor(r() * 3), 0));
  // Rounds of changes over the workers in random order, so they leave and re-enter the free set in
  // an order other than their registration.
  for (let round = 0; round < 3; round++) {
    for (const w of [...workers].sort(() => r() - 0.5)) {
      // Programs change both while the worker is free and while it is not.
      if (r() < 0.5) ctx.pool.refresh(w);
      if (r() < 0.3) ctx.pool.clearPrograms(w);
      for (const h of HASHES) {
        const key = programKey(h, r() < 0.2);
        if (r() < 0.5) ctx.pool.setProgram(w, key, 'vk');
        else if (r() < 0.3) ctx.pool.deleteProgram(w, key);
      }
      const link: LinkRec = { id: w.order * 10 + round, worker: w, handshake: undefined };
      w.link = r() < 0.9 ? link : undefined;
      w.job = r() < 0.3 ? running : undefined;
      w.parked = r() < 0.1;
      w.disconnectedAt = r() < 0.1 ? 1 : undefined;
      w.cancelPending.clear();
      for (const job of jobs) if (r() < 0.1) w.cancelPending.add(job.id);
      ctx.pool.refresh(w);
    }
  }
  // Removed records must leave the free set with them.
  for (const w of workers) if (r() < 0.1) ctx.pool.remove(w);
  return ctx;
}

describe('the queue walk takes the same decisions as planning every job against the whole pool', () => {
  it('on 3,000 seeded random pools and queues', () => {
    const fixed = process.env.QUEUE_WALK_SEED;
    const seeds = fixed !== undefined ? [Number(fixed)] : Array.from({ length: 3000 }, (_, i) => i + 1);
    let starts = 0;
    let waits = 0;
    for (const seed of seeds) {
      const expected = referenceWalk(randomState(seed));
      const actual = coreWalk(randomState(seed));
      assert.deepEqual(actual, expected, `seed ${seed}`);
      starts += expected.started.length;
      waits += expected.noneEligible.length;
    }
    // The seeds must reach both kinds of decision, or the comparison proves little.
    if (fixed === undefined) {
      assert.ok(starts > 1000, `only ${starts} starts`);
      assert.ok(waits > 300, `only ${waits} jobs no worker could run`);
    }
  });
});
