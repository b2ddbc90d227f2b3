/**
 * `planning`: where the scheduler thread must show its worth. The scheduler plans under load — many
 * workers, a long queue spread over many programs, each program runnable on its own slice of the
 * fleet (so every plan walks the queue past jobs whose workers are all busy), workers dropping and
 * coming back, jobs cancelled — while the main thread serves I/O: heartbeats, WatchJob events,
 * /metrics. The same workload runs against the coordinator with its scheduler on its own thread
 * (coordinator column) and on the main thread (baseline column), one after the other.
 *
 * Figures: the main thread's event-loop delay (the coordinator's own 5 s windows), how late WatchJob
 * events reach a watcher (receipt − the event's own timestamp: what the main thread adds between the
 * scheduler's decision and the client), and how long a /metrics scrape takes.
 */
import { blake3 } from 'hash-wasm';
import { ApiClient, eventTimeMs, fakeElf } from '../lib/api';
import { Cleanup, hostNow, sleep } from '../lib/proc';
import { sampleValue } from '../lib/prom';
import { LOAD_GENERATOR_NICENESS, SCHEDULER_VARIANTS, startCoordinator } from '../lib/scenario-helpers';
import { SimGroup, type SimJsonOptions } from '../lib/sims';
import { summarize } from '../lib/stats';
import type { CoordinatorProcess, LoopFigures } from '../lib/sut';
import { SMALL_INPUT } from '../lib/workload';
import { metric, type Scenario, type ScenarioContext, type ScenarioResult } from '../lib/types';

interface Sizes {
  workers: number;
  simProcesses: number;
  workersPerChannel: number;
  /** Programs, each set up on workers i with i % programs equal to its index. */
  programs: number;
  /** Jobs kept waiting in the queue. */
  queued: number;
  unitsPerJob: number;
  contributionMs: number;
  proveMs: number;
  aggregateMs: number;
  settleMs: number;
  windowMs: number;
  /** Cadence of the queue top-up, which also times a /metrics scrape. */
  refillMs: number;
  cancelsPerSecond: number;
  /** Workers dropping their connection each second (back after 500 ms). */
  dropsPerSecond: number;
  /** Jobs followed with WatchJob for the event latency. */
  watched: number;
}

const FULL: Sizes = {
  workers: 10_000,
  simProcesses: 4,
  workersPerChannel: 100,
  programs: 50,
  queued: 2_000,
  unitsPerJob: 10,
  contributionMs: 6_000,
  proveMs: 4_000,
  aggregateMs: 1_000,
  settleMs: 5_000,
  windowMs: 30_000,
  refillMs: 250,
  cancelsPerSecond: 5,
  dropsPerSecond: 10,
  watched: 300,
};

const SMOKE: Sizes = {
  workers: 40,
  simProcesses: 1,
  workersPerChannel: 10,
  programs: 4,
  queued: 20,
  unitsPerJob: 2,
  contributionMs: 150,
  proveMs: 100,
  aggregateMs: 50,
  settleMs: 200,
  windowMs: 1_500,
  refillMs: 100,
  cancelsPerSecond: 2,
  dropsPerSecond: 2,
  watched: 10,
};

interface Measured {
  mainP99Ms: number;
  mainMaxMs: number;
  schedP99Ms: number | null;
  eventP50Ms: number | null;
  eventP99Ms: number | null;
  events: number;
  scrapeP99Ms: number | null;
  queueDepthMean: number | null;
  submitted: number;
  cancelled: number;
  completedInWindow: number;
  setupMs: number;
}

