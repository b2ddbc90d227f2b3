/**
 * `wan`: uploads to the server across a 10 ms round trip, where the server's HTTP/2 receive window
 * can bound them (at most a window per round trip; about half of one with Node's HTTP/2) before the
 * CPU does. A delaying proxy (bench/lib/delay-proxy.ts, 5 ms each way) sits between the system and
 * its peers:
 * - relay: a prover uploads a ~64 MiB `ProofStark` result, relayed to the aggregator inside its
 *   AGGREGATE task (prover's send → aggregator's receipt, sim clocks; both workers reach the worker
 *   port through the proxy, and the aggregator checks the values bit for bit). The aggregator's own
 *   proof is tiny, so one upload is in flight at a time.
 * - elf: RegisterGuestProgram of a 100 MiB ELF from a client that reaches the API port through the
 *   proxy (the client's call → its answer: upload, hash, cache write).
 * Each is timed end to end and on the wire (the upload alone, by the proxy's clock).
 * Systems, side by side: the coordinator with its default window (`[server] http2_window_bytes`,
 * 4 MiB), the echo baseline with the same 4 MiB windows (the same `TunedGrpcServer`), the coordinator
 * with 1 MiB (upstream's hyper server window; reported only, once) and the coordinator with 64 KiB
 * (grpc-js's fixed window, the figure before the setting existed; once, it takes ~50 s).
 */
import { ApiClient, fakeElf } from '../lib/api';
import type { DelayProxyApi, DelayProxyStats } from '../lib/delay-proxy';
import { IpcChild } from '../lib/ipc';
import { benchModule, Cleanup, hostNow, sleep } from '../lib/proc';
import { startCoordinator, startRig } from '../lib/scenario-helpers';
import { MB, MiB, mbPerSecond, median } from '../lib/stats';
import { EchoBaseline, type SystemUnderTest } from '../lib/sut';
import { metric, type Metric, type Scenario, type ScenarioContext, type ScenarioResult } from '../lib/types';
import { packedProofStarkValues } from '../../src/sim/data';
import { oneJob, rigUp, type Rig as RelayRig } from './upload';

interface Sizes {
  /** Packed size of the relayed ProofStark values (rounded down to whole values). */
  relayBytes: number;
  elfBytes: number;
  /** Measured rounds of the 4 MiB systems (after one warm-up round). */
  reps: number;
  /** Measure the 1 MiB-window coordinator too. */
  oneMiB: boolean;
}

const FULL: Sizes = { relayBytes: 64 * MiB, elfBytes: 100 * MiB, reps: 3, oneMiB: true };
const SMOKE: Sizes = { relayBytes: 256 * 1024, elfBytes: 512 * 1024, reps: 1, oneMiB: false };

/** One way; the round trip is twice this. */
const DELAY_MS = 5;
const RTT_MS = 2 * DELAY_MS;
const WINDOW_4M = 4 * MiB;
const WINDOW_1M = 1 * MiB;
const WINDOW_64K = 65535;
/**
 * The sims' own receive window (it paces the relay's second leg, coordinator → aggregator): the Rust
 * worker's, tonic over hyper (2 MiB per stream), the same for every system.
 */
const WORKER_WINDOW = 2 * MiB;
/** Whatever the system, the aggregator proves first and its own proof is this small. */
const AGGREGATOR_PROOF_VALUES = 16;
const WARMUP_ELF_BYTES = 64 * 1024;

type SystemKey = 'coordinator' | 'baseline' | 'coordinator1M' | 'coordinator64K';

interface WanRig {
  key: SystemKey;
  label: string;
  relay: RelayRig;
  /** The client of the ELF uploads, through the API proxy. */
  wanApi: ApiClient;
  proxies: { cluster: string; api: string };
  /** Rounds measured (after a warm-up round when `warmup`). */
  reps: number;
  warmup: boolean;
  elfMs: number[];
  /** The same transfers on the wire (the proxy's clock): first byte in → last byte out to the server. */
  relayWireMs: number[];
  elfWireMs: number[];
  /** Bytes of the last timed transfers as the proxy counted them (framing included). */
  wireBytes: { relay: number; elf: number };
  /** hash_id per ELF index (to compare across systems). */
  hashes: Map<number, string>;
  broken?: string;
}

