/** Client workloads shared by scenarios: program setup, closed and open loops of small prove jobs. */
import { blake3 } from 'hash-wasm';
import { ApiClient, encodeProveRequest, fakeElf, type WatchOutcome } from './api';
import { WireJobClient } from './wire-client';
import { hostNow, sleep } from './proc';
import type { SystemUnderTest } from './sut';

/** The bench's guest program (4 KiB fake ELF) and its BLAKE3 hash id. */
export const BENCH_ELF = fakeElf('zisk-bench-program', 4096);

let hashIdPromise: Promise<string> | undefined;
export function benchHashId(): Promise<string> {
  return (hashIdPromise ??= blake3(BENCH_ELF));
}

/**
 * Makes the bench program runnable on the connected workers. The coordinator needs it registered and
 * set up (a setup job every worker acks); the baseline's sims start with it pre-set-up.
 */
export async function prepareProgram(sut: SystemUnderTest, api: ApiClient, timeoutMs = 120_000): Promise<string> {
  const expected = await benchHashId();
  if (sut.kind === 'baseline') return expected;
  const hashId = await api.registerProgram(BENCH_ELF);
  if (hashId !== expected) throw new Error(`hash id ${hashId} != expected ${expected}`);
  const setupId = await api.submitSetup(hashId);
  const o = await api.watch(setupId, timeoutMs);
  if (o.status !== 'completed') throw new Error(`setup job ${setupId} ended ${o.status}: ${o.detail ?? ''}`);
  return hashId;
}

export const SMALL_INPUT = Buffer.alloc(8, 7);

export interface LoopOutcome {
  completed: number;
  failed: number;
  /** Latency of every completed job in the measured window (ms). */
  latencies: number[];
  /** First failure text, for the notes. */
  firstFailure?: string;
  /** Jobs still unfinished when the loop gave up waiting. */
  unfinished: number;
}

/** What the loops need: submit the loop's prove job, follow a job to its end. */
export interface JobRunner {
  submitProve(): Promise<string>;
  watch(jobId: string, deadlineMs: number): Promise<WatchOutcome>;
}

/** The full client (proto-loader objects both ways) as a JobRunner. */
export function fullRunner(api: ApiClient, hashId: string): JobRunner {
  return {
    submitProve: () => api.submitProve(hashId, { inline: SMALL_INPUT }),
    watch: (id, ms) => api.watch(id, ms),
  };
}

/** The lean byte-level client as a JobRunner. */
export function leanRunner(address: string, connections: number, hashId: string): WireJobClient {
  return new WireJobClient(address, connections, encodeProveRequest(hashId, SMALL_INPUT));
}

async function runJob(runner: JobRunner, watchDeadlineMs: number): Promise<WatchOutcome> {
  const id = await runner.submitProve();
  return runner.watch(id, watchDeadlineMs);
}

/**
 * `clients` concurrent clients, each submitting a prove job and waiting on WatchJob for its end, in a
 * loop. Counts completions whose terminal event arrived in [warmupMs, warmupMs + measureMs].
 */
export async function closedLoop(runner: JobRunner, clients: number, warmupMs: number, measureMs: number): Promise<LoopOutcome> {
  const start = hostNow();
  const from = start + warmupMs;
  const end = from + measureMs;
  const out: LoopOutcome = { completed: 0, failed: 0, latencies: [], unfinished: 0 };
  const client = async (): Promise<void> => {
    while (hostNow() < end) {
      const t0 = hostNow();
      try {
        const o = await runJob(runner, 30_000);
        if (o.status === 'completed') {
          if (o.at >= from && o.at <= end) {
            out.completed++;
            out.latencies.push(o.at - t0);
          }
        } else {
          out.failed++;
          out.firstFailure ??= `${o.status}: ${o.detail ?? ''}`;
        }
      } catch (err) {
        out.failed++;
        out.firstFailure ??= err instanceof Error ? err.message : String(err);
        await sleep(20);
      }
    }
  };
  await Promise.all(Array.from({ length: clients }, client));
  return out;
}

/**
 * Open loop: jobs submitted at `rate` per second for `durationMs` whatever the answers; each job's
 * latency runs from its scheduled send time (so a stalled sender cannot hide queueing) to its terminal
 * WatchJob event. Waits at most `drainMs` for stragglers.
 */
export async function openLoop(runner: JobRunner, rate: number, durationMs: number, drainMs = 20_000): Promise<LoopOutcome> {
  const total = Math.max(1, Math.floor((rate * durationMs) / 1000));
  const out: LoopOutcome = { completed: 0, failed: 0, latencies: [], unfinished: 0 };
  const pending = new Set<Promise<void>>();
  const one = (scheduledAt: number): void => {
    const p = runJob(runner, durationMs + drainMs)
      .then((o) => {
        if (o.status === 'completed') {
          out.completed++;
          out.latencies.push(o.at - scheduledAt);
        } else {
          out.failed++;
          out.firstFailure ??= `${o.status}: ${o.detail ?? ''}`;
        }
      })
      .catch((err: unknown) => {
        out.failed++;
        out.firstFailure ??= err instanceof Error ? err.message : String(err);
      })
      .finally(() => pending.delete(p));
    pending.add(p);
  };
  const t0 = hostNow();
  let sent = 0;
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const due = Math.min(total, Math.floor(((hostNow() - t0) * rate) / 1000) + 1);
      while (sent < due) {
        one(t0 + (sent * 1000) / rate);
        sent++;
      }
      if (sent >= total) {
        clearInterval(timer);
        resolve();
      }
    };
    const timer = setInterval(tick, 1);
    tick();
  });
  const drainEnd = Date.now() + drainMs;
  while (pending.size > 0 && Date.now() < drainEnd) await sleep(20);
  out.unfinished = pending.size;
  return out;
}
