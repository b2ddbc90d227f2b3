/**
 * Data plane under load (docs/decisions.md, Data plane): 256 MiB pushed through PushJobInput in 2 MiB
 * chunks to a job running on 4 workers (1 GiB of egress). The coordinator runs as its own process (the
 * real binary), so its memory can be measured from /proc: the peak RSS growth must stay below the input
 * size, i.e. the per-worker queues and the client push stream are paced, not buffered whole.
 *
 * The sim workers and the client live in this process; the client honours `write()`/`'drain'` and
 * refills a small pool of chunk buffers only once grpc-js has taken them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { SimFleet } from '../../src/sim/fleet';
import { spawnCoordinator, stopCoordinator, tempDir } from '../helpers/spawn-coordinator';
import { apiClient, fakeElf, register, submit, unary, wait, waitTerminal } from './helpers';

const MiB = 1 << 20;
const CHUNK_BYTES = 2 * MiB;
const CHUNKS = 128;
const TOTAL_BYTES = CHUNK_BYTES * CHUNKS;
const WORKERS = 4;
/** Chunk buffers in flight on the client side. */
const POOL = 4;

const LOOPBACK_ENV = {
  ZISK_COORDINATOR_SERVER_HOST: '127.0.0.1',
  ZISK_COORDINATOR_METRICS_HOST: '127.0.0.1',
};
const EPHEMERAL = ['--api-port', '0', '--cluster-port', '0', '--metrics-port', '0'];