async function measure(ctx: ScenarioContext, coord: CoordinatorProcess, s: Sizes, cleanup: Cleanup): Promise<Measured> {
  const elfs = Array.from({ length: s.programs }, (_, p) => fakeElf(`zisk-planning-${p}`, 256));
  const hashIds = await Promise.all(elfs.map((e) => blake3(e)));
  const perWorker: Record<number, SimJsonOptions> = {};
  for (let i = 0; i < s.workers; i++) perWorker[i] = { setupOnly: [hashIds[i % s.programs]] };
  const sims = await SimGroup.start({
    coordinator: coord.clusterAddress,
    workers: s.workers,
    processes: s.simProcesses,
    prefix: 'plan',
    workersPerChannel: s.workersPerChannel,
    options: {
      computeUnits: 1,
      heartbeatIntervalMs: 1000,
      setupDelayMs: 0,
      contributionDelayMs: s.contributionMs,
      proveDelayMs: s.proveMs,
      aggregateDelayMs: s.aggregateMs,
      proofValues: 16,
      finalProofBytes: 256,
      maxLogEntries: 4,
      headersTimeoutMs: 120_000,
    },
    perWorker,
    startStaggerMs: 25,
    startBatch: 50,
    niceness: LOAD_GENERATOR_NICENESS,
  });
  cleanup.add('sims', () => sims.stop());
  await sims.waitRegistered(180_000);
  const api = new ApiClient(coord.apiAddress, 4);
  cleanup.add('api client', () => api.close());

  // Every program on its slice of the fleet: a setup goes to every worker, and only the slice acks it.
  const setupStart = performance.now();
  for (let p = 0; p < s.programs; p += 5) {
    await Promise.all(
      elfs.slice(p, p + 5).map(async (elf) => {
        const hashId = await api.registerProgram(elf);
        const id = await api.submitSetup(hashId);
        const o = await api.watch(id, 180_000);
        if (o.status !== 'completed') throw new Error(`setup of ${hashId} ended ${o.status}: ${o.detail ?? ''}`);
      }),
    );
  }
  const setupMs = performance.now() - setupStart;
  ctx.log(`  ${s.workers} workers, ${s.programs} programs set up in ${(setupMs / 1000).toFixed(1)} s`);

  const ids: string[] = [];
  let next = 0;
  const submit = async (n: number): Promise<void> => {
    const batch: Promise<void>[] = [];
    for (let k = 0; k < n; k++) {
      const hashId = hashIds[next++ % s.programs];
      batch.push(
        api.submitProve(hashId, { inline: SMALL_INPUT }).then(
          (id) => void ids.push(id),
          () => undefined,
        ),
      );
    }
    await Promise.all(batch);
  };
  // Every worker busy and the queue full: the running jobs plus `queued` more.
  await submit(Math.floor(s.workers / s.unitsPerJob) + s.queued);
  await sleep(s.settleMs);

  const eventLatencies: number[] = [];
  const scrapeMs: number[] = [];
  const depths: number[] = [];
  const intervals: Array<{ main: LoopFigures; scheduler?: LoopFigures }> = [];
  let cancelled = 0;
  let completedInWindow = 0;
  const windowStart = hostNow();
  const end = performance.now() + s.windowMs;
  // Follow jobs from the back of the queue: they see queued, started and completed within the window.
  const watchers = ids.slice(-s.watched).map((id) =>
    api
      .watch(id, s.windowMs + 60_000, (e, receivedAt) => {
        const at = eventTimeMs(e);
        if (at !== undefined && at >= windowStart && performance.now() < end) eventLatencies.push(receivedAt - at);
        if (e.event === 'completed' && performance.now() < end) completedInWindow++;
      })
      .catch(() => undefined),
  );
  await coord.loop();
  let nextScrape = performance.now() + 5_000;
  let nextCancel = performance.now() + 1_000;
  while (performance.now() < end) {
    const t0 = performance.now();
    const samples = await coord.scrape();
    scrapeMs.push(performance.now() - t0);
    const depth = sampleValue(samples, 'coordinator_queue_depth') ?? s.queued;
    depths.push(depth);
    if (depth < s.queued) void submit(Math.min(200, s.queued - depth));
    if (performance.now() >= nextCancel) {
      nextCancel += 1_000;
      for (let k = 0; k < s.cancelsPerSecond && ids.length > s.watched; k++) {
        // Cancel from the middle of the list: queued or running, never a watched job.
        const i = Math.floor(Math.random() * (ids.length - s.watched));
        const [id] = ids.splice(i, 1);
        void api.cancel(id).then((ok) => void (ok && cancelled++), () => undefined);
      }
      for (const p of sims.processes) void p.churn({ disconnect: Math.ceil(s.dropsPerSecond / sims.processes.length), replace: 0, reconnectAfterMs: 500, prefix: 'plan-churn' }).catch(() => undefined);
    }
    if (performance.now() >= nextScrape) {
      nextScrape += 5_000;
      intervals.push(await coord.loop());
    }
    await sleep(Math.max(0, s.refillMs - (performance.now() - t0)));
  }
  intervals.push(await coord.loop());
  await Promise.race([Promise.all(watchers), sleep(5_000)]);
  const ev = summarize(eventLatencies);
  const sched = intervals.map((i) => i.scheduler).filter((x): x is LoopFigures => x !== undefined && x.maxMs > 0);
  return {
    mainP99Ms: Math.max(...intervals.map((i) => i.main.p99Ms)),
    mainMaxMs: Math.max(...intervals.map((i) => i.main.maxMs)),
    schedP99Ms: sched.length > 0 ? Math.max(...sched.map((x) => x.p99Ms)) : null,
    eventP50Ms: ev.p50,
    eventP99Ms: ev.p99,
    events: eventLatencies.length,
    scrapeP99Ms: summarize(scrapeMs).p99,
    queueDepthMean: summarize(depths).mean,
    submitted: next,
    cancelled,
    completedInWindow,
    setupMs,
  };
}

