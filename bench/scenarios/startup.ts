/**
 * `startup`: process start → serving (the binary's "zisk-coordinator serving" log line, seen by the
 * bench on the pipe), and SIGTERM → process exit when idle. Baseline: a raw grpc-js process binding
 * the same three listeners (echo coordinator `--standalone`).
 */
import { spawn } from 'node:child_process';
import { benchModule, exited, sleep, trackChild } from '../lib/proc';
import { startCoordinator } from '../lib/scenario-helpers';
import { summarize } from '../lib/stats';
import { metric, type Scenario, type ScenarioContext } from '../lib/types';

async function baselineOnce(): Promise<{ startupMs: number; exitMs: number }> {
  const t0 = performance.now();
  const child = trackChild(spawn(process.execPath, [benchModule('baselines/echo-coordinator.js'), '--standalone'], { stdio: ['ignore', 'pipe', 'pipe'] }));
  const gone = exited(child);
  const startupMs = await new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('echo baseline not serving within 20 s')), 20_000);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString('utf8');
      if (out.includes('"echo baseline serving"')) {
        clearTimeout(timer);
        resolve(performance.now() - t0);
      }
    });
    void gone.then(() => reject(new Error('echo baseline exited during startup')));
  });
  await sleep(300);
  const t1 = performance.now();
  child.kill('SIGTERM');
  const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await gone;
  clearTimeout(killer);
  return { startupMs, exitMs: performance.now() - t1 };
}

async function coordinatorOnce(ctx: ScenarioContext, rep: number): Promise<{ startupMs: number; reportedMs: number; exitMs: number; code: number | null }> {
  const c = await startCoordinator(ctx, `startup-${rep}`, { logMode: 'pipe' });
  await sleep(300);
  const stop = await c.stop();
  return { startupMs: c.startupMs, reportedMs: c.reportedStartupMs, exitMs: stop.exitMs, code: stop.code };
}

export const startup: Scenario = {
  name: 'startup',
  summary: 'process start → serving, and SIGTERM → exit when idle',
  async run(ctx) {
    const reps = ctx.smoke ? 2 : 7;
    const base = { start: [] as number[], exit: [] as number[] };
    const coord = { start: [] as number[], reported: [] as number[], exit: [] as number[], codes: [] as Array<number | null> };
    // Interleaved, so page-cache warmth and background load hit both alike.
    for (let i = 0; i < reps; i++) {
      const b = await baselineOnce();
      base.start.push(b.startupMs);
      base.exit.push(b.exitMs);
      const c = await coordinatorOnce(ctx, i);
      coord.start.push(c.startupMs);
      coord.reported.push(c.reportedMs);
      coord.exit.push(c.exitMs);
      coord.codes.push(c.code);
    }
    const cs = summarize(coord.start);
    const bs = summarize(base.start);
    const ce = summarize(coord.exit);
    const be = summarize(base.exit);
    return [
      {
        scenario: 'startup',
        metrics: [
          metric('startup_p50', 'ms', cs.p50, { baseline: bs.p50, target: { on: 'value', op: '<=', value: 500 } }),
          metric('startup_max', 'ms', cs.max, { baseline: bs.max }),
          metric('sigterm_exit_p50', 'ms', ce.p50, { baseline: be.p50, target: { on: 'value', op: '<=', value: 500 } }),
          metric('sigterm_exit_max', 'ms', ce.max, { baseline: be.max }),
        ],
        notes: [
          `${reps} runs each, interleaved with the baseline; startup is spawn → the serving log line on the pipe (the coordinator's own startup_ms: p50 ${summarize(coord.reported).p50?.toFixed(0) ?? '—'} ms, i.e. the rest is Node boot and module loading); exit is SIGTERM → process exit after 300 ms idle.`,
          `Coordinator exit codes: ${[...new Set(coord.codes)].join(', ')}.`,
        ],
      },
    ];
  },
};
