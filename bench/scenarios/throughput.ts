/**
 * `throughput`: small prove jobs end to end. 64 simulated workers of 1 compute unit with instant
 * tasks, `default_compute_units = 1` (one worker per job). Closed loop: 64 clients, each submitting a
 * job and waiting on WatchJob for its end → jobs/s. Open loop: 500 jobs/s → p50/p99 latency from the
 * scheduled send to the `completed` event. Baseline: the echo coordinator (one worker per job).
 *
 * Three coordinators: `thread` (the default: scheduler thread, `[state] backend = "embedded"`),
 * `thread-memory` (the same with `backend = "memory"`, upstream's behaviour) and `main` (scheduler on
 * the main thread, embedded). The `durability` result compares `thread` with `thread-memory`: what
 * keeping jobs on disk costs in jobs/s, CPU per job and main-thread event-loop delay.
 *
 * The baseline and the three coordinators run side by side, each with its own sims, clients and (for
 * the embedded ones) a fresh state dir, and are measured in interleaved slices (rotating order), so
 * the machine's drift over the run — it can double or halve jobs/s within minutes here — lands on all
 * four alike.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Cleanup, diskBytes, procCpuMs, removeDir, tempDir, threadCpuMs } from '../lib/proc';
import { LOAD_GENERATOR_NICENESS, instantWorkers, startCoordinator, startRig } from '../lib/scenario-helpers';
import { MiB, median, summarize } from '../lib/stats';
import { EchoBaseline, type CoordinatorProcess, type LoopReport, type SystemUnderTest } from '../lib/sut';
import { sampleValue } from '../lib/prom';
import { closedLoop, leanRunner, openLoop } from '../lib/workload';
import type { SimGroup } from '../lib/sims';
import type { WireJobClient } from '../lib/wire-client';
import { metric, type Metric, type Scenario, type ScenarioContext, type ScenarioResult } from '../lib/types';

interface Sizes {
  workers: number;
  clients: number;
  warmupMs: number;
  /** Interleaved rounds: each system gets one closed-loop slice and one open-loop slice per round. */
  rounds: number;
  /** Closed-loop time per system in all (split over the rounds), after a ramp per slice. */
  closedMs: number;
  sliceRampMs: number;
  openRate: number;
  /** Open-loop time per system in all (split over the rounds). */
  openMs: number;
}

// Four systems: 2 s slices and a 1 s warm-up (three systems had 2.7 s and 1.5 s) keep the scenario near
// its former length.
const FULL: Sizes = { workers: 64, clients: 64, warmupMs: 1_000, rounds: 3, closedMs: 6_000, sliceRampMs: 300, openRate: 500, openMs: 6_000 };
const SMOKE: Sizes = { workers: 4, clients: 4, warmupMs: 100, rounds: 1, closedMs: 500, sliceRampMs: 50, openRate: 40, openMs: 500 };

/** A coordinator the scenario runs: where its scheduler runs and where it keeps jobs. */
interface CoordinatorSystem {
  name: 'thread' | 'thread-memory' | 'main';
  schedulerThread: boolean;
  backend: 'embedded' | 'memory';
  label: string;
}

const COORDINATOR_SYSTEMS: readonly CoordinatorSystem[] = [
  { name: 'thread', schedulerThread: true, backend: 'embedded', label: 'scheduler thread, embedded store' },
  { name: 'thread-memory', schedulerThread: true, backend: 'memory', label: 'scheduler thread, memory store' },
  { name: 'main', schedulerThread: false, backend: 'embedded', label: 'main-thread scheduler, embedded store' },
];

/** One system under load: its process, its sims and its clients, alive for the whole scenario. */
interface Rig {
  label: string;
  sut: SystemUnderTest;
  sims: SimGroup;
  runner: WireJobClient;
  acc: Accumulated;
  errorLines: () => string[];
  /** Set when a slice failed; the rig is skipped from then on. */
  broken?: string;
}

