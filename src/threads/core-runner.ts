import type { SchedulerEvent } from '../shared/scheduler/events';
import type { SchedulerEffect } from '../shared/scheduler/effects';
import type { SchedulerCore } from './scheduler-core';

export type Clock = () => number;

/**
 * Drives the pure core with real time: applies event batches, owns the single host timer for the
 * core's earliest deadline, and hands the effects of each step to `emit` in one batch. Used on the
 * scheduler thread and, with `[coordinator] scheduler_thread = false`, on the main thread.
 */
export class CoreRunner {
  private timer: NodeJS.Timeout | undefined;
  private timerAt: number | undefined;
  private stopped = false;

  constructor(
    private readonly core: SchedulerCore,
    private readonly emit: (effects: SchedulerEffect[]) => void,
    private readonly clock: Clock = Date.now,
  ) {}

  push(events: readonly SchedulerEvent[]): void {
    if (this.stopped) return;
    const now = this.clock();
    const out: SchedulerEffect[] = [];
    // Events first, then overdue timers: after a stall (a saturated main thread, a GC pause) the
    // batch holds the heartbeats and results that arrived in time but could not be read; firing the
    // timers first would disconnect live workers and fail jobs for our own delay.
    for (const event of events) appendAll(out, this.core.handle(event, now));
    appendAll(out, this.core.advance(now));
    this.finish(out);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private fire = (): void => {
    this.timer = undefined;
    this.timerAt = undefined;
    if (this.stopped) return;
    this.finish(this.core.advance(this.clock()));
  };

  private finish(out: SchedulerEffect[]): void {
    this.arm();
    if (out.length > 0) this.emit(coalesceCounts(out));
  }

  private arm(): void {
    const next = this.core.nextDeadline();
    if (next === this.timerAt) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = next;
    if (next === undefined) return;
    this.timer = setTimeout(this.fire, Math.max(0, next - this.clock()));
  }
}

function appendAll<T>(target: T[], items: readonly T[]): void {
  for (const item of items) target.push(item);
}

/** Only the last worker-count snapshot of a batch matters to the metrics registry. */
export function coalesceCounts(effects: SchedulerEffect[]): SchedulerEffect[] {
  let last = -1;
  for (let i = 0; i < effects.length; i++) if (effects[i].type === 'workerCounts') last = i;
  if (last < 0) return effects;
  return effects.filter((e, i) => e.type !== 'workerCounts' || i === last);
}