async function run(ctx: ScenarioContext, variant: (typeof SCHEDULER_VARIANTS)[number], s: Sizes): Promise<Measured> {
  const cleanup = new Cleanup();
  try {
    const coord = await startCoordinator(ctx, `planning-${variant.name}`, {
      schedulerThread: variant.schedulerThread,
      env: {
        ZISK_COORDINATOR_STATE_BACKEND: 'memory',
        ZISK_COORDINATOR_COORDINATOR_MAX_TOTAL_WORKERS: String(s.workers * 2),
        ZISK_COORDINATOR_COORDINATOR_MAX_QUEUED_JOBS: String(s.queued * 4),
        ZISK_COORDINATOR_COORDINATOR_HEARTBEAT_INTERVAL_SECONDS: '1',
        ZISK_COORDINATOR_COORDINATOR_DEFAULT_COMPUTE_UNITS: String(s.unitsPerJob),
      },
    });
    cleanup.add('coordinator', () => coord.stop().then(() => undefined));
    return await measure(ctx, coord, s, cleanup);
  } finally {
    await cleanup.run(ctx.log);
  }
}

export const planning: Scenario = {
  name: 'planning',
  summary: 'the scheduler planning a long queue over many programs and workers while the main thread serves I/O: main-loop p99, WatchJob event latency, scrape time; scheduler thread vs main-thread core',
  async run(ctx) {
    const s = ctx.smoke ? SMOKE : FULL;
    const by = new Map<string, Measured>();
    for (const v of SCHEDULER_VARIANTS) {
      ctx.log(`planning: ${v.name}`);
      by.set(v.name, await run(ctx, v, s));
    }
    const t = by.get('thread');
    const m = by.get('main');
    const half = { on: 'ratio' as const, op: '<=' as const, value: 0.5, text: '≤ 0.5× main' };
    const describe = (name: string, x: Measured | undefined): string =>
      x
        ? `${name}: main loop p99/max ${x.mainP99Ms.toFixed(1)} / ${x.mainMaxMs.toFixed(1)} ms (worst 5 s window), scheduler thread p99 ${x.schedP99Ms?.toFixed(1) ?? '—'} ms; ${x.events} WatchJob events, latency p50/p99 ${x.eventP50Ms?.toFixed(1) ?? '—'} / ${x.eventP99Ms?.toFixed(1) ?? '—'} ms; /metrics p99 ${x.scrapeP99Ms?.toFixed(1) ?? '—'} ms; queue depth mean ${x.queueDepthMean?.toFixed(0) ?? '—'}; ${x.submitted} jobs submitted, ${x.cancelled} cancelled, ${x.completedInWindow} watched jobs completed in the window; setups took ${(x.setupMs / 1000).toFixed(1)} s`
        : `${name}: did not run`;
    const result: ScenarioResult = {
      scenario: 'planning',
      metrics: [
        metric('main_loop_p99', 'ms', t?.mainP99Ms ?? null, { baseline: m?.mainP99Ms ?? null, target: half }),
        metric('watch_event_latency_p99', 'ms', t?.eventP99Ms ?? null, { baseline: m?.eventP99Ms ?? null, target: half }),
        metric('watch_event_latency_p50', 'ms', t?.eventP50Ms ?? null, { baseline: m?.eventP50Ms ?? null }),
        metric('metrics_scrape_p99', 'ms', t?.scrapeP99Ms ?? null, { baseline: m?.scrapeP99Ms ?? null }),
        metric('main_loop_max', 'ms', t?.mainMaxMs ?? null, { baseline: m?.mainMaxMs ?? null }),
      ],
      notes: [
        `Coordinator = scheduler thread (default), baseline = [coordinator] scheduler_thread = false, run one after the other with the same workload: ${s.workers} workers × 1 unit heartbeating every second (${s.simProcesses} sim processes at nice ${LOAD_GENERATOR_NICENESS}, ${s.workersPerChannel} per connection); ${s.programs} programs, each set up only on every ${s.programs}th worker (the others ack its setup as failed); jobs of ${s.unitsPerJob} units with tasks of ${s.contributionMs}/${s.proveMs}/${s.aggregateMs} ms; the fleet busy and ${s.queued} jobs kept queued (topped up every ${s.refillMs} ms, which also times a /metrics scrape); ${s.cancelsPerSecond} cancels and ${s.dropsPerSecond} dropped connections (back after 500 ms) a second; ${(s.windowMs / 1000).toFixed(0)} s window; memory store. WatchJob event latency: receipt − the event's own timestamp, for the last ${s.watched} jobs submitted.`,
        describe('thread', t),
        describe('main', m),
      ],
    };
    return [result];
  },
};
