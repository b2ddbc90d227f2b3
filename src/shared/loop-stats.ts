/**
 * Event-loop figures of the calling thread (main or scheduler). Kept apart from the metrics registry
 * so the scheduler thread can sample itself without loading prom-client.
 */
import { createHistogram, performance } from 'node:perf_hooks';
import type { EventLoopUtilization, RecordableHistogram } from 'node:perf_hooks';

/** Event-loop figures for one thread over the last sampling interval, in seconds (utilization: 0..1). */
export interface LoopStats {
  p50: number;
  p99: number;
  max: number;
  utilization: number;
}

const ZERO_LOOP_STATS: LoopStats = { p50: 0, p99: 0, max: 0, utilization: 0 };

/**
 * Samples the calling thread's event loop: delay percentiles and max, plus utilization from
 * `performance.eventLoopUtilization`, over the interval since the previous `sample()`. Usable on any
 * thread (the scheduler thread runs its own and ships the figures over).
 *
 * Delay is measured by our own unref'd timer rather than `monitorEventLoopDelay`: resetting that
 * histogram also forgets its last tick, so the first interval after every reset is never recorded
 * and a stall that begins right after a scrape vanishes from the figures. Here a reset only empties
 * the histogram; the tick clock keeps running. The cost is one tiny JS callback per resolution.
 */
export class LoopStatsSampler {
  private histogram: RecordableHistogram | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastTickNs = 0n;
  private lastElu: EventLoopUtilization | undefined;

  constructor(private readonly resolutionMs = 10) {}

  start(): void {
    if (this.timer) return;
    this.histogram = createHistogram();
    this.lastTickNs = process.hrtime.bigint();
    this.lastElu = performance.eventLoopUtilization();
    this.timer = setInterval(() => this.tick(), this.resolutionMs);
    // Sampling must never be the reason a process (or the scheduler thread) stays alive.
    this.timer.unref();
  }

  /** Figures since the previous sample (or start); starts a new interval. Zeros when not started. */
  sample(): LoopStats {
    const h = this.histogram;
    if (!h || !this.lastElu) return { ...ZERO_LOOP_STATS };
    const now = performance.eventLoopUtilization();
    const utilization = performance.eventLoopUtilization(now, this.lastElu).utilization;
    this.lastElu = now;
    // An empty HDR histogram reports nonsense percentiles, not zero.
    const stats =
      h.count === 0
        ? { p50: 0, p99: 0, max: 0, utilization }
        : { p50: h.percentile(50) / 1e9, p99: h.percentile(99) / 1e9, max: h.max / 1e9, utilization };
    h.reset();
    return stats;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.histogram = undefined;
    this.lastElu = undefined;
  }

  /** How late this tick ran compared with one resolution after the previous tick. */
  private tick(): void {
    const now = process.hrtime.bigint();
    const lateNs = Number(now - this.lastTickNs) - this.resolutionMs * 1e6;
    this.lastTickNs = now;
    // The histogram's floor is 1 ns; an on-time (or early, by timer rounding) tick is "no delay".
    this.histogram?.record(Math.max(1, Math.round(lateNs)));
  }
}
