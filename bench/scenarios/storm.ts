/**
 * `storm`: a reconnect storm. 2,000 workers, one HTTP/2 connection each (the `upstream` wire: a fresh
 * connection per attempt, as upstream's worker makes), are registered; then the system restarts on
 * the same ports (and, for the coordinator, the same home, so the same job store), twice: SIGTERM
 * (drain, then exit) and SIGKILL (a crash). Every worker loses its stream at the same moment and
 * does what upstream's worker does: reconnect at once (refused: nothing listens), sleep a fixed
 * `reconnect_interval_seconds` (5 s, no jitter), reconnect; so all 2,000 arrive within milliseconds
 * of each other, however long the restart took (as long as it took less than those 5 s).
 *
 * Measured per restart: from the new process's serving line to the last worker registered again (the
 * sims' own timestamps), and from the first `register` sent to the last registered (the storm proper);
 * rejected registrations; workers not registered 10 s after serving and at the end; the kernel's
 * ListenOverflows/ListenDrops delta (/proc/net/netstat) across the restart; the main thread's
 * event-loop delay over the storm (coordinator: its own /metrics). Baseline: the echo coordinator
 * (same transport settings, no logic) under the same two restarts.
 */
import * as net from 'node:net';
import { hostNow } from '../../src/sim/worker';
import { Cleanup, listenCounters, removeDir, sleep, tempDir } from '../lib/proc';
import { sampleValue } from '../lib/prom';
import { LOAD_GENERATOR_NICENESS, attempt, startCoordinator } from '../lib/scenario-helpers';
import { SimGroup } from '../lib/sims';
import { EchoBaseline, type CoordinatorProcess, type LoopFigures } from '../lib/sut';
import { metric, type Scenario, type ScenarioContext, type ScenarioResult } from '../lib/types';

interface Sizes {
  workers: number;
  simProcesses: number;
  /** The workers' sleep after a refused connect (upstream's `reconnect_interval_seconds`, default 5). */
  reconnectIntervalMs: number;
  /** A worker not registered this long after serving counts as stuck. */
  stuckAfterMs: number;
  /** Give up waiting this long after serving. */
  maxWaitMs: number;
}

const FULL: Sizes = { workers: 2_000, simProcesses: 4, reconnectIntervalMs: 5_000, stuckAfterMs: 10_000, maxWaitMs: 30_000 };
const SMOKE: Sizes = { workers: 20, simProcesses: 1, reconnectIntervalMs: 300, stuckAfterMs: 10_000, maxWaitMs: 10_000 };

type How = 'sigterm' | 'sigkill';
const RESTARTS: readonly How[] = ['sigterm', 'sigkill'];

/** A system that restarts on the same ports (and state). */
interface Rig {
  kind: 'coordinator' | 'baseline';
  clusterAddress: string;
  /** Stops the running process (`how`), starts a new one; resolves once it serves. */
  restart(how: How): Promise<void>;
  servingAtHost(): number;
  /** Watches the main thread's event-loop delay from now; `finish` gives the worst over [from, to] (host clock). */
  watchLoop(): { finish(from: number, to: number): Promise<LoopFigures> };
  /** Workers the system counts as connected (coordinator: `coordinator_workers_connected`). */
  connected(): Promise<number>;
  stop(): Promise<void>;
}

async function coordinatorRig(ctx: ScenarioContext, s: Sizes): Promise<Rig> {
  const home = tempDir('zisk-bench-storm-');
  // Above the 2,000: the default max_total_workers (1000) would turn half the fleet away.
  const env = { ZISK_COORDINATOR_COORDINATOR_MAX_TOTAL_WORKERS: String(s.workers * 2) };
  let c: CoordinatorProcess;
  try {
    c = await startCoordinator(ctx, 'storm', { home, env });
  } catch (err) {
    removeDir(home);
    throw err;
  }
  const ports = { ...c.ports };
  return {
    kind: 'coordinator',
    clusterAddress: c.clusterAddress,
    async restart(how) {
      const r = how === 'sigterm' ? await c.stop() : await c.kill();
      ctx.log(`  coordinator ${how}: exited in ${Math.round(r.exitMs)} ms (code ${r.code}, signal ${r.signal})`);
      c = await startCoordinator(ctx, `storm-${how}`, { home, env, ports, startTimeoutMs: 60_000 });
    },
    servingAtHost: () => c.servingAtHost,
    watchLoop: () => watchWindows(c),
    connected: async () => sampleValue(await c.scrape(), 'coordinator_workers_connected') ?? -1,
    async stop() {
      try {
        await c.stop();
      } finally {
        removeDir(home);
      }
    },
  };
}

