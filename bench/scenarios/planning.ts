/**
 * `planning`: where the scheduler thread is worth having. The scheduler core plans against a long
 * queue on every event while the main thread serves I/O (heartbeats, WatchJob, /metrics); the two
 * placements (`[coordinator] scheduler_thread = true` / `false`) are compared side by side.
 *
 * The core walks the queue after every event that may let a job start (docs/decisions.md, Queue).
 * The probe group (2 workers set up only for the probe program, free between probes) is a free
 * worker no queued job can use, so no walk ends early: every event that dirties the queue (a probe
 * submitted or finished, a cancel, a submission, a worker dropping or coming back) walks all 2,000
 * queued jobs, on the scheduler thread or on the main thread. Such a walk used to plan every queued
 * job against the whole pool (seconds at this size); it now costs about queued jobs + the free
 * workers of the programs queued.
 *
 * Heavy workers are set up for a window of the 50 programs each and compute for an hour (phase
 * timeouts off), so the jobs they hold never end by themselves; the bench's churn (cancels of random
 * jobs, as many new submissions, workers dropping and coming back) is what frees workers and keeps
 * the queue at its depth. Probe jobs every 200 ms on the probe group measure WatchJob event latency:
 * the probe sim's send of the job's last result (host clock) → `completed` at the watcher.
 */
import { ApiClient, fakeElf } from '../lib/api';
import { Cleanup, hostNow, sleep } from '../lib/proc';
import { parsePrometheus, sampleValue } from '../lib/prom';
import { LOAD_GENERATOR_NICENESS, SCHEDULER_VARIANTS, startRig, startCoordinator, type SchedulerVariant } from '../lib/scenario-helpers';
import { SimGroup, type SimJsonOptions } from '../lib/sims';
import { median, percentile, summarize } from '../lib/stats';
import type { CoordinatorProcess } from '../lib/sut';
import { SMALL_INPUT } from '../lib/workload';
import { metric, type Scenario, type ScenarioContext, type ScenarioResult } from '../lib/types';
import { blake3 } from 'hash-wasm';

interface Sizes {
  /** Heavy workers (1 compute unit each), spread over `simProcesses`, `workersPerChannel` per HTTP/2 connection. */
  workers: number;
  simProcesses: number;
  workersPerChannel: number;
  /** Programs the heavy jobs are spread over; each heavy worker is set up for `programsPerWorker` of them. */
  programs: number;
  programsPerWorker: number;
  probeWorkers: number;
  /** `default_compute_units` (jobs start with ≥ 1 free unit and take up to this many). */
  unitsPerJob: number;
  /** Queued jobs kept behind the running ones. */
  queueDepth: number;
  rounds: number;
  /** Each variant's measured time per round (its load runs only then), after `rampMs`. */
  roundMs: number;
  rampMs: number;
  probeEveryMs: number;
  scrapeEveryMs: number;
  /** Per second of load: jobs cancelled (and as many submitted), workers dropping for `reconnectAfterMs`. */
  cancelsPerS: number;
  dropsPerS: number;
  reconnectAfterMs: number;
}

// The sizes the scheduler is meant to carry (bench/README.md, `planning`).
const FULL: Sizes = {
  workers: 10_000,
  simProcesses: 4,
  workersPerChannel: 100,
  programs: 50,
  programsPerWorker: 10,
  probeWorkers: 2,
  unitsPerJob: 4,
  queueDepth: 2_000,
  rounds: 3,
  roundMs: 16_000,
  rampMs: 1_000,
  probeEveryMs: 200,
  scrapeEveryMs: 1_000,
  cancelsPerS: 2,
  dropsPerS: 2,
  reconnectAfterMs: 200,
};
const SMOKE: Sizes = {
  workers: 20,
  simProcesses: 1,
  workersPerChannel: 10,
  programs: 5,
  programsPerWorker: 2,
  probeWorkers: 2,
  unitsPerJob: 2,
  queueDepth: 5,
  rounds: 1,
  roundMs: 1_500,
  rampMs: 100,
  probeEveryMs: 200,
  scrapeEveryMs: 300,
  cancelsPerS: 2,
  dropsPerS: 2,
  reconnectAfterMs: 200,
};

