/**
 * `soak`: does the coordinator's memory stay flat over a long run with worker churn? Two coordinators
 * run side by side for the whole window, each with its own sims and the same steady job stream (an
 * open loop of small prove jobs, a few cancelled at once): `churn` (the one measured) also sees
 * workers drop and come back every couple of seconds and workers leave for good while new worker ids
 * join; `steady` (the baseline column) sees no churn. Each coordinator's VmRSS and its V8 heap in use
 * (/metrics, `nodejs_heap_size_used_bytes`) are sampled every few seconds; after a warm-up (retention
 * full, every code path hot) the least-squares slope of each is the figure, in MiB/min. Every job is
 * accounted for: submitted = completed + failed + cancelled.
 *
 * Retention is what would otherwise look like a leak: the coordinators keep at most 2,000 finished
 * jobs (`max_retained_jobs`) and forget departed worker ids after 30 s
 * (`stale_disconnected_threshold_seconds`), so both reach their steady state within the warm-up.
 * So is V8 sizing its young generation: under the launcher's `--max-semi-space-size=64` it doubles
 * step by step up to 2 × 64 MiB over the first minutes, so the warm-up also lasts until the main
 * thread's new space has reached that cap (bench/README.md, Soak).
 */
import { ApiClient } from '../lib/api';
import { Cleanup, launcherNodeFlags, procMemory, sleep } from '../lib/proc';
import { sampleValue } from '../lib/prom';
import { startCoordinator } from '../lib/scenario-helpers';
import { MiB, round } from '../lib/stats';
import type { CoordinatorProcess } from '../lib/sut';
import { SimGroup } from '../lib/sims';
import { benchHashId, prepareProgram, SMALL_INPUT } from '../lib/workload';
import { metric, type Metric, type Scenario, type ScenarioContext } from '../lib/types';

export const SOAK_DEFAULT_MINUTES = 10;

interface Sizes {
  durationMs: number;
  warmupMs: number;
  sampleEveryMs: number;
  workers: number;
  jobsPerSecond: number;
  /** Share of jobs cancelled right after they are accepted. */
  cancelShare: number;
  churnEveryMs: number;
  /** Per churn round: workers that drop and come back, and workers replaced by new ids. */
  disconnects: number;
  replacements: number;
}

function sizes(ctx: ScenarioContext): Sizes {
  if (ctx.smoke) {
    return { durationMs: 6_000, warmupMs: 2_000, sampleEveryMs: 250, workers: 8, jobsPerSecond: 10, cancelShare: 0.05, churnEveryMs: 500, disconnects: 1, replacements: 1 };
  }
  const durationMs = ctx.soakMinutes * 60_000;
  return {
    durationMs,
    // A fifth of the run, at least a minute: 2,000 retained jobs take 100 s to fill at 20 jobs/s.
    warmupMs: Math.max(60_000, durationMs / 5),
    sampleEveryMs: 2_000,
    workers: 24,
    jobsPerSecond: 20,
    cancelShare: 0.02,
    churnEveryMs: 2_000,
    disconnects: 2,
    replacements: 1,
  };
}

const SLOPE_TARGET_MIB_PER_MIN = 1;
/**
 * After the young generation reaches its cap, the pages of its last doubling become resident only as
 * allocation walks through them, and most scavenges here start from a task at ~80 % of the semi-space,
 * so its tail is touched only now and then: RSS creeps up by another ~10–20 MiB for about 3 minutes
 * (measured: bench/README.md, Soak).
 */
export const YOUNG_SETTLE_MIN = 3;

interface Sample {
  /** Minutes since the stream started. */
  min: number;
  rss: number;
  /** VmRSS split: anonymous (V8 heaps, malloc, stacks) and file-backed (binary, libraries, LMDB's map). */
  rssAnon: number;
  rssFile: number;
  /** Main thread's V8 heap: in use, committed, the young generation's committed part; external memory. */
  heap: number | undefined;
  heapTotal: number | undefined;
  newSpace: number | undefined;
  external: number | undefined;
}

interface Tally {
  submitted: number;
  refused: number;
  completed: number;
  failed: number;
  cancelled: number;
  /** Watches that ended without a terminal event (stream error, deadline). */
  lost: number;
  firstFailure?: string;
}

