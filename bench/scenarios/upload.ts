/**
 * `upload`: workers returning large results.
 * - proof relay: a `ProofStark` of 1M uint64 values (~9.6 MB packed) uploaded by a prover and relayed
 *   to the aggregator inside its AGGREGATE task: prover's send → aggregator's receipt (sim clocks).
 *   The aggregator checks the relayed values bit for bit (the coordinator keeps them packed bytes).
 * - final proof: an 8 MiB `FinalProof.proof_data` uploaded by the aggregator and delivered to the
 *   client in WatchJob's `completed` event: aggregator's send → client's receipt.
 * Both cross one worker→server upload (paced by the server's HTTP/2 receive window) and one download.
 * Baseline: the echo coordinator relaying the same bytes. A raw grpc-js probe then measures upload and
 * download with the default 64 KiB windows and with 16 MiB ones (reported only).
 */
import { ApiClient } from '../lib/api';
import { IpcChild } from '../lib/ipc';
import { benchModule, Cleanup, sleep } from '../lib/proc';
import { attempt, startCoordinator, startRig } from '../lib/scenario-helpers';
import { SimGroup, type SimJsonOptions } from '../lib/sims';
import { MB, MiB, median, mbPerSecond } from '../lib/stats';
import { EchoBaseline, type SystemUnderTest } from '../lib/sut';
import { SMALL_INPUT, benchHashId, prepareProgram } from '../lib/workload';
import { metric, type Metric, type Scenario, type ScenarioContext, type ScenarioResult } from '../lib/types';
import { packedProofStarkValues } from '../../src/sim/data';
import { defaultConfig } from '../../src/shared/config/schema';
import { probeTransfers, type ProbeApi } from '../baselines/window-probe';

interface Sizes {
  values: number;
  finalBytes: number;
  reps: number;
  probeSizes: number[];
  probeReps: number;
}

const FULL: Sizes = { values: 1 << 20, finalBytes: 8 * MiB, reps: 9, probeSizes: [8 * MiB, 32 * MiB], probeReps: 4 };
const SMOKE: Sizes = { values: 1000, finalBytes: 64 * 1024, reps: 1, probeSizes: [256 * 1024], probeReps: 1 };

const BIG_WINDOW = 16 * MiB;
/** The coordinator's default receive window: the baseline gets the same, so the ratio compares like with like. */
const COORDINATOR_WINDOW = defaultConfig().server.http2_window_bytes;

interface Measured {
  relayMs: number | null;
  relayMBps: number | null;
  finalMs: number | null;
  finalMBps: number | null;
  intact: boolean;
  completed: number;
  proofBytes: number;
  relayedBytes: number;
}

/** One system with its two sims and a client, ready to run upload jobs. */
export interface Rig {
  label: string;
  api: ApiClient;
  sims: SimGroup;
  hashId: string;
  relayMs: number[];
  finalMs: number[];
  intact: boolean;
  proofBytes: number;
  broken?: string;
}

/** How the sims reach the system (`wan`: through a delaying proxy) and what they send. */
export interface RigWiring {
  /** Where the sims connect (default: the system's worker port). */
  clusterAddress?: string;
  /** Added to every sim's options. */
  options?: SimJsonOptions;
  /** Per-worker overrides (default: worker 1 proves 400 ms later). */
  perWorker?: Record<number, SimJsonOptions>;
}

export async function rigUp(label: string, sut: SystemUnderTest, s: Pick<Sizes, 'values' | 'finalBytes'>, cleanup: Cleanup, wiring: RigWiring = {}): Promise<Rig> {
  const hashId = await benchHashId();
  const sims = await SimGroup.start({
    coordinator: wiring.clusterAddress ?? sut.clusterAddress,
    workers: 2,
    processes: 2,
    prefix: `up-${label}`,
    options: {
      computeUnits: 1,
      setupDelayMs: 0,
      contributionDelayMs: 0,
      proveDelayMs: 0,
      aggregateDelayMs: 0,
      proofValues: s.values,
      finalProofBytes: s.finalBytes,
      preSetup: [{ hashId, withHints: false }],
      maxLogEntries: 64,
      ...wiring.options,
    },
    // Worker 1 proves later, so the aggregator (worker 0, first to prove) is idle when its proofs
    // arrive and the relay is not queued behind the aggregator's first step.
    perWorker: wiring.perWorker ?? { 1: { proveDelayMs: 400 } },
  });
  cleanup.add(`${label} sims`, () => sims.stop());
  await sims.waitRegistered(60_000);
  const api = new ApiClient(sut.apiAddress, 1);
  cleanup.add(`${label} api client`, () => api.close());
  await prepareProgram(sut, api);
  return { label, api, sims, hashId, relayMs: [], finalMs: [], intact: true, proofBytes: 0 };
}

/**
 * One prove job: relay and final-proof latencies from the sims' and the client's clocks. Answers when
 * the relayed proof left the prover and reached the aggregator (host clock).
 */