/** The coordinator's 5 s event-loop window as a scrape reports it. */
interface LoopWindow {
  p99Ms: number;
  maxMs: number;
  utilization: number;
}

interface Acc {
  mainWindows: LoopWindow[];
  schedulerWindows: LoopWindow[];
  /** The latest windows seen, when no window fell wholly inside a round (smoke sizes). */
  lastMain?: LoopWindow;
  lastScheduler?: LoopWindow;
  scrapeMs: number[];
  scrapeFailures: number;
  churnFailures: number;
  firstChurnFailure?: string;
  firstScrapeFailure?: string;
  watchMs: number[];
  probesFailed: number;
  firstProbeFailure?: string;
  submitted: number;
  submitFailures: number;
  cancelled: number;
  drops: number;
  queueDepths: number[];
  rounds: number;
}

interface Rig {
  variant: SchedulerVariant;
  coord: CoordinatorProcess;
  heavy: SimGroup;
  /** The probe group, started once the heavy jobs fill the workers. */
  probe: SimGroup | undefined;
  api: ApiClient;
  hashes: string[];
  probeHash: string;
  /** Heavy job ids submitted and not cancelled (running or queued). */
  live: string[];
  nextProgram: number;
  acc: Acc;
  broken?: string;
}

const programElf = (i: number): Buffer => fakeElf(`zisk-bench-planning-${i}`);
const PROBE_ELF = fakeElf('zisk-bench-planning-probe');

/** Programs worker `i` is set up for: a window of `k` consecutive ones, so every program has the same share. */
function windowOf(i: number, s: Sizes, hashes: string[]): string[] {
  return Array.from({ length: s.programsPerWorker }, (_, j) => hashes[(i + j) % s.programs]);
}

