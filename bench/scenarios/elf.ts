/**
 * `elf`: RegisterGuestProgram with a 100 MiB ELF while 1,000 workers heartbeat every second. MB/s is
 * end to end as the client sees it (upload, BLAKE3, cache write); the main-thread event-loop max over
 * the registration shows whether hashing ever blocks I/O. Baseline: the echo coordinator receiving the
 * same request and hashing it with the same BLAKE3 on its main thread, then writing the file.
 */
import { blake3 } from 'hash-wasm';
import { ApiClient, fakeElf } from '../lib/api';
import { Cleanup, hostNow, sleep } from '../lib/proc';
import { LOAD_GENERATOR_NICENESS, attempt, startCoordinator } from '../lib/scenario-helpers';
import { SimGroup } from '../lib/sims';
import { MB, MiB, mbPerSecond, median } from '../lib/stats';
import { CoordinatorProcess, EchoBaseline, type SystemUnderTest } from '../lib/sut';
import { metric, type Scenario, type ScenarioContext } from '../lib/types';

interface Sizes {
  elfBytes: number;
  workers: number;
  simProcesses: number;
  reps: number;
  /** Quiet time after registration and before each repetition. */
  settleMs: number;
}

const FULL: Sizes = { elfBytes: 100 * MiB, workers: 1000, simProcesses: 2, reps: 3, settleMs: 1_500 };
const SMOKE: Sizes = { elfBytes: 1 * MiB, workers: 10, simProcesses: 1, reps: 1, settleMs: 100 };

interface Measured {
  /** BLAKE3 alone, as the server timed it (coordinator: its 'guest program hashed' debug line). */
  hashMBps: number | null;
  /** Whether the coordinator moved the bytes to the hashing thread without a copy. */
  moved: boolean | null;
  mbps: number | null;
  ms: number | null;
  mainMaxMs: number;
  mainP99Ms: number;
  /** Worst main-loop delay while the hash ran (coordinator: its log line; baseline: the hash itself, on main). */
  hashingMainMaxMs: number | null;
  hashOk: boolean;
  reconnects: number;
}

async function measure(ctx: ScenarioContext, sut: SystemUnderTest, s: Sizes, elves: Buffer[], hashes: string[], cleanup: Cleanup): Promise<Measured> {
  const sims = await SimGroup.start({
    coordinator: sut.clusterAddress,
    workers: s.workers,
    processes: s.simProcesses,
    prefix: 'elf',
    options: { computeUnits: 1, heartbeatIntervalMs: 1000, maxLogEntries: 8 },
    startStaggerMs: 20,
    startBatch: 100,
    niceness: LOAD_GENERATOR_NICENESS,
  });
  cleanup.add('sims', () => sims.stop());
  await sims.waitRegistered(120_000);
  const api = new ApiClient(sut.apiAddress, 1);
  cleanup.add('api client', () => api.close());
  await sleep(s.settleMs);
  const before = await sims.counters();
  const times: number[] = [];
  let mainMax = 0;
  let mainP99 = 0;
  let hashOk = true;
  const hashTimes: number[] = [];
  let moved: boolean | null = null;
  let hashingMainMax: number | null = null;
  for (let i = 0; i < s.reps; i++) {
    await sleep(s.settleMs);
    await sut.loop();
    const t0 = hostNow();
    const hashId = await api.registerProgram(elves[i], 300_000);
    times.push(hostNow() - t0);
    const loop = await sut.loop();
    mainMax = Math.max(mainMax, loop.main.maxMs);
    mainP99 = Math.max(mainP99, loop.main.p99Ms);
    if (hashId !== hashes[i]) hashOk = false;
    if (sut instanceof EchoBaseline) {
      const hashMs = (await sut.counters()).lastHashMs;
      hashTimes.push(hashMs);
      // its hash runs on the main thread: the loop is blocked for exactly that long
      hashingMainMax = Math.max(hashingMainMax ?? 0, hashMs);
    } else if (sut instanceof CoordinatorProcess) {
      const rec = sut.logRecords('"guest program hashed"').find((r) => r.hash_id === hashId);
      if (rec && typeof rec.ms === 'number') hashTimes.push(Math.max(1, rec.ms));
      if (rec && typeof rec.moved === 'boolean') moved = (moved ?? true) && rec.moved;
      if (rec && typeof rec.main_loop_max_ms === 'number') hashingMainMax = Math.max(hashingMainMax ?? 0, rec.main_loop_max_ms);
    }
    ctx.log(`  ${sut.kind}: ${s.elfBytes / MiB} MiB registered in ${times[times.length - 1].toFixed(0)} ms, main loop max ${loop.main.maxMs.toFixed(1)} ms`);
  }
  const after = await sims.counters();
  const ms = median(times);
  return { hashMBps: mbPerSecond(s.elfBytes, median(hashTimes)), moved, mbps: mbPerSecond(s.elfBytes, ms), ms, mainMaxMs: mainMax, mainP99Ms: mainP99, hashingMainMaxMs: hashingMainMax, hashOk, reconnects: after.connects - before.connects };
}

