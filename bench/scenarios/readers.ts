/**
 * `readers`: many clients reading one big result. A prove job ends with a 100 MiB final proof (the
 * sim's `finalProofBytes`); then 20 readers read it at once over their own connections, with WatchJob
 * and, separately, with WaitJobResult. Measures the coordinator's peak RSS growth while they read, its
 * RSS once they are gone, and its main-loop max delay (its own metric), against one reader of the same
 * result in the same process and run. Every reader must get the same bytes (equal sha256 of the body).
 */
import { ApiClient } from '../lib/api';
import { Cleanup, RssSampler, sleep, waitUntil } from '../lib/proc';
import { sampleValue } from '../lib/prom';
import { readResult, type ReadMethod, type ReadOutcome } from '../lib/result-reader';
import { startCoordinator } from '../lib/scenario-helpers';
import { SimGroup } from '../lib/sims';
import { MiB } from '../lib/stats';
import type { CoordinatorProcess } from '../lib/sut';
import { SMALL_INPUT, benchHashId, prepareProgram } from '../lib/workload';
import { metric, type Scenario, type ScenarioContext, type ScenarioResult } from '../lib/types';

interface Sizes {
  proofBytes: number;
  readers: number;
  /** How long after the last reader left the RSS is read again. */
  settleMs: number;
}

const FULL: Sizes = { proofBytes: 100 * MiB, readers: 20, settleMs: 5_000 };
const SMOKE: Sizes = { proofBytes: 1 * MiB, readers: 3, settleMs: 200 };

interface Phase {
  readers: number;
  rssBefore: number;
  peakGrowth: number;
  /** RSS `settleMs` after the last reader finished, minus RSS before. */
  afterGrowth: number;
  mainMaxMs: number;
  elapsedMs: number;
  outcomes: ReadOutcome[];
}

async function phase(ctx: ScenarioContext, sut: CoordinatorProcess, method: ReadMethod, jobId: string, readers: number, s: Sizes): Promise<Phase> {
  await sleep(300);
  await sut.loop();
  const rssBefore = sut.memory()?.rssBytes ?? 0;
  const sampler = new RssSampler(sut.pid, 10).start();
  const t0 = performance.now();
  const outcomes = await Promise.all(Array.from({ length: readers }, () => readResult(sut.apiAddress, method, jobId)));
  const elapsedMs = performance.now() - t0;
  const loop = await sut.loop();
  await sleep(s.settleMs);
  const { maxRssBytes } = sampler.stop();
  const after = sut.memory()?.rssBytes ?? 0;
  const p: Phase = {
    readers,
    rssBefore,
    peakGrowth: Math.max(0, maxRssBytes - rssBefore),
    afterGrowth: after - rssBefore,
    mainMaxMs: loop.main.maxMs,
    elapsedMs,
    outcomes,
  };
  ctx.log(
    `  ${method} × ${readers}: ${Math.round(elapsedMs)} ms, peak RSS +${(p.peakGrowth / MiB).toFixed(0)} MiB, ` +
      `after ${s.settleMs} ms ${(p.afterGrowth / MiB).toFixed(0)} MiB, main-loop max ${p.mainMaxMs.toFixed(0)} ms`,
  );
  return p;
}

/** Every reader ended OK with the same body, whose last message holds the whole proof. */
function intact(p: Phase, proofBytes: number, reference: string | undefined): boolean {
  return p.outcomes.every((o) => o.status === 0 && o.digest === (reference ?? p.outcomes[0].digest) && o.lastMessageBytes > proofBytes);
}