async function baselineRig(ctx: ScenarioContext): Promise<Rig> {
  let b = await EchoBaseline.start({});
  const ports = { ...b.ports };
  return {
    kind: 'baseline',
    clusterAddress: b.clusterAddress,
    async restart(how) {
      // The echo process has no drain: a SIGTERM-like stop is its IPC close, which exits at once.
      const r = how === 'sigterm' ? await b.stop() : await b.kill();
      ctx.log(`  baseline ${how}: exited in ${Math.round(r.exitMs)} ms`);
      b = await EchoBaseline.start({ apiPort: ports.api, clusterPort: ports.cluster });
    },
    servingAtHost: () => b.servingAtHost,
    watchLoop: () => {
      // The echo process's figures are "since the previous call": the first call starts the interval.
      const started = b.loop();
      return {
        async finish() {
          await started;
          return (await b.loop()).main;
        },
      };
    },
    connected: async () => (await b.counters()).registered,
    stop: async () => {
      await b.stop();
    },
  };
}

const SCRAPE_MS = 500;

/**
 * The coordinator reports each thread's loop delay over fixed 5 s windows (docs/metrics.md, Event
 * loop), a window once it has finished: scraped every 500 ms, each new window is seen within 500 ms
 * of its end. `finish` waits for the window that holds `to` and keeps the worst of those that overlap
 * [from, to] (give or take the 500 ms: one window more, never one fewer).
 */
function watchWindows(c: CoordinatorProcess): { finish(from: number, to: number): Promise<LoopFigures> } {
  const seen: Array<{ at: number; fig: LoopFigures }> = [];
  let last = '';
  let stopped = false;
  const poll = async (): Promise<void> => {
    while (!stopped) {
      try {
        const fig = (await c.loop()).main;
        const key = `${fig.p50Ms}/${fig.p99Ms}/${fig.maxMs}/${fig.utilization}`;
        if (key !== last) {
          last = key;
          seen.push({ at: hostNow(), fig });
        }
      } catch {
        // a scrape that failed under load: the next one sees the same window
      }
      await sleep(SCRAPE_MS);
    }
  };
  const polling = poll();
  return {
    async finish(from, to) {
      const WINDOW_MS = 5_000;
      const deadline = hostNow() + WINDOW_MS + 5 * SCRAPE_MS;
      while (!seen.some((w) => w.at - SCRAPE_MS >= to) && hostNow() < deadline) await sleep(SCRAPE_MS);
      stopped = true;
      await polling;
      const windows = seen.filter((w) => w.at >= from && w.at - SCRAPE_MS - WINDOW_MS <= to).map((w) => w.fig);
      if (windows.length === 0) return { p50Ms: NaN, p99Ms: NaN, maxMs: NaN, utilization: NaN };
      return {
        p50Ms: Math.max(...windows.map((w) => w.p50Ms)),
        p99Ms: Math.max(...windows.map((w) => w.p99Ms)),
        maxMs: Math.max(...windows.map((w) => w.maxMs)),
        utilization: Math.max(...windows.map((w) => w.utilization)),
      };
    },
  };
}

interface Storm {
  /** Serving → last worker registered (null: not all registered). */
  allRegisteredMs: number | null;
  /** Serving → half the workers registered. */
  p50RegisteredMs: number | null;
  /** First `register` written → last worker registered. */
  stormSpanMs: number | null;
  /** Stop signal → serving. */
  restartMs: number;
  /** Serving → first `register` written. */
  firstAttemptMs: number | null;
  rejected: number;
  stuckAfter: number;
  stuckAtEnd: number;
  listenOverflows: number;
  listenDrops: number;
  loop: LoopFigures;
  connectsPerWorker: number;
  connected: number;
}