interface Accumulated {
  closedCompleted: number;
  closedFailed: number;
  closedMs: number;
  closedLatencies: number[];
  serverCpuMs: number;
  /** The server's main thread alone (its other threads: scheduler, LMDB's writer, libuv pool, GC). */
  serverMainCpuMs: number;
  clientCpuMs: number;
  simCpuMs: number;
  cpuKnown: boolean;
  /** Jobs/s of each closed-loop slice, in round order (shows the drift). */
  sliceRates: number[];
  /** Server CPU ms per job of each closed-loop slice (null when /proc could not be read). */
  sliceCpuPerJob: Array<number | null>;
  /** Main-thread event-loop p99 (ms) of each closed-loop slice, over the slice after its ramp. */
  closedMainP99s: Array<number | null>;
  /** Main-thread event-loop p99 (ms) of each open-loop slice (sends and drain). */
  openMainP99s: number[];
  openLatencies: number[];
  openCompleted: number;
  openFailed: number;
  openUnfinished: number;
  openMainP99Ms: number;
  openMainMaxMs: number;
  openSchedulerMaxMs: number | null;
  openClientP99Ms: number;
  openClientMaxMs: number;
  firstFailure?: string;
}

function emptyAccumulated(): Accumulated {
  return {
    closedCompleted: 0,
    closedFailed: 0,
    closedMs: 0,
    closedLatencies: [],
    serverCpuMs: 0,
    serverMainCpuMs: 0,
    clientCpuMs: 0,
    simCpuMs: 0,
    cpuKnown: true,
    sliceRates: [],
    sliceCpuPerJob: [],
    closedMainP99s: [],
    openMainP99s: [],
    openLatencies: [],
    openCompleted: 0,
    openFailed: 0,
    openUnfinished: 0,
    openMainP99Ms: 0,
    openMainMaxMs: 0,
    openSchedulerMaxMs: null,
    openClientP99Ms: 0,
    openClientMaxMs: 0,
  };
}

async function rigUp(label: string, sut: SystemUnderTest, s: Sizes, cleanup: Cleanup, errorLines: () => string[] = () => []): Promise<Rig> {
  const { hashId, sims } = await instantWorkers(sut, cleanup, { workers: s.workers, prefix: `tp-${label}`, maxLogEntries: 16, niceness: LOAD_GENERATOR_NICENESS });
  const runner = leanRunner(sut.apiAddress, 8, hashId);
  cleanup.add(`${label} job client`, () => runner.close());
  return { label, sut, sims, runner, acc: emptyAccumulated(), errorLines };
}

function cpuOf(pids: number[]): number | null {
  let sum = 0;
  for (const pid of pids) {
    const ms = procCpuMs(pid);
    if (ms === null) return null;
    sum += ms;
  }
  return sum;
}

/**
 * One closed-loop slice: CPU of the server, the clients (this process) and the sims after the ramp,
 * and the server's main-thread loop delay over [ramp, ramp + slice] (a scrape at each end: the first
 * starts the coordinator's interval, the second reads it).
 */
async function closedSlice(rig: Rig, s: Sizes, sliceMs: number): Promise<void> {
  type Cpu = [number | null, number | null, number | null, number | null];
  const read = (): Cpu => [procCpuMs(rig.sut.pid), procCpuMs(process.pid), cpuOf(rig.sims.pids), threadCpuMs(rig.sut.pid, rig.sut.pid)];
  let before: Cpu = [null, null, null, null];
  let loopStarted: Promise<unknown> | undefined;
  let loopRead: Promise<LoopReport | undefined> | undefined;
  const scrape = (): Promise<LoopReport | undefined> => rig.sut.loop().catch(() => undefined);
  const ramp = setTimeout(() => {
    before = read();
    loopStarted = scrape();
  }, s.sliceRampMs);
  const endOfSlice = setTimeout(() => (loopRead = scrape()), s.sliceRampMs + sliceMs);
  const out = await closedLoop(rig.runner, s.clients, s.sliceRampMs, sliceMs);
  clearTimeout(ramp);
  clearTimeout(endOfSlice);
  const after = read();
  await loopStarted;
  const loop = loopStarted ? await (loopRead ?? scrape()) : undefined;
  rig.acc.closedMainP99s.push(loop ? loop.main.p99Ms : null);
  const a = rig.acc;
  a.closedCompleted += out.completed;
  a.closedFailed += out.failed;
  a.closedMs += sliceMs;
  a.closedLatencies.push(...out.latencies);
  a.sliceRates.push(out.completed / (sliceMs / 1000));
  a.firstFailure ??= out.firstFailure;
  if (before.some((x) => x === null) || after.some((x) => x === null)) {
    a.cpuKnown = false;
    a.sliceCpuPerJob.push(null);
  } else {
    a.sliceCpuPerJob.push(out.completed > 0 ? ((after[0] as number) - (before[0] as number)) / out.completed : null);
    a.serverCpuMs += (after[0] as number) - (before[0] as number);
    a.serverMainCpuMs += (after[3] as number) - (before[3] as number);
    a.clientCpuMs += (after[1] as number) - (before[1] as number);
    a.simCpuMs += (after[2] as number) - (before[2] as number);
  }
}