async function rigUp(ctx: ScenarioContext, variant: SchedulerVariant, coord: CoordinatorProcess, s: Sizes, cleanup: Cleanup): Promise<Rig> {
  // Killed, not stopped: SIGTERM would wait the drain deadline out for jobs that never end. A CPU
  // profile is written only on a clean exit, so with --cpu-prof it is stopped.
  cleanup.add(`${variant.name} coordinator end`, () => (ctx.profileDir ? coord.stop(60_000) : coord.kill()).then(() => undefined));
  const hashes = await Promise.all(Array.from({ length: s.programs }, (_, i) => blake3(programElf(i))));
  const probeHash = await blake3(PROBE_ELF);
  const t0 = performance.now();
  const perWorker: Record<number, SimJsonOptions> = {};
  for (let i = 0; i < s.workers; i++) perWorker[i] = { setupPrograms: windowOf(i, s, hashes) };
  const heavy = await SimGroup.start({
    coordinator: coord.clusterAddress,
    workers: s.workers,
    processes: s.simProcesses,
    prefix: `plan-${variant.name}`,
    workersPerChannel: s.workersPerChannel,
    options: {
      computeUnits: 1,
      heartbeatIntervalMs: 1000,
      setupDelayMs: 0,
      // The jobs they hold never end by themselves (phase timeouts are off): the churn frees workers.
      contributionDelayMs: 3_600_000,
      proveDelayMs: 3_600_000,
      aggregateDelayMs: 3_600_000,
      proofValues: 16,
      finalProofBytes: 256,
      maxLogEntries: 4,
      headersTimeoutMs: 120_000,
    },
    perWorker,
    startStaggerMs: 25,
    niceness: LOAD_GENERATOR_NICENESS,
  });
  cleanup.add(`${variant.name} heavy sims`, () => heavy.stop());
  await heavy.waitRegistered(180_000);
  ctx.log(`  ${variant.name}: ${s.workers} heavy workers registered in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  const api = new ApiClient(coord.apiAddress, 2);
  cleanup.add(`${variant.name} api client`, () => api.close());
  const t1 = performance.now();
  const elfs = [...Array.from({ length: s.programs }, (_, i) => programElf(i)), PROBE_ELF];
  const registered = await Promise.all(elfs.map((e) => api.registerProgram(e)));
  const expected = [...hashes, probeHash];
  registered.forEach((h, i) => {
    if (h !== expected[i]) throw new Error(`program ${i}: hash id ${h} != ${expected[i]}`);
  });
  // The probe program is set up once the heavy workers are busy (below), so the fill measures
  // nothing of it.
  const setups = await Promise.all(hashes.map((h) => api.submitSetup(h)));
  const outcomes = await Promise.all(setups.map((id) => api.watch(id, 300_000)));
  outcomes.forEach((o, i) => {
    if (o.status !== 'completed') throw new Error(`setup ${setups[i]} ended ${o.status}: ${o.detail ?? ''}`);
  });
  ctx.log(`  ${variant.name}: ${hashes.length} programs set up in ${((performance.now() - t1) / 1000).toFixed(1)} s`);

  const rig: Rig = {
    variant,
    coord,
    heavy,
    probe: undefined,
    api,
    hashes,
    probeHash,
    live: [],
    nextProgram: 0,
    acc: { mainWindows: [], schedulerWindows: [], scrapeMs: [], scrapeFailures: 0, churnFailures: 0, watchMs: [], probesFailed: 0, submitted: 0, submitFailures: 0, cancelled: 0, drops: 0, queueDepths: [], rounds: 0 },
  };
  // Fill: every heavy worker busy, then the queue. Sequential: the coordinator keeps FIFO order.
  const t2 = performance.now();
  const running = Math.ceil(s.workers / s.unitsPerJob);
  const batch = 50;
  for (let n = 0; n < running + s.queueDepth; n += batch) {
    await Promise.all(Array.from({ length: Math.min(batch, running + s.queueDepth - n) }, () => submitHeavy(rig)));
  }
  const depth = sampleValue(parsePrometheus(await (await fetch(coord.metricsUrl)).text()), 'coordinator_queue_depth');
  ctx.log(`  ${variant.name}: ${rig.live.length} heavy jobs submitted in ${((performance.now() - t2) / 1000).toFixed(1)} s, queue depth ${depth ?? '?'}`);
  // The probe group: instant tasks, its own process at nice 0 (idle but for the probes) so its send
  // timestamps are not held up behind 1,000 heartbeating workers.
  const probe = await SimGroup.start({
    coordinator: coord.clusterAddress,
    workers: s.probeWorkers,
    processes: 1,
    prefix: `probe-${variant.name}`,
    options: {
      computeUnits: 1,
      heartbeatIntervalMs: 1000,
      setupDelayMs: 0,
      contributionDelayMs: 0,
      proveDelayMs: 0,
      aggregateDelayMs: 0,
      proofValues: 16,
      finalProofBytes: 256,
      maxLogEntries: 64,
      setupPrograms: [probeHash],
    },
  });
  cleanup.add(`${variant.name} probe sims`, () => probe.stop());
  await probe.waitRegistered(60_000);
  const probeSetup = await api.submitSetup(probeHash);
  const po = await api.watch(probeSetup, 120_000);
  if (po.status !== 'completed') throw new Error(`probe setup ${probeSetup} ended ${po.status}: ${po.detail ?? ''}`);

  rig.probe = probe;
  return rig;
}

async function submitHeavy(rig: Rig): Promise<void> {
  const hash = rig.hashes[rig.nextProgram++ % rig.hashes.length];
  try {
    rig.live.push(await rig.api.submitProve(hash, { inline: SMALL_INPUT }));
    rig.acc.submitted++;
  } catch {
    rig.acc.submitFailures++;
  }
}

/** One scrape: its latency, and the windows it reports (new ones only, as the coordinator keeps each 5 s). */
async function scrapeOnce(rig: Rig): Promise<{ ms: number; main: LoopWindow; scheduler?: LoopWindow; depth?: number }> {
  const t0 = performance.now();
  const res = await fetch(rig.coord.metricsUrl, { signal: AbortSignal.timeout(30_000) });
  const text = await res.text();
  const ms = performance.now() - t0;
  const samples = parsePrometheus(text);
  const fig = (thread: string): LoopWindow => ({
    p99Ms: (sampleValue(samples, 'coordinator_event_loop_delay_seconds', { thread, stat: 'p99' }) ?? 0) * 1000,
    maxMs: (sampleValue(samples, 'coordinator_event_loop_delay_seconds', { thread, stat: 'max' }) ?? 0) * 1000,
    utilization: sampleValue(samples, 'coordinator_event_loop_utilization', { thread }) ?? 0,
  });
  const out: { ms: number; main: LoopWindow; scheduler?: LoopWindow; depth?: number } = { ms, main: fig('main') };
  if (sampleValue(samples, 'coordinator_event_loop_utilization', { thread: 'scheduler' }) !== undefined) out.scheduler = fig('scheduler');
  const depth = sampleValue(samples, 'coordinator_queue_depth');
  if (depth !== undefined) out.depth = depth;
  return out;
}

const sameWindow = (a: LoopWindow | undefined, b: LoopWindow): boolean =>
  a !== undefined && a.p99Ms === b.p99Ms && a.maxMs === b.maxMs && a.utilization === b.utilization;

/** One probe: submit on the probe program, watch to `completed`, latency from the probe sim's last send. */
async function probeOnce(rig: Rig): Promise<void> {
  const a = rig.acc;
  try {
    const id = await rig.api.submitProve(rig.probeHash, { inline: SMALL_INPUT });
    const o = await rig.api.watch(id, 60_000);
    if (o.status !== 'completed') {
      a.probesFailed++;
      a.firstProbeFailure ??= `${o.status}: ${o.detail ?? ''}`;
      return;
    }
    if (!rig.probe) throw new Error('no probe group');
    const [sent] = await rig.probe.lastAt([{ dir: 'out', kind: 'execute_task_response', jobId: id }]);
    if (sent === null) {
      a.probesFailed++;
      a.firstProbeFailure ??= `no result sent for ${id} in the probe sims' log`;
      return;
    }
    a.watchMs.push(o.at - sent);
  } catch (err) {
    a.probesFailed++;
    a.firstProbeFailure ??= err instanceof Error ? err.message : String(err);
  }
}

