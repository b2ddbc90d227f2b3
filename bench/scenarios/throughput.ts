/**
 * `throughput`: small prove jobs end to end. 64 simulated workers of 1 compute unit with instant
 * tasks, `default_compute_units = 1` (one worker per job). Closed loop: 64 clients, each submitting a
 * job and waiting on WatchJob for its end → jobs/s. Open loop: 500 jobs/s → p50/p99 latency from the
 * scheduled send to the `completed` event. Baseline: the echo coordinator (one worker per job).
 *
 * The baseline and both coordinator variants run side by side, each with its own sims and clients,
 * and are measured in interleaved slices (rotating order), so the machine's drift over the run — it
 * can double or halve jobs/s within minutes here — lands on all three alike.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Cleanup, procCpuMs } from '../lib/proc';
import { LOAD_GENERATOR_NICENESS, SCHEDULER_VARIANTS, instantWorkers, startCoordinator, startRig, type SchedulerVariant } from '../lib/scenario-helpers';
import { summarize } from '../lib/stats';
import { EchoBaseline, type LoopReport, type SystemUnderTest } from '../lib/sut';
import { closedLoop, leanRunner, openLoop } from '../lib/workload';
import type { SimGroup } from '../lib/sims';
import type { WireJobClient } from '../lib/wire-client';
import { metric, type Scenario, type ScenarioContext, type ScenarioResult } from '../lib/types';

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

const FULL: Sizes = { workers: 64, clients: 64, warmupMs: 1_500, rounds: 3, closedMs: 8_100, sliceRampMs: 300, openRate: 500, openMs: 8_100 };
const SMOKE: Sizes = { workers: 4, clients: 4, warmupMs: 100, rounds: 1, closedMs: 500, sliceRampMs: 50, openRate: 40, openMs: 500 };

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
  clientCpuMs: number;
  simCpuMs: number;
  cpuKnown: boolean;
  /** Jobs/s of each closed-loop slice, in round order (shows the drift). */
  sliceRates: number[];
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
    clientCpuMs: 0,
    simCpuMs: 0,
    cpuKnown: true,
    sliceRates: [],
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

/** One closed-loop slice: CPU of the server, the clients (this process) and the sims after the ramp. */
async function closedSlice(rig: Rig, s: Sizes, sliceMs: number): Promise<void> {
  const read = (): [number | null, number | null, number | null] => [procCpuMs(rig.sut.pid), procCpuMs(process.pid), cpuOf(rig.sims.pids)];
  let before: [number | null, number | null, number | null] = [null, null, null];
  const ramp = setTimeout(() => (before = read()), s.sliceRampMs);
  const out = await closedLoop(rig.runner, s.clients, s.sliceRampMs, sliceMs);
  clearTimeout(ramp);
  const after = read();
  const a = rig.acc;
  a.closedCompleted += out.completed;
  a.closedFailed += out.failed;
  a.closedMs += sliceMs;
  a.closedLatencies.push(...out.latencies);
  a.sliceRates.push(out.completed / (sliceMs / 1000));
  a.firstFailure ??= out.firstFailure;
  if (before.some((x) => x === null) || after.some((x) => x === null)) a.cpuKnown = false;
  else {
    a.serverCpuMs += (after[0] as number) - (before[0] as number);
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
    clientCpuPerJobMs: perJob(a.clientCpuMs),
    simCpuPerJobMs: perJob(a.simCpuMs),
    openP50Ms: ol.p50,
    openP99Ms: ol.p99,
  };
}

export const throughput: Scenario = {
  name: 'throughput',
  summary: 'small prove jobs end to end: closed loop jobs/s (64 clients, 64 workers), open loop p50/p99 at 500 jobs/s',
  async run(ctx) {
    const s = ctx.smoke ? SMOKE : FULL;
    const cleanup = new Cleanup();
    const setupFailures: string[] = [];
    try {
      ctx.log('throughput: the baseline and both coordinator variants, side by side');
      const base = await startRig(ctx, cleanup, setupFailures, 'baseline', () => EchoBaseline.start({ workersPerJob: 1 }), (b) =>
        rigUp('baseline', b, s, cleanup),
      );
      const variants: Array<{ v: SchedulerVariant; rig: Rig | undefined }> = [];
      for (const v of SCHEDULER_VARIANTS) {
        const rig = await startRig(
          ctx,
          cleanup,
          setupFailures,
          `coordinator (${v.label})`,
          () =>
            startCoordinator(ctx, `throughput-${v.name}`, {
              schedulerThread: v.schedulerThread,
              env: { ZISK_COORDINATOR_COORDINATOR_DEFAULT_COMPUTE_UNITS: '1' },
            }),
          (coord) => rigUp(v.name, coord, s, cleanup, () => coord.errorLines(3)),
        );
        variants.push({ v, rig });
      }
      const rigs = [base, ...variants.map((x) => x.rig)].filter((r): r is Rig => r !== undefined);

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
      return report(s, base, variants, setupFailures);
    } finally {
      await cleanup.run(ctx.log);
    }
  },
};

