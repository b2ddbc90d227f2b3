/**
 * `fanout`: a 64 MiB input relayed to the 16 workers of a job. Pushed: PushJobInput in 2 MiB chunks,
 * the coordinator relaying each chunk to every worker as `input_stream_data`; inline (reported only):
 * the input inside the JobRequest, so every worker's contribution task carries all of it. Measures
 * aggregate egress (16 × input bytes / first byte pushed → last byte received by a worker, sim clocks)
 * and the coordinator's RSS growth over the transfer (sampled every 10 ms from /proc). Baseline: the
 * echo coordinator writing the same encoded chunk to the 16 streams with write()/'drain'.
 */
import { ApiClient } from '../lib/api';
import { Cleanup, RssSampler, sleep, waitUntil } from '../lib/proc';
import { startCoordinator, startRig } from '../lib/scenario-helpers';
import { SimGroup } from '../lib/sims';
import { MiB, mbPerSecond } from '../lib/stats';
import { EchoBaseline, type SystemUnderTest } from '../lib/sut';
import { benchHashId, prepareProgram } from '../lib/workload';
import { metric, type Scenario, type ScenarioContext } from '../lib/types';

interface Sizes {
  workers: number;
  inputBytes: number;
  chunkBytes: number;
  simProcesses: number;
}

const FULL: Sizes = { workers: 16, inputBytes: 64 * MiB, chunkBytes: 2 * MiB, simProcesses: 2 };
const SMOKE: Sizes = { workers: 2, inputBytes: 1 * MiB, chunkBytes: 256 * 1024, simProcesses: 1 };

interface Transfer {
  egressMBps: number | null;
  elapsedMs: number | null;
  rssGrowthBytes: number;
  delivered: number;
  mainMaxMs: number;
}

interface Measured {
  /** The median-egress pushed transfer; RSS growth is the first transfer's (a fresh process). */
  pushed: Transfer;
  /** Egress of every pushed transfer, in round order. */
  pushedRates: Array<number | null>;
  inline: Transfer;
}

const PUSHED_ROUNDS = 3;

function makeInput(bytes: number): Buffer {
  const b = Buffer.allocUnsafe(bytes);
  for (let i = 0; i < bytes; i += 4) b.writeUInt32LE((i * 2654435761) >>> 0, i);
  return b;
}

/** One system with its sims and a client, kept for every transfer. */
interface Rig {
  label: string;
  sut: SystemUnderTest;
  sims: SimGroup;
  api: ApiClient;
  hashId: string;
  pushed: Transfer[];
  inline?: Transfer;
  broken?: string;
}

async function rigUp(label: string, sut: SystemUnderTest, s: Sizes, cleanup: Cleanup): Promise<Rig> {
  const hashId = await benchHashId();
  const sims = await SimGroup.start({
    coordinator: sut.clusterAddress,
    workers: s.workers,
    processes: s.simProcesses,
    prefix: `fan-${label}`,
    options: {
      computeUnits: 1,
      setupDelayMs: 0,
      // The job stays in its contribution phase for the whole transfer; it is cancelled afterwards.
      contributionDelayMs: 600_000,
      recoveryDelayMs: 0,
      preSetup: [{ hashId, withHints: false }],
      maxLogEntries: 256,
    },
  });
  cleanup.add(`${label} sims`, () => sims.stop());
  await sims.waitRegistered(60_000);
  const api = new ApiClient(sut.apiAddress, 1);
  cleanup.add(`${label} api client`, () => api.close());
  await prepareProgram(sut, api);
  return { label, sut, sims, api, hashId, pushed: [] };
}

