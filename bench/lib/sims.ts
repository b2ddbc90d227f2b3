/** Parent-side handle on sim-host processes, plus helpers to spread a fleet over several of them. */
import type { LogFilter } from '../../src/sim/fleet';
import { IpcChild } from './ipc';
import { benchModule } from './proc';
import type { SimApi, SimCounters, SimHostConfig, SimJsonOptions } from './sim-host';

export type { SimJsonOptions, SimCounters };

export class SimProcess {
  private constructor(readonly ipc: IpcChild<SimApi>, readonly config: SimHostConfig) {}

  /** Forks a sim host and starts its workers (they connect at once). */
  static async start(config: SimHostConfig, nodeArgs: string[] = [], niceness = 0): Promise<SimProcess> {
    const ipc = IpcChild.fork<SimApi>(benchModule('lib/sim-host.js'), { nodeArgs, niceness });
    const p = new SimProcess(ipc, config);
    try {
      await ipc.call('start', config, 120_000);
    } catch (err) {
      await ipc.close(1_000);
      throw err;
    }
    return p;
  }

  get pid(): number {
    return this.ipc.pid;
  }

  waitRegistered(timeoutMs: number, count?: number): Promise<{ registered: number }> {
    return this.ipc.call('waitRegistered', { timeoutMs, ...(count !== undefined ? { count } : {}) }, timeoutMs + 5_000);
  }

  counters(): Promise<SimCounters> {
    return this.ipc.call('counters', {});
  }

  lastAt(filters: LogFilter[]): Promise<Array<number | null>> {
    return this.ipc.call('lastAt', { filters });
  }

  firstAt(filters: LogFilter[]): Promise<Array<number | null>> {
    return this.ipc.call('firstAt', { filters });
  }

  count(filters: LogFilter[]): Promise<number[]> {
    return this.ipc.call('count', { filters });
  }

  streamTotals(jobId: string): Promise<SimApi['streamTotals']['result']> {
    return this.ipc.call('streamTotals', { jobId });
  }

  churn(params: SimApi['churn']['params']): Promise<SimApi['churn']['result']> {
    return this.ipc.call('churn', params);
  }

  aggTasks(jobId: string): Promise<SimApi['aggTasks']['result']> {
    return this.ipc.call('aggTasks', { jobId });
  }

  registrationsSince(since: number): Promise<SimApi['registrationsSince']['result']> {
    return this.ipc.call('registrationsSince', { since });
  }

  async stop(): Promise<void> {
    try {
      await this.ipc.call('stop', {}, 30_000);
    } catch {
      // the process is going away anyway
    }
    await this.ipc.close();
  }
}

/** A fleet spread over several sim processes (worker indices are global). */
export class SimGroup {
  constructor(readonly processes: SimProcess[]) {}

  static async start(opts: {
    coordinator: string;
    workers: number;
    processes: number;
    prefix?: string;
    workersPerChannel?: number;
    options: SimJsonOptions;
    perWorker?: Record<number, SimJsonOptions>;
    startStaggerMs?: number;
    startBatch?: number;
    /** nice(1) level of the sim processes (0 = as the bench). */
    niceness?: number;
  }): Promise<SimGroup> {
    const n = Math.max(1, Math.min(opts.processes, opts.workers || 1));
    const per = Math.ceil(opts.workers / n);
    const started: SimProcess[] = [];
    try {
      for (let p = 0; p < n; p++) {
        const first = p * per;
        const count = Math.min(per, opts.workers - first);
        if (count <= 0) break;
        let perWorker: Record<number, SimJsonOptions> | undefined;
        if (opts.perWorker) {
          perWorker = {};
          for (const [k, v] of Object.entries(opts.perWorker)) {
            const i = Number(k);
            if (i >= first && i < first + count) perWorker[i] = v;
          }
        }
        started.push(
          await SimProcess.start({
            coordinator: opts.coordinator,
            workers: count,
            prefix: opts.prefix ?? 'bench',
            firstIndex: first,
            workersPerChannel: opts.workersPerChannel ?? 0,
            options: opts.options,
            ...(perWorker ? { perWorker } : {}),
            ...(opts.startStaggerMs !== undefined ? { startStaggerMs: opts.startStaggerMs } : {}),
            ...(opts.startBatch !== undefined ? { startBatch: opts.startBatch } : {}),
          }, [], opts.niceness ?? 0),
        );
      }
    } catch (err) {
      await Promise.all(started.map((s) => s.stop()));
      throw err;
    }
    return new SimGroup(started);
  }

  get pids(): number[] {
    return this.processes.map((p) => p.pid);
  }

  async waitRegistered(timeoutMs: number): Promise<number> {
    const r = await Promise.all(this.processes.map((p) => p.waitRegistered(timeoutMs)));
    return r.reduce((a, b) => a + b.registered, 0);
  }

  async counters(): Promise<SimCounters> {
    const all = await Promise.all(this.processes.map((p) => p.counters()));
    const out = { ...all[0] };
    for (const c of all.slice(1)) for (const k of Object.keys(out) as Array<keyof SimCounters>) out[k] += c[k];
    return out;
  }

  /** Latest `at` per filter across every process. */
  async lastAt(filters: LogFilter[]): Promise<Array<number | null>> {
    const all = await Promise.all(this.processes.map((p) => p.lastAt(filters)));
    return filters.map((_, i) => {
      let best: number | null = null;
      for (const r of all) if (r[i] !== null && (best === null || (r[i] as number) > best)) best = r[i];
      return best;
    });
  }

  async count(filters: LogFilter[]): Promise<number[]> {
    const all = await Promise.all(this.processes.map((p) => p.count(filters)));
    return filters.map((_, i) => all.reduce((a, r) => a + r[i], 0));
  }

  async streamTotals(jobId: string): Promise<SimApi['streamTotals']['result']> {
    const all = await Promise.all(this.processes.map((p) => p.streamTotals(jobId)));
    const out = { inputBytes: 0, inputChunks: 0, inputRejected: 0, workersWithErrors: 0 };
    for (const t of all) {
      out.inputBytes += t.inputBytes;
      out.inputChunks += t.inputChunks;
      out.inputRejected += t.inputRejected;
      out.workersWithErrors += t.workersWithErrors;
    }
    return out;
  }

  async aggTasks(jobId: string): Promise<SimApi['aggTasks']['result']> {
    const all = await Promise.all(this.processes.map((p) => p.aggTasks(jobId)));
    return all.flat().sort((a, b) => a.at - b.at);
  }

  /** Each worker's first registration at or after `since` (host clock), sorted, and the first `register` sent. */
  async registrationsSince(since: number): Promise<SimApi['registrationsSince']['result']> {
    const all = await Promise.all(this.processes.map((p) => p.registrationsSince(since)));
    let first: number | null = null;
    for (const r of all) if (r.firstRegisterSentAt !== null && (first === null || r.firstRegisterSentAt < first)) first = r.firstRegisterSentAt;
    return { times: all.flatMap((r) => r.times).sort((a, b) => a - b), firstRegisterSentAt: first };
  }

  async stop(): Promise<void> {
    await Promise.all(this.processes.map((p) => p.stop()));
  }
}