async function openSlice(rig: Rig, s: Sizes, sliceMs: number): Promise<void> {
  await rig.sut.loop();
  // The clients' own loop delay lands in every latency they measure: report it beside the server's.
  const clientLoop = monitorEventLoopDelay({ resolution: 5 });
  clientLoop.enable();
  const out = await openLoop(rig.runner, s.openRate, sliceMs);
  clientLoop.disable();
  const loop: LoopReport = await rig.sut.loop();
  const a = rig.acc;
  a.openLatencies.push(...out.latencies);
  a.openCompleted += out.completed;
  a.openFailed += out.failed;
  a.openUnfinished += out.unfinished;
  a.openMainP99s.push(loop.main.p99Ms);
  // Worst slice: the figures explain the latency tail, which comes from the worst moments.
  a.openMainP99Ms = Math.max(a.openMainP99Ms, loop.main.p99Ms);
  a.openMainMaxMs = Math.max(a.openMainMaxMs, loop.main.maxMs);
  if (loop.scheduler) a.openSchedulerMaxMs = Math.max(a.openSchedulerMaxMs ?? 0, loop.scheduler.maxMs);
  a.openClientP99Ms = Math.max(a.openClientP99Ms, clientLoop.percentile(99) / 1e6);
  a.openClientMaxMs = Math.max(a.openClientMaxMs, clientLoop.max / 1e6);
  a.firstFailure ??= out.firstFailure;
}

/** Runs `fn` on every working rig, in an order rotated by `round`; a failure takes only that rig out. */
async function interleave(ctx: ScenarioContext, rigs: Rig[], round: number, what: string, fn: (rig: Rig) => Promise<void>): Promise<void> {
  for (let i = 0; i < rigs.length; i++) {
    const rig = rigs[(i + round) % rigs.length];
    if (rig.broken) continue;
    ctx.log(`  round ${round + 1}: ${what}, ${rig.label}`);
    try {
      await fn(rig);
    } catch (err) {
      rig.broken = err instanceof Error ? err.message : String(err);
      ctx.log(`  ${rig.label} FAILED: ${rig.broken}`);
    }
  }
}

interface Figures {
  closedJobsPerS: number;
  closedP50Ms: number | null;
  serverCpuPerJobMs: number | null;
  serverMainCpuPerJobMs: number | null;
  clientCpuPerJobMs: number | null;
  simCpuPerJobMs: number | null;
  openP50Ms: number | null;
  openP99Ms: number | null;
}

function figuresOf(a: Accumulated): Figures {
  const jobs = a.closedCompleted;
  const perJob = (ms: number): number | null => (a.cpuKnown && jobs > 0 ? ms / jobs : null);
  const ol = summarize(a.openLatencies);
  return {
    closedJobsPerS: a.closedMs > 0 ? jobs / (a.closedMs / 1000) : 0,
    closedP50Ms: summarize(a.closedLatencies).p50,
    serverCpuPerJobMs: perJob(a.serverCpuMs),
    serverMainCpuPerJobMs: perJob(a.serverMainCpuMs),
    clientCpuPerJobMs: perJob(a.clientCpuMs),
    simCpuPerJobMs: perJob(a.simCpuMs),
    openP50Ms: ol.p50,
    openP99Ms: ol.p99,
  };
}

