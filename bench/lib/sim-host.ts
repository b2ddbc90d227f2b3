/**
 * A simulated worker fleet in its own process (forked by the bench with IPC): many `SimFleet`s, one
 * per shared channel (or one fleet with a connection per worker), driven and queried by typed calls.
 * Sim timestamps are `hostNow()`, comparable with every other process on the host.
 */
import { SimFleet, type LogFilter } from '../../src/sim/fleet';
import type { SimWorkerOptions } from '../../src/sim/options';
import { hostNow, type AggTaskRecord, type SimWorker } from '../../src/sim/worker';
import { serveIpc, type Handlers } from './ipc';

/** JSON-safe worker options (no logger). */
export type SimJsonOptions = Partial<Omit<SimWorkerOptions, 'coordinator' | 'workerId' | 'logger'>>;

export interface SimHostConfig {
  /** `host:port` of the worker port. */
  coordinator: string;
  workers: number;
  /** Worker ids are `${prefix}-${i}`. */
  prefix: string;
  firstIndex: number;
  /** Workers per shared HTTP/2 connection; 0 = one connection per worker (like real workers). */
  workersPerChannel: number;
  options: SimJsonOptions;
  /** Per-worker overrides by index. */
  perWorker?: Record<number, SimJsonOptions>;
  /** Pause between starting consecutive fleets / batches of `startBatch` workers (default 0). */
  startStaggerMs?: number;
  /** Workers started per batch when staggering one-connection-per-worker fleets (default all). */
  startBatch?: number;
}

export interface StreamTotals {
  inputBytes: number;
  inputChunks: number;
  inputRejected: number;
  workersWithErrors: number;
}

export interface SimCounters {
  workers: number;
  registered: number;
  connects: number;
  registrations: number;
  rejections: number;
  heartbeatsSent: number;
  heartbeatsReceived: number;
  messagesReceived: number;
  messagesSent: number;
  responsesSent: number;
  failuresSent: number;
  dispatchFailures: number;
  challengeMismatches: number;
  streamErrors: number;
}

export type SimApi = {
  start: { params: SimHostConfig; result: { workers: number } };
  waitRegistered: { params: { count?: number; timeoutMs: number }; result: { registered: number } };
  counters: { params: Record<string, never>; result: SimCounters };
  /** Latest `at` of each filter across every worker (null: no entry matched). */
  lastAt: { params: { filters: LogFilter[] }; result: Array<number | null> };
  firstAt: { params: { filters: LogFilter[] }; result: Array<number | null> };
  /** Number of log entries matching each filter across every worker. */
  count: { params: { filters: LogFilter[] }; result: number[] };
  streamTotals: { params: { jobId: string }; result: StreamTotals };
  aggTasks: { params: { jobId: string }; result: AggTaskRecord[] };
  /**
   * Worker churn (`soak`): `disconnect` random live workers drop their connection and come back after
   * `reconnectAfterMs`; `replace` random ones stop for good and as many new ones (new ids,
   * `${prefix}-<n>`, the options of `start`) join.
   */
  churn: { params: { disconnect: number; replace: number; reconnectAfterMs: number; prefix: string }; result: { live: number; registered: number } };
  /**
   * Reconnect figures since `since` (host clock, `reconnect storm`): each worker's first accepted
   * registration at or after it (workers with none are left out), and the first `register` written.
   */
  registrationsSince: { params: { since: number }; result: { times: number[]; firstRegisterSentAt: number | null } };
  stop: { params: Record<string, never>; result: null };
};

const fleets: SimFleet[] = [];
let startConfig: SimHostConfig | undefined;
let joined = 0;
/** Host-clock times of every accepted registration, per worker (a few per worker: one per connection). */
const registeredAt = new WeakMap<SimWorker, number[]>();

function track(f: SimFleet): SimFleet {
  f.on('registered', (w) => {
    const at = hostNow();
    const list = registeredAt.get(w);
    if (list) list.push(at);
    else registeredAt.set(w, [at]);
  });
  return f;
}

function liveWorkers(): SimWorker[] {
  const out: SimWorker[] = [];
  for (const f of fleets) for (const w of f.workers) if (w.state !== 'stopped') out.push(w);
  return out;
}

/** `n` distinct random picks from `xs`. */
function pickSome<T>(xs: readonly T[], n: number): T[] {
  const pool = [...xs];
  const out: T[] = [];
  while (out.length < n && pool.length > 0) out.push(pool.splice(Math.floor(Math.random() * pool.length), 1)[0]);
  return out;
}

function registeredCount(): number {
  let n = 0;
  for (const f of fleets) n += f.registeredCount;
  return n;
}