/** Churn for one second's share: cancel random live jobs (running or queued), submit as many, drop workers. */
async function churnOnce(rig: Rig, s: Sizes): Promise<void> {
  const a = rig.acc;
  const victims: string[] = [];
  for (let i = 0; i < s.cancelsPerS && rig.live.length > 0; i++) victims.push(rig.live.splice(Math.floor(Math.random() * rig.live.length), 1)[0]);
  await Promise.all(
    victims.map(async (id) => {
      try {
        if (await rig.api.cancel(id)) a.cancelled++;
      } catch {
        // already gone: counted by what is missing from `cancelled`
      }
      await submitHeavy(rig);
    }),
  );
  if (s.dropsPerS > 0) {
    const p = rig.heavy.processes[Math.floor(Math.random() * rig.heavy.processes.length)];
    await p.churn({ disconnect: s.dropsPerS, replace: 0, reconnectAfterMs: s.reconnectAfterMs, prefix: 'unused' });
    a.drops += s.dropsPerS;
  }
}

/** One measured round of one rig: probes, churn and scrapes for `roundMs` after a ramp. */
async function round(rig: Rig, s: Sizes): Promise<void> {
  const a = rig.acc;
  a.rounds++;
  let stop = false;
  const probes = (async () => {
    let next = hostNow();
    while (!stop) {
      await probeOnce(rig);
      next += s.probeEveryMs;
      const now = hostNow();
      if (next < now) next = now;
      else await sleep(next - now);
    }
  })();
  const churn = (async () => {
    while (!stop) {
      const t = hostNow();
      try {
        await churnOnce(rig, s);
      } catch (err) {
        a.churnFailures++;
        a.firstChurnFailure ??= err instanceof Error ? err.message : String(err);
      }
      await sleep(Math.max(0, 1000 - (hostNow() - t)));
    }
  })();
  try {
    await measureRound(rig, s);
  } finally {
    stop = true;
    await Promise.all([probes, churn]);
  }
}

