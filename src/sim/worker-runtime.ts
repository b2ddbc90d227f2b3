/** What every part of one sim worker shares: its options, counters, log, events, lifecycle flags and timers. */
import type { EventEmitter } from 'node:events';
import type { SimWorkerOptions } from './options';
import { appendBounded, type LogEntry } from './worker-log';
import type { SimWorkerEvents, SimWorkerState, SimWorkerStats } from './worker-types';

export class WorkerRuntime {
  state: SimWorkerState = 'new';
  /** Hung on purpose: no heartbeats, no answers, inbound ignored, no reconnect. */
  silent = false;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    readonly options: SimWorkerOptions,
    readonly stats: SimWorkerStats,
    readonly log: LogEntry[],
    readonly events: EventEmitter<SimWorkerEvents>,
  ) {}

  get stopped(): boolean {
    return this.state === 'stopped';
  }

  /** Runs `fn` after `ms` unless the worker has stopped by then. */
  later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (!this.stopped) fn();
    }, ms);
    this.timers.add(t);
  }

  clearTimers(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  record(entry: LogEntry): void {
    appendBounded(this.log, entry, this.options.maxLogEntries);
  }

  logLine(line: string): void {
    this.options.logger?.(`[${this.options.workerId}] ${line}`);
  }
}