async function restartOnce(ctx: ScenarioContext, rig: Rig, sims: SimGroup, s: Sizes, how: How): Promise<Storm> {
  const before = await sims.counters();
  const net0 = listenCounters();
  const since = hostNow();
  await rig.restart(how);
  const servingAt = rig.servingAtHost();
  const watch = rig.watchLoop();
  let r = await sims.registrationsSince(since);
  while (r.times.length < s.workers && hostNow() < servingAt + s.maxWaitMs) {
    await sleep(250);
    r = await sims.registrationsSince(since);
  }
  const net1 = listenCounters();
  const lastAt = r.times.length > 0 ? r.times[r.times.length - 1] : hostNow();
  const loop = await watch.finish(r.firstRegisterSentAt ?? servingAt, lastAt);
  const after = await sims.counters();
  const connected = await rig.connected();
  const last = r.times.length > 0 ? r.times[r.times.length - 1] : null;
  const all = r.times.length >= s.workers;
  const half = r.times.length >= Math.ceil(s.workers / 2) ? r.times[Math.ceil(s.workers / 2) - 1] : null;
  const out: Storm = {
    allRegisteredMs: all && last !== null ? last - servingAt : null,
    p50RegisteredMs: half !== null ? half - servingAt : null,
    stormSpanMs: all && last !== null && r.firstRegisterSentAt !== null ? last - r.firstRegisterSentAt : null,
    restartMs: servingAt - since,
    firstAttemptMs: r.firstRegisterSentAt !== null ? r.firstRegisterSentAt - servingAt : null,
    rejected: after.rejections - before.rejections,
    stuckAfter: s.workers - r.times.filter((t) => t <= servingAt + s.stuckAfterMs).length,
    stuckAtEnd: s.workers - r.times.length,
    listenOverflows: net1.overflows - net0.overflows,
    listenDrops: net1.drops - net0.drops,
    loop,
    connectsPerWorker: (after.connects - before.connects) / s.workers,
    connected,
  };
  const sec = (ms: number | null): string => (ms === null ? '—' : (ms / 1000).toFixed(2));
  ctx.log(
    `  ${rig.kind} ${how}: ${r.times.length}/${s.workers} registered, all ${sec(out.allRegisteredMs)} s after serving (storm ${sec(out.stormSpanMs)} s), ` +
      `rejected ${out.rejected}, overflows ${out.listenOverflows}, drops ${out.listenDrops}, loop p99 ${loop.p99Ms.toFixed(1)} ms max ${loop.maxMs.toFixed(1)} ms`,
  );
  return out;
}

interface Burst {
  /** First connect to the last connection answered (the server's HTTP/2 SETTINGS read). */
  allAcceptedMs: number | null;
  p50AcceptedMs: number | null;
  /** Connections that failed (reset by the kernel when its queue dropped them, …). */
  failed: number;
  failures: string;
  listenOverflows: number;
  listenDrops: number;
}

/** The HTTP/2 client preface and an empty SETTINGS frame: what every worker's connection opens with. */
const H2_OPENING = Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]);

/**
 * `n` TCP connections opened in one go from one process, each sending the HTTP/2 opening and waiting
 * for the server's first bytes (its SETTINGS, written once it has accepted the connection). This is
 * the arrival a storm of workers on separate machines makes (their fixed retry sleeps end within
 * milliseconds of each other); the sims above, sharing this host's cores, spread their retries by
 * however long they take to process 2,000 connections, which hides the listen queue.
 */