async function run(ctx: ScenarioContext, start: () => Promise<SystemUnderTest>, s: Sizes, elves: Buffer[], hashes: string[]): Promise<Measured> {
  const cleanup = new Cleanup();
  try {
    const sut = await start();
    cleanup.add(sut.kind, () => sut.stop().then(() => undefined));
    return await measure(ctx, sut, s, elves, hashes, cleanup);
  } finally {
    await cleanup.run(ctx.log);
  }
}

export const elf: Scenario = {
  name: 'elf',
  summary: 'registering a 100 MiB ELF while 1,000 workers heartbeat: MB/s end to end, main-thread delay max during it',
  async run(ctx) {
    const s = ctx.smoke ? SMOKE : FULL;
    const elves: Buffer[] = [];
    const hashes: string[] = [];
    let hashMs = 0;
    for (let i = 0; i < s.reps; i++) {
      elves.push(fakeElf(`bench-elf-${i}-${Date.now()}`, s.elfBytes));
      const t0 = hostNow();
      hashes.push(await blake3(elves[i]));
      hashMs += hostNow() - t0;
    }
    const rawHashMBps = (s.elfBytes * s.reps) / MB / (hashMs / 1000);
    const failures: string[] = [];
    ctx.log('elf: baseline');
    const base = await attempt(ctx, 'baseline', () => run(ctx, () => EchoBaseline.start({ heartbeatIntervalMs: 1000 }), s, elves, hashes), failures);
    ctx.log('elf: coordinator');
    const c = await attempt(ctx, 'coordinator', () => run(
      ctx,
      () =>
        startCoordinator(ctx, 'elf', {
          // debug: the coordinator times its hashing in a 'guest program hashed' line.
          logLevel: 'debug',
          env: { ZISK_COORDINATOR_COORDINATOR_HEARTBEAT_INTERVAL_SECONDS: '1', ZISK_COORDINATOR_COORDINATOR_MAX_TOTAL_WORKERS: String(s.workers * 2) },
        }),
      s,
      elves,
      hashes,
    ), failures);
    return [
      {
        scenario: 'elf',
        metrics: [
          metric('hash_throughput', 'MB/s', c?.hashMBps ?? null, { baseline: base?.hashMBps ?? null, target: { on: 'value', op: '>=', value: 500 } }),
          metric('register_throughput', 'MB/s', c?.mbps ?? null, { baseline: base?.mbps ?? null }),
          metric('register_latency', 'ms', c?.ms ?? null, { baseline: base?.ms ?? null }),
          metric('main_loop_max_while_hashing', 'ms', c?.hashingMainMaxMs ?? null, { baseline: base?.hashingMainMaxMs ?? null, target: { on: 'value', op: '<=', value: 20 } }),
          metric('main_loop_max', 'ms', c?.mainMaxMs ?? null, { baseline: base?.mainMaxMs ?? null }),
          metric('main_loop_p99', 'ms', c?.mainP99Ms ?? null, { baseline: base?.mainP99Ms ?? null }),
        ],
        notes: [
          `${s.elfBytes / MiB} MiB ELF (distinct per repetition), median of ${s.reps}; ${s.workers} workers heartbeating every 1 s (${s.simProcesses} sim processes at nice ${LOAD_GENERATOR_NICENESS}, one connection each); the coordinator runs at log level debug here. main_loop_max is the worst main-thread delay over each RegisterGuestProgram call (upload, decode, hash, write); main_loop_max_while_hashing only over the hash (coordinator: a delay histogram enabled while its hashing thread works, from the log line; baseline: its hash blocks the main loop for its whole duration).`,
          `Most of main_loop_max is grpc-js assembling the 100 MiB message with one Buffer.concat into fresh memory: ~65-100 ms on this VM, almost all page faults (the same copy into already-touched memory takes ~5-10 ms). The raw transport pays it too; the client API has no chunked upload to avoid it.`,
          `hash_throughput is BLAKE3 alone as each server timed it: the coordinator's 'guest program hashed' debug line (piscina round trip included; bytes moved to the hashing thread without a copy: ${c?.moved ?? '—'}), the baseline's call to the same hasher on its main thread. register_throughput is what the client sees. Reference: hash-wasm BLAKE3 in the bench process: ${rawHashMBps.toFixed(0)} MB/s.`,
          `Hash ids match the bench's own BLAKE3: coordinator ${c?.hashOk ?? '—'}, baseline ${base?.hashOk ?? '—'}. Worker reconnects during the registrations: coordinator ${c?.reconnects ?? '—'}, baseline ${base?.reconnects ?? '—'}.`,
          ...failures,
        ],
      },
    ];
  },
};