interface Measured {
  relayMBps: number | null;
  relayMs: number | null;
  relayRuns: number[];
  relayWireMBps: number | null;
  relayWireRuns: number[];
  intact: boolean;
  elfMBps: number | null;
  elfMs: number | null;
  elfRuns: number[];
  elfWireMBps: number | null;
  elfWireRuns: number[];
  wireBytes: { relay: number; elf: number };
  proxy: { cluster: DelayProxyStats; api: DelayProxyStats } | undefined;
}

/** The number of ProofStark values whose packed encoding is about `bytes` (sim values average ~9.5 bytes). */
function valuesFor(bytes: number): number {
  const probe = 1 << 16;
  return Math.max(1, Math.floor(bytes / (packedProofStarkValues(probe).length / probe)));
}

async function wanRig(
  ctx: ScenarioContext,
  key: SystemKey,
  label: string,
  sut: SystemUnderTest,
  proxy: IpcChild<DelayProxyApi>,
  values: number,
  reps: number,
  warmup: boolean,
  cleanup: Cleanup,
): Promise<WanRig> {
  const { address: cluster } = await proxy.call('open', { target: sut.clusterAddress, delayMs: DELAY_MS });
  const { address: api } = await proxy.call('open', { target: sut.apiAddress, delayMs: DELAY_MS });
  const relay = await rigUp(key, sut, { values, finalBytes: 1024 }, cleanup, {
    clusterAddress: cluster,
    options: { receiveWindowBytes: WORKER_WINDOW },
    perWorker: { 0: { proofValues: AGGREGATOR_PROOF_VALUES }, 1: { proveDelayMs: 200 } },
  });
  const wanApi = new ApiClient(api, 1);
  cleanup.add(`${label} wan client`, () => wanApi.close());
  ctx.log(`  ${label}: worker port via ${cluster}, API via ${api}`);
  return { key, label, relay, wanApi, proxies: { cluster, api }, reps, warmup, elfMs: [], relayWireMs: [], elfWireMs: [], wireBytes: { relay: 0, elf: 0 }, hashes: new Map() };
}

/** ELF number `i` (distinct bytes, so a distinct hash_id, and the same bytes for every system). */
function elfNumber(elf: Buffer, i: number): Buffer {
  Buffer.from(`\x7fELF wan-bench-${i}-`).copy(elf);
  return elf;
}

/**
 * A sender's clock reading comes after its write call returned, by which time the proxy (another
 * process, on the other core) may already hold the first bytes, or all of a small upload: the window
 * opens this much earlier. Nothing else of 1 KiB or more crosses the link that close before an upload.
 */
const SEND_CLOCK_SLACK_MS = 50;

/** The upload between two host times, timed on the wire by the proxy; throws if the proxy saw none. */
async function wireMs(proxy: IpcChild<DelayProxyApi>, address: string, fromAt: number, toAt: number): Promise<{ ms: number; bytes: number }> {
  const t = await proxy.call('transfer', { address, lane: 'up', fromAt: fromAt - SEND_CLOCK_SLACK_MS, toAt });
  if (!t || t.lastOutAt === 0) throw new Error(`the proxy at ${address} saw no complete upload between the two times`);
  return { ms: t.lastOutAt - t.firstInAt, bytes: t.bytes };
}

async function oneRelay(rig: WanRig, proxy: IpcChild<DelayProxyApi>, values: number, record: boolean): Promise<void> {
  const { proveOut, aggIn } = await oneJob(rig.relay, { values }, record);
  if (!record) return;
  if (proveOut === null || aggIn === null) throw new Error('relay job without the prover send / aggregator receipt in the sims\' logs');
  const w = await wireMs(proxy, rig.proxies.cluster, proveOut, aggIn);
  rig.relayWireMs.push(w.ms);
  rig.wireBytes.relay = w.bytes;
}

async function oneElf(rig: WanRig, proxy: IpcChild<DelayProxyApi>, elf: Buffer, i: number, record: boolean): Promise<void> {
  const t0 = hostNow();
  const hashId = await rig.wanApi.registerProgram(elfNumber(elf, i), 300_000);
  const t1 = hostNow();
  rig.hashes.set(i, hashId);
  if (!record) return;
  rig.elfMs.push(t1 - t0);
  const w = await wireMs(proxy, rig.proxies.api, t0, t1);
  rig.elfWireMs.push(w.ms);
  rig.wireBytes.elf = w.bytes;
}