async function measureRound(rig: Rig, s: Sizes): Promise<void> {
  const a = rig.acc;
  await sleep(s.rampMs);
  const start = hostNow();
  const end = start + s.roundMs;
  const topUps: Promise<void>[] = [];
  // A window is kept when it lies wholly inside the measured time: first seen at t, it ended in
  // (t − scrape period, t], so it began after t − 5 s − scrape period.
  let prevMain: LoopWindow | undefined;
  let prevSched: LoopWindow | undefined;
  while (hostNow() < end) {
    await sleep(s.scrapeEveryMs);
    let r: Awaited<ReturnType<typeof scrapeOnce>>;
    try {
      r = await scrapeOnce(rig);
    } catch (err) {
      a.scrapeFailures++;
      a.firstScrapeFailure ??= err instanceof Error ? `${err.message} ${String(err.cause ?? '')}` : String(err);
      continue;
    }
    const t = hostNow();
    a.scrapeMs.push(r.ms);
    if (r.depth !== undefined) {
      a.queueDepths.push(r.depth);
      // A cancelled job's workers may start several queued ones (a job starts with one free unit):
      // top the queue up to its depth.
      for (let i = 0; i < Math.min(10, s.queueDepth - r.depth); i++) topUps.push(submitHeavy(rig));
    }
    const inside = t - 5_000 - s.scrapeEveryMs >= start && t <= end + s.scrapeEveryMs;
    if (prevMain !== undefined && !sameWindow(prevMain, r.main) && inside) a.mainWindows.push(r.main);
    if (r.scheduler && prevSched !== undefined && !sameWindow(prevSched, r.scheduler) && inside) a.schedulerWindows.push(r.scheduler);
    prevMain = r.main;
    prevSched = r.scheduler;
    a.lastMain = r.main;
    if (r.scheduler) a.lastScheduler = r.scheduler;
  }
  await Promise.all(topUps);
}

interface Figures {
  mainP99: number | null;
  mainMax: number | null;
  mainUtil: number | null;
  schedP99: number | null;
  schedMax: number | null;
  schedUtil: number | null;
  watchP50: number | null;
  watchP99: number | null;
  watchMax: number | null;
  scrapeP50: number | null;
  scrapeP99: number | null;
}

function figuresOf(a: Acc): Figures {
  const main = a.mainWindows.length > 0 ? a.mainWindows : a.lastMain ? [a.lastMain] : [];
  const sched = a.schedulerWindows.length > 0 ? a.schedulerWindows : a.lastScheduler ? [a.lastScheduler] : [];
  const maxOf = (xs: number[]): number | null => (xs.length > 0 ? Math.max(...xs) : null);
  const w = summarize(a.watchMs);
  return {
    mainP99: median(main.map((x) => x.p99Ms)),
    mainMax: maxOf(main.map((x) => x.maxMs)),
    mainUtil: median(main.map((x) => x.utilization)),
    schedP99: median(sched.map((x) => x.p99Ms)),
    schedMax: maxOf(sched.map((x) => x.maxMs)),
    schedUtil: median(sched.map((x) => x.utilization)),
    watchP50: w.p50,
    watchP99: w.p99,
    watchMax: w.max,
    scrapeP50: percentile(a.scrapeMs, 50),
    scrapeP99: percentile(a.scrapeMs, 99),
  };
}