interface Rig {
  label: 'churn' | 'steady';
  coord: CoordinatorProcess;
  sims: SimGroup;
  api: ApiClient;
  hashId: string;
  samples: Sample[];
  /** Minutes: where the slopes start, and why there. */
  warmupEndMin: number;
  warmupWhy: string;
  tally: Tally;
  churnRounds: number;
  liveAtEnd: number;
  /** Jobs accepted and not yet terminal. */
  open: Set<string>;
  /** What the unfinished jobs were doing when the drain gave up (WaitJobResult status, last log line). */
  stuck: string[];
}

/** Least-squares slope of y over x; null with fewer than 3 points. */
export function slope(points: ReadonlyArray<[number, number]>): number | null {
  const n = points.length;
  if (n < 3) return null;
  let sx = 0;
  let sy = 0;
  for (const [x, y] of points) {
    sx += x;
    sy += y;
  }
  const mx = sx / n;
  const my = sy / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den > 0 ? num / den : null;
}

async function startRig(ctx: ScenarioContext, cleanup: Cleanup, label: Rig['label'], s: Sizes): Promise<Rig> {
  const coord = await startCoordinator(ctx, `soak-${label}`, {
    env: {
      ZISK_COORDINATOR_COORDINATOR_DEFAULT_COMPUTE_UNITS: '2',
      ZISK_COORDINATOR_COORDINATOR_MAX_RETAINED_JOBS: '2000',
      ZISK_COORDINATOR_COORDINATOR_STALE_DISCONNECTED_THRESHOLD_SECONDS: '30',
      ZISK_COORDINATOR_COORDINATOR_HEARTBEAT_INTERVAL_SECONDS: '5',
      // A task result written just before a connection drops is lost with it; the worker comes back
      // within the grace period with KEEP_COMPUTING and the job waits for its phase timeout, then
      // retries. 10 s (not 100–600 s) lets those jobs end within the run's drain.
      ZISK_COORDINATOR_COORDINATOR_PHASE1_TIMEOUT_SECONDS: '10',
      ZISK_COORDINATOR_COORDINATOR_PHASE2_TIMEOUT_SECONDS: '10',
      ZISK_COORDINATOR_COORDINATOR_PHASE3_TIMEOUT_SECONDS: '10',
    },
  });
  cleanup.add(`coordinator ${label}`, () => coord.stop().then(() => undefined));
  const hashId = await benchHashId();
  const sims = await SimGroup.start({
    coordinator: coord.clusterAddress,
    workers: s.workers,
    processes: 1,
    prefix: `soak-${label}`,
    options: {
      wire: 'upstream',
      computeUnits: 1,
      heartbeatIntervalMs: 5_000,
      reconnectIntervalMs: 500,
      setupDelayMs: 5,
      contributionDelayMs: 5,
      proveDelayMs: 5,
      aggregateDelayMs: 2,
      proofValues: 16,
      finalProofBytes: 256,
      maxLogEntries: 20,
    },
  });
  cleanup.add(`sims ${label}`, () => sims.stop());
  await sims.waitRegistered(60_000);
  const api = new ApiClient(coord.apiAddress, 1);
  cleanup.add(`api ${label}`, () => api.close());
  await prepareProgram(coord, api);
  return {
    label,
    coord,
    sims,
    api,
    hashId,
    samples: [],
    warmupEndMin: s.warmupMs / 60_000,
    warmupWhy: '',
    tally: { submitted: 0, refused: 0, completed: 0, failed: 0, cancelled: 0, lost: 0 },
    churnRounds: 0,
    liveAtEnd: s.workers,
    open: new Set(),
    stuck: [],
  };
}

/** One job: submit, maybe cancel, follow to its end. */
async function oneJob(rig: Rig, cancel: boolean): Promise<void> {
  const t = rig.tally;
  let id: string;
  try {
    id = await rig.api.submitProve(rig.hashId, { inline: SMALL_INPUT });
  } catch (err) {
    // A refused JobRequest is an answer (nothing was accepted), counted apart from the accepted jobs.
    t.refused++;
    t.firstFailure ??= `refused: ${err instanceof Error ? err.message : String(err)}`;
    return;
  }
  t.submitted++;
  rig.open.add(id);
  if (cancel) void rig.api.cancel(id).catch(() => undefined);
  const o = await rig.api.watch(id, 600_000);
  rig.open.delete(id);
  if (o.status === 'completed') t.completed++;
  else if (o.status === 'failed') {
    t.failed++;
    t.firstFailure ??= `failed: ${o.detail ?? ''}`;
  } else if (o.status === 'cancelled') t.cancelled++;
  else t.lost++;
}

