/** Small numeric helpers: percentiles and summaries of samples. */

/** Nearest-rank percentile (p in 0..100) of unsorted samples; null for an empty list. */
export function percentile(samples: readonly number[], p: number): number | null {
  if (samples.length === 0) return null;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1];
}

export interface Summary {
  count: number;
  p50: number | null;
  p99: number | null;
  max: number | null;
  mean: number | null;
}

export function summarize(samples: readonly number[]): Summary {
  if (samples.length === 0) return { count: 0, p50: null, p99: null, max: null, mean: null };
  let sum = 0;
  let max = -Infinity;
  for (const s of samples) {
    sum += s;
    if (s > max) max = s;
  }
  return { count: samples.length, p50: percentile(samples, 50), p99: percentile(samples, 99), max, mean: sum / samples.length };
}

export function median(samples: readonly number[]): number | null {
  return percentile(samples, 50);
}

export const MB = 1e6;
export const MiB = 1 << 20;

/** Bytes per millisecond → MB/s (10^6 bytes). */
export function mbPerSecond(bytes: number, ms: number | null): number | null {
  if (ms === null || !(ms > 0)) return null;
  return bytes / MB / (ms / 1000);
}

export function round(v: number | null | undefined, digits = 2): number | null {
  if (v === null || v === undefined || !Number.isFinite(v)) return null;
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}
