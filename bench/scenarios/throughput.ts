/**
 * `throughput`: small prove jobs end to end. 64 simulated workers of 1 compute unit with instant
 * tasks, `default_compute_units = 1` (one worker per job). Closed loop: 64 clients, each submitting a
 * job and waiting on WatchJob for its end → jobs/s. Open loop: 500 jobs/s → p50/p99 latency from the
 * scheduled send to the `completed` event. Baseline: the echo coordinator (one worker per job).
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Cleanup, procCpuMs } from '../lib/proc';
import { LOAD_GENERATOR_NICENESS, SCHEDULER_VARIANTS, CpuMeter, attempt, instantWorkers, startCoordinator, type SchedulerVariant } from '../lib/scenario-helpers';
import { summarize } from '../lib/stats';
import { EchoBaseline, type SystemUnderTest } from '../lib/sut';
import { closedLoop, leanRunner, openLoop } from '../lib/workload';
import { metric, type Scenario, type ScenarioContext, type ScenarioResult } from '../lib/types';

interface Sizes {
  workers: number;
  clients: number;
  warmupMs: number;
  closedMs: number;
  openRate: number;
  openMs: number;
}

const FULL: Sizes = { workers: 64, clients: 64, warmupMs: 1_500, closedMs: 8_000, openRate: 500, openMs: 8_000 };
const SMOKE: Sizes = { workers: 4, clients: 4, warmupMs: 100, closedMs: 500, openRate: 40, openMs: 500 };

interface Measured {
  closedJobsPerS: number;
  closedP50Ms: number | null;
  closedFailed: number;
  openP50Ms: number | null;
  openP99Ms: number | null;
  openCompleted: number;
  openFailed: number;
  openUnfinished: number;
  openMainP99Ms: number;
  openMainMaxMs: number;
  openSchedulerMaxMs: number | null;
  /** The bench process's (the clients') event-loop delay over the open loop. */
  openClientP99Ms: number;
  openClientMaxMs: number;
  closedCpuCores: number | null;
  /** Cores used by the load generators over the closed loop: this process (the clients) and the sims. */
  clientCpuCores: number | null;
  simCpuCores: number | null;
  firstFailure?: string;
  startupMs: number;
}

async function measure(ctx: ScenarioContext, sut: SystemUnderTest, s: Sizes, cleanup: Cleanup): Promise<Measured> {
  const { hashId, sims } = await instantWorkers(sut, cleanup, { workers: s.workers, prefix: 'tp', maxLogEntries: 16, niceness: LOAD_GENERATOR_NICENESS });
  const runner = leanRunner(sut.apiAddress, 8, hashId);
  cleanup.add('job client', () => runner.close());

  ctx.log(`  closed loop: ${s.clients} clients, ${s.closedMs} ms (+${s.warmupMs} ms warm-up)`);
  const cpu = new CpuMeter(() => procCpuMs(sut.pid));
  const clientCpu = new CpuMeter(() => procCpuMs(process.pid));
  const simCpu = new CpuMeter(() => sumOrNull(sims.pids.map(procCpuMs)));
  const cpuStart = setTimeout(() => [cpu, clientCpu, simCpu].forEach((m) => m.start()), s.warmupMs);
  const closed = await closedLoop(runner, s.clients, s.warmupMs, s.closedMs);
  clearTimeout(cpuStart);
  const closedCpuCores = cpu.stop();
  const clientCpuCores = clientCpu.stop();
  const simCpuCores = simCpu.stop();

  ctx.log(`  open loop: ${s.openRate} jobs/s for ${s.openMs} ms`);
  await sut.loop();
  // The clients' own loop delay lands in every latency they measure: report it beside the server's.
  const clientLoop = monitorEventLoopDelay({ resolution: 5 });
  clientLoop.enable();
  const open = await openLoop(runner, s.openRate, s.openMs);
  clientLoop.disable();
  const loop = await sut.loop();
  const ol = summarize(open.latencies);
  const m: Measured = {
    closedJobsPerS: closed.completed / (s.closedMs / 1000),
    closedP50Ms: summarize(closed.latencies).p50,
    closedFailed: closed.failed,
    openP50Ms: ol.p50,
    openP99Ms: ol.p99,
    openCompleted: open.completed,
    openFailed: open.failed,
    openUnfinished: open.unfinished,
    openMainP99Ms: loop.main.p99Ms,
    openMainMaxMs: loop.main.maxMs,
    openSchedulerMaxMs: loop.scheduler?.maxMs ?? null,
    openClientP99Ms: clientLoop.percentile(99) / 1e6,
    openClientMaxMs: clientLoop.max / 1e6,
    closedCpuCores,
    clientCpuCores,
    simCpuCores,
    startupMs: sut.startupMs,
  };
  const ff = closed.firstFailure ?? open.firstFailure;
  if (ff) m.firstFailure = ff;
  return m;
}