export const readers: Scenario = {
  name: 'readers',
  summary: '20 WatchJob / WaitJobResult readers of a 100 MiB result vs 1: peak RSS growth, RSS after they leave, main-loop max',
  async run(ctx) {
    const s = ctx.smoke ? SMOKE : FULL;
    const cleanup = new Cleanup();
    const results: ScenarioResult[] = [];
    try {
      const sut = await startCoordinator(ctx, 'readers');
      cleanup.add('coordinator', () => sut.stop().then(() => undefined));
      const hashId = await benchHashId();
      const sims = await SimGroup.start({
        coordinator: sut.clusterAddress,
        workers: 1,
        processes: 1,
        prefix: 'readers',
        options: {
          computeUnits: 1,
          setupDelayMs: 0,
          contributionDelayMs: 0,
          proveDelayMs: 0,
          aggregateDelayMs: 0,
          finalProofBytes: s.proofBytes,
          preSetup: [{ hashId, withHints: false }],
          maxLogEntries: 64,
        },
      });
      cleanup.add('sims', () => sims.stop());
      await sims.waitRegistered(60_000);
      const api = new ApiClient(sut.apiAddress, 1);
      cleanup.add('api client', () => api.close());
      await prepareProgram(sut, api);
      const jobId = await api.submitProve(hashId, { inline: SMALL_INPUT });
      // Completion from /metrics, so no client reads the result before the measured readers do.
      await waitUntil(
        async () => (sampleValue(await sut.scrape(), 'coordinator_jobs_total', { kind: 'prove', outcome: 'success' }) ?? 0) >= 1,
        120_000,
        'the prove job completed',
        100,
      );
      ctx.log(`readers: job ${jobId} completed with a ${s.proofBytes / MiB} MiB proof`);
      // One unmeasured read first: the first reader after completion otherwise pays for the process
      // settling (the proof's file being synced, lazy code paths), which lands on whichever phase runs first.
      await readResult(sut.apiAddress, 'WaitJobResult', jobId);
      for (const method of ['WatchJob', 'WaitJobResult'] as const) {
        const one = await phase(ctx, sut, method, jobId, 1, s);
        const many = await phase(ctx, sut, method, jobId, s.readers, s);
        const reference = one.outcomes[0]?.digest;
        const ok = intact(one, s.proofBytes, undefined) && intact(many, s.proofBytes, reference);
        const mib = (b: number): number => b / MiB;
        results.push({
          scenario: 'readers',
          variant: method === 'WatchJob' ? 'watch' : 'wait',
          metrics: [
            metric('rss_peak_growth', 'MiB', mib(many.peakGrowth), { baseline: mib(one.peakGrowth), target: { on: 'value', op: '<=', value: 2 * s.proofBytes / MiB, text: `≤ ${(2 * s.proofBytes) / MiB} MiB` } }),
            metric('rss_after_readers', 'MiB', mib(many.afterGrowth), { baseline: mib(one.afterGrowth), target: { on: 'value', op: '<=', value: s.proofBytes / MiB, text: `≤ ${s.proofBytes / MiB} MiB` } }),
            metric('main_loop_max', 'ms', many.mainMaxMs, { baseline: one.mainMaxMs, target: { on: 'value', op: '<=', value: 200 } }),
            metric('read_time', 'ms', many.elapsedMs, { baseline: one.elapsedMs }),
            metric('bytes_identical', 'bool', ok ? 1 : 0, { target: { on: 'value', op: '>=', value: 1, text: '= 1' } }),
          ],
          notes: [
            `One completed prove job with a ${s.proofBytes / MiB} MiB final proof; ${s.readers} concurrent ${method} readers (coordinator column) against 1 reader (baseline column), one after the other in the same coordinator process. Each reader has its own HTTP/2 connection with a Rust SDK client's windows (2 MiB stream, 5 MiB connection) and hashes the body as it arrives.`,
            `RSS growth is over the RSS just before the readers started (${mib(one.rssBefore).toFixed(0)} and ${mib(many.rssBefore).toFixed(0)} MiB); rss_after_readers is read ${s.settleMs} ms after the last reader finished. main_loop_max is coordinator_event_loop_delay_seconds{thread="main",stat="max"} over the reading.`,
            `bytes_identical: every reader ended with status OK and the same sha256 of its response body, whose last message is larger than the proof.`,
            ...(ok ? [] : [`readers failed: ${JSON.stringify([...one.outcomes, ...many.outcomes].map((o) => ({ status: o.status, bytes: o.bytes, last: o.lastMessageBytes })).slice(0, 5))}`]),
          ],
        });
      }
    } finally {
      await cleanup.run(ctx.log);
    }
    return results;
  },
};
