/**
 * `recovery`: a restart on a full state store (10,000 finished jobs, `max_retained_jobs`' default,
 * and 1,000 queued ones, within `max_queued_jobs`' default 1024) against a restart on an empty one.
 *
 * Filling the store, in three steps:
 * 1. Seed, through the real coordinator (`[state] backend = "embedded"`): a few hundred prove jobs
 *    run to completion on sim workers, then SIGKILL (a crash).
 * 2. Replicate: the bench opens the store with the coordinator's own `EmbeddedJobStore` and adds
 *    copies of those records (the coordinator's records byte for byte but for the id, the times and
 *    the proof file's name; each proof file copied) until it holds 10,000 finished jobs. Running all
 *    10,000 through the coordinator took ~42 s here (~240 jobs/s) for the same restart figures.
 * 3. Queued, through the real coordinator again: one on the same store (restoring the 10,000) that
 *    needs two compute units per job, with one 1-unit worker, takes 1,000 JobRequests, which stay
 *    queued; then SIGKILL. (JobRequest is refused while no worker is connected, so stopping the
 *    workers cannot leave jobs queued.)
 *
 * Each restart runs on its own copy of that store and is measured from spawn to the
 * `zisk-coordinator serving` log line (read on the pipe), with the process's peak RSS (VmHWM, read
 * once it has settled) and its RSS when serving. Baseline: the same coordinator, same cache dir,
 * starting on an empty store, interleaved run by run. After each restart on the filled store a seeded
 * and a replicated terminal job answer WaitJobResult `completed` and a queued one `queued`, and the
 * restored counts are checked (sanity, not timed).
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EmbeddedJobStore } from '../../src/main/state/embedded-store';
import type { StoredJob } from '../../src/main/state/store';
import { ApiClient } from '../lib/api';
import { Cleanup, diskBytes, removeDir, sleep, tempDir, waitUntil } from '../lib/proc';
import { sampleValue } from '../lib/prom';
import { LOAD_GENERATOR_NICENESS, instantWorkers, startCoordinator } from '../lib/scenario-helpers';
import { MiB, summarize, type Summary } from '../lib/stats';
import type { CoordinatorProcess } from '../lib/sut';
import { SimGroup } from '../lib/sims';
import { leanRunner } from '../lib/workload';
import { metric, type Scenario, type ScenarioContext, type ScenarioResult } from '../lib/types';

interface Sizes {
  workers: number;
  /** Concurrent clients while seeding and queueing. */
  clients: number;
  /** Prove jobs run to completion through the coordinator. */
  seed: number;
  /** Terminal jobs in the store in all (the setup job, the seed, the copies). */
  terminal: number;
  /** Prove jobs left queued. */
  queued: number;
  /** Restarts on each store (filled, empty), interleaved. */
  reps: number;
  /** How long a restarted process runs before its peak RSS is read. */
  settleMs: number;
}

const FULL: Sizes = { workers: 64, clients: 64, seed: 640, terminal: 10_000, queued: 1_000, reps: 5, settleMs: 1_000 };
const SMOKE: Sizes = { workers: 4, clients: 4, seed: 20, terminal: 100, queued: 10, reps: 1, settleMs: 200 };

interface Filled {
  dir: string;
  /** Terminal jobs in the store: the setup job, the seed and the copies. */
  terminal: number;
  seededIds: string[];
  copiedIds: string[];
  queuedIds: string[];
  seedFailed: number;
  seedFirstFailure?: string;
  seedMs: number;
  replicateMs: number;
  queueMs: number;
  storeBytes: number;
  mdbBytes: number;
}

