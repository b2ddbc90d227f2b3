/**
 * `scale`: 10,000 connected workers heartbeating every second (the coordinator heartbeats them every
 * second too), plus a trickle of small jobs. Measures the main and scheduler threads' event-loop delay
 * (the coordinator's own /metrics, scraped every 5 s) and the coordinator's RSS. Baseline: the echo
 * coordinator holding the same 10,000 streams (register answered, heartbeats both ways, no jobs).
 */
import { ApiClient } from '../lib/api';
import { Cleanup, RssSampler, sleep } from '../lib/proc';
import { LOAD_GENERATOR_NICENESS, SCHEDULER_VARIANTS, attempt, startCoordinator } from '../lib/scenario-helpers';
import { SimGroup } from '../lib/sims';
import { MiB, summarize } from '../lib/stats';
import { EchoBaseline, type LoopFigures, type SystemUnderTest } from '../lib/sut';
import { SMALL_INPUT, benchHashId, prepareProgram } from '../lib/workload';
import { metric, type Scenario, type ScenarioContext, type ScenarioResult } from '../lib/types';

interface Sizes {
  workers: number;
  simProcesses: number;
  /** Workers per shared HTTP/2 connection (0 = one connection per worker). */
  workersPerChannel: number;
  settleMs: number;
  windowMs: number;
  scrapeMs: number;
  jobsPerSecond: number;
}

const FULL: Sizes = { workers: 10_000, simProcesses: 4, workersPerChannel: 100, settleMs: 6_000, windowMs: 20_000, scrapeMs: 5_000, jobsPerSecond: 1 };
const SMOKE: Sizes = { workers: 40, simProcesses: 1, workersPerChannel: 10, settleMs: 200, windowMs: 1_000, scrapeMs: 500, jobsPerSecond: 2 };

interface Measured {
  mainP99Ms: number;
  mainMaxMs: number;
  mainUtil: number;
  schedP99Ms: number | null;
  schedMaxMs: number | null;
  rssPeakBytes: number;
  hwmBytes: number;
  registerMs: number;
  jobP50Ms: number | null;
  jobsCompleted: number;
  jobsFailed: number;
  reconnects: number;
  heartbeatsReceivedPerWorkerPerS: number;
}

async function measure(ctx: ScenarioContext, sut: SystemUnderTest, s: Sizes, cleanup: Cleanup): Promise<Measured> {
  const hashId = await benchHashId();
  const t0 = performance.now();
  const sims = await SimGroup.start({
    coordinator: sut.clusterAddress,
    workers: s.workers,
    processes: s.simProcesses,
    prefix: 'scale',
    workersPerChannel: s.workersPerChannel,
    options: {
      computeUnits: 1,
      heartbeatIntervalMs: 1000,
      setupDelayMs: 0,
      contributionDelayMs: 20,
      proveDelayMs: 20,
      aggregateDelayMs: 10,
      proofValues: 16,
      finalProofBytes: 256,
      preSetup: [{ hashId, withHints: false }],
      maxLogEntries: 8,
      // A busy coordinator may answer late; the sim must not give up and reconnect for that.
      headersTimeoutMs: 120_000,
    },
    startStaggerMs: 25,
    startBatch: 50,
    niceness: LOAD_GENERATOR_NICENESS,
  });
  cleanup.add('sims', () => sims.stop());
  await sims.waitRegistered(180_000);
  const registerMs = performance.now() - t0;
  ctx.log(`  ${sut.kind}: ${s.workers} workers registered in ${(registerMs / 1000).toFixed(1)} s`);
  const api = new ApiClient(sut.apiAddress, 1);
  cleanup.add('api client', () => api.close());
  if (sut.kind === 'coordinator') await prepareProgram(sut, api, 180_000);
  await sleep(s.settleMs);

  const before = await sims.counters();
  const rss = new RssSampler(sut.pid, 250).start();
  await sut.loop();
  const intervals: Array<{ main: LoopFigures; scheduler?: LoopFigures }> = [];
  const jobLatencies: number[] = [];
  let jobsFailed = 0;
  const jobs: Promise<void>[] = [];
  const windowStart = performance.now();
  let nextScrape = windowStart + s.scrapeMs;
  let nextJob = windowStart;
  while (performance.now() < windowStart + s.windowMs) {
    const now = performance.now();
    if (sut.kind === 'coordinator' && now >= nextJob) {
      nextJob += 1000 / s.jobsPerSecond;
      const sent = performance.timeOrigin + now;
      jobs.push(
        api
          .submitProve(hashId, { inline: SMALL_INPUT })
          .then((id) => api.watch(id, 60_000))
          .then((o) => {
            if (o.status === 'completed') jobLatencies.push(o.at - sent);
            else jobsFailed++;
          })
          .catch(() => {
            jobsFailed++;
          }),
      );
    }
    if (now >= nextScrape) {
      nextScrape += s.scrapeMs;
      intervals.push(await sut.loop());
    }
    await sleep(20);
  }
  intervals.push(await sut.loop());
  await Promise.race([Promise.all(jobs), sleep(30_000)]);
  const after = await sims.counters();
  const { maxRssBytes } = rss.stop();
  const windowS = (performance.now() - windowStart) / 1000;
  const sched = intervals.map((i) => i.scheduler).filter((x): x is LoopFigures => x !== undefined && x.maxMs > 0);
  return {
    mainP99Ms: Math.max(...intervals.map((i) => i.main.p99Ms)),
    mainMaxMs: Math.max(...intervals.map((i) => i.main.maxMs)),
    mainUtil: summarize(intervals.map((i) => i.main.utilization)).mean ?? 0,
    schedP99Ms: sched.length > 0 ? Math.max(...sched.map((x) => x.p99Ms)) : null,
    schedMaxMs: sched.length > 0 ? Math.max(...sched.map((x) => x.maxMs)) : null,
    rssPeakBytes: maxRssBytes,
    hwmBytes: sut.memory()?.hwmBytes ?? 0,
    registerMs,
    jobP50Ms: summarize(jobLatencies).p50,
    jobsCompleted: jobLatencies.length,
    jobsFailed,
    reconnects: after.connects - before.connects,
    heartbeatsReceivedPerWorkerPerS: (after.heartbeatsReceived - before.heartbeatsReceived) / s.workers / windowS,
  };
}