function report(s: Sizes, base: Rig | undefined, variants: Array<{ v: SchedulerVariant; rig: Rig | undefined }>, setupFailures: string[]): ScenarioResult[] {
  const f = (n: number | null | undefined): string => (n === null || n === undefined ? '—' : n.toFixed(2));
  const b = base && !base.broken ? figuresOf(base.acc) : undefined;
  const rates = (r: Rig | undefined): string => (r ? r.acc.sliceRates.map((x) => Math.round(x)).join(', ') : '—');
  const results: ScenarioResult[] = [];
  for (const { v, rig } of variants) {
    const c = rig && !rig.broken ? figuresOf(rig.acc) : undefined;
    const a = rig?.acc;
    const notes: string[] = [
      `${s.workers} workers × 1 unit, instant tasks, default_compute_units = 1. The baseline and both coordinator variants run side by side (each with its own sims and clients) and are measured in ${s.rounds} interleaved rounds, rotating the order: closed loop ${s.clients} clients, ${Math.round(s.closedMs / s.rounds)} ms per slice after a ${s.sliceRampMs} ms ramp (${s.warmupMs / 1000} s warm-up each first); open loop ${s.openRate} jobs/s, ${Math.round(s.openMs / s.rounds)} ms per slice. Clients speak gRPC over bare node:http2 (8 connections, pre-encoded requests); sims run in their own processes at nice ${LOAD_GENERATOR_NICENESS}.`,
      `Closed-loop jobs/s per slice, round by round (the machine's drift): ${v.name} ${rates(rig)}; baseline ${rates(base)}.`,
      `Closed loop: coordinator ${a?.closedFailed ?? '—'} failed jobs, p50 job latency ${f(c?.closedP50Ms)} ms (baseline ${f(b?.closedP50Ms)} ms); server CPU ${f(c?.serverCpuPerJobMs)} ms per job (baseline ${f(b?.serverCpuPerJobMs)} ms).`,
      `Load generators over the closed loop, in CPU ms per job (coordinator run / baseline): clients (the bench process) ${f(c?.clientCpuPerJobMs)} / ${f(b?.clientCpuPerJobMs)}, sims ${f(c?.simCpuPerJobMs)} / ${f(b?.simCpuPerJobMs)}. With two cores in all, jobs/s can reach at most 2000 / (server + clients + sims) ms.`,
      `Open loop: coordinator ${a?.openCompleted ?? '—'} completed, ${a?.openFailed ?? '—'} failed, ${a?.openUnfinished ?? '—'} unfinished; worst slice's main-thread event-loop p99 ${f(a?.openMainP99Ms)} ms, max ${f(a?.openMainMaxMs)} ms (baseline ${f(base?.acc.openMainP99Ms)} / ${f(base?.acc.openMainMaxMs)} ms); scheduler thread max ${f(a?.openSchedulerMaxMs)} ms (its latest 5 s report); the clients' own loop p99 / max ${f(a?.openClientP99Ms)} / ${f(a?.openClientMaxMs)} ms (baseline ${f(base?.acc.openClientP99Ms)} / ${f(base?.acc.openClientMaxMs)} ms).`,
      ...setupFailures,
    ];
    if (rig?.broken) notes.push(`coordinator failed mid-run: ${rig.broken.split('\n')[0].slice(0, 300)}`);
    if (base?.broken) notes.push(`baseline failed mid-run: ${base.broken.split('\n')[0].slice(0, 300)}`);
    if (a?.firstFailure) notes.push(`first failure: ${a.firstFailure}`);
    if (base?.acc.firstFailure) notes.push(`baseline first failure: ${base.acc.firstFailure}`);
    for (const l of rig?.errorLines() ?? []) notes.push(`coordinator error log: ${l}`);
    results.push({
      scenario: 'throughput',
      variant: v.name,
      metrics: [
        metric('closed_loop_throughput', 'jobs/s', c?.closedJobsPerS ?? null, {
          baseline: b?.closedJobsPerS ?? null,
          target: { on: 'value', op: '>=', value: 1000 },
        }),
        metric('server_cpu_per_job', 'ms', c?.serverCpuPerJobMs ?? null, { baseline: b?.serverCpuPerJobMs ?? null }),
        metric('open_loop_p50', 'ms', c?.openP50Ms ?? null, { baseline: b?.openP50Ms ?? null }),
        metric('open_loop_p99', 'ms', c?.openP99Ms ?? null, { baseline: b?.openP99Ms ?? null, target: { on: 'value', op: '<=', value: 20 } }),
        metric('open_loop_completed', 'jobs', a?.openCompleted ?? null, { baseline: base?.acc.openCompleted ?? null }),
      ],
      notes,
    });
  }
  return results;
}