interface Restart {
  servingMs: number;
  /** The coordinator's own startup_ms (its entry to serving; the rest is Node boot and module loading). */
  reportedMs: number;
  /** VmRSS when the serving line was seen. */
  rssServing: number;
  /** VmHWM after `settleMs` more: the peak of startup, restore and the first moments of serving. */
  rssPeak: number;
  /** VmRSS after `settleMs`. */
  rssSettled: number;
  /** The main thread's V8 heap in use after `settleMs` (/metrics, `nodejs_heap_size_used_bytes`). */
  heapUsed?: number;
  /** The `restored N job(s)` line's counts (undefined: no such line, as for an empty store). */
  restored?: { terminal: number; queued: number; running: number };
  /** From the program-cache line to the restored line, by the log's own clock (ms). */
  restoreMs?: number;
  /** WaitJobResult answers: [a seeded terminal job, a copied one, a queued job]. */
  statuses?: string[];
}

/**
 * The coordinator's settings: one compute unit per job while seeding; two (and at least two to
 * start) afterwards, so that with a single one-unit worker connected a JobRequest is accepted (a
 * worker is live and holds the program) but the job stays queued.
 */
function coordinatorEnv(stateDir: string, cacheDir: string, unitsPerJob: 1 | 2): Record<string, string> {
  return {
    ZISK_COORDINATOR_COORDINATOR_DEFAULT_COMPUTE_UNITS: String(unitsPerJob),
    ZISK_COORDINATOR_COORDINATOR_MIN_COMPUTE_UNITS: String(unitsPerJob),
    ZISK_COORDINATOR_STATE_BACKEND: 'embedded',
    ZISK_COORDINATOR_STATE_DIR: stateDir,
    ZISK_COORDINATOR_COORDINATOR_CACHE_DIR: cacheDir,
  };
}

async function scrapeValue(c: CoordinatorProcess, name: string): Promise<number | undefined> {
  return sampleValue(await c.scrape(), name);
}

async function fill(ctx: ScenarioContext, s: Sizes, root: string, cacheDir: string): Promise<Filled> {
  const dir = path.join(root, 'state-filled');
  const seeded = await seed(ctx, s, dir, cacheDir);
  const t1 = performance.now();
  const copiedIds = await replicate(ctx, dir, s.terminal - 1 - seeded.completedIds.length - seeded.failed);
  const replicateMs = performance.now() - t1;
  const t2 = performance.now();
  const queuedIds = await queue(ctx, s, dir, cacheDir, seeded.hashId);
  const queueMs = performance.now() - t2;
  let mdbBytes = 0;
  for (const f of fs.readdirSync(dir)) if (f.endsWith('.mdb')) mdbBytes += fs.statSync(path.join(dir, f)).blocks * 512;
  return {
    dir,
    terminal: 1 + seeded.completedIds.length + seeded.failed + copiedIds.length,
    seededIds: seeded.completedIds,
    copiedIds,
    queuedIds,
    seedFailed: seeded.failed,
    ...(seeded.firstFailure !== undefined ? { seedFirstFailure: seeded.firstFailure } : {}),
    seedMs: seeded.loopMs,
    replicateMs,
    queueMs,
    storeBytes: diskBytes(dir),
    mdbBytes,
  };
}

/** Step 1: `s.seed` prove jobs through the coordinator (after its setup job), then SIGKILL. */
async function seed(
  ctx: ScenarioContext,
  s: Sizes,
  dir: string,
  cacheDir: string,
): Promise<{ hashId: string; completedIds: string[]; failed: number; firstFailure?: string; loopMs: number }> {
  const cleanup = new Cleanup();
  try {
    const coord = await startCoordinator(ctx, 'recovery-seed', { env: coordinatorEnv(dir, cacheDir, 1) });
    cleanup.add('seed coordinator', () => coord.kill().then(() => undefined));
    const { hashId } = await instantWorkers(coord, cleanup, { workers: s.workers, prefix: 'recovery', maxLogEntries: 16, niceness: LOAD_GENERATOR_NICENESS });
    const runner = leanRunner(coord.apiAddress, 8, hashId);
    cleanup.add('seed client', () => runner.close());
    ctx.log(`  seeding: ${s.seed} prove jobs to completion`);
    const t0 = performance.now();
    const completedIds: string[] = [];
    let tickets = s.seed;
    let failed = 0;
    let firstFailure: string | undefined;
    const client = async (): Promise<void> => {
      while (tickets > 0) {
        tickets--;
        try {
          const id = await runner.submitProve();
          // Its completed event is shown once it is on disk.
          const o = await runner.watch(id, 60_000);
          if (o.status === 'completed') completedIds.push(id);
          else {
            failed++;
            firstFailure ??= `${id} ${o.status}: ${o.detail ?? ''}`;
          }
        } catch (err) {
          failed++;
          firstFailure ??= err instanceof Error ? err.message : String(err);
        }
      }
    };
    await Promise.all(Array.from({ length: s.clients }, client));
    const loopMs = performance.now() - t0;
    if (completedIds.length === 0) throw new Error(`no job completed while seeding: ${firstFailure ?? ''}`);
    // A crash: every job is on disk already.
    await coord.kill();
    return { hashId, completedIds, failed, loopMs, ...(firstFailure !== undefined ? { firstFailure } : {}) };
  } finally {
    await cleanup.run(ctx.log);
  }
}

