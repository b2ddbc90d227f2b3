/**
 * `channel`: what one crossing between the main thread and a worker thread costs, for the transports
 * a scheduler thread could use. A ping-pong of batches shaped like the scheduler's (an event batch
 * in, an effect batch of a prove job's completion out), one in flight at a time, so the receiving
 * thread is asleep every time: the case the scheduler channel meets below saturation. CPU is the
 * whole process's (both threads), per round trip.
 *
 * - `port-objects` (baseline): objects over a MessagePort, both threads on their event loops (what
 *   src/main/scheduler/host.ts does);
 * - `port-json`: the same with each batch as one JSON string;
 * - `sab-nudge`: batches as JSON in a SharedArrayBuffer; the peer sleeps in `Atomics.wait` instead of
 *   its event loop and wakes the main thread with an empty postMessage;
 * - `sab-waitasync`: the same, the main thread waiting with `Atomics.waitAsync`.
 */
import { MessageChannel, Worker } from 'node:worker_threads';
import { benchModule } from '../lib/proc';
import { median } from '../lib/stats';
import { mailboxRead, mailboxWrite, type ChannelMode, type PeerData } from '../lib/channel-wire';
import { metric, type Scenario, type ScenarioResult } from '../lib/types';

const JOB = '6ba18f28-120b-4a34-89f6-db910f527bca';

/** A contribution result as the cluster edge posts it (the witness key is ~600 characters). */
const EVENTS: unknown = [
  {
    type: 'taskResult',
    linkId: 17,
    jobId: JOB,
    taskType: 0,
    success: true,
    errorMessage: '',
    inRecovery: false,
    result: { kind: 'challenges', challengesBlobIds: [5], witnessKey: 'x'.repeat(600), publicsBlobId: 6, totalInstances: '983' },
  },
];

/** What a prove job's last answer produces. */
const EFFECTS: unknown = [
  { type: 'phaseFinished', phase: 'aggregate', seconds: 0.002 },
  { type: 'log', level: 'info', msg: `prove job ${JOB}: aggregate done in 2 ms`, fields: { job_id: JOB, phase: 'aggregate', duration_ms: 2, attempt: 1 } },
  {
    type: 'jobEvent',
    jobId: JOB,
    jobKind: 'prove',
    at: 1_796_411_531_279,
    event: { kind: 'completed', result: { kind: 'prove', proofBlobId: 470, executedSteps: '865664632', vkHex: 'ab'.repeat(32), startedAt: 1_796_411_531_271, publicsBlobId: 468 } },
  },
  { type: 'log', level: 'info', msg: `prove job ${JOB} completed in 8 ms`, fields: { job_id: JOB, kind: 'prove', duration_ms: 8, attempt: 1 } },
  { type: 'workerJobOutcome', workerId: 'worker-0017', jobKind: 'prove', outcome: 'success' },
  { type: 'releaseBlobs', blobIds: [466, 467] },
  { type: 'workerCounts', counts: { idle: 0, setting_up: 0, ready: 64, computing: 3, disconnected: 0 }, queueDepth: 0 },
];

/** `Atomics.waitAsync` (Node 16+, V8), missing from the ES library this project compiles against. */
type WaitAsync = (array: Int32Array, index: number, value: number) => { async: false; value: string } | { async: true; value: Promise<string> };
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

interface Sizes {
  roundTrips: number;
  rounds: number;
}

const FULL: Sizes = { roundTrips: 20_000, rounds: 3 };
const SMOKE: Sizes = { roundTrips: 200, rounds: 1 };
const MODES: readonly ChannelMode[] = ['port-objects', 'port-json', 'sab-nudge', 'sab-waitasync'];

interface Figures {
  cpuUs: number;
  wallUs: number;
}