function sumOrNull(values: Array<number | null>): number | null {
  return values.some((v) => v === null) ? null : values.reduce<number>((a, v) => a + (v ?? 0), 0);
}

/** Field-wise mean of the runs that succeeded (a field missing in one run takes the other's). */
function meanOf(runs: Array<Measured | undefined>): Measured | undefined {
  const ok = runs.filter((r): r is Measured => r !== undefined);
  if (ok.length <= 1) return ok[0];
  const out: Record<string, unknown> = { ...ok[0] };
  for (const key of Object.keys(out)) {
    const values = ok.map((r) => (r as unknown as Record<string, unknown>)[key]);
    if (values.every((x): x is number => typeof x === 'number')) out[key] = values.reduce((a, b) => a + b, 0) / values.length;
    else out[key] = values.find((x) => x !== null && x !== undefined) ?? out[key];
  }
  return out as unknown as Measured;
}

async function runBaseline(ctx: ScenarioContext, s: Sizes): Promise<Measured> {
  const cleanup = new Cleanup();
  try {
    const b = await EchoBaseline.start({ workersPerJob: 1 });
    cleanup.add('baseline', () => b.stop().then(() => undefined));
    ctx.log(`  baseline: echo coordinator pid ${b.pid}`);
    return await measure(ctx, b, s, cleanup);
  } finally {
    await cleanup.run(ctx.log);
  }
}