export async function oneJob(rig: Rig, s: Pick<Sizes, 'values'>, record: boolean): Promise<{ proveOut: number | null; aggIn: number | null }> {
  const id = await rig.api.submitProve(rig.hashId, { inline: SMALL_INPUT });
  const o = await rig.api.watch(id, 120_000);
  if (o.status !== 'completed') throw new Error(`upload job ${id} ended ${o.status}: ${o.detail ?? ''}`);
  const [proveOut, aggIn, finalOut] = await rig.sims.lastAt([
    { dir: 'out', kind: 'execute_task_response', jobId: id, taskType: 1 },
    { dir: 'in', kind: 'execute_task', jobId: id, taskType: 2 },
    { dir: 'out', kind: 'execute_task_response', jobId: id, taskType: 2 },
  ]);
  const agg = await rig.sims.aggTasks(id);
  const relayed = agg.filter((a) => a.proofCount > 0);
  if (relayed.length === 0 || relayed.some((a) => !a.valuesIntact || a.valueCount !== s.values)) rig.intact = false;
  if (record) {
    rig.proofBytes = o.proofBytes;
    if (proveOut !== null && aggIn !== null) rig.relayMs.push(aggIn - proveOut);
    if (finalOut !== null) rig.finalMs.push(o.at - finalOut);
  }
  return { proveOut, aggIn };
}

function measuredOf(rig: Rig | undefined, s: Sizes): Measured | undefined {
  if (!rig || rig.broken) return undefined;
  // The relayed ProofList: one ProofStark (worker_idx, airgroup_id, packed values) inside field 1.
  const relayedBytes = packedProofStarkValues(s.values).length + 16;
  const r = median(rig.relayMs);
  const f = median(rig.finalMs);
  return {
    relayMs: r,
    relayMBps: mbPerSecond(relayedBytes, r),
    finalMs: f,
    finalMBps: mbPerSecond(s.finalBytes, f),
    intact: rig.intact,
    completed: rig.relayMs.length,
    proofBytes: rig.proofBytes,
    relayedBytes,
  };
}

/**
 * The systems run side by side and take turns job by job (rotating order), so the machine's drift
 * lands on all of them alike; the first job of each is a warm-up.
 */
async function interleavedJobs(ctx: ScenarioContext, rigs: Rig[], s: Sizes): Promise<void> {
  for (let rep = 0; rep <= s.reps; rep++) {
    for (let i = 0; i < rigs.length; i++) {
      const rig = rigs[(i + rep) % rigs.length];
      if (rig.broken) continue;
      try {
        await oneJob(rig, s, rep > 0);
      } catch (err) {
        rig.broken = err instanceof Error ? err.message : String(err);
        ctx.log(`  ${rig.label} FAILED: ${rig.broken}`);
      }
      await sleep(50);
    }
  }
}

async function probe(ctx: ScenarioContext, s: Sizes): Promise<{ metrics: Metric[]; notes: string[] }> {
  const metrics: Metric[] = [];
  const rows: string[] = [];
  for (const serverWindow of [undefined, BIG_WINDOW]) {
    const server = IpcChild.fork<ProbeApi>(benchModule('baselines/window-probe.js'));
    try {
      const { port } = await server.call('start', serverWindow ? { recvWindowBytes: serverWindow } : {});
      for (const size of s.probeSizes) {
        const up = median(await probeTransfers(port, { direction: 'up', size, reps: s.probeReps }));
        const label = `${size / MiB} MiB`;
        const win = serverWindow ? '16 MiB' : '64 KiB (grpc-js default)';
        metrics.push(metric(`probe_upload_${size / MiB}MiB_server_window_${serverWindow ? '16MiB' : '64KiB'}`, 'MB/s', mbPerSecond(size, up)));
        rows.push(`upload ${label}, server window ${win}: ${up?.toFixed(1) ?? '—'} ms (${mbPerSecond(size, up)?.toFixed(0) ?? '—'} MB/s)`);
        if (!serverWindow) {
          for (const clientWindow of [undefined, BIG_WINDOW]) {
            const down = median(await probeTransfers(port, { direction: 'down', size, reps: s.probeReps, ...(clientWindow ? { clientWindowBytes: clientWindow } : {}) }));
            metrics.push(metric(`probe_download_${size / MiB}MiB_client_window_${clientWindow ? '16MiB' : '64KiB'}`, 'MB/s', mbPerSecond(size, down)));
            rows.push(`download ${label}, client window ${clientWindow ? '16 MiB' : '64 KiB (default)'}: ${down?.toFixed(1) ?? '—'} ms (${mbPerSecond(size, down)?.toFixed(0) ?? '—'} MB/s)`);
          }
        }
      }
    } finally {
      await server.close();
    }
  }
  ctx.log(`  window probe: ${rows.join('; ')}`);
  return { metrics, notes: [`Raw grpc-js probe (no coordinator, idle processes): ${rows.join('; ')}.`] };
}