const completedProve = (j: StoredJob): boolean => j.kind === 'prove' && j.result !== undefined && j.history.some((e) => e.kind === 'completed');

/**
 * Step 2: `count` copies of the seed's completed prove jobs, written with the coordinator's own store
 * class. A copy differs from its record only in its id, its proof file (a copy under the new id's
 * name) and its times (moved earlier, a few ms per copy, as if it had run before the seed).
 */
async function replicate(ctx: ScenarioContext, dir: string, count: number): Promise<string[]> {
  if (count <= 0) return [];
  ctx.log(`  replicating: ${count} copies of the seed's records`);
  const store = EmbeddedJobStore.open(dir, (reason) => {
    throw new Error(`filling the store failed: ${reason}`);
  });
  const ids: string[] = [];
  try {
    const templates = (await store.load()).filter(completedProve);
    if (templates.length === 0) throw new Error('no completed prove job in the seeded store');
    const BATCH = 1_000;
    for (let first = 0; first < count; first += BATCH) {
      const puts: StoredJob[] = [];
      for (let i = first; i < Math.min(count, first + BATCH); i++) {
        const t = templates[i % templates.length];
        const id = randomUUID();
        const shift = -(i + 1) * 4;
        const job: StoredJob = {
          ...t,
          id,
          createdAt: t.createdAt + shift,
          history: t.history.map((e) => ({ ...e, at: e.at + shift })),
        };
        if (t.result) {
          job.result = { ...t.result };
          if (t.result.proofFile) {
            job.result.proofFile = `${id}.proof`;
            fs.copyFileSync(path.join(store.filesDir, t.result.proofFile), path.join(store.filesDir, job.result.proofFile));
          }
        }
        puts.push(job);
        ids.push(id);
      }
      // One transaction per batch, acknowledged once on disk (as the coordinator writes).
      await store.write(puts, []);
    }
  } finally {
    await store.close();
  }
  return ids;
}

/** Step 3: a coordinator on the same store takes `s.queued` jobs that cannot start, then SIGKILL. */
async function queue(ctx: ScenarioContext, s: Sizes, dir: string, cacheDir: string, hashId: string): Promise<string[]> {
  const cleanup = new Cleanup();
  try {
    ctx.log(`  queueing: ${s.queued} jobs that stay queued (2 units per job, one 1-unit worker)`);
    const coord = await startCoordinator(ctx, 'recovery-queue', { env: coordinatorEnv(dir, cacheDir, 2), startTimeoutMs: 60_000 });
    cleanup.add('queue coordinator', () => coord.kill().then(() => undefined));
    // One worker holding the program (the coordinator replays the recorded setup to it as well).
    const sims = await SimGroup.start({
      coordinator: coord.clusterAddress,
      workers: 1,
      processes: 1,
      prefix: 'recovery-q',
      options: { computeUnits: 1, setupDelayMs: 0, preSetup: [{ hashId, withHints: false }], maxLogEntries: 16 },
      niceness: LOAD_GENERATOR_NICENESS,
    });
    cleanup.add('queue sims', () => sims.stop());
    await sims.waitRegistered(30_000);
    const runner = leanRunner(coord.apiAddress, 8, hashId);
    cleanup.add('queue client', () => runner.close());
    const queuedIds: string[] = [];
    let next = 0;
    const submitter = async (): Promise<void> => {
      while (next < s.queued) {
        next++;
        // Answered once the job is on disk.
        queuedIds.push(await runner.submitProve());
      }
    };
    await Promise.all(Array.from({ length: Math.min(s.clients, s.queued) }, submitter));
    await waitUntil(async () => (await scrapeValue(coord, 'coordinator_queue_depth')) === s.queued, 15_000, `a queue depth of ${s.queued}`, 50);
    await coord.kill();
    return queuedIds;
  } finally {
    await cleanup.run(ctx.log);
  }
}

