/**
 * The client API over real gRPC with simulated workers speaking the real cluster protocol: results as
 * docs/decisions.md defines them (Job states and events, Data plane), push relays, WaitJobResult holds,
 * WatchJob history and slow watchers, cancel, the queue as a client sees it, and setups replayed after a
 * restart.
 */
import { describe, it, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { SimFleet } from '../../src/sim/fleet';
import { simFinalProof, simPublics, simVk, simWrapProof } from '../../src/sim/data';
import { FAST_SIM, startCluster, type Cluster, type ClusterOptions } from '../helpers/cluster';
import { startTestCoordinator } from '../helpers/coordinator';
import {
  apiClient,
  assertError,
  callError,
  inline,
  pushError,
  pushStream,
  sample,
  scrape,
  sleep,
  submit,
  unary,
  wait,
  waitTerminal,
  watch,
  type WaitResult,
} from './helpers';

function expectedPublics(jobId: string): Buffer {
  const out = Buffer.alloc(544);
  simPublics(jobId).forEach((v, i) => out.writeBigUInt64LE(v, 32 + 8 * i));
  return out;
}

type ProofObj = { proof_id: string; hash_id: string; verification_key: Buffer; proof_kind: number; data: Buffer; public_inputs: Buffer; started_at: unknown; completed_at: unknown };

const eventName = (e: { event: string; progress?: unknown }): string =>
  e.event === 'progress' ? `progress(${(e.progress as { phase: number }).phase})` : e.event;

/** Hints framing words: header = code << 32 | length. */
function hintsWords(...words: bigint[]): Buffer {
  const b = Buffer.alloc(words.length * 8);
  words.forEach((w, i) => b.writeBigUInt64LE(w, 8 * i));
  return b;
}
const CTRL_START = 0n;
const CTRL_END = 1n << 32n;

const cluster = (workers: number, opts: ClusterOptions & { elf?: string } = {}): Promise<Cluster> =>
  startCluster(workers, { ...opts, tag: opts.elf ?? 'workers' });

describe('results and relays with workers', () => {
  let c: Cluster;
  let proofsDir: string;
  let inputsDir: string;

  before(async () => {
    proofsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'zisk-proofs-'));
    inputsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'zisk-inputs-'));
    c = await cluster(2, {
      overrides: { coordinator: { proofs_dir: proofsDir, inputs_dir: inputsDir } },
      sim: { finalProofBytes: 4096 },
      setups: [false, true],
    });
  });
  after(async () => {
    await c.close();
    fs.rmSync(proofsDir, { recursive: true, force: true });
    fs.rmSync(inputsDir, { recursive: true, force: true });
  });

  it('prove: result built once (VK, public_inputs layout, asked kind), history replayed to late watchers, proof saved', async () => {
    const jobId = await submit(c.client, { prove: { hash_id: c.hashId, input: inline(Buffer.alloc(64, 1)), proof_dest: 3 } });
    const live = watch(c.client, jobId);
    const done = await waitTerminal(c.client, jobId);
    assert.equal(done.job_status.status, 'completed', JSON.stringify(done.job_status));
    const { proof, stats } = done.result?.prove as { proof: ProofObj; stats: { steps: string; duration_nanos: string } };
    assert.equal(proof.hash_id, c.hashId);
    assert.equal(proof.proof_kind, 3);
    assert.deepEqual(proof.verification_key, simVk(c.hashId, false));
    assert.deepEqual(proof.public_inputs, expectedPublics(jobId));
    assert.deepEqual(proof.data, simFinalProof(jobId, 4096));
    assert.match(proof.proof_id, /^[0-9a-f-]{36}$/);
    assert.ok(BigInt(stats.duration_nanos) > 0n);
    assert.deepEqual(await wait(c.client, jobId), done, 'identical on every read');

    await live.done;
    assert.deepEqual(live.events.map(eventName), ['queued', 'started', 'progress(1)', 'progress(2)', 'progress(3)', 'completed']);
    const late = watch(c.client, jobId);
    assert.equal((await late.done).code, 0);
    assert.deepEqual(late.events, live.events, 'late subscriber: same events, original timestamps');
    assert.deepEqual((late.events[5].completed as { result: unknown }).result, done.result);

    const saved = path.join(proofsDir, `proof_${jobId}.bin`);
    for (let i = 0; i < 50 && !fs.existsSync(saved); i++) await sleep(20);
    assert.deepEqual(fs.readFileSync(saved), proof.data);

    const text = await scrape(c.tc);
    assert.equal(sample(text, 'coordinator_active_jobs'), 0);
    assert.ok(sample(text, 'coordinator_jobs_total{kind="prove",outcome="success"}') >= 1);
    assert.ok(sample(text, 'coordinator_jobs_finished_total{kind="setup",outcome="success"}') >= 2);
    assert.ok(sample(text, 'coordinator_job_duration_seconds_count{outcome="success"}') >= 1);
  });

  it('execute: public_outputs in the 544-byte layout; wrap: proof_kind = proof_dest', async () => {
    const exec = await submit(c.client, { execute: { hash_id: c.hashId, input: inline(Buffer.alloc(8)) } });
    const e = await waitTerminal(c.client, exec);
    assert.equal(e.job_status.status, 'completed', JSON.stringify(e.job_status));
    const er = e.result?.execute as { public_outputs: Buffer; stats: { steps: string } };
    assert.deepEqual(er.public_outputs, expectedPublics(exec));
    assert.match(er.stats.steps, /^\d+$/);

    const input = Buffer.from('a bincode proof');
    const wrap = await submit(c.client, {
      wrap: { proof: { proof_id: '0e9ba1a4-9d1f-5c43-8c1e-3a0c6a54b8f1', proof_kind: 1, data: input, hash_id: c.hashId }, proof_dest: 2 },
    });
    const w = await waitTerminal(c.client, wrap);
    assert.equal(w.job_status.status, 'completed', JSON.stringify(w.job_status));
    const wp = (w.result?.wrap as { proof: ProofObj }).proof;
    assert.equal(wp.proof_kind, 2);
    assert.equal(wp.hash_id, c.hashId);
    assert.equal(wp.data.length, 1024);
    assert.deepEqual(wp.data, simWrapProof(input, 1, 1024));
    const ww = watch(c.client, wrap);
    await ww.done;
    assert.deepEqual(ww.events.map(eventName), ['queued', 'started', 'completed']);
    const text = await scrape(c.tc);
    assert.ok(sample(text, 'coordinator_jobs_finished_total{kind="execute",outcome="success"}') >= 1);
    assert.ok(sample(text, 'coordinator_jobs_finished_total{kind="wrap",outcome="success"}') >= 1);
  });

  it('PushJobInput feeds every worker of a grpc:// job; bad alignment fails the job with an input failure', async () => {
    const jobId = await submit(c.client, { execute: { hash_id: c.hashId, input: { stream_uri: 'grpc://push' } } });
    const pushed = pushStream(c.client, 'PushJobInput', [
      { job_id: jobId, chunk: { data: Buffer.alloc(8 * 100, 7) } },
      { job_id: jobId, chunk: { data: Buffer.alloc(0) } },
      { job_id: jobId.toUpperCase(), chunk: { data: Buffer.alloc(8 * 28, 9) } },
    ]);
    assert.deepEqual(await pushed.result, {});
    const r = await waitTerminal(c.client, jobId);
    assert.equal(r.job_status.status, 'completed', JSON.stringify(r.job_status));
    for (const w of c.fleet.workers) assert.equal(w.streamCounters(jobId)?.inputBytes, 1024, w.id);

    const bad = await submit(c.client, { prove: { hash_id: c.hashId, input: { stream_uri: 'grpc://push' } } });
    const e = await pushError(pushStream(c.client, 'PushJobInput', [{ job_id: bad, chunk: { data: Buffer.alloc(12) } }]).result);
    assert.equal(e.code, grpc.status.INVALID_ARGUMENT);
    assert.match(e.details, /not a multiple of 8/);
    const f = await waitTerminal(c.client, bad);
    assert.equal(f.job_status.status, 'failed');
    assert.equal(f.job_status.failed?.failure.kind, 'input');
    assert.match(String((f.job_status.failed?.failure.input as { reason: string }).reason), /multiple of 8/);
  });

  it('PushJobHintsInput relays framed hints; a second hints stream after EOF is refused', async () => {
    const jobId = await submit(c.client, {
      prove: { hash_id: c.hashId, input: inline(Buffer.alloc(8)), hints: { stream_uri: 'grpc://hints' }, proof_dest: 1 },
    });
    const hint = (0x100n << 32n) | 16n; // a 16-byte precompile hint
    const pushed = pushStream(c.client, 'PushJobHintsInput', [
      { job_id: jobId, chunk: { data: hintsWords(CTRL_START, hint, 1n) } },
      { job_id: jobId, chunk: { data: hintsWords(2n, CTRL_END) } },
    ]);
    assert.deepEqual(await pushed.result, {});
    const r = await waitTerminal(c.client, jobId);
    assert.equal(r.job_status.status, 'completed', JSON.stringify(r.job_status));
    const counters = c.fleet.workers.map((w) => w.streamCounters(jobId));
    assert.ok(counters.every((s) => s?.hintsStarted && s.hintsEnded), JSON.stringify(counters));
    const again = await pushError(pushStream(c.client, 'PushJobHintsInput', [{ job_id: jobId, chunk: { data: hintsWords(CTRL_START) } }]).result);
    assert.equal(again.apiError?.code, 1004);
  });

  it('a hints stream the client abandons before CTRL_END fails the job with an input failure', async () => {
    const jobId = await submit(c.client, {
      execute: { hash_id: c.hashId, input: inline(Buffer.alloc(8)), hints: { stream_uri: 'grpc://hints' } },
    });
    const pushed = pushStream(c.client, 'PushJobHintsInput', [{ job_id: jobId, chunk: { data: hintsWords(CTRL_START, (0x100n << 32n) | 8n, 5n) } }], { keepOpen: true });
    pushed.result.catch(() => undefined);
    // Every worker got the batch as START and DATA: the coordinator took it and the job goes on.
    await c.fleet.waitUntil(
      () => c.fleet.workers.every((w) => w.streamCounters(jobId)?.hintsStarted === true && w.streamCounters(jobId)?.hintsMessages === 1),
      5_000,
      () => `hints relayed: ${JSON.stringify(c.fleet.workers.map((w) => w.streamCounters(jobId)))}`,
    );
    assert.equal((await wait(c.client, jobId, 1)).job_status.status, 'running');
    pushed.call.cancel();
    const r = await waitTerminal(c.client, jobId);
    assert.equal(r.job_status.status, 'failed', JSON.stringify(r.job_status));
    assert.equal(r.job_status.failed?.failure.kind, 'input');
    assert.match(String((r.job_status.failed?.failure.input as { reason: string }).reason), /CTRL_END/);
  });

  it('file:// input under inputs_dir is read by the coordinator and relayed', async () => {
    const file = path.join(inputsDir, 'input.bin');
    fs.writeFileSync(file, Buffer.alloc(8 * 512, 3));
    // A sim finishes its execute task on its own clock, whatever input has arrived, and the job's
    // end stops the relay: this task takes long enough that the input arrives first however slowly
    // the file is read, and the test waits for it to arrive.
    for (const w of c.fleet.workers) w.inject('execute', { delayMs: 2_000, times: 1 });
    const jobId = await submit(c.client, { execute: { hash_id: c.hashId, input: { stream_uri: `file://${file}` } } });
    await c.fleet.waitUntil(
      () => c.fleet.workers.every((w) => w.streamCounters(jobId)?.inputBytes === 4096),
      5_000,
      () => `input bytes per worker ${JSON.stringify(c.fleet.workers.map((w) => w.streamCounters(jobId)?.inputBytes))}`,
    );
    const r = await waitTerminal(c.client, jobId);
    assert.equal(r.job_status.status, 'completed', JSON.stringify(r.job_status));
    for (const w of c.fleet.workers) assert.equal(w.streamCounters(jobId)?.inputBytes, 4096, w.id);
  });
});