async function connectBurst(address: string, n: number, timeoutMs: number): Promise<Burst> {
  const at = address.lastIndexOf(':');
  const host = address.slice(0, at);
  const port = Number(address.slice(at + 1));
  const net0 = listenCounters();
  const t0 = hostNow();
  const times: number[] = [];
  const errors = new Map<string, number>();
  const sockets: net.Socket[] = [];
  let settled = 0;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    const done = (): void => {
      if (++settled === n) {
        clearTimeout(timer);
        resolve();
      }
    };
    for (let i = 0; i < n; i++) {
      const sock = net.connect({ host, port, noDelay: true });
      sockets.push(sock);
      sock.write(H2_OPENING);
      sock.once('data', () => {
        times.push(hostNow() - t0);
        done();
      });
      sock.once('error', (err: NodeJS.ErrnoException) => {
        errors.set(err.code ?? err.message, (errors.get(err.code ?? err.message) ?? 0) + 1);
        done();
      });
    }
  });
  const net1 = listenCounters();
  for (const sock of sockets) sock.destroy();
  times.sort((a, b) => a - b);
  return {
    allAcceptedMs: times.length === n ? times[n - 1] : null,
    p50AcceptedMs: times.length > 0 ? times[Math.floor(times.length / 2)] : null,
    failed: n - times.length,
    failures: [...errors].map(([k, v]) => `${v} ${k}`).join(', ') || 'none',
    listenOverflows: net1.overflows - net0.overflows,
    listenDrops: net1.drops - net0.drops,
  };
}

/** One system: its sims registered, then each restart in turn (same sims, same ports). */
async function run(ctx: ScenarioContext, s: Sizes, startRig: () => Promise<Rig>): Promise<{ storms: Map<How, Storm>; burst: Burst }> {
  const cleanup = new Cleanup();
  try {
    const rig = await startRig();
    cleanup.add(rig.kind, () => rig.stop());
    const sims = await SimGroup.start({
      coordinator: rig.clusterAddress,
      workers: s.workers,
      processes: s.simProcesses,
      prefix: 'storm',
      options: {
        wire: 'upstream',
        computeUnits: 1,
        reconnectIntervalMs: s.reconnectIntervalMs,
        maxLogEntries: 8,
      },
      // The first registration is not what is measured: spread it out.
      startStaggerMs: 25,
      startBatch: 50,
      niceness: LOAD_GENERATOR_NICENESS,
    });
    cleanup.add('sims', () => sims.stop());
    await sims.waitRegistered(120_000);
    ctx.log(`  ${rig.kind}: ${s.workers} workers registered`);
    const out = new Map<How, Storm>();
    for (const how of RESTARTS) out.set(how, await restartOnce(ctx, rig, sims, s, how));
    const burst = await connectBurst(rig.clusterAddress, s.workers, 30_000);
    const sec = (ms: number | null): string => (ms === null ? '—' : (ms / 1000).toFixed(2));
    ctx.log(`  ${rig.kind} burst: all accepted in ${sec(burst.allAcceptedMs)} s, failed ${burst.failed} (${burst.failures}), overflows ${burst.listenOverflows}, drops ${burst.listenDrops}`);
    return { storms: out, burst };
  } finally {
    await cleanup.run(ctx.log);
  }
}