async function sample(rig: Rig, t0: number): Promise<void> {
  const mem = procMemory(rig.coord.pid);
  if (!mem) return;
  const m = await rig.coord.scrape().catch(() => undefined);
  const v = (name: string, labels: Record<string, string> = {}): number | undefined => (m === undefined ? undefined : sampleValue(m, name, labels));
  rig.samples.push({
    min: (performance.now() - t0) / 60_000,
    rss: mem.rssBytes,
    rssAnon: mem.rssAnonBytes,
    rssFile: mem.rssFileBytes,
    heap: v('nodejs_heap_size_used_bytes'),
    heapTotal: v('nodejs_heap_size_total_bytes'),
    newSpace: v('nodejs_heap_space_size_total_bytes', { space: 'new' }),
    external: v('nodejs_external_memory_bytes'),
  });
}

async function runSoak(ctx: ScenarioContext, rigs: Rig[], s: Sizes): Promise<void> {
  const t0 = performance.now();
  const end = t0 + s.durationMs;
  const pending = new Set<Promise<void>>();
  let n = 0;
  const streams = rigs.map(async (rig) => {
    // Open loop: job k is due at k / rate, whatever the answers.
    let k = 0;
    while (performance.now() < end) {
      const due = t0 + (k * 1000) / s.jobsPerSecond;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      const p = oneJob(rig, (n++ * 7919) % 1000 < s.cancelShare * 1000).finally(() => pending.delete(p));
      pending.add(p);
      k++;
    }
  });
  const churn = (async () => {
    const rig = rigs.find((r) => r.label === 'churn');
    if (!rig) return;
    const proc = rig.sims.processes[0];
    while (performance.now() + s.churnEveryMs < end) {
      await sleep(s.churnEveryMs);
      const r = await proc.churn({ disconnect: s.disconnects, replace: s.replacements, reconnectAfterMs: 200, prefix: 'soak-churn-new' });
      rig.churnRounds++;
      rig.liveAtEnd = r.live;
    }
  })();
  const sampler = (async () => {
    let lastLog = t0;
    while (performance.now() < end) {
      await Promise.all(rigs.map((r) => sample(r, t0)));
      if (performance.now() - lastLog > 60_000) {
        lastLog = performance.now();
        const f = (x: number | undefined): string => (x === undefined ? '—' : (x / MiB).toFixed(0));
        const line = (r: Rig): string => {
          const x = r.samples[r.samples.length - 1];
          return `${r.label} RSS ${f(x.rss)} (anon ${f(x.rssAnon)}, file ${f(x.rssFile)}), V8 heap ${f(x.heap)} of ${f(x.heapTotal)} (new space ${f(x.newSpace)}) MiB, ${r.tally.submitted} jobs`;
        };
        ctx.log(`  soak ${((performance.now() - t0) / 60_000).toFixed(1)} min: ${rigs.map(line).join('; ')}`);
      }
      await sleep(s.sampleEveryMs);
    }
    await Promise.all(rigs.map((r) => sample(r, t0)));
  })();
  await Promise.all([...streams, churn, sampler]);
  // Stragglers (a job held by a dropped worker waits for its reconnect or its retry) end by themselves.
  // Longer than a job's three phase timeouts and a retry's.
  const drainEnd = Date.now() + 60_000;
  while (pending.size > 0 && Date.now() < drainEnd) await sleep(50);
  for (const rig of rigs) {
    for (const id of rig.open) {
      const status = await rig.api.waitResult(id).catch((err: unknown) => `error ${String(err)}`);
      const lines = rig.coord.logRecords(id);
      const lastLine = lines.length > 0 ? String(lines[lines.length - 1].msg) : 'no log line';
      rig.stuck.push(`${id}: ${status}; ${lines.length} log lines, last: ${lastLine.slice(0, 200)}`);
      ctx.log(`  ${rig.label}: job ${id} unfinished: ${status}; log: ${lines.map((l) => String(l.msg)).join(' | ').slice(0, 1500)}`);
    }
  }
}

/**
 * The young generation's cap in bytes (both semi-spaces) under the coordinator's V8 flags: the last
 * `--max-semi-space-size` (MiB) of the launcher's shebang and the bench's extra node args; undefined
 * when none is given (V8 then sizes it from the machine).
 */
export function youngGenerationCap(nodeArgs: readonly string[]): number | undefined {
  let cap: number | undefined;
  for (const a of nodeArgs) {
    const m = /^--max[-_]semi[-_]space[-_]size=(\d+)$/.exec(a);
    if (m) cap = 2 * Number(m[1]) * MiB;
  }
  return cap;
}