export const throughput: Scenario = {
  name: 'throughput',
  summary: 'small prove jobs end to end: closed loop jobs/s (64 clients, 64 workers), open loop p50/p99 at 500 jobs/s; embedded vs memory job store',
  async run(ctx) {
    const s = ctx.smoke ? SMOKE : FULL;
    const cleanup = new Cleanup();
    const setupFailures: string[] = [];
    try {
      ctx.log('throughput: the baseline and three coordinators (thread, thread-memory, main), side by side');
      const base = await startRig(ctx, cleanup, setupFailures, 'baseline', () => EchoBaseline.start({ workersPerJob: 1 }), (b) =>
        rigUp('baseline', b, s, cleanup),
      );
      const systems: SystemRun[] = [];
      for (const sys of COORDINATOR_SYSTEMS) {
        // Its own fresh state dir (removed after the coordinator stops: cleanup runs in reverse).
        const stateDir = sys.backend === 'embedded' ? tempDir('zisk-bench-state-') : undefined;
        if (stateDir) cleanup.add(`${sys.name} state dir`, () => removeDir(stateDir));
        let proc: CoordinatorProcess | undefined;
        const rig = await startRig(
          ctx,
          cleanup,
          setupFailures,
          `coordinator (${sys.label})`,
          () =>
            startCoordinator(ctx, `throughput-${sys.name}`, {
              schedulerThread: sys.schedulerThread,
              env: {
                ZISK_COORDINATOR_COORDINATOR_DEFAULT_COMPUTE_UNITS: '1',
                ZISK_COORDINATOR_STATE_BACKEND: sys.backend,
                ...(stateDir ? { ZISK_COORDINATOR_STATE_DIR: stateDir } : {}),
              },
            }),
          (coord) => {
            proc = coord;
            return rigUp(sys.name, coord, s, cleanup, () => coord.errorLines(3));
          },
        );
        systems.push({ sys, rig, proc, stateDir, stateBytes: null, crossings: null });
      }
      const rigs = [base, ...systems.map((x) => x.rig)].filter((r): r is Rig => r !== undefined);

      const closedSliceMs = s.closedMs / s.rounds;
      const openSliceMs = s.openMs / s.rounds;
      ctx.log(`  warm-up: ${s.warmupMs} ms closed loop each`);
      await interleave(ctx, rigs, 0, 'warm-up', (rig) => closedLoop(rig.runner, s.clients, s.warmupMs, 0).then(() => undefined));
      for (let round = 0; round < s.rounds; round++) {
        await interleave(ctx, rigs, round, `closed loop ${Math.round(closedSliceMs)} ms`, (rig) => closedSlice(rig, s, closedSliceMs));
      }
      for (let round = 0; round < s.rounds; round++) {
        await interleave(ctx, rigs, round, `open loop ${s.openRate} jobs/s for ${Math.round(openSliceMs)} ms`, (rig) => openSlice(rig, s, openSliceMs));
      }
      for (const x of systems) {
        if (x.stateDir) x.stateBytes = diskBytes(x.stateDir);
        x.crossings = x.proc ? await crossingsOf(x.proc).catch(() => null) : null;
      }
      return report(s, base, systems, setupFailures);
    } finally {
      await cleanup.run(ctx.log);
    }
  },
};

interface SystemRun {
  sys: CoordinatorSystem;
  rig: Rig | undefined;
  proc: CoordinatorProcess | undefined;
  /** What crossed the scheduler channel over the whole run, per job accepted. */
  crossings: Crossings | null;
  stateDir: string | undefined;
  /** Disk space of its state dir after the run (embedded only). */
  stateBytes: number | null;
}

/** Batches (wake-ups of the other thread when the scheduler has its own) and items per accepted job. */
interface Crossings {
  toBatchesPerJob: number;
  fromBatchesPerJob: number;
  toItemsPerJob: number;
  fromItemsPerJob: number;
  jobs: number;
}

async function crossingsOf(proc: CoordinatorProcess): Promise<Crossings | null> {
  const samples = await proc.scrape();
  const jobs = samples.filter((x) => x.name === 'coordinator_jobs_submitted_total').reduce((sum, x) => sum + x.value, 0);
  const read = (name: string, direction: string): number => sampleValue(samples, name, { direction }) ?? Number.NaN;
  if (jobs === 0) return null;
  return {
    toBatchesPerJob: read('coordinator_scheduler_batches_total', 'to_scheduler') / jobs,
    fromBatchesPerJob: read('coordinator_scheduler_batches_total', 'from_scheduler') / jobs,
    toItemsPerJob: read('coordinator_scheduler_batch_items_total', 'to_scheduler') / jobs,
    fromItemsPerJob: read('coordinator_scheduler_batch_items_total', 'from_scheduler') / jobs,
    jobs,
  };
}

/** x ÷ y for each round, e.g. "0.92×, 0.87×, 0.91×". */
function perRoundRatios(x: Rig | undefined, y: Rig | undefined, pick: (a: Accumulated) => ReadonlyArray<number | null>): string {
  if (!x || !y) return '—';
  const xs = pick(x.acc);
  const ys = pick(y.acc);
  const out: string[] = [];
  for (let i = 0; i < Math.min(xs.length, ys.length); i++) {
    const a = xs[i];
    const b = ys[i];
    out.push(a !== null && b !== null && b > 0 ? `${(a / b).toFixed(2)}×` : '—');
  }
  return out.join(', ');
}