/** `VmRSS` / `VmHWM` of a process, in bytes. */
function memOf(pid: number): { rss: number; hwm: number } {
  const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string): number => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB$`, 'm').exec(text);
    if (!m) throw new Error(`${key} not in /proc/${pid}/status`);
    return Number(m[1]) * 1024;
  };
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/** User + system CPU seconds of a process so far (`/proc/<pid>/stat` fields 14 and 15). */
function cpuSecondsOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // the fields after the parenthesised command name, which may itself contain spaces
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}
const CLOCK_TICKS = 100;

/** Resets the peak-RSS mark (Linux >= 4.0); false when the kernel refuses. */
function resetPeak(pid: number): boolean {
  try {
    fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** Chunk `i`: a byte pattern that differs per chunk, with the index in the first 8 bytes. */
function fillChunk(buf: Buffer, i: number): void {
  buf.fill((i * 37 + 11) & 0xff);
  buf.writeBigUInt64LE(BigInt(i), 0);
}

const mib = (n: number): string => (n / MiB).toFixed(0);

test('256 MiB pushed in 2 MiB chunks to 4 workers: every worker gets it all, coordinator RSS growth stays below the input size', { timeout: 60_000 }, async (t) => {
  const cacheDir = tempDir('zisk-push-cache-');
  t.after(() => fs.rmSync(cacheDir, { recursive: true, force: true }));
  const coord = await spawnCoordinator({
    args: EPHEMERAL,
    env: {
      ...LOOPBACK_ENV,
      ZISK_COORDINATOR_COORDINATOR_CACHE_DIR: path.join(cacheDir, 'cache'),
      // The queues must be what paces the push: with the default bound (256 MiB, the whole input)
      // the client may legitimately fill them, so a smaller one is what shows the pacing works.
      ZISK_COORDINATOR_COORDINATOR_MAX_WORKER_QUEUE_BYTES: String(32 * MiB),
    },
  });
  t.after(() => stopCoordinator(coord));
  const pid = coord.child.pid as number;
  assert.ok(coord.ports.api && coord.ports.cluster, JSON.stringify(coord.ports));

  // The contribution outlasts the push: the job is running while the data flows.
  const fleet = new SimFleet({
    coordinator: `127.0.0.1:${coord.ports.cluster}`,
    workers: WORKERS,
    setupDelayMs: 5,
    contributionDelayMs: 120_000,
    recoveryDelayMs: 5,
    reconnectIntervalMs: 200,
  }).start();
  t.after(() => fleet.stop());
  const client = apiClient(`127.0.0.1:${coord.ports.api}`);
  t.after(() => client.close());

  await fleet.waitAllRegistered(10_000);
  fleet.workers[0].enableStreamDigests();
  const hashId = await register(client, fakeElf('push-large'));
  const setupId = await submit(client, { setup: { hash_id: hashId, with_hints: false, program_name: 'push-large' } });
  assert.equal((await waitTerminal(client, setupId)).job_status.status, 'completed');

  const jobId = await submit(client, { prove: { hash_id: hashId, input: { stream_uri: 'grpc://push' }, proof_dest: 1 } });
  // started: every worker holds the job's contribution task
  await fleet.waitUntil(() => fleet.workers.every((w) => w.streamCounters(jobId) !== undefined), 5_000, () => 'every worker holding the job');

  // Baseline: the settled process, with the peak mark reset to it when the kernel allows. Every
  // worker holds its task, so the coordinator has nothing left to do for the job; a scrape it answers
  // after that shows its event loop got through everything queued before it.
  const scraped = await (await fetch(`http://127.0.0.1:${coord.ports.metrics}/metrics`)).text();
  assert.match(scraped, /^coordinator_active_jobs 1$/m, 'the job is running');
  const peakReset = resetPeak(pid);
  const before = memOf(pid);
  let sampledMax = before.rss;
  const sampler = setInterval(() => {
    try {
      sampledMax = Math.max(sampledMax, memOf(pid).rss);
    } catch {
      // the process is gone: the test fails elsewhere
    }
  }, 50);
  t.after(() => clearInterval(sampler));

  // --- the push, with client-side backpressure ---
  const fn = (client as unknown as Record<string, (o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: object) => void) => grpc.ClientWritableStream<object>>)
    .PushJobInput;
  let call!: grpc.ClientWritableStream<object>;
  const result = new Promise<object>((resolve, reject) => {
    call = fn.call(client, { deadline: Date.now() + 50_000 }, (err, res) => (err ? reject(err) : resolve(res)));
  });
  // Any await below also ends if the call fails, instead of hanging on a drain that never comes.
  const failed = result.then(
    () => new Promise<never>(() => undefined),
    (err: unknown) => Promise.reject(err instanceof Error ? err : new Error(String(err))),
  );
  failed.catch(() => undefined);
  const guard = <T>(p: Promise<T>): Promise<T> => Promise.race([p, failed]);

  const digest = createHash('sha256');
  const buffers = Array.from({ length: POOL }, () => Buffer.allocUnsafe(CHUNK_BYTES));
  const taken: Array<Promise<void> | undefined> = new Array<Promise<void> | undefined>(POOL);
  let drains = 0;
  const cpu0 = cpuSecondsOf(pid);
  const ownCpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < CHUNKS; i++) {
    const slot = i % POOL;
    // reuse a buffer only once grpc-js has serialized and handed off its previous chunk
    await guard(taken[slot] ?? Promise.resolve());
    const buf = buffers[slot];
    fillChunk(buf, i);
    digest.update(buf);
    let settle!: (err?: Error | null) => void;
    const handedOff = new Promise<void>((resolve, reject) => {
      settle = (err) => (err ? reject(err) : resolve());
    });
    handedOff.catch(() => undefined);
    taken[slot] = handedOff;
    // write() returning false: wait for 'drain' before the next write
    if (!call.write({ job_id: jobId, chunk: { data: buf } }, settle)) {
      drains++;
      await guard(once(call, 'drain'));
    }
  }
  call.end();
  assert.deepEqual(await result, {}, 'the push stream ends OK');
  const pushedMs = performance.now() - t0;

  // every byte reaches every worker
  const counters = (): string => JSON.stringify(fleet.workers.map((w) => w.streamCounters(jobId)?.inputBytes));
  await fleet.waitUntil(() => fleet.workers.every((w) => w.streamCounters(jobId)?.inputBytes === TOTAL_BYTES), 40_000, () => `input bytes per worker ${counters()}`);
  const deliveredMs = performance.now() - t0;
  clearInterval(sampler);
  const after = memOf(pid);
  const coordCpu = cpuSecondsOf(pid) - cpu0;
  const own = process.cpuUsage(ownCpu0);
  const ownCpu = (own.user + own.system) / 1e6;

  for (const w of fleet.workers) {
    const s = w.streamCounters(jobId);
    assert.ok(s);
    assert.equal(s.inputBytes, TOTAL_BYTES, w.id);
    assert.equal(s.inputChunks, CHUNKS, `${w.id}: one input_stream_data per 2 MiB chunk`);
    assert.equal(s.inputRejected, 0, w.id);
    assert.deepEqual(s.errors, [], w.id);
  }
  assert.equal(fleet.workers[0].streamDigest(jobId, 'input'), digest.digest('hex'), 'the bytes arrive intact and in order');

  const peak = Math.max(after.hwm, sampledMax);
  const growth = peak - before.rss;
  const secs = deliveredMs / 1000;
  t.diagnostic(
    `rss growth ${mib(growth)} MiB for ${mib(TOTAL_BYTES)} MiB pushed to ${WORKERS} workers ` +
      `(${(TOTAL_BYTES * WORKERS) / (1 << 30)} GiB egress) in ${secs.toFixed(1)} s ` +
      `(push accepted in ${(pushedMs / 1000).toFixed(1)} s; ${mib(TOTAL_BYTES / secs)} MiB/s in, ${mib((TOTAL_BYTES * WORKERS) / secs)} MiB/s egress); ` +
      `rss before ${mib(before.rss)} MiB, peak ${mib(peak)} MiB (VmHWM ${mib(after.hwm)}${peakReset ? ', reset at start' : ', not resettable'}; ` +
      `sampled max ${mib(sampledMax)}), rss after ${mib(after.rss)} MiB; ` +
      `cpu: coordinator ${coordCpu.toFixed(1)} s, test process (client + 4 sims) ${ownCpu.toFixed(1)} s; client waited for 'drain' ${drains}x`,
  );
  assert.equal((await wait(client, jobId, 1)).job_status.status, 'running', 'the job ran while the data flowed');
  assert.ok(growth < TOTAL_BYTES, `peak RSS growth ${mib(growth)} MiB must stay below the ${mib(TOTAL_BYTES)} MiB input`);

  // end cleanly: cancel the job, stop the workers, SIGTERM the coordinator
  assert.deepEqual(await unary(client, 'CancelJob', { job_id: jobId }), { job_id: jobId, cancelled: true });
  assert.equal((await wait(client, jobId, 1)).job_status.status, 'cancelled');
  await fleet.stop();
  client.close();
  coord.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const exit = await Promise.race([coord.exited, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), 10_000)))]);
  clearTimeout(timer);
  assert.equal(exit?.code, 0, `coordinator exit: ${JSON.stringify(exit)}; stderr: ${coord.stderr()}`);
});
