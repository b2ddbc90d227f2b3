/** A fleet of simulated workers in one process (integration tests, demo, benchmarks). */
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import type { CoordinatorMessageIn, ExecuteTaskIn, RegisterResponseIn } from './messages';
import { resolveWorkerOptions, type SimWorkerOptions } from './options';
import { SimWorker, emptyWorkerStats, simChannelOptions, simCredentials, type DisconnectInfo, type LogEntry, type ResponseEndInfo, type SimWorkerStats } from './worker';

export interface SimFleetOptions extends Partial<Omit<SimWorkerOptions, 'workerId' | 'coordinator'>> {
  /** `host:port` of the coordinator's worker port. */
  coordinator: string;
  /** Number of workers. */
  workers: number;
  /** Worker ids are `${prefix}-${i}` (default `sim`). */
  prefix?: string;
  /** First `i` (default 0). */
  firstIndex?: number;
  /** Per-worker overrides (capacity, delays, faults…), applied over the fleet-wide options. */
  perWorker?: (index: number, workerId: string) => Partial<SimWorkerOptions> | undefined;
  /**
   * Multiplex every worker's stream over one shared channel (one HTTP/2 connection) instead of one
   * connection per worker. Cheaper, but unlike real workers: a paused (slow-reader) stream can stall
   * the shared connection window, and a dropped connection drops everyone. Default false; grpc-js
   * wire only.
   */
  sharedChannel?: boolean;
}

export type FleetStats = Omit<SimWorkerStats, 'tasksReceived'> & {
  workers: number;
  registered: number;
  tasksReceived: SimWorkerStats['tasksReceived'];
  aggTasks: number;
};

export type FleetLogEntry = LogEntry & { workerId: string };

export interface LogFilter {
  dir?: 'in' | 'out';
  kind?: string;
  jobId?: string;
  taskType?: number;
  success?: boolean;
}

export interface SimFleetEvents {
  registered: [worker: SimWorker, response: RegisterResponseIn];
  rejected: [worker: SimWorker, response: RegisterResponseIn];
  disconnected: [worker: SimWorker, info: DisconnectInfo];
  responseEnded: [worker: SimWorker, info: ResponseEndInfo];
  task: [worker: SimWorker, task: ExecuteTaskIn];
  received: [worker: SimWorker, entry: LogEntry, msg: CoordinatorMessageIn];
}

function matches(e: LogEntry, f: LogFilter): boolean {
  return (
    (f.dir === undefined || e.dir === f.dir) &&
    (f.kind === undefined || e.kind === f.kind) &&
    (f.jobId === undefined || e.jobId === f.jobId) &&
    (f.taskType === undefined || e.taskType === f.taskType) &&
    (f.success === undefined || e.success === f.success)
  );
}

type CounterKey = { [K in keyof SimWorkerStats]: SimWorkerStats[K] extends number ? K : never }[keyof SimWorkerStats];

// A Record (not a list) so the compiler insists every numeric counter is summed.
const COUNTERS: Record<CounterKey, true> = {
  connects: true, connectErrors: true, cleanEnds: true, sendFailures: true, registrations: true, reconnectsSent: true,
  rejections: true, heartbeatsSent: true, heartbeatsReceived: true, setupsReceived: true, setupAcks: true,
  responsesSent: true, failuresSent: true, dispatchFailures: true, workerErrorsSent: true,
  cancelsReceived: true, recoveriesSent: true, kills: true, challengeEntriesChecked: true, challengeMismatches: true,
  streamErrors: true, aggOverlaps: true, messagesReceived: true, messagesSent: true,
};
const COUNTER_KEYS = Object.keys(COUNTERS) as CounterKey[];

export class SimFleet extends EventEmitter<SimFleetEvents> {
  readonly workers: SimWorker[] = [];
  private readonly byId = new Map<string, SimWorker>();
  private readonly shared: grpc.Client | undefined;
  private started = false;