export const storm: Scenario = {
  name: 'storm',
  summary: '2,000 workers (one connection each) reconnecting at once after a SIGTERM / SIGKILL restart: time to all registered, rejections, SYN drops, main-loop delay',
  async run(ctx) {
    const s = ctx.smoke ? SMOKE : FULL;
    const baseFailures: string[] = [];
    const failures: string[] = [];
    ctx.log('storm: baseline');
    const base = await attempt(ctx, 'baseline', () => run(ctx, s, () => baselineRig(ctx)), baseFailures);
    ctx.log('storm: coordinator');
    const coord = await attempt(ctx, 'coordinator', () => run(ctx, s, () => coordinatorRig(ctx, s)), failures);
    const sec = (ms: number | null | undefined): number | null => (ms === null || ms === undefined ? null : ms / 1000);
    const f = (n: number | null | undefined, d = 2): string => (n === null || n === undefined ? '—' : n.toFixed(d));
    const cb = coord?.burst;
    const bb = base?.burst;
    const burstResult: ScenarioResult = {
      scenario: 'storm',
      variant: 'burst',
      metrics: [
        metric('all_accepted', 's', sec(cb?.allAcceptedMs), { baseline: sec(bb?.allAcceptedMs) }),
        metric('accepted_p50', 's', sec(cb?.p50AcceptedMs), { baseline: sec(bb?.p50AcceptedMs) }),
        metric('failed', 'count', cb?.failed ?? null, { baseline: bb?.failed ?? null, target: { on: 'value', op: '<=', value: 0 } }),
        metric('listen_overflows', 'count', cb?.listenOverflows ?? null, { baseline: bb?.listenOverflows ?? null }),
        metric('listen_drops', 'count', cb?.listenDrops ?? null, { baseline: bb?.listenDrops ?? null }),
      ],
      notes: [
        `${s.workers} TCP connections to the worker port opened at once from one process (with the ${s.workers} workers still connected), each sending the HTTP/2 preface and waiting for the server's SETTINGS: the arrival of a storm of workers on separate machines, which the sims on this host's shared cores cannot make. Failures: ${cb?.failures ?? '—'} (baseline ${bb?.failures ?? '—'}).`,
      ],
    };
    const results = RESTARTS.map((how): ScenarioResult => {
      const c = coord?.storms.get(how);
      const b = base?.storms.get(how);
      return {
        scenario: 'storm',
        variant: how,
        metrics: [
          metric('all_registered_after_serving', 's', sec(c?.allRegisteredMs), { baseline: sec(b?.allRegisteredMs), target: { on: 'value', op: '<=', value: s.stuckAfterMs / 1000 } }),
          metric('storm_span', 's', sec(c?.stormSpanMs), { baseline: sec(b?.stormSpanMs) }),
          metric('rejected', 'count', c?.rejected ?? null, { baseline: b?.rejected ?? null, target: { on: 'value', op: '<=', value: 0 } }),
          metric('stuck_after_10s', 'count', c?.stuckAfter ?? null, { baseline: b?.stuckAfter ?? null, target: { on: 'value', op: '<=', value: 0 } }),
          metric('stuck_at_end', 'count', c?.stuckAtEnd ?? null, { baseline: b?.stuckAtEnd ?? null, target: { on: 'value', op: '<=', value: 0 } }),
          metric('listen_overflows', 'count', c?.listenOverflows ?? null, { baseline: b?.listenOverflows ?? null }),
          metric('listen_drops', 'count', c?.listenDrops ?? null, { baseline: b?.listenDrops ?? null }),
          metric('main_loop_p99', 'ms', c?.loop.p99Ms ?? null, { baseline: b?.loop.p99Ms ?? null }),
          metric('main_loop_max', 'ms', c?.loop.maxMs ?? null, { baseline: b?.loop.maxMs ?? null }),
        ],
        notes: [
          `${s.workers} workers on the upstream wire (one HTTP/2 connection each, a new one per attempt) in ${s.simProcesses} sim processes at nice ${LOAD_GENERATOR_NICENESS}; after a refused connect they sleep ${s.reconnectIntervalMs / 1000} s (upstream's reconnect_interval_seconds), after a lost stream they reconnect at once. ${how === 'sigterm' ? 'SIGTERM: the coordinator drains (no jobs) and exits; the baseline just exits.' : 'SIGKILL: a crash.'} Restarted on the same ports (coordinator: same home and job store).`,
          `Stop signal to serving: ${f(sec(c?.restartMs))} s (baseline ${f(sec(b?.restartMs))} s); serving to the first register sent: ${f(sec(c?.firstAttemptMs))} s (baseline ${f(sec(b?.firstAttemptMs))} s); half registered ${f(sec(c?.p50RegisteredMs))} s after serving (baseline ${f(sec(b?.p50RegisteredMs))} s). storm_span: first register sent to last registered.`,
          `Connection attempts per worker: ${f(c?.connectsPerWorker)} (baseline ${f(b?.connectsPerWorker)}); connected after the storm by the system's own count: ${c?.connected ?? '—'} (baseline ${b?.connected ?? '—'}). Listen counters are the whole network namespace's (TcpExt in /proc/net/netstat) over stop, restart and storm; loop figures: coordinator, the worst of its 5 s windows (docs/metrics.md) that overlap first register to last registration (the first window after a restart also holds the end of startup); baseline, from serving to the last registration.`,
          ...baseFailures,
          ...failures,
        ],
      };
    });
    return [...results, burstResult];
  },
};