function measuredOf(rig: WanRig | undefined, relayBytes: number, s: Sizes, proxy: Measured['proxy']): Measured | undefined {
  if (!rig || rig.broken) return undefined;
  const relayMs = median(rig.relay.relayMs);
  const elfMs = median(rig.elfMs);
  const rates = (bytes: number, times: number[]): number[] => times.map((ms) => mbPerSecond(bytes, ms) ?? 0);
  return {
    relayMBps: mbPerSecond(relayBytes, relayMs),
    relayMs,
    relayRuns: rates(relayBytes, rig.relay.relayMs),
    relayWireMBps: mbPerSecond(relayBytes, median(rig.relayWireMs)),
    relayWireRuns: rates(relayBytes, rig.relayWireMs),
    intact: rig.relay.intact,
    elfMBps: mbPerSecond(s.elfBytes, elfMs),
    elfMs,
    elfRuns: rates(s.elfBytes, rig.elfMs),
    elfWireMBps: mbPerSecond(s.elfBytes, median(rig.elfWireMs)),
    elfWireRuns: rates(s.elfBytes, rig.elfWireMs),
    wireBytes: rig.wireBytes,
    proxy,
  };
}

const GAIN_TARGET = { on: 'value', op: '>=', value: 10, text: '≥ 10× (64 KiB window)' } as const;

/** What a window sustains at a round trip: window ÷ RTT, in MB/s. */
const ceilingMBps = (windowBytes: number, rttMs: number): number => windowBytes / MB / (rttMs / 1000);