describe('holds, cancel, the queue and slow watchers', () => {
  let c: Cluster;

  before(async () => {
    c = await cluster(1, { sim: { contributionDelayMs: 30_000, executeDelayMs: 30_000, finalProofBytes: 24 << 20 } });
  });
  after(async () => {
    await c.close();
  });

  it('WaitJobResult: absent → 5 s, present 0 → 1 s, the client deadline wins, a cancelled wait is released; then CancelJob', async () => {
    const running = await submit(c.client, { execute: { hash_id: c.hashId, input: inline() } });
    const queued = await submit(c.client, { execute: { hash_id: c.hashId, input: inline() } });
    await c.tc.waitForLog((l) => l.job_id === running && /^execute job \S+ started/.test(String(l.msg)));
    const timed = async (p: Promise<WaitResult>): Promise<[number, WaitResult]> => {
      const t0 = Date.now();
      const r = await p;
      return [Date.now() - t0, r];
    };
    const fn = (c.client as unknown as Record<string, (r: object, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null) => void) => grpc.ClientUnaryCall>).WaitJobResult;
    let abandonedCall!: grpc.ClientUnaryCall;
    const abandoned = new Promise<number>((resolve) => {
      abandonedCall = fn.call(c.client, { job_id: running, timeout_seconds: 60 }, { deadline: Date.now() + 30_000 }, (e) => resolve(e?.code ?? 0));
    });
    // Calls on one channel reach the server in the order they were made: once a hold started after
    // the abandoned call has answered, the server is holding the abandoned one too. Then it is cancelled.
    const zeroHold = timed(wait(c.client, running, 0));
    void zeroHold.then(() => abandonedCall.cancel());
    const [[absentMs, absent], [zeroMs, zero], [deadlineMs, byDeadline], [queuedMs, q], cancelCode] = await Promise.all([
      timed(wait(c.client, running)),
      zeroHold,
      timed(wait(c.client, running, 3600, 1_500)),
      timed(wait(c.client, queued, 1)),
      abandoned,
    ]);
    assert.ok(absentMs >= 4_900 && absentMs < 6_000, `absent: ${absentMs} ms`);
    assert.ok(zeroMs >= 950 && zeroMs < 1_800, `present 0: ${zeroMs} ms`);
    assert.ok(deadlineMs >= 1_100 && deadlineMs < 1_500, `deadline: ${deadlineMs} ms`);
    assert.ok(queuedMs >= 950 && queuedMs < 1_800, `queued: ${queuedMs} ms`);
    for (const r of [absent, zero, byDeadline]) assert.deepEqual([r.job_status.status, r.job_status.running?.phase], ['running', 1]);
    assert.equal(q.job_status.status, 'queued');
    assert.equal(cancelCode, grpc.status.CANCELLED);
    assert.ok(sample(await scrape(c.tc), 'coordinator_requests_total{method="WaitJobResult",status="CANCELLED"}') >= 1);

    const w = watch(c.client, running);
    const cancel = await unary<{ job_id: string; cancelled: boolean }>(c.client, 'CancelJob', { job_id: running.toUpperCase() });
    assert.deepEqual(cancel, { job_id: running, cancelled: true });
    assert.equal((await wait(c.client, running)).job_status.status, 'cancelled');
    assert.deepEqual(await unary(c.client, 'CancelJob', { job_id: running }), { job_id: running, cancelled: false });
    assert.equal((await w.done).code, 0);
    assert.deepEqual(w.events.map(eventName), ['queued', 'started', 'progress(1)', 'cancelled']);
    // the queued job takes the freed worker
    const end = Date.now() + 5_000;
    while ((await wait(c.client, queued, 1)).job_status.status === 'queued' && Date.now() < end) await sleep(50);
    assert.equal((await wait(c.client, queued, 1)).job_status.status, 'running');
    assert.deepEqual(await unary(c.client, 'CancelJob', { job_id: queued }), { job_id: queued, cancelled: true });
    const e = await pushError(pushStream(c.client, 'PushJobInput', [{ job_id: queued, chunk: { data: Buffer.alloc(8) } }]).result);
    assertError(e, grpc.status.INVALID_ARGUMENT, `Invalid job state: job ${queued} is already terminal (current: Cancelled)`, 1004);
  });

  it('request deadlines: a valid execute_timeout fails the job with a timeout; an invalid one counts as absent', async () => {
    const ts = (ms: number, nanos?: number): object => ({ seconds: String(Math.floor(ms / 1000)), nanos: nanos ?? (ms % 1000) * 1_000_000 });
    const t0 = Date.now();
    const timed = await submit(c.client, { execute: { hash_id: c.hashId, input: inline(), execute_timeout: ts(Date.now() + 700) } });
    const r = await waitTerminal(c.client, timed);
    const elapsed = Date.now() - t0;
    assert.equal(r.job_status.status, 'failed', JSON.stringify(r.job_status));
    assert.equal(r.job_status.failed?.failure.kind, 'timeout');
    // The limit that fired is the request's own, about 0.7 s from submission (reported in whole
    // seconds), not a later one (execution_timeout_seconds is 300).
    const limit = (r.job_status.failed?.failure.timeout as { limit: { seconds: string; nanos: number } }).limit;
    assert.ok(Number(limit.seconds) <= 1 && limit.nanos === 0, `limit ${JSON.stringify(limit)}`);
    assert.ok(elapsed >= 600, `timed out after ${elapsed} ms`);

    const lax = await submit(c.client, { execute: { hash_id: c.hashId, input: inline(), execute_timeout: ts(Date.now() + 100, 2_000_000_000) } });
    // A job queued behind it with a valid deadline 600 ms out: the scheduler fires its timers in
    // deadline order, so once this one has timed out, a deadline taken from the invalid timestamp
    // would have fired before it.
    const probe = await submit(c.client, { execute: { hash_id: c.hashId, input: inline(), execute_timeout: ts(Date.now() + 600) } });
    const probed = await waitTerminal(c.client, probe);
    assert.equal(probed.job_status.failed?.failure.kind, 'timeout', JSON.stringify(probed.job_status));
    assert.equal((await wait(c.client, lax, 1)).job_status.status, 'running');
    assert.deepEqual(await unary(c.client, 'CancelJob', { job_id: lax }), { job_id: lax, cancelled: true });
  });

  it('a watcher that stops reading holds nobody up and still gets the terminal event', async () => {
    for (const w of c.fleet.workers) w.inject('contribution', { delayMs: 20, times: 1 });
    const jobId = await submit(c.client, { prove: { hash_id: c.hashId, input: inline(), proof_dest: 2 } });
    const stalled = watch(c.client, jobId, 30_000);
    stalled.call.pause();
    const normal = watch(c.client, jobId);
    const done = await waitTerminal(c.client, jobId);
    assert.equal(done.job_status.status, 'completed', JSON.stringify(done.job_status));
    assert.equal((await normal.done).code, 0);
    assert.equal(normal.events.at(-1)?.event, 'completed');
    // the 24 MiB completed event cannot have been flushed to a paused reader
    assert.ok(!stalled.events.some((e) => e.event === 'completed'));
    stalled.call.resume();
    assert.equal((await stalled.done).code, 0);
    assert.equal(stalled.events.at(-1)?.event, 'completed');
    assert.equal(stalled.events[0].event, 'queued');
  });
});