/**
 * A restart's own copy of the filled store: the LMDB file copied (it is written to), the files
 * directory hard-linked (its files are written once and never changed; a restart killed after a
 * second removes none). The lock file is left out: LMDB makes a new one.
 */
function copyStore(from: string, to: string): void {
  fs.mkdirSync(to);
  for (const e of fs.readdirSync(from, { withFileTypes: true })) {
    const src = path.join(from, e.name);
    const dst = path.join(to, e.name);
    if (e.isDirectory()) {
      fs.mkdirSync(dst);
      for (const f of fs.readdirSync(src)) fs.linkSync(path.join(src, f), path.join(dst, f));
    } else if (!e.name.endsWith('-lock')) fs.copyFileSync(src, dst);
  }
}

function restoredOf(lines: string[]): Pick<Restart, 'restored' | 'restoreMs'> {
  let cacheAt: number | undefined;
  const out: Pick<Restart, 'restored' | 'restoreMs'> = {};
  for (const l of lines) {
    if (!l.startsWith('{')) continue;
    let rec: { msg?: string; time?: string; terminal?: number; queued?: number; running?: number };
    try {
      rec = JSON.parse(l) as typeof rec;
    } catch {
      continue;
    }
    if (typeof rec.msg !== 'string') continue;
    // ISO-8601 with milliseconds.
    const at = rec.time !== undefined ? Date.parse(rec.time) : NaN;
    if (rec.msg.startsWith('program cache:')) cacheAt = at;
    if (rec.msg.startsWith('restored ')) {
      out.restored = { terminal: rec.terminal ?? -1, queued: rec.queued ?? -1, running: rec.running ?? -1 };
      if (cacheAt !== undefined && Number.isFinite(cacheAt) && Number.isFinite(at)) out.restoreMs = at - cacheAt;
    }
  }
  return out;
}

/** One restart on `stateDir`; `probe` = job ids to ask WaitJobResult about while it settles. */
async function restart(ctx: ScenarioContext, s: Sizes, label: string, stateDir: string, cacheDir: string, probe: string[] | undefined): Promise<Restart> {
  const c = await startCoordinator(ctx, label, { logMode: 'pipe', env: coordinatorEnv(stateDir, cacheDir, 2), startTimeoutMs: 60_000 });
  try {
    const atServing = c.memory();
    let statuses: string[] | undefined;
    const checks = async (): Promise<void> => {
      if (!probe) return;
      const api = new ApiClient(c.apiAddress, 1);
      try {
        statuses = await Promise.all(probe.map((id) => api.waitResult(id, 1_000).catch((err: Error) => `error: ${err.message}`)));
      } finally {
        api.close();
      }
    };
    await Promise.all([sleep(s.settleMs), checks()]);
    const settled = c.memory();
    if (!atServing || !settled) throw new Error(`${label}: /proc/${c.pid}/status unreadable`);
    const heapUsed = await scrapeValue(c, 'nodejs_heap_size_used_bytes').catch(() => undefined);
    return {
      servingMs: c.startupMs,
      reportedMs: c.reportedStartupMs,
      rssServing: atServing.rssBytes,
      rssPeak: settled.hwmBytes,
      rssSettled: settled.rssBytes,
      ...(heapUsed !== undefined ? { heapUsed } : {}),
      ...restoredOf(c.logLines()),
      ...(statuses ? { statuses } : {}),
    };
  } finally {
    // SIGKILL: a drain would wait for the queued jobs and then fail them.
    await c.kill();
  }
}