async function pushedTransfer(rig: Rig, s: Sizes, input: Buffer): Promise<Transfer> {
  const { sut, sims, api } = rig;
  const total = s.inputBytes * s.workers;
  const pushedId = await api.submitProve(rig.hashId, { streamUri: 'grpc://bench/fanout' });
  await waitUntil(
    async () => (await sims.count([{ dir: 'in', kind: 'execute_task', jobId: pushedId, taskType: 0 }]))[0] >= s.workers,
    30_000,
    'contribution tasks on every worker',
  );
  const chunks: Buffer[] = [];
  for (let off = 0; off < s.inputBytes; off += s.chunkBytes) chunks.push(input.subarray(off, Math.min(s.inputBytes, off + s.chunkBytes)));
  await sleep(200);
  await sut.loop();
  const rss0 = sut.memory()?.rssBytes ?? 0;
  const sampler = new RssSampler(sut.pid, 10).start();
  const { firstWriteAt } = await api.pushInput(pushedId, chunks);
  await waitUntil(async () => (await sims.streamTotals(pushedId)).inputBytes >= total, 300_000, 'every input byte on every worker', 25);
  const { maxRssBytes } = sampler.stop();
  const pushedLoop = await sut.loop();
  const [lastIn] = await sims.lastAt([{ dir: 'in', kind: 'input_stream_data', jobId: pushedId }]);
  const pushedMs = lastIn !== null ? lastIn - firstWriteAt : null;
  const delivered = (await sims.streamTotals(pushedId)).inputBytes;
  await api.cancel(pushedId);
  await api.watch(pushedId, 10_000);
  await sleep(500);
  return {
    egressMBps: mbPerSecond(total, pushedMs),
    elapsedMs: pushedMs,
    rssGrowthBytes: Math.max(0, maxRssBytes - rss0),
    delivered,
    mainMaxMs: pushedLoop.main.maxMs,
  };
}

async function inlineTransfer(rig: Rig, s: Sizes, input: Buffer): Promise<Transfer> {
  const { sut, sims, api } = rig;
  const total = s.inputBytes * s.workers;
  await sut.loop();
  const rss1 = sut.memory()?.rssBytes ?? 0;
  const sampler = new RssSampler(sut.pid, 10).start();
  const t0 = performance.timeOrigin + performance.now();
  const inlineId = await api.submitProve(rig.hashId, { inline: input }, 120_000);
  await waitUntil(
    async () => (await sims.count([{ dir: 'in', kind: 'execute_task', jobId: inlineId, taskType: 0 }]))[0] >= s.workers,
    300_000,
    'the inline contribution task on every worker',
    25,
  );
  const inlineMax = sampler.stop().maxRssBytes;
  const inlineLoop = await sut.loop();
  const [lastTask] = await sims.lastAt([{ dir: 'in', kind: 'execute_task', jobId: inlineId, taskType: 0 }]);
  const inlineMs = lastTask !== null ? lastTask - t0 : null;
  await api.cancel(inlineId);
  await api.watch(inlineId, 10_000);
  return {
    egressMBps: mbPerSecond(total, inlineMs),
    elapsedMs: inlineMs,
    rssGrowthBytes: Math.max(0, inlineMax - rss1),
    delivered: total,
    mainMaxMs: inlineLoop.main.maxMs,
  };
}

async function step(ctx: ScenarioContext, rig: Rig, what: string, fn: () => Promise<void>): Promise<void> {
  if (rig.broken) return;
  ctx.log(`  ${rig.label}: ${what}`);
  try {
    await fn();
  } catch (err) {
    rig.broken = err instanceof Error ? err.message : String(err);
    ctx.log(`  ${rig.label} FAILED: ${rig.broken}`);
  }
}

function measuredOf(rig: Rig | undefined): Measured | undefined {
  if (!rig || rig.broken || rig.pushed.length === 0 || !rig.inline) return undefined;
  const byEgress = [...rig.pushed].sort((a, b) => (a.egressMBps ?? -1) - (b.egressMBps ?? -1));
  const median = byEgress[Math.floor((byEgress.length - 1) / 2)];
  return {
    pushed: { ...median, rssGrowthBytes: rig.pushed[0].rssGrowthBytes, delivered: Math.min(...rig.pushed.map((t) => t.delivered)) },
    pushedRates: rig.pushed.map((t) => t.egressMBps),
    inline: rig.inline,
  };
}