export const planning: Scenario = {
  name: 'planning',
  summary: 'the scheduler core planning against a long queue on every event while the main thread serves I/O: scheduler thread vs main thread (loop delay, WatchJob latency, /metrics)',
  async run(ctx) {
    const s = ctx.smoke ? SMOKE : FULL;
    const cleanup = new Cleanup();
    const failures: string[] = [];
    try {
      ctx.log('planning: two coordinators (scheduler thread, scheduler on the main thread), side by side, load on one at a time');
      const rigs: Rig[] = [];
      for (const v of SCHEDULER_VARIANTS) {
        const rig = await startRig(
          ctx,
          cleanup,
          failures,
          `coordinator (${v.label})`,
          () =>
            startCoordinator(ctx, `planning-${v.name}`, {
              schedulerThread: v.schedulerThread,
              env: {
                ZISK_COORDINATOR_COORDINATOR_HEARTBEAT_INTERVAL_SECONDS: '1',
                // The sims run at nice 10 beside two busy coordinators: a starved load generator must
                // not be taken for dead workers (each would come back with 51 setups to ack).
                ZISK_COORDINATOR_COORDINATOR_HEARTBEAT_MAX_MISSED: '30',
                ZISK_COORDINATOR_COORDINATOR_MAX_TOTAL_WORKERS: String((s.workers + s.probeWorkers) * 2),
                ZISK_COORDINATOR_COORDINATOR_DEFAULT_COMPUTE_UNITS: String(s.unitsPerJob),
                ZISK_COORDINATOR_COORDINATOR_MAX_QUEUED_JOBS: String(Math.max(1024, s.queueDepth * 2)),
                ZISK_COORDINATOR_COORDINATOR_PHASE1_TIMEOUT_SECONDS: '0',
                ZISK_COORDINATOR_COORDINATOR_PHASE2_TIMEOUT_SECONDS: '0',
                ZISK_COORDINATOR_COORDINATOR_PHASE3_TIMEOUT_SECONDS: '0',
              },
              startTimeoutMs: 60_000,
            }),
          (coord) => rigUp(ctx, v, coord, s, cleanup),
        );
        if (rig) rigs.push(rig);
      }
      for (let r = 0; r < s.rounds; r++) {
        for (let i = 0; i < rigs.length; i++) {
          const rig = rigs[(i + r) % rigs.length];
          if (rig.broken) continue;
          ctx.log(`  round ${r + 1}: ${rig.variant.name}, ${s.roundMs / 1000} s`);
          try {
            await round(rig, s);
          } catch (err) {
            rig.broken = err instanceof Error ? err.message : String(err);
            ctx.log(`  ${rig.variant.name} FAILED: ${rig.broken}`);
          }
        }
      }
      return [report(s, rigs, failures)];
    } finally {
      await cleanup.run(ctx.log);
    }
  },
};