/**
 * Where the slopes start: after the time-based warm-up (retention full), and once the main thread's
 * new space has reached its cap plus a settling time. Without that second condition the slope
 * measures V8 doubling its young generation (32 → 64 MiB semi-spaces adds 64 MiB of RSS in a
 * step minutes into the run), which is bounded by the flag, not a leak.
 */
export function warmupEnd(samples: ReadonlyArray<Pick<Sample, 'min' | 'newSpace'>>, timeWarmupMin: number, youngCap: number | undefined): { min: number; why: string } {
  if (youngCap === undefined) return { min: timeWarmupMin, why: 'time-based only: the young generation has no known cap' };
  const full = samples.find((x) => x.newSpace !== undefined && x.newSpace >= youngCap);
  if (!full) return { min: timeWarmupMin, why: `time-based only: the young generation never reached its ${youngCap / MiB} MiB cap, so the slopes include its growth` };
  const min = Math.max(timeWarmupMin, full.min + YOUNG_SETTLE_MIN);
  return { min, why: `young generation at its ${youngCap / MiB} MiB cap at ${full.min.toFixed(1)} min (+ ${YOUNG_SETTLE_MIN} min to become resident); time-based warm-up ${timeWarmupMin.toFixed(1)} min` };
}

function slopeOf(rig: Rig, pick: (x: Sample) => number | undefined): number | null {
  const pts: Array<[number, number]> = [];
  for (const x of rig.samples) {
    const v = pick(x);
    if (x.min >= rig.warmupEndMin && v !== undefined) pts.push([x.min, v / MiB]);
  }
  return slope(pts);
}

function absOrNull(v: number | null): number | null {
  return v === null ? null : Math.abs(v);
}