const minus = (a: number | null | undefined, b: number | null | undefined): number | null => (a === null || a === undefined || b === null || b === undefined ? null : a - b);
const f2 = (n: number | null | undefined): string => (n === null || n === undefined || !Number.isFinite(n) ? '—' : n.toFixed(2));
const list = (xs: ReadonlyArray<number | null>, digits = 1): string => (xs.length === 0 ? '—' : xs.map((x) => (x === null ? '—' : x.toFixed(digits))).join(', '));
const known = (xs: ReadonlyArray<number | null>): number[] => xs.filter((x): x is number => x !== null && Number.isFinite(x));
const range = (xs: ReadonlyArray<number | null>): string => {
  const k = known(xs);
  return k.length === 0 ? '—' : `${Math.min(...k).toFixed(1)}–${Math.max(...k).toFixed(1)}`;
};

function report(s: Sizes, base: Rig | undefined, systems: SystemRun[], setupFailures: string[]): ScenarioResult[] {
  const f = f2;
  const b = base && !base.broken ? figuresOf(base.acc) : undefined;
  const rates = (r: Rig | undefined): string => (r ? r.acc.sliceRates.map((x) => Math.round(x)).join(', ') : '—');
  const results: ScenarioResult[] = [];
  for (const { sys, rig, stateBytes, crossings } of systems) {
    const c = rig && !rig.broken ? figuresOf(rig.acc) : undefined;
    const a = rig?.acc;
    const notes: string[] = [
      `${sys.label}. ${s.workers} workers × 1 unit, instant tasks, default_compute_units = 1. The baseline and the three coordinators (thread, thread-memory, main) run side by side (each with its own sims, clients and fresh state dir) and are measured in ${s.rounds} interleaved rounds, rotating the order: closed loop ${s.clients} clients, ${Math.round(s.closedMs / s.rounds)} ms per slice after a ${s.sliceRampMs} ms ramp (${s.warmupMs / 1000} s warm-up each first); open loop ${s.openRate} jobs/s, ${Math.round(s.openMs / s.rounds)} ms per slice. Clients speak gRPC over bare node:http2 (8 connections, pre-encoded requests); sims run in their own processes at nice ${LOAD_GENERATOR_NICENESS}.`,
      `Closed-loop jobs/s per slice, round by round (the machine's drift): ${sys.name} ${rates(rig)}; baseline ${rates(base)}.`,
      `Closed loop: coordinator ${a?.closedFailed ?? '—'} failed jobs, p50 job latency ${f(c?.closedP50Ms)} ms (baseline ${f(b?.closedP50Ms)} ms); server CPU ${f(c?.serverCpuPerJobMs)} ms per job, of which its main thread ${f(c?.serverMainCpuPerJobMs)} ms (baseline ${f(b?.serverCpuPerJobMs)} / ${f(b?.serverMainCpuPerJobMs)} ms); main-thread loop p99 per slice ${list(a?.closedMainP99s ?? [])} ms (baseline ${list(base?.acc.closedMainP99s ?? [])} ms).`,
      `Load generators over the closed loop, in CPU ms per job (coordinator run / baseline): clients (the bench process) ${f(c?.clientCpuPerJobMs)} / ${f(b?.clientCpuPerJobMs)}, sims ${f(c?.simCpuPerJobMs)} / ${f(b?.simCpuPerJobMs)}. With two cores in all, jobs/s can reach at most 2000 / (server + clients + sims) ms.`,
      `Open loop: coordinator ${a?.openCompleted ?? '—'} completed, ${a?.openFailed ?? '—'} failed, ${a?.openUnfinished ?? '—'} unfinished; main-thread event-loop p99 per slice ${list(a?.openMainP99s ?? [])} ms, worst slice's max ${f(a?.openMainMaxMs)} ms (baseline ${list(base?.acc.openMainP99s ?? [])} / ${f(base?.acc.openMainMaxMs)} ms); scheduler thread max ${f(a?.openSchedulerMaxMs)} ms (its latest 5 s report); the clients' own loop p99 / max ${f(a?.openClientP99Ms)} / ${f(a?.openClientMaxMs)} ms (baseline ${f(base?.acc.openClientP99Ms)} / ${f(base?.acc.openClientMaxMs)} ms).`,
      ...(crossings ? [`Scheduler channel over the run (${crossings.jobs} jobs accepted, warm-up and both loops): ${f(crossings.toBatchesPerJob)} batches in and ${f(crossings.fromBatchesPerJob)} out per job, carrying ${f(crossings.toItemsPerJob)} events and ${f(crossings.fromItemsPerJob)} effects per job.`] : []),
      ...(stateBytes !== null ? [`State dir after the run: ${(stateBytes / MiB).toFixed(1)} MiB on disk ([state] max_retained_jobs = 10,000 bounds it).`] : []),
      ...setupFailures,
    ];
    if (rig?.broken) notes.push(`coordinator failed mid-run: ${rig.broken.split('\n')[0].slice(0, 300)}`);
    if (base?.broken) notes.push(`baseline failed mid-run: ${base.broken.split('\n')[0].slice(0, 300)}`);
    if (a?.firstFailure) notes.push(`first failure: ${a.firstFailure}`);
    if (base?.acc.firstFailure) notes.push(`baseline first failure: ${base.acc.firstFailure}`);
    for (const l of rig?.errorLines() ?? []) notes.push(`coordinator error log: ${l}`);
    // The default (thread) is held to the raw transport; the other two are there to be compared with it.
    const vsRaw = sys.name === 'thread';
    results.push({
      scenario: 'throughput',
      variant: sys.name,
      metrics: [
        metric('closed_loop_throughput', 'jobs/s', c?.closedJobsPerS ?? null, {
          baseline: b?.closedJobsPerS ?? null,
          ...(vsRaw ? { target: { on: 'ratio', op: '>=', value: 0.9 } } : {}),
        }),
        metric('server_cpu_per_job', 'ms', c?.serverCpuPerJobMs ?? null, {
          baseline: b?.serverCpuPerJobMs ?? null,
          ...(vsRaw ? { target: { on: 'ratio', op: '<=', value: 1.2 } } : {}),
        }),
        metric('open_loop_p50', 'ms', c?.openP50Ms ?? null, { baseline: b?.openP50Ms ?? null }),
        metric('open_loop_p99', 'ms', c?.openP99Ms ?? null, {
          baseline: b?.openP99Ms ?? null,
          ...(vsRaw ? { target: { on: 'ratio', op: '<=', value: 1.5 } } : {}),
        }),
        metric('open_loop_completed', 'jobs', a?.openCompleted ?? null, { baseline: base?.acc.openCompleted ?? null }),
      ],
      notes,
    });
  }
  const embedded = systems.find((x) => x.sys.name === 'thread');
  const memory = systems.find((x) => x.sys.name === 'thread-memory');
  results.push(durability(s, embedded, memory));
  results.push(hop(s, embedded, systems.find((x) => x.sys.name === 'main')));
  return results;
}