  constructor(readonly options: SimFleetOptions) {
    super();
    const { workers, prefix = 'sim', firstIndex = 0, perWorker, sharedChannel, ...base } = options;
    if (!Number.isInteger(workers) || workers < 0) throw new RangeError(`workers must be a non-negative integer (got ${workers})`);
    if (sharedChannel) {
      const o = resolveWorkerOptions({ ...base, workerId: 'shared' });
      if (o.wire === 'upstream') throw new RangeError('sharedChannel needs the grpc-js wire: upstream workers each open their own connection');
      this.shared = new grpc.Client(options.coordinator, simCredentials(o), simChannelOptions(o));
    }
    for (let i = firstIndex; i < firstIndex + workers; i++) {
      const workerId = `${prefix}-${i}`;
      const w = new SimWorker({ ...base, ...perWorker?.(i, workerId), workerId }, this.shared);
      w.on('registered', (r) => this.emit('registered', w, r));
      w.on('rejected', (r) => this.emit('rejected', w, r));
      w.on('disconnected', (d) => this.emit('disconnected', w, d));
      w.on('responseEnded', (r) => this.emit('responseEnded', w, r));
      w.on('task', (t) => this.emit('task', w, t));
      w.on('received', (e, m) => this.emit('received', w, e, m));
      this.workers.push(w);
      this.byId.set(workerId, w);
    }
  }

  get size(): number {
    return this.workers.length;
  }

  get(workerId: string): SimWorker | undefined {
    return this.byId.get(workerId);
  }

  /** Starts every worker (each opens its stream at once). */
  start(): this {
    if (this.started) return this;
    this.started = true;
    for (const w of this.workers) w.start();
    return this;
  }

  get registeredCount(): number {
    let n = 0;
    for (const w of this.workers) if (w.registered) n++;
    return n;
  }

  /** Resolves once every worker is registered at the same time; rejects after `timeoutMs`. */
  waitAllRegistered(timeoutMs: number): Promise<void> {
    return this.waitUntil(() => this.registeredCount === this.workers.length, timeoutMs, () => `${this.registeredCount}/${this.workers.length} workers registered`);
  }

  /**
   * Resolves when `predicate` holds (checked now, on (de)registrations and every 20 ms); rejects after
   * `timeoutMs` with `describe()` in the message.
   */
  waitUntil(predicate: () => boolean, timeoutMs: number, describe: () => string = () => 'condition'): Promise<void> {
    if (predicate()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!predicate()) return;
        cleanup();
        resolve();
      };
      const poll = setInterval(check, 20);
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${describe()}`));
      }, timeoutMs);
      const cleanup = (): void => {
        clearInterval(poll);
        clearTimeout(timer);
        this.off('registered', check);
        this.off('disconnected', check);
      };
      this.on('registered', check);
      this.on('disconnected', check);
    });
  }

  async stop(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.stop()));
    this.shared?.close();
  }

  stats(): FleetStats {
    const out: FleetStats = { ...emptyWorkerStats(), workers: this.workers.length, registered: this.registeredCount, aggTasks: 0 };
    for (const w of this.workers) {
      const s = w.stats;
      out.aggTasks += w.aggTasks.length;
      for (const k of Object.keys(s.tasksReceived) as Array<keyof SimWorkerStats['tasksReceived']>) out.tasksReceived[k] += s.tasksReceived[k];
      for (const k of COUNTER_KEYS) out[k] += s[k];
    }
    return out;
  }

  /** Log entries of every worker matching `filter`, in time order. */
  entries(filter: LogFilter = {}): FleetLogEntry[] {
    const out: FleetLogEntry[] = [];
    for (const w of this.workers) for (const e of w.log) if (matches(e, filter)) out.push({ ...e, workerId: w.id });
    return out.sort((a, b) => a.at - b.at);
  }

  /** Latest `at` among matching entries (e.g. last contribution sent, last PROVE received). */
  lastAt(filter: LogFilter): number | undefined {
    let best: number | undefined;
    for (const w of this.workers) for (const e of w.log) if (matches(e, filter) && (best === undefined || e.at > best)) best = e.at;
    return best;
  }

  /** Earliest `at` among matching entries. */
  firstAt(filter: LogFilter): number | undefined {
    let best: number | undefined;
    for (const w of this.workers) for (const e of w.log) if (matches(e, filter) && (best === undefined || e.at < best)) best = e.at;
    return best;
  }
}