export const wan: Scenario = {
  name: 'wan',
  summary: 'uploads across a 10 ms RTT (delaying proxy): a 64 MiB worker result relayed, a 100 MiB ELF; 4 MiB windows vs baseline, vs 64 KiB',
  async run(ctx) {
    const s = ctx.smoke ? SMOKE : FULL;
    const values = valuesFor(s.relayBytes);
    // The relayed ProofList: one ProofStark (worker_idx, airgroup_id, packed values) inside field 1.
    const relayBytes = packedProofStarkValues(values).length + 16;
    const failures: string[] = [];
    const cleanup = new Cleanup();
    const rigs: WanRig[] = [];
    const proxyStats = new Map<SystemKey, Measured['proxy']>();
    const t0 = hostNow();
    try {
      const proxy = IpcChild.fork<DelayProxyApi>(benchModule('lib/delay-proxy.js'));
      cleanup.add('delay proxy', () => proxy.close());
      const start = async (key: SystemKey, label: string, sut: () => Promise<SystemUnderTest>, reps: number, warmup: boolean): Promise<void> => {
        const rig = await startRig(ctx, cleanup, failures, label, sut, (system) => wanRig(ctx, key, label, system, proxy, values, reps, warmup, cleanup));
        if (rig) rigs.push(rig);
      };
      const windowEnv = (bytes: number): Record<string, string> => ({ ZISK_COORDINATOR_SERVER_HTTP2_WINDOW_BYTES: String(bytes) });
      await start('coordinator', 'coordinator (default window, 4 MiB)', () => startCoordinator(ctx, 'wan'), s.reps, true);
      await start('baseline', 'baseline (4 MiB windows)', () => EchoBaseline.start({ workersPerJob: 2, recvWindowBytes: WINDOW_4M }), s.reps, true);
      // Reported only: once, after a warm-up.
      if (s.oneMiB) await start('coordinator1M', 'coordinator (1 MiB window)', () => startCoordinator(ctx, 'wan-1MiB', { env: windowEnv(WINDOW_1M) }), 1, true);
      // Window-bound (~3 MB/s here, half a window per round trip) whatever the machine does: once, without a warm-up.
      await start('coordinator64K', 'coordinator (64 KiB window)', () => startCoordinator(ctx, 'wan-64KiB', { env: windowEnv(WINDOW_64K) }), 1, false);

      const elf = fakeElf('wan-bench', s.elfBytes);
      const warmElf = fakeElf('wan-bench-warm', WARMUP_ELF_BYTES);
      ctx.log(`wan: ${(relayBytes / MiB).toFixed(1)} MiB relay and ${s.elfBytes / MiB} MiB ELF per system and round, ${DELAY_MS} ms each way; ${s.reps} rounds after a warm-up, interleaved`);
      for (let round = 0; round <= s.reps; round++) {
        for (let i = 0; i < rigs.length; i++) {
          const rig = rigs[(i + round) % rigs.length];
          if (rig.broken || (round === 0 && !rig.warmup) || round > rig.reps) continue;
          const record = round > 0 || !rig.warmup;
          try {
            const r0 = hostNow();
            await oneRelay(rig, proxy, values, record);
            const r1 = hostNow();
            if (round === 0 || !rig.warmup) await oneElf(rig, proxy, warmElf, -1, false);
            const e0 = hostNow();
            if (round > 0) await oneElf(rig, proxy, elf, round, true);
            const e1 = hostNow();
            ctx.log(`  ${rig.label}, round ${round}${round === 0 ? ' (warm-up)' : ''}: relay job ${(r1 - r0).toFixed(0)} ms${round > 0 ? `, ELF ${(e1 - e0).toFixed(0)} ms` : ''}`);
          } catch (err) {
            rig.broken = err instanceof Error ? err.message : String(err);
            ctx.log(`  ${rig.label} FAILED: ${rig.broken}`);
          }
          await sleep(50);
        }
      }
      for (const rig of rigs) {
        if (rig.broken) failures.push(`${rig.label} failed: ${rig.broken.split('\n')[0].slice(0, 300)}`);
        try {
          proxyStats.set(rig.key, {
            cluster: await proxy.call('stats', { address: rig.proxies.cluster }),
            api: await proxy.call('stats', { address: rig.proxies.api }),
          });
        } catch {
          // reported as unknown
        }
      }
    } finally {
      await cleanup.run(ctx.log);
    }
    const elapsedS = (hostNow() - t0) / 1000;
    const m = (key: SystemKey): Measured | undefined => measuredOf(rigs.find((r) => r.key === key), relayBytes, s, proxyStats.get(key));
    const systems = { c: m('coordinator'), base: m('baseline'), c1: m('coordinator1M'), c64: m('coordinator64K') };
    const { c, base, c1, c64 } = systems;
    const hashesAgree = ((): boolean | null => {
      const withHashes = rigs.filter((r) => !r.broken && r.hashes.size > 0);
      if (withHashes.length < 2) return null;
      for (const r of withHashes) {
        for (const [i, h] of r.hashes) {
          for (const o of withHashes) if (o.hashes.has(i) && o.hashes.get(i) !== h) return false;
        }
      }
      return true;
    })();
    const stats = [...proxyStats.values()].filter((p): p is NonNullable<typeof p> => p !== undefined).flatMap((p) => [p.cluster, p.api]);
    const pauses = stats.reduce((n, p) => n + p.pauses, 0);
    const maxQueued = stats.reduce((n, p) => Math.max(n, p.maxQueuedBytes), 0);
    const common = [
      `${DELAY_MS} ms each way through a delaying TCP proxy in its own process (every chunk forwarded ${DELAY_MS} ms after it arrived, pipelined, backpressure both ways; source pauses over the run: ${pauses}, most bytes waiting in one direction: ${(maxQueued / MiB).toFixed(1)} MiB). The systems run side by side and take turns round by round; the 4 MiB systems are measured ${s.reps} times after a warm-up (medians), the 1 MiB coordinator once after a warm-up, the 64 KiB coordinator once. Scenario time ${elapsedS.toFixed(0)} s.`,
      `Window ÷ RTT at ${RTT_MS} ms: 64 KiB → ${ceilingMBps(WINDOW_64K, RTT_MS).toFixed(1)} MB/s, 1 MiB → ${ceilingMBps(WINDOW_1M, RTT_MS).toFixed(0)} MB/s, 4 MiB → ${ceilingMBps(WINDOW_4M, RTT_MS).toFixed(0)} MB/s (at 1 ms RTT: ${ceilingMBps(WINDOW_4M, 1).toFixed(0)} MB/s). Node's HTTP/2 (nghttp2) grants more only once half the window is consumed, so a window-bound upload moves about half a window per round trip: plan for a window of 2 × bandwidth × RTT.`,
      ...failures,
    ];
    const f = (n: number | null | undefined, d = 0): string => (n === null || n === undefined ? '—' : n.toFixed(d));
    const list = (xs: number[] | undefined): string => (xs && xs.length > 0 ? xs.map((v) => v.toFixed(v < 10 ? 1 : 0)).join(', ') : '—');
    const variant = (
      name: 'relay' | 'elf',
      e2e: (x: Measured) => number | null,
      wire: (x: Measured) => number | null,
      e2eRuns: (x: Measured) => number[],
      wireRuns: (x: Measured) => number[],
      latency: (x: Measured) => number | null,
      extra: Metric[],
      notes: string[],
    ): ScenarioResult => {
      const v = (x: Measured | undefined, get: (x: Measured) => number | null): number | null => (x ? get(x) : null);
      const gain = (get: (x: Measured) => number | null): number | null => {
        const a = v(c, get);
        const b = v(c64, get);
        return a !== null && b !== null && b > 0 ? a / b : null;
      };
      const perRun = (get: (x: Measured) => number[]): string =>
        `coordinator ${list(c && get(c))}; baseline ${list(base && get(base))}${s.oneMiB ? `; coordinator 1 MiB ${list(c1 && get(c1))}` : ''}; coordinator 64 KiB ${list(c64 && get(c64))}`;
      return {
        scenario: 'wan',
        variant: name,
        metrics: [
          metric('throughput', 'MB/s', v(c, e2e), { baseline: v(base, e2e), target: { on: 'ratio', op: '>=', value: 0.8 } }),
          metric('gain_over_64KiB_window', '×', gain(e2e), { target: GAIN_TARGET }),
          metric('wire_throughput', 'MB/s', v(c, wire), { baseline: v(base, wire), target: { on: 'ratio', op: '>=', value: 0.8 } }),
          metric('wire_gain_over_64KiB_window', '×', gain(wire), { target: GAIN_TARGET }),
          metric('throughput_64KiB_window', 'MB/s', v(c64, e2e)),
          ...(s.oneMiB ? [metric('throughput_1MiB_window', 'MB/s', v(c1, e2e))] : []),
          metric('latency', 'ms', v(c, latency), { baseline: v(base, latency) }),
          ...extra,
        ],
        notes: [
          ...notes,
          `throughput is end to end; wire_throughput is the upload alone as the proxy saw it (first byte of it into the proxy → last byte out to the server), what the server's receive window paces. gain_over_64KiB_window: the coordinator with its default window ÷ the coordinator with http2_window_bytes = 65535 (grpc-js's fixed window before the setting).`,
          `Per run, end to end (MB/s): ${perRun(e2eRuns)}. On the wire: ${perRun(wireRuns)}. Latency: 64 KiB ${f(v(c64, latency))} ms${s.oneMiB ? `, 1 MiB ${f(v(c1, latency))} ms` : ''}.`,
          ...common,
        ],
      };
    };
    return [
      variant(
        'relay',
        (x) => x.relayMBps,
        (x) => x.relayWireMBps,
        (x) => x.relayRuns,
        (x) => x.relayWireRuns,
        (x) => x.relayMs,
        [
          metric('values_bit_exact', 'bool', c ? (c.intact ? 1 : 0) : null, {
            baseline: base ? (base.intact ? 1 : 0) : null,
            target: { on: 'value', op: '>=', value: 1, text: '= 1' },
          }),
        ],
        [
          `ProofStark of ${values} uint64 values, ${(relayBytes / MiB).toFixed(1)} MiB (${c?.wireBytes.relay ?? '—'} bytes on the wire with HTTP/2 and gRPC framing), relayed worker → server → aggregator: from the prover's send to the aggregator's receipt (sim clocks). Both legs cross the proxy; the second is paced by the sims' own ${WORKER_WINDOW / MiB} MiB receive window (a Rust worker's), the same for every system. 2 workers in 2 sim processes per system; the aggregator proves first, with a ${AGGREGATOR_PROOF_VALUES}-value proof of its own, so one upload is in flight. End to end includes the prover encoding 64 MiB, the server decoding and re-encoding it and the aggregator decoding it: fixed CPU costs the window does not change. Values bit-exact at 64 KiB: ${c64 ? c64.intact : '—'}.`,
        ],
      ),
      variant(
        'elf',
        (x) => x.elfMBps,
        (x) => x.elfWireMBps,
        (x) => x.elfRuns,
        (x) => x.elfWireRuns,
        (x) => x.elfMs,
        [],
        [
          `RegisterGuestProgram of a ${s.elfBytes / MiB} MiB ELF (distinct bytes per round, the same for every system; ${c?.wireBytes.elf ?? '—'} bytes on the wire) from a client in the bench process reaching the API port through the proxy: call → answer (client encoding, upload, BLAKE3, cache write). A ${WARMUP_ELF_BYTES / 1024} KiB registration opens each connection first. hash_ids equal across systems: ${hashesAgree ?? '—'}.`,
        ],
      ),
    ];
  },
};