export const throughput: Scenario = {
  name: 'throughput',
  summary: 'small prove jobs end to end: closed loop jobs/s (64 clients, 64 workers), open loop p50/p99 at 500 jobs/s',
  async run(ctx) {
    const s = ctx.smoke ? SMOKE : FULL;
    const baseFailures: string[] = [];
    // The machine's speed drifts by tens of percent within minutes: the baseline runs before and
    // after the coordinator variants, and its figures are the mean of the two.
    ctx.log('throughput: baseline (before)');
    const baseBefore = await attempt(ctx, 'baseline (before)', () => runBaseline(ctx, s), baseFailures);
    const runs: Array<{ v: SchedulerVariant; c: Measured | undefined; notes: string[] }> = [];
    for (const v of SCHEDULER_VARIANTS) {
      ctx.log(`throughput: coordinator, ${v.label}`);
      const notes: string[] = [];
      const c = await attempt(
        ctx,
        `coordinator (${v.label})`,
        async () => {
          const cleanup = new Cleanup();
          try {
            const coord = await startCoordinator(ctx, `throughput-${v.name}`, {
              schedulerThread: v.schedulerThread,
              env: { ZISK_COORDINATOR_COORDINATOR_DEFAULT_COMPUTE_UNITS: '1' },
            });
            cleanup.add('coordinator', () => coord.stop().then(() => undefined));
            const m = await measure(ctx, coord, s, cleanup);
            for (const l of coord.errorLines(3)) notes.push(`coordinator error log: ${l}`);
            return m;
          } finally {
            await cleanup.run(ctx.log);
          }
        },
        notes,
      );
      runs.push({ v, c, notes });
    }
    ctx.log('throughput: baseline (after)');
    const baseAfter = await attempt(ctx, 'baseline (after)', () => runBaseline(ctx, s), baseFailures);
    const base = meanOf([baseBefore, baseAfter]);

    const results: ScenarioResult[] = [];
    const f = (n: number | null | undefined): string => (n === null || n === undefined ? '—' : n.toFixed(2));
    const perJob = (m: Measured | undefined, cores: number | null | undefined): number | null =>
      m && cores !== null && cores !== undefined && m.closedJobsPerS > 0 ? (cores * 1000) / m.closedJobsPerS : null;
    const cpuPerJob = (m: Measured | undefined): number | null => perJob(m, m?.closedCpuCores);
    for (const { v, c, notes } of runs) {
      notes.unshift(
        `${s.workers} workers × 1 unit, instant tasks, default_compute_units = 1; closed loop ${s.clients} clients for ${s.closedMs / 1000} s after ${s.warmupMs / 1000} s warm-up; open loop ${s.openRate} jobs/s for ${s.openMs / 1000} s. Clients speak gRPC over bare node:http2 (8 connections, pre-encoded requests); sims run in their own process at nice ${LOAD_GENERATOR_NICENESS}.`,
        `Baseline: the mean of a run before the coordinator variants and one after (closed loop ${f(baseBefore?.closedJobsPerS)} and ${f(baseAfter?.closedJobsPerS)} jobs/s, ${f(cpuPerJob(baseBefore))} and ${f(cpuPerJob(baseAfter))} ms CPU per job; open loop p99 ${f(baseBefore?.openP99Ms)} and ${f(baseAfter?.openP99Ms)} ms): the gap between the two is this machine's drift.`,
        `Closed loop: coordinator ${c?.closedFailed ?? '—'} failed jobs, p50 job latency ${f(c?.closedP50Ms)} ms (baseline ${f(base?.closedP50Ms)} ms); CPU of the server process ${f(c?.closedCpuCores)} cores (baseline ${f(base?.closedCpuCores)}), i.e. ${f(cpuPerJob(c))} ms CPU per job (baseline ${f(cpuPerJob(base))} ms).`,
        `Load generators over the closed loop, in CPU ms per job (coordinator run / baseline): clients (the bench process) ${f(perJob(c, c?.clientCpuCores))} / ${f(perJob(base, base?.clientCpuCores))}, sims ${f(perJob(c, c?.simCpuCores))} / ${f(perJob(base, base?.simCpuCores))}. With two cores in all, jobs/s can reach at most 2000 / (server + clients + sims) ms.`,
        `Open loop: coordinator ${c?.openCompleted ?? '—'} completed, ${c?.openFailed ?? '—'} failed, ${c?.openUnfinished ?? '—'} unfinished; main-thread event-loop p99 ${f(c?.openMainP99Ms)} ms, max ${f(c?.openMainMaxMs)} ms during it (baseline ${f(base?.openMainP99Ms)} / ${f(base?.openMainMaxMs)} ms); scheduler thread max ${f(c?.openSchedulerMaxMs)} ms (its latest 5 s report); the clients' own loop p99 / max ${f(c?.openClientP99Ms)} / ${f(c?.openClientMaxMs)} ms (baseline ${f(base?.openClientP99Ms)} / ${f(base?.openClientMaxMs)} ms).`,
        ...baseFailures,
      );
      if (c?.firstFailure) notes.push(`first failure: ${c.firstFailure}`);
      for (const b of [baseBefore, baseAfter]) if (b?.firstFailure) notes.push(`baseline first failure: ${b.firstFailure}`);
      results.push({
        scenario: 'throughput',
        variant: v.name,
        metrics: [
          metric('closed_loop_throughput', 'jobs/s', c?.closedJobsPerS ?? null, {
            baseline: base?.closedJobsPerS ?? null,
            target: { on: 'value', op: '>=', value: 1000 },
          }),
          metric('server_cpu_per_job', 'ms', cpuPerJob(c), { baseline: cpuPerJob(base) }),
          metric('open_loop_p50', 'ms', c?.openP50Ms ?? null, { baseline: base?.openP50Ms ?? null }),
          metric('open_loop_p99', 'ms', c?.openP99Ms ?? null, { baseline: base?.openP99Ms ?? null, target: { on: 'value', op: '<=', value: 20 } }),
          metric('open_loop_completed', 'jobs', c?.openCompleted ?? null, { baseline: base?.openCompleted ?? null }),
        ],
        notes,
      });
    }
    return results;
  },
};