export const soak: Scenario = {
  name: 'soak',
  summary: `coordinator memory slopes (MiB/min after warm-up: anonymous RSS outside V8's heap, V8 heap in use, RSS) over ${SOAK_DEFAULT_MINUTES} min (--soak-minutes) of worker churn and a steady job stream; every job accounted for`,
  async run(ctx) {
    const s = sizes(ctx);
    const cleanup = new Cleanup();
    try {
      const churn = await startRig(ctx, cleanup, 'churn', s);
      const steady = await startRig(ctx, cleanup, 'steady', s);
      const rigs = [churn, steady];
      ctx.log(`  soak: ${(s.durationMs / 60_000).toFixed(1)} min, ${s.jobsPerSecond} jobs/s each, warm-up ${(s.warmupMs / 60_000).toFixed(1)} min`);
      await runSoak(ctx, rigs, s);
      const youngCap = youngGenerationCap([...launcherNodeFlags(), ...ctx.coordinatorNodeArgs]);
      for (const r of rigs) {
        const w = warmupEnd(r.samples, s.warmupMs / 60_000, youngCap);
        r.warmupEndMin = w.min;
        r.warmupWhy = w.why;
      }
      const rssSlope = rigs.map((r) => slopeOf(r, (x) => x.rss));
      const anonSlope = rigs.map((r) => slopeOf(r, (x) => x.rssAnon));
      const fileSlope = rigs.map((r) => slopeOf(r, (x) => x.rssFile));
      const heapSlope = rigs.map((r) => slopeOf(r, (x) => x.heap));
      // Anonymous RSS outside what V8 has committed for the main thread's heap: malloc, external
      // buffers, stacks, the scheduler thread's heap. V8's committed heap itself follows the live
      // heap (heap_slope) within limits V8 sets, and keeps converging for minutes after warm-up.
      const outside = (x: Sample): number | undefined => (x.heapTotal === undefined ? undefined : x.rssAnon - x.heapTotal);
      const outsideSlope = rigs.map((r) => slopeOf(r, outside));
      const unaccounted = (r: Rig): number => r.tally.submitted - (r.tally.completed + r.tally.failed + r.tally.cancelled);
      const firstAfterWarmup = (r: Rig): Sample | undefined => r.samples.find((x) => x.min >= r.warmupEndMin);
      const last = (r: Rig): Sample | undefined => r.samples[r.samples.length - 1];
      const mib = (v: number | undefined): number | null => (v === undefined ? null : v / MiB);
      const slopeTarget = { on: 'value' as const, op: '<=' as const, value: SLOPE_TARGET_MIB_PER_MIN, text: `|slope| ≤ ${SLOPE_TARGET_MIB_PER_MIN}` };
      const noRatio = (m: Metric): Metric => ({ ...m, ratio: null });
      const metrics: Metric[] = [
        // Slopes near zero make a ratio meaningless: the baseline column is there to compare by eye.
        noRatio(metric('native_slope', 'MiB/min', absOrNull(outsideSlope[0]), { baseline: absOrNull(outsideSlope[1]), target: slopeTarget })),
        noRatio(metric('heap_slope', 'MiB/min', absOrNull(heapSlope[0]), { baseline: absOrNull(heapSlope[1]), target: slopeTarget })),
        noRatio(metric('rss_slope', 'MiB/min', absOrNull(rssSlope[0]), { baseline: absOrNull(rssSlope[1]) })),
        // RSS split by what backs it: anonymous is the process's own memory; file-backed pages (the
        // binary, libraries, LMDB's memory-mapped store) are page cache the kernel can drop.
        noRatio(metric('rss_anon_slope', 'MiB/min', absOrNull(anonSlope[0]), { baseline: absOrNull(anonSlope[1]) })),
        noRatio(metric('rss_file_slope', 'MiB/min', absOrNull(fileSlope[0]), { baseline: absOrNull(fileSlope[1]) })),
        noRatio(metric('warmup_end', 'min', round(churn.warmupEndMin, 2), { baseline: round(steady.warmupEndMin, 2) })),
        metric('rss_after_warmup', 'MiB', mib(firstAfterWarmup(churn)?.rss), { baseline: mib(firstAfterWarmup(steady)?.rss) }),
        metric('rss_end', 'MiB', mib(last(churn)?.rss), { baseline: mib(last(steady)?.rss) }),
        metric('jobs_unaccounted', 'jobs', unaccounted(churn), { baseline: unaccounted(steady), target: { on: 'value', op: '<=', value: 0, text: '= 0' } }),
      ];
      const split = (x: Sample | undefined): string =>
        x === undefined ? '—' : `${(x.rss / MiB).toFixed(0)} (anon ${(x.rssAnon / MiB).toFixed(0)}, file ${(x.rssFile / MiB).toFixed(0)})`;
      const notes = rigs.map((r, i) => {
        const t = r.tally;
        const sl = (pick: (x: Sample) => number | undefined): string => String(round(slopeOf(r, pick), 3) ?? '—');
        return (
          `${r.label}: submitted ${t.submitted} = completed ${t.completed} + failed ${t.failed} + cancelled ${t.cancelled}` +
          `${unaccounted(r) !== 0 ? ` (unaccounted ${unaccounted(r)}, watches lost ${t.lost})` : ''}; refused ${t.refused}` +
          `${t.firstFailure ? ` (first: ${t.firstFailure.slice(0, 160)})` : ''}; RSS slope ${round(rssSlope[i], 3) ?? '—'} MiB/min, heap slope ${round(heapSlope[i], 3) ?? '—'} MiB/min (signed)` +
          `${r.stuck.length > 0 ? `; unfinished: ${r.stuck.slice(0, 3).join('; ')}` : ''}` +
          `; RSS ${split(r.samples[0])} at start → ${split(firstAfterWarmup(r))} after warm-up → ${split(last(r))} MiB at the end; ${r.samples.length} samples` +
          `; warm-up ends at ${r.warmupEndMin.toFixed(1)} min: ${r.warmupWhy}; ${r.samples.filter((x) => x.min >= r.warmupEndMin).length} samples after it` +
          `; signed slopes after it (MiB/min): RSS anon ${sl((x) => x.rssAnon)} = V8 heap committed ${sl((x) => x.heapTotal)} + outside it ${sl(outside)}; RSS file ${sl((x) => x.rssFile)}; external ${sl((x) => x.external)}` +
          `; V8 heap at the end ${mib(last(r)?.heap)?.toFixed(0) ?? '—'} of ${mib(last(r)?.heapTotal)?.toFixed(0) ?? '—'} MiB (new space ${mib(last(r)?.newSpace)?.toFixed(0) ?? '—'})`
        );
      });
      notes.push(
        `churn: ${churn.churnRounds} rounds every ${s.churnEveryMs / 1000} s (${s.disconnects} drop and come back after 200 ms, ${s.replacements} leave for good and as many new ids join); ${churn.liveAtEnd} workers live at the end`,
        `${(s.durationMs / 60_000).toFixed(1)} min, ${s.jobsPerSecond} jobs/s per coordinator (${s.cancelShare * 100} % cancelled at once), ${s.workers} one-unit workers, 2 units per job; slopes over each coordinator's samples after its warm-up; both coordinators side by side, embedded store`,
      );
      return [{ scenario: 'soak', metrics, notes }];
    } finally {
      await cleanup.run(ctx.log);
    }
  },
};
