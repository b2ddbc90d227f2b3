/** Result shapes shared by every scenario, the runner and the smoke test. */

export type Direction = 'higher' | 'lower';

export interface Metric {
  /** Short, stable identifier (`closed_loop_jobs_per_s`, `barrier_p99_ms`, …). */
  name: string;
  unit: string;
  /** The coordinator's figure (null when it could not be measured, e.g. every job failed). */
  coordinator: number | null;
  /** The raw grpc-js baseline's figure, when the scenario has one for this metric. */
  baseline?: number | null;
  /** coordinator / baseline (see bench/README.md for how to read it). */
  ratio?: number | null;
  /** Human text of the target, e.g. `≥ 1000` or `≤ 1.5× baseline`. */
  target?: string;
  /** Whether the target is met (absent: reported only). */
  met?: boolean;
}

export interface ScenarioResult {
  scenario: string;
  /** `thread` / `main` (scheduler placement), `pushed` / `inline`, … */
  variant?: string;
  metrics: Metric[];
  notes: string[];
}

export interface ScenarioContext {
  /** Tiny sizes, seconds per scenario, no assertion on speed. */
  smoke: boolean;
  /** Extra node flags for every coordinator process (e.g. `--cpu-prof`). */
  coordinatorNodeArgs: string[];
  /** Where CPU profiles go when profiling (per scenario/variant sub-directories). */
  profileDir: string | undefined;
  /** Length of the `soak` scenario (`--soak-minutes`, default 10; smoke mode ignores it). */
  soakMinutes: number;
  /** Progress lines (stderr), so stdout stays the report. */
  log(line: string): void;
}

export interface Scenario {
  name: string;
  /** One line for `--list` and the README. */
  summary: string;
  run(ctx: ScenarioContext): Promise<ScenarioResult[]>;
}

/** A target on the coordinator's own value, or on its ratio to the baseline. */
export type Target =
  | { on: 'value'; op: '>=' | '<='; value: number; text?: string }
  | { on: 'ratio'; op: '>=' | '<='; value: number; text?: string };

/** Builds a metric, computing ratio and whether the target is met. */
export function metric(
  name: string,
  unit: string,
  coordinator: number | null,
  opts: { baseline?: number | null; target?: Target } = {},
): Metric {
  const m: Metric = { name, unit, coordinator: finiteOrNull(coordinator) };
  if (opts.baseline !== undefined) {
    m.baseline = finiteOrNull(opts.baseline);
    m.ratio = m.coordinator !== null && m.baseline !== null && m.baseline !== 0 ? m.coordinator / m.baseline : null;
  }
  const t = opts.target;
  if (t) {
    const subject = t.on === 'value' ? m.coordinator : (m.ratio ?? null);
    const sym = t.op === '>=' ? '≥' : '≤';
    m.target = t.text ?? (t.on === 'value' ? `${sym} ${t.value}` : `${sym} ${t.value}× baseline`);
    m.met = subject !== null && (t.op === '>=' ? subject >= t.value : subject <= t.value);
  }
  return m;
}

function finiteOrNull(v: number | null | undefined): number | null {
  return v === null || v === undefined || !Number.isFinite(v) ? null : v;
}
