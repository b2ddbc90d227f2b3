/**
 * `barrier`: one prove job across 256 workers (instant tasks), repeated. Measures, with sim-side
 * timestamps on one host clock, the time from the last worker sending its contribution to the last
 * worker receiving its PROVE task: the coordinator's phase-1 → phase-2 barrier, including the fan-out
 * of 256 PROVE tasks that each carry all 256 challenges. Baseline: the echo coordinator, which waits
 * for the 256 contribution messages and then writes the 256 PROVE messages, and nothing else.
 */
import { Cleanup, sleep } from '../lib/proc';
import { SCHEDULER_VARIANTS, attempt, instantWorkers, startCoordinator } from '../lib/scenario-helpers';
import { summarize, type Summary } from '../lib/stats';
import { CoordinatorProcess, EchoBaseline, type SystemUnderTest } from '../lib/sut';
import { SMALL_INPUT } from '../lib/workload';
import { metric, type Scenario, type ScenarioContext, type ScenarioResult } from '../lib/types';

interface Sizes {
  workers: number;
  reps: number;
  warmup: number;
}

const FULL: Sizes = { workers: 256, reps: 50, warmup: 3 };
const SMOKE: Sizes = { workers: 8, reps: 3, warmup: 1 };

interface Measured {
  barrier: Summary;
  job: Summary;
  failed: number;
  firstFailure?: string;
  mainMaxMs: number;
}

async function measure(_ctx: ScenarioContext, sut: SystemUnderTest, s: Sizes, cleanup: Cleanup): Promise<Measured> {
  const { sims, api, hashId } = await instantWorkers(sut, cleanup, { workers: s.workers, prefix: 'bar', maxLogEntries: 32 });
  const barrier: number[] = [];
  const job: number[] = [];
  let failed = 0;
  let firstFailure: string | undefined;
  await sut.loop();
  for (let rep = 0; rep < s.warmup + s.reps; rep++) {
    const t0 = performance.timeOrigin + performance.now();
    const id = await api.submitProve(hashId, { inline: SMALL_INPUT });
    const o = await api.watch(id, 60_000);
    if (o.status !== 'completed') {
      failed++;
      firstFailure ??= `${o.status}: ${o.detail ?? ''}`;
      continue;
    }
    const [lastContribution, lastProve] = await sims.lastAt([
      { dir: 'out', kind: 'execute_task_response', jobId: id, taskType: 0 },
      { dir: 'in', kind: 'execute_task', jobId: id, taskType: 1 },
    ]);
    if (rep < s.warmup) continue;
    if (lastContribution !== null && lastProve !== null) barrier.push(lastProve - lastContribution);
    job.push(o.at - t0);
    await sleep(10);
  }
  const loop = await sut.loop();
  const m: Measured = { barrier: summarize(barrier), job: summarize(job), failed, mainMaxMs: loop.main.maxMs };
  if (firstFailure) m.firstFailure = firstFailure;
  return m;
}

async function runOn(ctx: ScenarioContext, start: () => Promise<SystemUnderTest>, s: Sizes): Promise<Measured & { errors: string[] }> {
  const cleanup = new Cleanup();
  try {
    const sut = await start();
    cleanup.add(sut.kind, () => sut.stop().then(() => undefined));
    const m = await measure(ctx, sut, s, cleanup);
    return { ...m, errors: sut instanceof CoordinatorProcess ? sut.errorLines(3) : [] };
  } finally {
    await cleanup.run(ctx.log);
  }
}

export const barrier: Scenario = {
  name: 'barrier',
  summary: 'one prove job across 256 workers: last contribution sent → last PROVE received (sim clocks), ≥ 50 repetitions',
  async run(ctx) {
    const s = ctx.smoke ? SMOKE : FULL;
    const baseFailures: string[] = [];
    ctx.log('barrier: baseline');
    const base = await attempt(ctx, 'baseline', () => runOn(ctx, () => EchoBaseline.start({ workersPerJob: 0 }), s), baseFailures);
    const results: ScenarioResult[] = [];
    for (const v of SCHEDULER_VARIANTS) {
      ctx.log(`barrier: coordinator, ${v.label}`);
      const notes: string[] = [...baseFailures];
      const c = await attempt(
        ctx,
        `coordinator (${v.label})`,
        () => runOn(ctx, () => startCoordinator(ctx, `barrier-${v.name}`, { schedulerThread: v.schedulerThread }), s),
        notes,
      );
      const f = (n: number | null | undefined): string => (n === null || n === undefined ? '—' : n.toFixed(1));
      notes.unshift(
        `${s.workers} workers × 1 unit in one sim process (one connection each), instant tasks; ${s.reps} measured repetitions after ${s.warmup} warm-up; p99 of ${s.reps} samples is their maximum.`,
        `Whole job (submit → completed, incl. ${s.workers - 1} sequential aggregation steps): coordinator p50 ${f(c?.job.p50)} ms, baseline p50 ${f(base?.job.p50)} ms; main-thread loop max over the run: coordinator ${f(c?.mainMaxMs)} ms, baseline ${f(base?.mainMaxMs)} ms.`,
      );
      for (const l of c?.errors ?? []) notes.push(`coordinator error log: ${l}`);
      if (c && c.failed > 0) notes.push(`coordinator: ${c.failed} failed jobs (first: ${c.firstFailure ?? '?'})`);
      if (base && base.failed > 0) notes.push(`baseline: ${base.failed} failed jobs (first: ${base.firstFailure ?? '?'})`);
      results.push({
        scenario: 'barrier',
        variant: v.name,
        metrics: [
          metric('barrier_p50', 'ms', c?.barrier.p50 ?? null, { baseline: base?.barrier.p50 ?? null, target: { on: 'ratio', op: '<=', value: 1.5 } }),
          metric('barrier_p99', 'ms', c?.barrier.p99 ?? null, { baseline: base?.barrier.p99 ?? null, target: { on: 'ratio', op: '<=', value: 1.5 } }),
          metric('job_p50', 'ms', c?.job.p50 ?? null, { baseline: base?.job.p50 ?? null }),
        ],
        notes,
      });
    }
    return results;
  },
};
