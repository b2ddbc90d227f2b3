/**
 * A Prometheus histogram for the per-job hot path. prom-client's `observe` re-validates the labels,
 * hashes them into a string key and allocates on every call (six calls per prove job, a visible share
 * of the throughput profile); here a bound series is a typed array of bucket counts, and the
 * cumulative view is built only at scrape.
 * The exposition is prom-client's own (same `le` formatting and label order): the registry renders
 * it, so dashboards and the metrics tests see no difference.
 */
import type { Metric, Registry } from 'prom-client';
import { Handles } from './label-handles';

/** One exported sample, in the shape prom-client's registry renders. */
interface ExportedSample {
  metricName: string;
  value: number;
  labels: Record<string, string | number>;
  sharedLabels?: Record<string, string>;
}

interface ExportedHistogram {
  name: string;
  help: string;
  type: 'histogram';
  aggregator: 'sum';
  values: ExportedSample[];
}

export interface HistogramSeries {
  observe(value: number): void;
}

class Series implements HistogramSeries {
  /** Non-cumulative: counts[i] for values in (bounds[i-1], bounds[i]]; the last slot is +Inf. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(
    private readonly bounds: readonly number[],
    readonly labels: Readonly<Record<string, string>>,
  ) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && value > b[i]) i++;
    this.counts[i]++;
    this.sum += value;
    this.count++;
  }
}

export class LeanHistogram<L extends string> {
  readonly type = 'histogram' as const;
  readonly aggregator = 'sum' as const;
  private readonly bounds: readonly number[];
  /** Bound series by label values, in `labelNames` order. */
  private readonly series = new Handles((...values: string[]) => this.newSeries(values));
  private readonly all: Series[] = [];

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly L[],
    buckets: readonly number[],
    registry: Registry,
  ) {
    this.bounds = [...buckets].sort((a, b) => a - b);
    // The registry only calls name/type/help/get/getForPromString/reset on what it holds.
    registry.registerMetric(this as unknown as Metric);
  }

  /** The series of these label values (in `labelNames` order), created on first use. */
  labels(...values: string[]): HistogramSeries {
    if (values.length !== this.labelNames.length) {
      throw new Error(`${this.name}: expected ${this.labelNames.length} label values, got ${values.length}`);
    }
    return this.series.get(...values);
  }

  private newSeries(values: string[]): Series {
    const labels: Record<string, string> = {};
    this.labelNames.forEach((n, i) => (labels[n] = values[i]));
    const series = new Series(this.bounds, labels);
    this.all.push(series);
    return series;
  }

  /** Exports a series at zero before anything is observed in it. */
  zero(labels: Readonly<Record<L, string>>): void {
    this.labels(...this.labelNames.map((n) => labels[n]));
  }

  reset(): void {
    for (const s of this.all) {
      s.counts.fill(0);
      s.sum = 0;
      s.count = 0;
    }
  }

  /** prom-client's text-format view: `le` first, then the series labels (as `sharedLabels`). */
  getForPromString(): Promise<ExportedHistogram> {
    return Promise.resolve(this.snapshot(false));
  }

  /** prom-client's JSON view: the series labels merged with `le`. */
  get(): Promise<ExportedHistogram> {
    return Promise.resolve(this.snapshot(true));
  }

  private snapshot(merged: boolean): ExportedHistogram {
    const values: ExportedSample[] = [];
    const bucketName = `${this.name}_bucket`;
    const point = (metricName: string, value: number, labels: Record<string, string | number>, series: Series): ExportedSample =>
      merged
        ? { metricName, value, labels: { ...series.labels, ...labels } }
        : { metricName, value, labels, sharedLabels: { ...series.labels } };
    for (const s of this.all) {
      let cumulative = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        cumulative += s.counts[i];
        values.push(point(bucketName, cumulative, { le: this.bounds[i] }, s));
      }
      values.push(point(bucketName, s.count, { le: '+Inf' }, s));
      values.push(point(`${this.name}_sum`, s.sum, {}, s));
      values.push(point(`${this.name}_count`, s.count, {}, s));
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }
}