function report(s: Sizes, rigs: Rig[], failures: string[]): ScenarioResult {
  const byName = (n: string): Rig | undefined => rigs.find((r) => r.variant.name === n && !r.broken);
  const t = byName('thread');
  const m = byName('main');
  const ft = t ? figuresOf(t.acc) : undefined;
  const fm = m ? figuresOf(m.acc) : undefined;
  const f = (n: number | null | undefined, d = 1): string => (n === null || n === undefined || !Number.isFinite(n) ? '—' : n.toFixed(d));
  const windows = (xs: LoopWindow[] | undefined): string =>
    xs && xs.length > 0 ? xs.map((x) => `${f(x.p99Ms)}/${f(x.maxMs)}/${f(x.utilization * 100, 0)}%`).join(', ') : '—';
  const rigNote = (r: Rig | undefined, name: string): string => {
    if (!r) return `${name}: not measured.`;
    const a = r.acc;
    const depths = a.queueDepths;
    return `${name}: ${a.rounds} rounds; main-thread windows (p99/max ms/utilization) ${windows(a.mainWindows)}${a.schedulerWindows.length > 0 ? `; scheduler-thread windows ${windows(a.schedulerWindows)}` : ''}; ${a.watchMs.length} probes completed, ${a.probesFailed} failed; ${a.submitted} heavy jobs submitted (${a.submitFailures} refused), ${a.cancelled} cancelled, ${a.drops} worker drops; queue depth at the scrapes ${depths.length > 0 ? `${Math.min(...depths)}–${Math.max(...depths)}` : '—'}; ${a.scrapeMs.length} scrapes${a.scrapeFailures > 0 ? `, ${a.scrapeFailures} failed (first: ${a.firstScrapeFailure ?? '?'})` : ''}.`;
  };
  const notes: string[] = [
    `Coordinator column: scheduler on its own thread (the default); baseline column: scheduler_thread = false (the core on the main thread); ratio = thread ÷ main. Both are the real binary side by side, each with its own sims; the load (probes, churn, scrapes) runs on one at a time, in ${s.rounds} alternating rounds of ${s.roundMs / 1000} s after a ${s.rampMs / 1000} s ramp, rotating the order.`,
    `Sizes: ${s.workers} heavy workers × 1 unit in ${s.simProcesses} sim processes at nice ${LOAD_GENERATOR_NICENESS} (${s.workersPerChannel} per shared HTTP/2 connection), each set up for ${s.programsPerWorker} of ${s.programs} programs (a sliding window; the other setups are refused by the sim), heartbeats every 1 s both ways; default_compute_units = ${s.unitsPerJob}; ${Math.ceil(s.workers / s.unitsPerJob)} heavy jobs running and ${s.queueDepth} queued, tasks of an hour (phase timeouts off). Per second of load: ${s.cancelsPerS} random heavy jobs cancelled and as many submitted (plus up to 10 per scrape while the queue is short of its depth), ${s.dropsPerS} heavy workers drop and come back ${s.reconnectAfterMs} ms later. A probe job every ${s.probeEveryMs} ms on ${s.probeWorkers} probe workers (instant tasks, their own sim process at nice 0, set up for the probe program only).`,
    `Why no walk ends early: the probe workers are free between probes and no queued job can use them, so every walk goes over the whole queue (docs/decisions.md, Queue: about queued jobs + the free workers of the programs queued, per walk). Each probe costs two walks (its submission and its end), and its completed event is handed over after the walk its own end triggers.`,
    `Loop figures are the coordinator's own 5 s windows (coordinator_event_loop_delay_seconds, scraped every ${s.scrapeEveryMs / 1000} s), kept when they lie wholly inside a measured round: p99 is the median window's, max the worst window's. WatchJob latency: the probe sim's send of the job's last result (host clock) → completed at the watcher (grpc-js client in the bench process). Scrape latency: GET /metrics → body read, in the bench process.`,
    rigNote(t, 'thread'),
    rigNote(m, 'main'),
    `Scheduler thread (thread variant): loop p99 ${f(ft?.schedP99)} ms, max ${f(ft?.schedMax)} ms, utilization ${f((ft?.schedUtil ?? NaN) * 100, 0)} % (median window). Main thread utilization: thread ${f((ft?.mainUtil ?? NaN) * 100, 0)} %, main ${f((fm?.mainUtil ?? NaN) * 100, 0)} %. WatchJob latency max: thread ${f(ft?.watchMax)} ms, main ${f(fm?.watchMax)} ms; scrape p50: thread ${f(ft?.scrapeP50)} ms, main ${f(fm?.scrapeP50)} ms.`,
    ...failures,
  ];
  for (const r of rigs) {
    if (r.broken) notes.push(`${r.variant.name} failed mid-run: ${r.broken.split('\n')[0].slice(0, 300)}`);
    if (r.acc.firstChurnFailure) notes.push(`${r.variant.name}: ${r.acc.churnFailures} churn steps failed (first: ${r.acc.firstChurnFailure.slice(0, 300)})`);
    if (r.acc.firstProbeFailure) notes.push(`${r.variant.name} first probe failure: ${r.acc.firstProbeFailure.slice(0, 300)}`);
    for (const l of r.coord.errorLines(3)) notes.push(`${r.variant.name} coordinator error log: ${l}`);
  }
  const half = (text: string): { on: 'ratio'; op: '<='; value: number; text: string } => ({ on: 'ratio', op: '<=', value: 0.5, text });
  return {
    scenario: 'planning',
    metrics: [
      metric('main_loop_p99', 'ms', ft?.mainP99 ?? null, { baseline: fm?.mainP99 ?? null, target: half('≤ 0.5× main') }),
      metric('main_loop_max', 'ms', ft?.mainMax ?? null, { baseline: fm?.mainMax ?? null }),
      metric('watch_latency_p50', 'ms', ft?.watchP50 ?? null, { baseline: fm?.watchP50 ?? null }),
      metric('watch_latency_p99', 'ms', ft?.watchP99 ?? null, { baseline: fm?.watchP99 ?? null, target: half('≤ 0.5× main') }),
      metric('scrape_latency_p99', 'ms', ft?.scrapeP99 ?? null, { baseline: fm?.scrapeP99 ?? null }),
      metric('scheduler_loop_p99', 'ms', ft?.schedP99 ?? null),
    ],
    notes,
  };
}