export const recovery: Scenario = {
  name: 'recovery',
  summary: 'restart on a store of 10,000 finished + 1,000 queued jobs: spawn → serving and RSS, against an empty store',
  async run(ctx) {
    const s = ctx.smoke ? SMOKE : FULL;
    const root = tempDir('zisk-bench-recovery-');
    try {
      const cacheDir = path.join(root, 'cache');
      ctx.log(`recovery: filling a store with ${s.terminal} finished and ${s.queued} queued jobs`);
      const filled = await fill(ctx, s, root, cacheDir);
      // A seeded terminal job, a copied one (the last copy: the oldest, first to go if retention
      // evicted any), a queued one.
      const probe = [filled.seededIds[filled.seededIds.length - 1], filled.copiedIds[filled.copiedIds.length - 1] ?? filled.seededIds[0], filled.queuedIds[0]];
      const full: Restart[] = [];
      const empty: Restart[] = [];
      const failures: string[] = [];
      for (let rep = 0; rep < s.reps; rep++) {
        // Alternate which goes first, so page-cache warmth and drift hit both alike.
        const order = rep % 2 === 0 ? (['filled', 'empty'] as const) : (['empty', 'filled'] as const);
        for (const kind of order) {
          const dir = path.join(root, `state-${kind}-${rep}`);
          // Each restart starts on the same bytes.
          if (kind === 'filled') copyStore(filled.dir, dir);
          else fs.mkdirSync(dir);
          try {
            const r = await restart(ctx, s, `recovery-${kind}-${rep}`, dir, cacheDir, kind === 'filled' ? probe : undefined);
            (kind === 'filled' ? full : empty).push(r);
          } catch (err) {
            const text = err instanceof Error ? err.message : String(err);
            ctx.log(`  restart ${kind} ${rep} FAILED: ${text}`);
            failures.push(`restart on the ${kind} store failed: ${text.split('\n')[0].slice(0, 300)}`);
          } finally {
            removeDir(dir);
          }
        }
      }
      return [report(s, filled, full, empty, failures)];
    } finally {
      removeDir(root);
    }
  },
};