export const fanout: Scenario = {
  name: 'fanout',
  summary: 'a 64 MiB input to 16 workers, pushed in 2 MiB chunks (and inline, reported only): egress MB/s, coordinator RSS growth',
  async run(ctx) {
    const s = ctx.smoke ? SMOKE : FULL;
    const failures: string[] = [];
    const cleanup = new Cleanup();
    let base: Measured | undefined;
    let c: Measured | undefined;
    try {
      const start = (label: string, sut: () => Promise<SystemUnderTest>): Promise<Rig | undefined> =>
        startRig(ctx, cleanup, failures, label, sut, (system) => rigUp(label, system, s, cleanup));
      const baseRig = await start('baseline', () => EchoBaseline.start({ workersPerJob: 0 }));
      const coordRig = await start('coordinator', () => startCoordinator(ctx, 'fanout'));
      const rigs = [baseRig, coordRig].filter((r): r is Rig => r !== undefined);
      const input = makeInput(s.inputBytes);
      const rounds = ctx.smoke ? 1 : PUSHED_ROUNDS;
      for (let round = 0; round < rounds; round++) {
        for (let i = 0; i < rigs.length; i++) {
          const rig = rigs[(i + round) % rigs.length];
          await step(ctx, rig, `pushed ${s.inputBytes / MiB} MiB in ${s.chunkBytes / MiB} MiB chunks to ${s.workers} workers (round ${round + 1})`, async () => {
            rig.pushed.push(await pushedTransfer(rig, s, input));
          });
        }
      }
      for (const rig of rigs) {
        await step(ctx, rig, `inline ${s.inputBytes / MiB} MiB inside the JobRequest`, async () => {
          rig.inline = await inlineTransfer(rig, s, input);
        });
      }
      for (const r of rigs) if (r.broken) failures.push(`${r.label} failed: ${r.broken.split('\n')[0].slice(0, 300)}`);
      base = measuredOf(baseRig);
      c = measuredOf(coordRig);
    } finally {
      await cleanup.run(ctx.log);
    }
    const mib = (b: number | undefined): number | null => (b === undefined ? null : b / MiB);
    const f = (n: number | null | undefined): string => (n === null || n === undefined ? '—' : n.toFixed(0));
    const rates = (m: Measured | undefined): string => (m ? m.pushedRates.map(f).join(', ') : '—');
    return [
      {
        scenario: 'fanout',
        variant: 'pushed',
        metrics: [
          metric('egress', 'MB/s', c?.pushed.egressMBps ?? null, { baseline: base?.pushed.egressMBps ?? null, target: { on: 'ratio', op: '>=', value: 0.8 } }),
          metric('rss_growth', 'MiB', mib(c?.pushed.rssGrowthBytes), {
            baseline: mib(base?.pushed.rssGrowthBytes),
            target: { on: 'value', op: '<=', value: 2 * (s.inputBytes / MiB), text: `≤ ${2 * (s.inputBytes / MiB)} (2× input)` },
          }),
          metric('main_loop_max', 'ms', c?.pushed.mainMaxMs ?? null, { baseline: base?.pushed.mainMaxMs ?? null }),
        ],
        notes: [
          `${s.inputBytes / MiB} MiB pushed in ${s.chunkBytes / MiB} MiB chunks to ${s.workers} workers (${s.simProcesses} sim processes, one connection per worker): ${(s.inputBytes * s.workers) / MiB} MiB of egress, clocked from the first chunk written by the client to the last byte received by a worker; elapsed ${f(c?.pushed.elapsedMs)} ms (baseline ${f(base?.pushed.elapsedMs)} ms).`,
          `Delivered ${c?.pushed.delivered ?? '—'} bytes per transfer (expected ${s.inputBytes * s.workers}). Both systems stay up and alternate transfers; egress is the median of the rounds (coordinator ${rates(c)}, baseline ${rates(base)} MB/s), RSS growth the first transfer's (a fresh process): its peak RSS (sampled every 10 ms) minus the RSS right before it.`,
          ...failures,
        ],
      },
      {
        scenario: 'fanout',
        variant: 'inline',
        metrics: [
          metric('egress', 'MB/s', c?.inline.egressMBps ?? null, { baseline: base?.inline.egressMBps ?? null }),
          metric('rss_growth', 'MiB', mib(c?.inline.rssGrowthBytes), { baseline: mib(base?.inline.rssGrowthBytes) }),
          metric('main_loop_max', 'ms', c?.inline.mainMaxMs ?? null, { baseline: base?.inline.mainMaxMs ?? null }),
        ],
        notes: [
          `Reported only. Clock from the JobRequest (which uploads the ${s.inputBytes / MiB} MiB) to the last worker receiving its contribution task; elapsed ${f(c?.inline.elapsedMs)} ms (baseline ${f(base?.inline.elapsedMs)} ms).`,
        ],
      },
    ];
  },
};