function workerCount(): number {
  let n = 0;
  for (const f of fleets) n += f.size;
  return n;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const handlers: Handlers<SimApi> = {
  async start(cfg) {
    startConfig = cfg;
    const per = cfg.workersPerChannel > 0 ? cfg.workersPerChannel : cfg.workers;
    const shared = cfg.workersPerChannel > 0;
    for (let first = 0; first < cfg.workers; first += per) {
      const n = Math.min(per, cfg.workers - first);
      const overrides = cfg.perWorker;
      fleets.push(
        track(new SimFleet({
          ...cfg.options,
          coordinator: cfg.coordinator,
          workers: n,
          prefix: cfg.prefix,
          firstIndex: cfg.firstIndex + first,
          sharedChannel: shared,
          ...(overrides ? { perWorker: (i: number) => overrides[i] } : {}),
        })),
      );
    }
    const stagger = cfg.startStaggerMs ?? 0;
    const batch = cfg.startBatch ?? Infinity;
    for (const f of fleets) {
      if (shared || !Number.isFinite(batch)) {
        f.start();
        if (stagger > 0) await sleep(stagger);
        continue;
      }
      // One connection per worker: start in batches so thousands of handshakes do not land at once.
      for (let i = 0; i < f.workers.length; i += batch) {
        for (const w of f.workers.slice(i, i + batch)) w.start();
        if (stagger > 0) await sleep(stagger);
      }
    }
    return { workers: workerCount() };
  },

  async waitRegistered({ count, timeoutMs }) {
    const want = count ?? workerCount();
    const end = Date.now() + timeoutMs;
    while (registeredCount() < want) {
      if (Date.now() > end) throw new Error(`${registeredCount()}/${want} workers registered after ${timeoutMs} ms`);
      await sleep(25);
    }
    return { registered: registeredCount() };
  },

  counters() {
    const c: SimCounters = {
      workers: workerCount(),
      registered: registeredCount(),
      connects: 0,
      registrations: 0,
      rejections: 0,
      heartbeatsSent: 0,
      heartbeatsReceived: 0,
      messagesReceived: 0,
      messagesSent: 0,
      responsesSent: 0,
      failuresSent: 0,
      dispatchFailures: 0,
      challengeMismatches: 0,
      streamErrors: 0,
    };
    for (const f of fleets) {
      for (const w of f.workers) {
        const s = w.stats;
        c.connects += s.connects;
        c.registrations += s.registrations;
        c.rejections += s.rejections;
        c.heartbeatsSent += s.heartbeatsSent;
        c.heartbeatsReceived += s.heartbeatsReceived;
        c.messagesReceived += s.messagesReceived;
        c.messagesSent += s.messagesSent;
        c.responsesSent += s.responsesSent;
        c.failuresSent += s.failuresSent;
        c.dispatchFailures += s.dispatchFailures;
        c.challengeMismatches += s.challengeMismatches;
        c.streamErrors += s.streamErrors;
      }
    }
    return c;
  },

  lastAt({ filters }) {
    return filters.map((f) => {
      let best: number | null = null;
      for (const fleet of fleets) {
        const v = fleet.lastAt(f);
        if (v !== undefined && (best === null || v > best)) best = v;
      }
      return best;
    });
  },

  firstAt({ filters }) {
    return filters.map((f) => {
      let best: number | null = null;
      for (const fleet of fleets) {
        const v = fleet.firstAt(f);
        if (v !== undefined && (best === null || v < best)) best = v;
      }
      return best;
    });
  },

  count({ filters }) {
    return filters.map((f) => {
      let n = 0;
      for (const fleet of fleets) {
        for (const w of fleet.workers) {
          for (const e of w.log) {
            if (f.dir !== undefined && e.dir !== f.dir) continue;
            if (f.kind !== undefined && e.kind !== f.kind) continue;
            if (f.jobId !== undefined && e.jobId !== f.jobId) continue;
            if (f.taskType !== undefined && e.taskType !== f.taskType) continue;
            if (f.success !== undefined && e.success !== f.success) continue;
            n++;
          }
        }
      }
      return n;
    });
  },

  streamTotals({ jobId }) {
    const t: StreamTotals = { inputBytes: 0, inputChunks: 0, inputRejected: 0, workersWithErrors: 0 };
    for (const f of fleets) {
      for (const w of f.workers) {
        const c = w.streamCounters(jobId);
        if (!c) continue;
        t.inputBytes += c.inputBytes;
        t.inputChunks += c.inputChunks;
        t.inputRejected += c.inputRejected;
        if (c.errors.length > 0) t.workersWithErrors++;
      }
    }
    return t;
  },

  aggTasks({ jobId }) {
    const out: AggTaskRecord[] = [];
    for (const f of fleets) for (const w of f.workers) for (const r of w.aggTasks) if (r.jobId === jobId) out.push(r);
    return out.sort((a, b) => a.at - b.at);
  },

  async churn({ disconnect, replace, reconnectAfterMs, prefix }) {
    const cfg = startConfig;
    if (!cfg) throw new Error('churn before start');
    const live = liveWorkers();
    for (const w of pickSome(live, disconnect)) w.disconnect(reconnectAfterMs);
    const leaving = pickSome(live, replace);
    await Promise.all(leaving.map((w) => w.stop()));
    if (leaving.length > 0) {
      const f = new SimFleet({ ...cfg.options, coordinator: cfg.coordinator, workers: leaving.length, prefix, firstIndex: joined });
      joined += leaving.length;
      fleets.push(track(f).start());
    }
    // Fleets whose workers have all left are dropped, so a long churn does not grow this process.
    for (let i = fleets.length - 1; i >= 0; i--) if (fleets[i].workers.every((w) => w.state === 'stopped')) fleets.splice(i, 1);
    return { live: liveWorkers().length, registered: registeredCount() };
  },

  registrationsSince({ since }) {
    const times: number[] = [];
    let firstRegisterSentAt: number | null = null;
    for (const f of fleets) {
      for (const w of f.workers) {
        const at = registeredAt.get(w)?.find((t) => t >= since);
        if (at !== undefined) times.push(at);
        for (const e of w.log) {
          if (e.dir !== 'out' || e.kind !== 'register' || e.at < since) continue;
          if (firstRegisterSentAt === null || e.at < firstRegisterSentAt) firstRegisterSentAt = e.at;
          break;
        }
      }
    }
    return { times, firstRegisterSentAt };
  },

  async stop() {
    await Promise.all(fleets.map((f) => f.stop()));
    fleets.length = 0;
    return null;
  },
};

if (require.main === module) serveIpc<SimApi>(handlers);