/**
 * `hop`: what the scheduler thread costs on this workload, the default coordinator (scheduler thread)
 * against the same coordinator with the core on its main thread, both with the embedded store, in
 * the same rounds. Coordinator = thread, baseline = main, ratio = thread ÷ main.
 */
function hop(s: Sizes, thread: SystemRun | undefined, main: SystemRun | undefined): ScenarioResult {
  const t = thread?.rig && !thread.rig.broken ? thread.rig : undefined;
  const m = main?.rig && !main.rig.broken ? main.rig : undefined;
  const tf = t ? figuresOf(t.acc) : undefined;
  const mf = m ? figuresOf(m.acc) : undefined;
  const tc = thread?.crossings ?? null;
  const mc = main?.crossings ?? null;
  const perRound = (pick: (a: Accumulated) => ReadonlyArray<number | null>): string => perRoundRatios(t, m, pick);
  const notes: string[] = [
    `The default coordinator (scheduler core on its own thread) against the same coordinator with [coordinator] scheduler_thread = false (the core on the main thread), both with the embedded store, in the same ${s.rounds} interleaved rounds. Coordinator = thread, baseline = main, ratio = thread ÷ main.`,
    `Closed-loop jobs/s per slice: thread ${list(t?.acc.sliceRates ?? [], 0)}, main ${list(m?.acc.sliceRates ?? [], 0)}; per-round ratio ${perRound((a) => a.sliceRates)}.`,
    `Server CPU ms per job per slice: thread ${list(t?.acc.sliceCpuPerJob ?? [], 2)}, main ${list(m?.acc.sliceCpuPerJob ?? [], 2)}; per-round ratio ${perRound((a) => a.sliceCpuPerJob)}. Main thread alone: thread ${f2(tf?.serverMainCpuPerJobMs)}, main ${f2(mf?.serverMainCpuPerJobMs)} ms per job.`,
    `Crossings of the scheduler channel per job (in / out): thread ${f2(tc?.toBatchesPerJob)} / ${f2(tc?.fromBatchesPerJob)}, main ${f2(mc?.toBatchesPerJob)} / ${f2(mc?.fromBatchesPerJob)}. With the thread each crossing wakes the other thread; on the main thread it is a function call.`,
  ];
  if (!t) notes.push(`thread coordinator failed: ${thread?.rig?.broken?.split('\n')[0].slice(0, 300) ?? 'not started'}`);
  if (!m) notes.push(`main-thread coordinator failed: ${main?.rig?.broken?.split('\n')[0].slice(0, 300) ?? 'not started'}`);
  return {
    scenario: 'throughput',
    variant: 'hop',
    metrics: [
      metric('closed_loop_throughput', 'jobs/s', tf?.closedJobsPerS ?? null, {
        baseline: mf?.closedJobsPerS ?? null,
        target: { on: 'ratio', op: '>=', value: 0.95, text: '≥ 0.95× main' },
      }),
      metric('server_cpu_per_job', 'ms', tf?.serverCpuPerJobMs ?? null, {
        baseline: mf?.serverCpuPerJobMs ?? null,
        target: { on: 'ratio', op: '<=', value: 1.05, text: '≤ 1.05× main' },
      }),
      metric('open_loop_p99', 'ms', tf?.openP99Ms ?? null, {
        baseline: mf?.openP99Ms ?? null,
        target: { on: 'ratio', op: '<=', value: 1.1, text: '≤ 1.1× main' },
      }),
      metric('open_loop_p50', 'ms', tf?.openP50Ms ?? null, { baseline: mf?.openP50Ms ?? null }),
      metric('scheduler_batches_per_job', 'batches', tc ? tc.toBatchesPerJob + tc.fromBatchesPerJob : null, {
        baseline: mc ? mc.toBatchesPerJob + mc.fromBatchesPerJob : null,
      }),
    ],
    notes,
  };
}