export const upload: Scenario = {
  name: 'upload',
  summary: 'large worker results: 1M-uint64 ProofStark relayed to the aggregator, 8 MiB final proof to the client; MB/s, latency; 64 KiB window probe',
  async run(ctx) {
    const s = ctx.smoke ? SMOKE : FULL;
    const failures: string[] = [];
    const cleanup = new Cleanup();
    let base: Measured | undefined;
    let bigBase: Measured | undefined;
    let c: Measured | undefined;
    try {
      const start = (label: string, sut: () => Promise<SystemUnderTest>): Promise<Rig | undefined> =>
        startRig(ctx, cleanup, failures, label, sut, (system) => rigUp(label.replace(/[^a-z0-9]+/gi, '-'), system, s, cleanup));
      const baseRig = await start('baseline', () => EchoBaseline.start({ workersPerJob: 2, recvWindowBytes: COORDINATOR_WINDOW }));
      const bigRig = await start('baseline (16 MiB windows)', () => EchoBaseline.start({ workersPerJob: 2, recvWindowBytes: BIG_WINDOW }));
      const coordRig = await start('coordinator', () => startCoordinator(ctx, 'upload'));
      const rigs = [baseRig, bigRig, coordRig].filter((r): r is Rig => r !== undefined);
      ctx.log(`upload: ${s.reps} jobs each after a warm-up, interleaved`);
      await interleavedJobs(ctx, rigs, s);
      for (const r of rigs) if (r.broken) failures.push(`${r.label} failed: ${r.broken.split('\n')[0].slice(0, 300)}`);
      base = measuredOf(baseRig, s);
      bigBase = measuredOf(bigRig, s);
      c = measuredOf(coordRig, s);
    } finally {
      await cleanup.run(ctx.log);
    }
    ctx.log('upload: window probe');
    const p = (await attempt(ctx, 'window probe', () => probe(ctx, s), failures)) ?? { metrics: [], notes: [] };
    const f = (n: number | null | undefined, d = 0): string => (n === null || n === undefined ? '—' : n.toFixed(d));
    const results: ScenarioResult[] = [
      {
        scenario: 'upload',
        variant: 'proof-relay',
        metrics: [
          metric('relay_throughput', 'MB/s', c?.relayMBps ?? null, { baseline: base?.relayMBps ?? null, target: { on: 'ratio', op: '>=', value: 0.8 } }),
          metric('relay_latency', 'ms', c?.relayMs ?? null, { baseline: base?.relayMs ?? null }),
          metric('values_bit_exact', 'bool', c ? (c.intact ? 1 : 0) : null, {
            baseline: base ? (base.intact ? 1 : 0) : null,
            target: { on: 'value', op: '>=', value: 1, text: '= 1' },
          }),
        ],
        notes: [
          `ProofStark of ${s.values} uint64 values: ${(packedProofStarkValues(s.values).length / MB).toFixed(2)} MB relayed worker → server → aggregator, from the prover's send to the aggregator's receipt; median of ${c?.completed ?? '—'} jobs (after 1 warm-up); 2 workers in 2 sim processes per system. The baseline, the 16 MiB-window baseline and the coordinator run side by side and take turns job by job.`,
          `values_bit_exact: the aggregator found every relayed value equal to the sim derivation (the relay view keeps ProofStark.values packed bytes; no uint64 is decoded on the way).`,
          `The baseline runs with the coordinator's default HTTP/2 receive window (${COORDINATOR_WINDOW / MiB} MiB); with 16 MiB windows it did ${f(bigBase?.relayMBps)} MB/s (${f(bigBase?.relayMs, 1)} ms), vs ${f(base?.relayMBps)} MB/s.`,
          ...failures,
        ],
      },
      {
        scenario: 'upload',
        variant: 'final-proof',
        metrics: [
          metric('final_proof_throughput', 'MB/s', c?.finalMBps ?? null, { baseline: base?.finalMBps ?? null, target: { on: 'ratio', op: '>=', value: 0.8 } }),
          metric('final_proof_latency', 'ms', c?.finalMs ?? null, { baseline: base?.finalMs ?? null }),
        ],
        notes: [
          `FinalProof.proof_data of ${s.finalBytes / MiB} MiB: aggregator's send → the client's WatchJob 'completed' event (proof bytes in the result: ${c?.proofBytes ?? '—'}).`,
          `Baseline with 16 MiB HTTP/2 receive windows on the server: ${f(bigBase?.finalMBps)} MB/s (${f(bigBase?.finalMs, 1)} ms), vs ${f(base?.finalMBps)} MB/s with grpc-js's fixed 64 KiB.`,
        ],
      },
      {
        scenario: 'upload',
        variant: 'window-probe',
        metrics: [
          metric('baseline16M_relay_throughput', 'MB/s', bigBase?.relayMBps ?? null, { baseline: base?.relayMBps ?? null }),
          metric('baseline16M_final_proof_throughput', 'MB/s', bigBase?.finalMBps ?? null, { baseline: base?.finalMBps ?? null }),
          ...p.metrics,
        ],
        notes: [
          'Reported only. In the two baseline16M rows the first figure is the echo baseline with 16 MiB server receive windows (set by TunedGrpcServer, as the coordinator sets its own) and the second the same baseline with grpc-js\'s fixed 64 KiB; the probe rows are raw grpc-js transfers between two idle processes.',
          ...p.notes,
        ],
      },
    ];
    return results;
  },
};