describe('retention', () => {
  it('an evicted job is NOT_FOUND on every RPC', async () => {
    const c = await cluster(1, { overrides: { coordinator: { max_retained_jobs: 1 } }, elf: 'retention' });
    try {
      const first = await submit(c.client, { execute: { hash_id: c.hashId, input: inline() } });
      assert.equal((await waitTerminal(c.client, first)).job_status.status, 'completed');
      const second = await submit(c.client, { execute: { hash_id: c.hashId, input: inline() } });
      assert.equal((await waitTerminal(c.client, second)).job_status.status, 'completed');
      for (const method of ['WaitJobResult', 'CancelJob']) {
        assertError(await callError(c.client, method, { job_id: first }), grpc.status.NOT_FOUND, `Job not found: ${first}`, 1001);
      }
      const e = await pushError(pushStream(c.client, 'PushJobInput', [{ job_id: first, chunk: { data: Buffer.alloc(8) } }]).result);
      assertError(e, grpc.status.NOT_FOUND, `Job not found: ${first}`, 1001);
      assert.equal((await wait(c.client, second)).job_status.status, 'completed');
    } finally {
      await c.close();
    }
  });
});

describe('setups survive a restart; the drain waits for jobs', () => {
  it('a restarted coordinator sends recorded setups to workers that register', async () => {
    const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'zisk-cache-setups-'));
    try {
      const first = await cluster(1, { overrides: { coordinator: { cache_dir: cacheDir } }, elf: 'restart' });
      const hashId = first.hashId;
      await first.close();
      const recorded = JSON.parse(fs.readFileSync(path.join(cacheDir, 'setups.json'), 'utf8')) as { setups: { hash_id: string; vk: string }[] };
      assert.deepEqual(recorded.setups.map((s) => [s.hash_id, s.vk]), [[hashId, simVk(hashId, false).toString('hex')]]);

      const tc = await startTestCoordinator({ coordinator: { cache_dir: cacheDir } });
      const client = apiClient(tc.apiAddress);
      const fleet = new SimFleet({ coordinator: tc.clusterAddress, workers: 1, ...FAST_SIM, prefix: 'fresh' }).start();
      try {
        await fleet.waitAllRegistered(10_000);
        await fleet.waitUntil(() => fleet.workers[0].setups.size > 0, 5_000, () => 'setup replayed on registration');
        const jobId = await submit(client, { prove: { hash_id: hashId, input: inline(), proof_dest: 1 } });
        const r = await waitTerminal(client, jobId);
        assert.equal(r.job_status.status, 'completed', JSON.stringify(r.job_status));
        assert.deepEqual((r.result?.prove as { proof: ProofObj }).proof.verification_key, simVk(hashId, false));
      } finally {
        await fleet.stop();
        client.close();
        await tc.stop();
      }
    } finally {
      fs.rmSync(cacheDir, { recursive: true, force: true });
    }
  });

  it('drain: jobs in flight finish, new ones are refused; past the window the rest fail with internal', async () => {
    const c = await cluster(2, { overrides: { server: { shutdown_timeout_seconds: 2 } }, sim: { executeDelayMs: 500 } });
    try {
      const short = await submit(c.client, { execute: { hash_id: c.hashId, input: inline() } });
      const ws = watch(c.client, short);
      c.tc.running.shutdown('SIGTERM');
      await c.tc.waitForLog((l) => String(l.msg).startsWith('received SIGTERM: draining'));
      assertError(
        await (async () => {
          try {
            await unary(c.client, 'JobRequest', { job_kind: { execute: { hash_id: c.hashId, input: inline() } } });
          } catch (err) {
            const e = err as grpc.ServiceError;
            const { apiErrorOf } = await import('../../src/main/api/grpc-errors');
            return { code: e.code, details: e.details, apiError: apiErrorOf(e.metadata), metadata: e.metadata };
          }
          throw new Error('accepted while draining');
        })(),
        grpc.status.UNAVAILABLE,
        'Coordinator is shutting down',
        2003,
      );
      const r = await waitTerminal(c.client, short);
      assert.equal(r.job_status.status, 'completed');
      assert.equal((await ws.done).code, 0);
      assert.equal(await c.tc.running.stopped, 0);
    } finally {
      await c.close();
    }

    const slow = await cluster(1, { overrides: { server: { shutdown_timeout_seconds: 1 } }, sim: { executeDelayMs: 30_000 } });
    try {
      const jobId = await submit(slow.client, { execute: { hash_id: slow.hashId, input: inline() } });
      await slow.tc.waitForLog((l) => l.job_id === jobId && /^execute job \S+ started/.test(String(l.msg)));
      const w = watch(slow.client, jobId);
      slow.tc.running.shutdown('SIGTERM');
      assert.equal((await w.done).code, 0);
      const last = w.events.at(-1);
      assert.equal(last?.event, 'failed');
      assert.equal(((last?.failed as { failure: { kind: string } }).failure).kind, 'internal');
      assert.equal(await slow.tc.running.stopped, 0);
    } finally {
      await slow.close();
    }
  });
});