/** `n` round trips over `mode`; CPU and wall time per round trip, in µs. */
async function pingPong(mode: ChannelMode, n: number): Promise<Figures> {
  const data: PeerData = { mode, reply: EFFECTS, toPeer: new SharedArrayBuffer(1 << 16), toMain: new SharedArrayBuffer(1 << 16) };
  const peer = new Worker(benchModule('lib/channel-peer.js'), { workerData: data });
  try {
    await new Promise((resolve) => peer.once('online', resolve));
    return await new Promise<Figures>((resolve, reject) => {
      peer.once('error', reject);
      let done = 0;
      let cpu0 = process.cpuUsage();
      let t0 = performance.now();
      // The first tenth warms both threads up and is not counted.
      const warm = Math.floor(n / 10);
      const answered = (): void => {
        done++;
        if (done === warm) {
          cpu0 = process.cpuUsage();
          t0 = performance.now();
        }
        if (done === warm + n) {
          const cpu = process.cpuUsage(cpu0);
          resolve({ cpuUs: (cpu.user + cpu.system) / n, wallUs: ((performance.now() - t0) * 1000) / n });
          return;
        }
        send();
      };
      let send: () => void;
      if (mode === 'port-objects' || mode === 'port-json') {
        const { port1, port2 } = new MessageChannel();
        peer.postMessage(port2, [port2]);
        port1.on('message', (batch: unknown) => {
          if (mode === 'port-json') JSON.parse(batch as string);
          answered();
        });
        send = () => port1.postMessage(mode === 'port-json' ? JSON.stringify(EVENTS) : EVENTS);
        peer.once('exit', () => port1.close());
      } else {
        const toPeer = new Int32Array(data.toPeer);
        send = () => {
          mailboxWrite(data.toPeer, JSON.stringify(EVENTS));
          Atomics.notify(toPeer, 0);
        };
        const read = (): void => {
          JSON.parse(mailboxRead(data.toMain));
          answered();
        };
        if (mode === 'sab-nudge') peer.on('message', read);
        else {
          const toMain = new Int32Array(data.toMain);
          let seen = 0;
          const wait = (): void => {
            const w = waitAsync(toMain, 0, seen);
            const next = (): void => {
              seen = Atomics.load(toMain, 0);
              read();
              if (done < warm + n) wait();
            };
            if (w.async) void w.value.then(next);
            else next();
          };
          wait();
        }
      }
      send();
    });
  } finally {
    if (mode === 'sab-nudge' || mode === 'sab-waitasync') {
      // A sequence number below zero ends the peer's loop.
      Atomics.store(new Int32Array(data.toPeer), 0, -1);
      Atomics.notify(new Int32Array(data.toPeer), 0);
    }
    await peer.terminate();
  }
}

export const channel: Scenario = {
  name: 'channel',
  summary: 'one crossing to a worker thread and back: MessagePort objects vs JSON vs SharedArrayBuffer + Atomics (CPU and wall per round trip)',
  async run(ctx) {
    const s = ctx.smoke ? SMOKE : FULL;
    const figures = new Map<ChannelMode, Figures[]>(MODES.map((m) => [m, []]));
    for (let round = 0; round < s.rounds; round++) {
      for (let i = 0; i < MODES.length; i++) {
        const mode = MODES[(i + round) % MODES.length];
        ctx.log(`  round ${round + 1}: ${mode}, ${s.roundTrips} round trips`);
        figures.get(mode)?.push(await pingPong(mode, s.roundTrips));
      }
    }
    const med = (mode: ChannelMode, pick: (f: Figures) => number): number | null => median((figures.get(mode) ?? []).map(pick));
    const notes = [
      `${s.roundTrips} round trips per mode and round (after a tenth as warm-up), ${s.rounds} rounds in rotating order; medians. One batch in flight at a time, so the receiving thread sleeps before each message: what a crossing costs when it wakes a thread. Baseline = port-objects (the scheduler channel as built).`,
      ...MODES.map((m) => `${m}: CPU per round trip ${(figures.get(m) ?? []).map((f) => f.cpuUs.toFixed(1)).join(', ')} µs; wall ${(figures.get(m) ?? []).map((f) => f.wallUs.toFixed(1)).join(', ')} µs.`),
    ];
    return MODES.filter((m) => m !== 'port-objects').map(
      (mode, i): ScenarioResult => ({
        scenario: 'channel',
        variant: mode,
        metrics: [
          metric('cpu_per_round_trip', 'µs', med(mode, (f) => f.cpuUs), { baseline: med('port-objects', (f) => f.cpuUs) }),
          metric('wall_per_round_trip', 'µs', med(mode, (f) => f.wallUs), { baseline: med('port-objects', (f) => f.wallUs) }),
        ],
        notes: i === 0 ? notes : [],
      }),
    );
  },
};
