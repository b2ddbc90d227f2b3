/** Glue used by the scenarios: coordinator per variant, the two scheduler placements, instant workers. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ApiClient } from './api';
import type { Cleanup } from './proc';
import { SimGroup } from './sims';
import { CoordinatorProcess, type CoordinatorOptions, type SystemUnderTest } from './sut';
import type { ScenarioContext } from './types';
import { benchHashId, prepareProgram } from './workload';

export interface SchedulerVariant {
  name: 'thread' | 'main';
  schedulerThread: boolean;
  label: string;
}

/** `[coordinator] scheduler_thread = true` (the default) and `false`. */
export const SCHEDULER_VARIANTS: readonly SchedulerVariant[] = [
  { name: 'thread', schedulerThread: true, label: 'scheduler on its own thread' },
  { name: 'main', schedulerThread: false, label: 'scheduler on the main thread' },
];

/** Starts the coordinator binary with the context's node flags (and a CPU profile dir when profiling). */
export async function startCoordinator(ctx: ScenarioContext, label: string, opts: CoordinatorOptions = {}): Promise<CoordinatorProcess> {
  const nodeArgs = [...ctx.coordinatorNodeArgs, ...(opts.nodeArgs ?? [])];
  if (ctx.profileDir) {
    const dir = path.join(ctx.profileDir, label);
    fs.mkdirSync(dir, { recursive: true });
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${dir}`);
  }
  const c = await CoordinatorProcess.start({ ...opts, nodeArgs });
  ctx.log(`  coordinator ${label}: pid ${c.pid}, serving in ${Math.round(c.startupMs)} ms`);
  return c;
}

/** Coordinator CPU use (both threads) over a window, as a fraction of one core. */
/**
 * nice(1) level for load generators that must not preempt the process they measure (in production
 * workers and clients run on other machines). Applied to the baseline and the coordinator alike.
 */
export const LOAD_GENERATOR_NICENESS = 10;

export class CpuMeter {
  private t0 = 0;
  private c0 = 0;

  constructor(private readonly read: () => number | null) {}

  start(): this {
    this.t0 = performance.now();
    this.c0 = this.read() ?? 0;
    return this;
  }

  /** Cores used on average since `start()`. */
  stop(): number | null {
    const c1 = this.read();
    const wall = performance.now() - this.t0;
    if (c1 === null || wall <= 0) return null;
    return (c1 - this.c0) / wall;
  }
}

/** Runs one measurement; a failure becomes a note instead of losing the scenario's other variants. */
export async function attempt<T>(ctx: ScenarioContext, what: string, fn: () => Promise<T>, failures: string[]): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    const text = err instanceof Error ? err.message : String(err);
    ctx.log(`  ${what} FAILED: ${text}`);
    failures.push(`${what} failed: ${text.split('\n')[0].slice(0, 300)}`);
    return undefined;
  }
}

/**
 * Starts a system for a side-by-side scenario and sets up its rig (sims, clients); `cleanup` stops it.
 * A failure becomes a note and `undefined`, so the other systems are still measured.
 */
export function startRig<S extends SystemUnderTest, R>(
  ctx: ScenarioContext,
  cleanup: Cleanup,
  failures: string[],
  label: string,
  start: () => Promise<S>,
  rigUp: (sut: S) => Promise<R>,
): Promise<R | undefined> {
  return attempt(
    ctx,
    label,
    async () => {
      const sut = await start();
      ctx.log(`  ${label}: pid ${sut.pid}`);
      cleanup.add(label, () => sut.stop().then(() => undefined));
      return rigUp(sut);
    },
    failures,
  );
}

/**
 * One sim process of `workers` one-unit workers with instant tasks and the bench program already set
 * up on them, plus a client that has registered and set up that program on the system under test.
 */
export async function instantWorkers(
  sut: SystemUnderTest,
  cleanup: Cleanup,
  opts: { workers: number; prefix: string; maxLogEntries: number; niceness?: number },
): Promise<{ sims: SimGroup; api: ApiClient; hashId: string }> {
  const hashId = await benchHashId();
  const sims = await SimGroup.start({
    coordinator: sut.clusterAddress,
    workers: opts.workers,
    processes: 1,
    prefix: opts.prefix,
    options: {
      computeUnits: 1,
      setupDelayMs: 0,
      contributionDelayMs: 0,
      proveDelayMs: 0,
      aggregateDelayMs: 0,
      proofValues: 16,
      finalProofBytes: 256,
      preSetup: [{ hashId, withHints: false }],
      maxLogEntries: opts.maxLogEntries,
    },
    niceness: opts.niceness ?? 0,
  });
  cleanup.add('sims', () => sims.stop());
  await sims.waitRegistered(60_000);
  const api = new ApiClient(sut.apiAddress, 1);
  cleanup.add('api client', () => api.close());
  await prepareProgram(sut, api);
  return { sims, api, hashId };
}