/**
 * `durability`: the default coordinator (embedded store) against the same coordinator keeping jobs in
 * memory, in the same run. "Coordinator" is the embedded one, "baseline" the memory one.
 */
function durability(s: Sizes, embedded: SystemRun | undefined, memory: SystemRun | undefined): ScenarioResult {
  const e = embedded?.rig && !embedded.rig.broken ? embedded.rig : undefined;
  const m = memory?.rig && !memory.rig.broken ? memory.rig : undefined;
  const ef = e ? figuresOf(e.acc) : undefined;
  const mf = m ? figuresOf(m.acc) : undefined;
  const med = (xs: ReadonlyArray<number | null> | undefined): number | null => median(known(xs ?? []));
  const eClosedP99 = med(e?.acc.closedMainP99s);
  const mClosedP99 = med(m?.acc.closedMainP99s);
  const mClosedP99s = known(m?.acc.closedMainP99s ?? []);
  // "Unchanged within noise": the embedded coordinator's median slice is no worse than the memory
  // coordinator's worst slice (the spread memory shows on its own, in the same run).
  const loopMetric: Metric = metric('main_loop_p99', 'ms', eClosedP99, { baseline: mClosedP99 });
  loopMetric.target = '≤ memory’s worst slice';
  loopMetric.met = eClosedP99 !== null && mClosedP99s.length > 0 && eClosedP99 <= Math.max(...mClosedP99s);
  const perRound = (pick: (a: Accumulated) => ReadonlyArray<number | null>): string => perRoundRatios(e, m, pick);
  const notes: string[] = [
    `The default coordinator ([state] backend = "embedded", LMDB in a fresh temp dir on this machine's ext4 disk) against the same coordinator with backend = "memory" (upstream's behaviour), both with the scheduler on its own thread, side by side in the same ${s.rounds} interleaved rounds as every other system of this scenario. Coordinator = embedded, baseline = memory, ratio = embedded ÷ memory.`,
    `Closed-loop jobs/s per slice: embedded ${list(e?.acc.sliceRates ?? [], 0)}, memory ${list(m?.acc.sliceRates ?? [], 0)}; per-round ratio ${perRound((a) => a.sliceRates)}.`,
    `Server CPU ms per job per slice: embedded ${list(e?.acc.sliceCpuPerJob ?? [], 2)}, memory ${list(m?.acc.sliceCpuPerJob ?? [], 2)}; per-round ratio ${perRound((a) => a.sliceCpuPerJob)}.`,
    `Main-thread event-loop p99 per closed-loop slice (the coordinator's 10 ms sampler, over each slice after its ramp; the figure is the median slice): embedded ${list(e?.acc.closedMainP99s ?? [])} ms (range ${range(e?.acc.closedMainP99s ?? [])}), memory ${list(m?.acc.closedMainP99s ?? [])} ms (range ${range(m?.acc.closedMainP99s ?? [])}). Target: the embedded median no worse than memory's worst slice.`,
    `Main-thread event-loop p99 per open-loop slice (${s.openRate} jobs/s offered, sends and drain): embedded ${list(e?.acc.openMainP99s ?? [])} ms (range ${range(e?.acc.openMainP99s ?? [])}), memory ${list(m?.acc.openMainP99s ?? [])} ms (range ${range(m?.acc.openMainP99s ?? [])}). A system that cannot keep up with the offered rate runs a backlog (its slice lasts longer and its turns are fuller), so read this one together with open_loop_completed and open_loop_p50.`,
    `Where the CPU goes, ms per job over the closed loop (embedded / memory): the whole process ${f2(ef?.serverCpuPerJobMs)} / ${f2(mf?.serverCpuPerJobMs)}, its main thread ${f2(ef?.serverMainCpuPerJobMs)} / ${f2(mf?.serverMainCpuPerJobMs)}, its other threads (scheduler, LMDB's writer, the libuv pool's file writes and fsyncs, GC helpers) ${f2(minus(ef?.serverCpuPerJobMs, ef?.serverMainCpuPerJobMs))} / ${f2(minus(mf?.serverCpuPerJobMs, mf?.serverMainCpuPerJobMs))}. The kernel's own journal work for those fsyncs (ext4's jbd2 thread) is in no process's figure.`,
    `Closed-loop p50 job latency: embedded ${f2(ef?.closedP50Ms)} ms, memory ${f2(mf?.closedP50Ms)} ms. Load generators (CPU ms per job, embedded / memory): clients ${f2(ef?.clientCpuPerJobMs)} / ${f2(mf?.clientCpuPerJobMs)}, sims ${f2(ef?.simCpuPerJobMs)} / ${f2(mf?.simCpuPerJobMs)}.`,
  ];
  if (!e) notes.push(`embedded coordinator failed: ${embedded?.rig?.broken?.split('\n')[0].slice(0, 300) ?? 'not started'}`);
  if (!m) notes.push(`memory coordinator failed: ${memory?.rig?.broken?.split('\n')[0].slice(0, 300) ?? 'not started'}`);
  const openP99 = (r: Rig | undefined): number | null => med(r?.acc.openMainP99s);
  return {
    scenario: 'throughput',
    variant: 'durability',
    metrics: [
      metric('closed_loop_throughput', 'jobs/s', ef?.closedJobsPerS ?? null, {
        baseline: mf?.closedJobsPerS ?? null,
        target: { on: 'ratio', op: '>=', value: 0.8, text: '≥ 0.8× memory' },
      }),
      metric('server_cpu_per_job', 'ms', ef?.serverCpuPerJobMs ?? null, { baseline: mf?.serverCpuPerJobMs ?? null }),
      metric('server_main_thread_cpu_per_job', 'ms', ef?.serverMainCpuPerJobMs ?? null, { baseline: mf?.serverMainCpuPerJobMs ?? null }),
      loopMetric,
      metric('open_loop_main_loop_p99', 'ms', openP99(e), { baseline: openP99(m) }),
      metric('open_loop_p50', 'ms', ef?.openP50Ms ?? null, { baseline: mf?.openP50Ms ?? null }),
      metric('open_loop_p99', 'ms', ef?.openP99Ms ?? null, { baseline: mf?.openP99Ms ?? null }),
      metric('open_loop_completed', 'jobs', e?.acc.openCompleted ?? null, { baseline: m?.acc.openCompleted ?? null }),
    ],
    notes,
  };
}