async function run(ctx: ScenarioContext, start: () => Promise<SystemUnderTest>, s: Sizes): Promise<Measured> {
  const cleanup = new Cleanup();
  try {
    const sut = await start();
    cleanup.add(sut.kind, () => sut.stop().then(() => undefined));
    return await measure(ctx, sut, s, cleanup);
  } finally {
    await cleanup.run(ctx.log);
  }
}

export const scale: Scenario = {
  name: 'scale',
  summary: '10,000 workers heartbeating every second plus a trickle of jobs: main/scheduler event-loop delay, RSS vs 10,000 idle grpc-js streams',
  async run(ctx) {
    const s = ctx.smoke ? SMOKE : FULL;
    const baseFailures: string[] = [];
    ctx.log('scale: baseline');
    const base = await attempt(ctx, 'baseline', () => run(ctx, () => EchoBaseline.start({ heartbeatIntervalMs: 1000, workersPerJob: 4 }), s), baseFailures);
    const results: ScenarioResult[] = [];
    const mib = (b: number | undefined): number | null => (b === undefined ? null : b / MiB);
    const f = (n: number | null | undefined, d = 0): string => (n === null || n === undefined ? '—' : n.toFixed(d));
    for (const v of SCHEDULER_VARIANTS) {
      ctx.log(`scale: coordinator, ${v.label}`);
      const notes: string[] = [];
      const c = await attempt(
        ctx,
        `coordinator (${v.label})`,
        () =>
          run(
            ctx,
            () =>
              startCoordinator(ctx, `scale-${v.name}`, {
                schedulerThread: v.schedulerThread,
                env: {
                  ZISK_COORDINATOR_COORDINATOR_HEARTBEAT_INTERVAL_SECONDS: '1',
                  ZISK_COORDINATOR_COORDINATOR_MAX_TOTAL_WORKERS: String(s.workers * 2),
                  ZISK_COORDINATOR_COORDINATOR_DEFAULT_COMPUTE_UNITS: '4',
                },
              }),
            s,
          ),
        notes,
      );
      const metrics = [
        metric('main_loop_p99', 'ms', c?.mainP99Ms ?? null, { baseline: base?.mainP99Ms ?? null, target: { on: 'value', op: '<=', value: 20 } }),
        metric('main_loop_max', 'ms', c?.mainMaxMs ?? null, { baseline: base?.mainMaxMs ?? null }),
        metric('main_loop_utilization', '%', c ? c.mainUtil * 100 : null, { baseline: base ? base.mainUtil * 100 : null }),
      ];
      if (v.schedulerThread) {
        metrics.push(metric('scheduler_loop_p99', 'ms', c?.schedP99Ms ?? null), metric('scheduler_loop_max', 'ms', c?.schedMaxMs ?? null));
      }
      metrics.push(
        metric('rss_peak', 'MiB', mib(c?.rssPeakBytes), { baseline: mib(base?.rssPeakBytes), target: { on: 'value', op: '<=', value: 768 } }),
        metric('rss_peak_vs_baseline', 'MiB', mib(c?.rssPeakBytes), { baseline: mib(base?.rssPeakBytes), target: { on: 'ratio', op: '<=', value: 1.5 } }),
        metric('trickle_job_p50', 'ms', c?.jobP50Ms ?? null),
      );
      results.push({
        scenario: 'scale',
        variant: v.name,
        metrics,
        notes: [
          `${s.workers} workers over ${s.simProcesses} sim processes at nice ${LOAD_GENERATOR_NICENESS}, ${s.workersPerChannel > 0 ? `${s.workersPerChannel} workers per shared HTTP/2 connection (${Math.ceil(s.workers / s.workersPerChannel)} connections; see bench/README.md for why)` : 'one HTTP/2 connection per worker (as real workers)'}; heartbeat_interval_seconds = 1 and sim heartbeats every 1 s; ${s.windowMs / 1000} s window after ${s.settleMs / 1000} s settling; loop figures are the worst ${s.scrapeMs / 1000} s interval (main: since the previous scrape; scheduler: its latest 5 s report).`,
          `Registration of all workers took ${f((c?.registerMs ?? NaN) / 1000, 1)} s (baseline ${f((base?.registerMs ?? NaN) / 1000, 1)} s). Peak RSS over the process lifetime (VmHWM): ${f(mib(c?.hwmBytes))} MiB (baseline ${f(mib(base?.hwmBytes))} MiB).`,
          `Trickle: ${c?.jobsCompleted ?? '—'} jobs completed, ${c?.jobsFailed ?? '—'} failed (${s.jobsPerSecond}/s, 4 workers each). Worker reconnects in the window: ${c?.reconnects ?? '—'} (baseline ${base?.reconnects ?? '—'}); coordinator heartbeats received per worker per second: ${f(c?.heartbeatsReceivedPerWorkerPerS, 2)}.`,
          ...baseFailures,
          ...notes,
        ],
      });
    }
    return results;
  },
};