function report(s: Sizes, filled: Filled, full: Restart[], empty: Restart[], failures: string[]): ScenarioResult {
  const f0 = (n: number | null | undefined): string => (n === null || n === undefined || !Number.isFinite(n) ? '—' : n.toFixed(0));
  const mib = (b: number | null | undefined): number | null => (b === null || b === undefined ? null : b / MiB);
  const sum = (rs: Restart[], pick: (r: Restart) => number | undefined): Summary => summarize(rs.map(pick).filter((x): x is number => x !== undefined));
  const serving = [sum(full, (r) => r.servingMs), sum(empty, (r) => r.servingMs)];
  const peak = [sum(full, (r) => r.rssPeak), sum(empty, (r) => r.rssPeak)];
  const atServing = [sum(full, (r) => r.rssServing), sum(empty, (r) => r.rssServing)];
  const settled = [sum(full, (r) => r.rssSettled), sum(empty, (r) => r.rssSettled)];
  const list = (rs: Restart[], pick: (r: Restart) => number | undefined, scale = 1): string => rs.map((r) => f0((pick(r) ?? NaN) / scale)).join(', ');

  // Sanity: every restart on the filled store restored what was stored and answers for it.
  const expected = { terminal: filled.terminal, queued: filled.queuedIds.length, running: 0 };
  const want = ['completed', 'completed', 'queued'];
  for (const [i, r] of full.entries()) {
    if (JSON.stringify(r.restored) !== JSON.stringify(expected)) {
      failures.push(`sanity check failed: restart ${i} restored ${JSON.stringify(r.restored ?? null)}, expected ${JSON.stringify(expected)}`);
    }
    if (JSON.stringify(r.statuses) !== JSON.stringify(want)) {
      failures.push(`sanity check failed: restart ${i} WaitJobResult answered ${JSON.stringify(r.statuses ?? null)} for [seeded terminal, copied terminal, queued], expected ${JSON.stringify(want)}`);
    }
  }
  for (const [i, r] of empty.entries()) {
    if (r.restored) failures.push(`sanity check failed: empty-store restart ${i} restored ${JSON.stringify(r.restored)}`);
  }
  if (filled.seedFailed > 0) failures.push(`seed failed: ${filled.seedFailed} job(s) did not complete (first: ${filled.seedFirstFailure ?? ''})`);

  const notes = [
    `The store: ${expected.terminal} terminal jobs (the setup job, ${filled.seededIds.length} prove jobs run through the coordinator on ${s.workers} instant sim workers by ${s.clients} closed-loop clients in ${(filled.seedMs / 1000).toFixed(1)} s, then SIGKILL, and ${filled.copiedIds.length} copies of their records written with EmbeddedJobStore in ${(filled.replicateMs / 1000).toFixed(1)} s — new ids and times, each proof file copied) and ${expected.queued} queued jobs (JobRequests to a coordinator on that store needing 2 compute units per job with one 1-unit worker, ${(filled.queueMs / 1000).toFixed(1)} s including its own restart; queue depth checked on /metrics; then SIGKILL). On disk: ${(filled.storeBytes / MiB).toFixed(1)} MiB, of which the LMDB file ${(filled.mdbBytes / MiB).toFixed(1)} MiB and the rest one small proof file per completed job.`,
    `${s.reps} restarts on each store, alternating which goes first; each on its own copy of the filled store (or a fresh empty dir), the same cache dir (the program and its setup), the same settings, no workers, SIGKILLed after ${s.settleMs} ms. Spawn → serving line on the pipe, ms: filled ${list(full, (r) => r.servingMs)}; empty ${list(empty, (r) => r.servingMs)}. The coordinator's own startup_ms (its entry → serving): filled ${list(full, (r) => r.reportedMs)}, empty ${list(empty, (r) => r.reportedMs)}; the restore itself (program-cache log line → restored line): ${list(full, (r) => r.restoreMs)} ms.`,
    `RSS, MiB — peak (VmHWM ${s.settleMs} ms after serving): filled ${list(full, (r) => r.rssPeak, MiB)}, empty ${list(empty, (r) => r.rssPeak, MiB)}; when serving: filled ${list(full, (r) => r.rssServing, MiB)}, empty ${list(empty, (r) => r.rssServing, MiB)}; ${s.settleMs} ms later: filled ${list(full, (r) => r.rssSettled, MiB)}, empty ${list(empty, (r) => r.rssSettled, MiB)}. Main-thread V8 heap in use then: filled ${list(full, (r) => r.heapUsed, MiB)}, empty ${list(empty, (r) => r.heapUsed, MiB)} (the scheduler thread's heap is not in it; the LMDB file's pages read are in RSS).`,
    `Sanity, on every restart on the filled store: restored counts ${JSON.stringify(full[0]?.restored ?? null)} (expected ${JSON.stringify(expected)}); WaitJobResult for a seeded terminal job, a copied one and a queued one: ${JSON.stringify(full[0]?.statuses ?? null)}.`,
    ...failures,
  ];
  return {
    scenario: 'recovery',
    metrics: [
      metric('serving_time_p50', 'ms', serving[0].p50, { baseline: serving[1].p50, target: { on: 'value', op: '<=', value: 2000 } }),
      metric('serving_time_max', 'ms', serving[0].max, { baseline: serving[1].max }),
      metric('rss_peak', 'MiB', mib(peak[0].p50), { baseline: mib(peak[1].p50) }),
      metric('rss_serving', 'MiB', mib(atServing[0].p50), { baseline: mib(atServing[1].p50) }),
      metric('rss_settled', 'MiB', mib(settled[0].p50), { baseline: mib(settled[1].p50) }),
    ],
    notes,
  };
}
