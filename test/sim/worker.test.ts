import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClusterServer, type FakeServerOptions, type PubChallenges, type PubProofStark } from '../helpers/fake-cluster-server';
import {
  HASH,
  aggTask,
  contributionTask,
  executionTask,
  hints,
  inputChunk,
  jobCancelled,
  proveTask,
  resp,
  responseOf,
  setupProgram,
  sleep,
  wrapTask,
} from '../helpers/sim-tasks';
import { SimWorker } from '../../src/sim/worker';
import { SimFleet } from '../../src/sim/fleet';
import type { SimWorkerInit } from '../../src/sim/options';
import {
  U64_MAX,
  expectedProofStarkValues,
  simChallenges,
  simExecutedSteps,
  simFinalProof,
  simInstances,
  simPublics,
  simVk,
  simWitnessProofValues,
  simWrapProof,
} from '../../src/sim/data';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function server(opts: FakeServerOptions = {}): Promise<FakeClusterServer> {
  const s = await FakeClusterServer.start(opts);
  cleanups.push(() => s.stop());
  return s;
}

/** A started worker (fast timings, HASH set up) that has completed its handshake. */
async function worker(s: FakeClusterServer, init: Partial<SimWorkerInit> = {}, waitRegistered = true): Promise<SimWorker> {
  const w = new SimWorker({
    coordinator: s.address,
    workerId: 'w1',
    heartbeatIntervalMs: 10_000,
    reconnectIntervalMs: 200,
    preSetup: [{ hashId: HASH, withHints: false }],
    contributionDelayMs: 20,
    proveDelayMs: 20,
    aggregateDelayMs: 10,
    executeDelayMs: 20,
    recoveryDelayMs: 30,
    ...init,
  });
  cleanups.push(() => w.stop());
  w.start();
  if (waitRegistered) await new Promise<void>((resolve) => (w.registered ? resolve() : w.once('registered', () => resolve())));
  return w;
}

describe('sim worker: handshake and heartbeats', () => {
  test('waits for response headers, then sends register and a heartbeat before reading the response', async () => {
    const s = await server({ headersDelayMs: 150 });
    await worker(s, { heartbeatIntervalMs: 80, computeUnits: 7 }, false);
    const acks = await s.waitForCount((r) => r.msg.heartbeat_ack !== undefined, 3, 3000, 'heartbeats');
    const conn = s.connections[0];
    const [first, second] = conn.messages;
    assert.ok(first.at >= conn.headersSentAt, 'nothing sent before the response headers');
    assert.deepEqual(first.msg.register, { worker_id: 'w1', compute_capacity: { compute_units: 7 } });
    assert.deepEqual(second.msg.heartbeat_ack, { worker_id: 'w1' });
    // Periodic acks follow at the configured cadence.
    const gap = acks[2].at - acks[1].at;
    assert.ok(gap >= 60 && gap < 400, `heartbeat gap ${gap}`);
  });

  test('answers coordinator heartbeats', async () => {
    const s = await server();
    await worker(s);
    const before = s.received.filter((r) => r.msg.heartbeat_ack).length;
    s.send('w1', { heartbeat: { timestamp: { seconds: '1', nanos: 0 } } });
    await s.waitForCount((r) => r.msg.heartbeat_ack !== undefined, before + 1, 1000, 'heartbeat answer');
  });

  test('reconnects with last_known_job_id; CANCEL_STALE_JOB drops the context without recovery when idle', async () => {
    const s = await server({ decide: (m) => ({ accepted: true, directive: m.reconnect ? 2 : undefined }) });
    const w = await worker(s, { lastKnownJobId: 'job-old', reconnectIntervalMs: 5000 });
    const first = s.connections[0].first;
    assert.equal(first?.reconnect?.last_known_job_id, 'job-old');
    assert.equal(first?.reconnect?.compute_capacity?.compute_units, 10);
    assert.equal(w.jobContext, null);
    // A clean end → immediate reconnect, now a plain register (no context left).
    const t0 = Date.now();
    s.connections[0].end();
    await s.waitFor((r) => r.conn !== s.connections[0] && r.msg.register !== undefined, 2000, 'register after clean end');
    assert.ok(Date.now() - t0 < 1000, 'clean end reconnects at once, not after reconnectIntervalMs');
    await sleep(60);
    assert.equal(s.received.filter((r) => r.msg.recovery_complete).length, 0);
  });

  test('rejection → reconnects immediately (no back-off)', async () => {
    let n = 0;
    const s = await server({ decide: () => ({ accepted: ++n >= 3, message: 'Maximum concurrent connections reached: (1)' }) });
    const t0 = Date.now();
    const w = await worker(s, { reconnectIntervalMs: 10_000 });
    assert.equal(s.handshakes.length, 3);
    assert.equal(w.stats.rejections, 2);
    assert.ok(Date.now() - t0 < 2000);
  });

  test('connect error → retries after reconnectIntervalMs (coordinator restart)', async () => {
    const s1 = await server();
    const w = await worker(s1, { reconnectIntervalMs: 250 });
    const port = s1.port;
    await s1.stop();
    await sleep(400);
    const s2 = await FakeClusterServer.start({}, port);
    cleanups.push(() => s2.stop());
    await s2.waitFor((r) => r.msg.register !== undefined, 3000, 'register on the new server');
    assert.ok(w.stats.connectErrors >= 1, `connect errors: ${w.stats.connectErrors}`);
  });
});

describe('sim worker: setup', () => {
  test('setup_program → ack with the deterministic 32-byte VK; embedded setup in register_response', async () => {
    const s = await server({ decide: () => ({ accepted: true, setup_program: setupProgram('setup-0', 'cd'.repeat(32), true) }) });
    const w = await worker(s, { setupDelayMs: 30 });
    const emb = await s.waitFor((r) => r.msg.setup_program_ack?.job_id === 'setup-0');
    assert.deepEqual(emb.msg.setup_program_ack?.vk, simVk('cd'.repeat(32), true));
    s.send('w1', { setup_program: setupProgram('setup-1', 'ef'.repeat(32), false) });
    const ack = (await s.waitFor((r) => r.msg.setup_program_ack?.job_id === 'setup-1')).msg.setup_program_ack;
    assert.ok(ack);
    assert.equal(ack.success, true);
    assert.equal(ack.error_message, '');
    assert.equal(ack.hash_id, 'ef'.repeat(32));
    assert.equal(ack.worker_id, 'w1');
    assert.equal(ack.vk.length, 32);
    assert.deepEqual(ack.vk, simVk('ef'.repeat(32), false));
    assert.ok(w.setups.has(`${'ef'.repeat(32)}:0`));
  });

  test('setupPrograms: a setup of another program gets a failed ack and leaves it not set up', async () => {
    const s = await server();
    const w = await worker(s, { setupPrograms: ['ab'.repeat(32)] });
    s.send('w1', { setup_program: setupProgram('setup-x', 'ef'.repeat(32), false) });
    const refused = (await s.waitFor((r) => r.msg.setup_program_ack?.job_id === 'setup-x')).msg.setup_program_ack;
    assert.equal(refused?.success, false);
    assert.match(refused?.error_message ?? '', /not supported/);
    assert.equal(refused?.vk.length, 0);
    s.send('w1', { setup_program: setupProgram('setup-y', 'ab'.repeat(32), false) });
    const ok = (await s.waitFor((r) => r.msg.setup_program_ack?.job_id === 'setup-y')).msg.setup_program_ack;
    assert.equal(ok?.success, true);
    assert.ok(w.setups.has(`${'ab'.repeat(32)}:0`));
    assert.ok(!w.setups.has(`${'ef'.repeat(32)}:0`));
  });

  test('contribution for a program not set up → dispatch failure', async () => {
    const s = await server();
    await worker(s, { preSetup: [] });
    s.send('w1', contributionTask('w1', 'job-ns', 0, 1));
    const r = resp(await s.waitFor(responseOf('job-ns')));
    assert.equal(r.success, false);
    assert.equal(r.worker_in_recovery, false);
    assert.equal(r.result_data, undefined);
    assert.match(r.error_message, /not set up/);
  });
});

describe('sim worker: prove flow driven by a fake coordinator', () => {
  test('contribution → prove (challenges incl. 2^64-1) → aggregate intermediate/final, uint64 exact', async () => {
    const s = await server();
    const K = 300;
    const fleet = new SimFleet({
      coordinator: s.address,
      workers: 3,
      prefix: 'p',
      heartbeatIntervalMs: 10_000,
      preSetup: [{ hashId: HASH, withHints: false }],
      contributionDelayMs: 20,
      proveDelayMs: 20,
      aggregateDelayMs: 10,
      proofValues: K,
      finalProofBytes: 777,
      perWorker: (i) => ({ proveDelayMs: 20 + 40 * i }),
    });
    cleanups.push(() => fleet.stop());
    fleet.start();
    await fleet.waitAllRegistered(3000);
    const job = '11111111-2222-4333-8444-555555555555';
    const ids = ['p-0', 'p-1', 'p-2'];

    ids.forEach((id, rank) => s.send(id, contributionTask(id, job, rank, 3)));
    const contribs = (await s.waitForCount(responseOf(job), 3, 3000, 'contributions')).map(resp);
    const all: PubChallenges[] = [];
    for (const c of contribs) {
      assert.equal(c.success, true);
      assert.equal(c.task_type, 0);
      assert.equal(c.result_data, 'challenges');
      const ch = c.challenges;
      assert.ok(ch?.witness_info && ch.zisk_execution_time);
      assert.ok(ch.zisk_execution_time.task_received_time > 1.6e12);
      assert.deepEqual(ch.witness_info.publics, simPublics(job).map(String));
      assert.deepEqual(ch.witness_info.proof_values, simWitnessProofValues(job).map(String));
      assert.equal(ch.witness_info.total_instances, simInstances(job).toString());
      assert.equal(ch.challenges.length, 1);
      const rank = ids.indexOf(c.worker_id);
      assert.deepEqual(ch.challenges[0], { worker_index: rank, airgroup_id: 0, challenge: simChallenges(job, rank).map(String) });
      all.push(ch.challenges[0]);
    }
    assert.ok(all.some((c) => c.challenge.includes(U64_MAX.toString())), 'a 2^64-1 challenge is relayed');
    const lastContributionSent = fleet.lastAt({ dir: 'out', kind: 'execute_task_response', jobId: job, taskType: 0 });
    assert.ok(lastContributionSent);

    // Phase 2: every worker receives the full list (the fake re-encodes it with the public proto).
    for (const id of ids) s.send(id, proveTask(id, job, all));
    const proves = await s.waitForCount((r) => responseOf(job)(r) && resp(r).task_type === 1, 3, 3000, 'prove results');
    const lastProveReceived = fleet.lastAt({ dir: 'in', kind: 'execute_task', jobId: job, taskType: 1 });
    assert.ok(lastProveReceived && lastContributionSent && lastProveReceived > lastContributionSent);
    const expected = expectedProofStarkValues(K);
    for (const p of proves.map(resp)) {
      assert.equal(p.success, true, p.error_message);
      assert.ok(p.proofs);
      assert.equal(p.proofs.proofs.length, 1);
      assert.equal(p.proofs.proofs[0].worker_idx, ids.indexOf(p.worker_id));
      assert.deepEqual(p.proofs.proofs[0].values, expected);
    }
    assert.equal(fleet.stats().challengeMismatches, 0);
    assert.equal(fleet.stats().challengeEntriesChecked, 9);

    // Phase 3: the first prover aggregates; others' proofs arrive one task at a time.
    const aggregator = proves[0].workerId;
    const others = proves.slice(1).map((r) => resp(r).proofs?.proofs as PubProofStark[]);
    s.send(aggregator, aggTask(aggregator, job, [], false));
    const ack0 = resp(await s.waitFor((r) => responseOf(job, aggregator)(r) && resp(r).task_type === 2));
    assert.equal(ack0.final_proof?.proof_data.length, 0, 'intermediate ack has empty proof_data');
    s.send(aggregator, aggTask(aggregator, job, others[0], false));
    await s.waitForCount((r) => responseOf(job, aggregator)(r) && resp(r).task_type === 2, 2, 2000, 'second agg ack');
    s.send(aggregator, aggTask(aggregator, job, others[1], true));
    const finals = await s.waitForCount((r) => responseOf(job, aggregator)(r) && resp(r).task_type === 2, 3, 2000, 'final proof');
    const fin = resp(finals[2]).final_proof;
    assert.ok(fin);
    assert.deepEqual(fin.proof_data, simFinalProof(job, 777));
    assert.equal(fin.executed_steps, simExecutedSteps(job).toString());
    assert.equal(fin.instances, simInstances(job).toString());

    const agg = fleet.get(aggregator) as SimWorker;
    assert.deepEqual(agg.aggTasks.map((a) => [a.proofCount, a.lastProof, a.valuesIntact]), [[0, false, true], [1, false, true], [1, true, true]]);
    assert.deepEqual(agg.aggTasks.slice(1).map((a) => a.valueCount), [K, K]);
    assert.equal(agg.jobContext, null, 'aggregator drops the context after the final proof');
    for (const id of ids.filter((x) => x !== aggregator)) assert.equal(fleet.get(id)?.jobContext?.jobId, job, 'non-aggregators keep it');
  });

  test('PROVE with a corrupted challenge is refused; AGGREGATE without agg_proofs is refused', async () => {
    const s = await server();
    const w = await worker(s);
    const job = 'job-bad';
    s.send('w1', contributionTask('w1', job, 0, 2));
    await s.waitFor(responseOf(job));
    const good0: PubChallenges = { worker_index: 0, airgroup_id: 0, challenge: simChallenges(job, 0).map(String) };
    const bad1: PubChallenges = { worker_index: 1, airgroup_id: 0, challenge: simChallenges(job, 1).map((v, i) => String(i === 0 ? v - 1n : v)) };
    s.send('w1', proveTask('w1', job, [good0, bad1]));
    const r = resp(await s.waitFor((x) => responseOf(job)(x) && resp(x).task_type === 1));
    assert.equal(r.success, false);
    assert.match(r.error_message, /Challenge check failed: worker 1/);
    assert.equal(w.stats.challengeMismatches, 1);
    s.send('w1', aggTask('w1', job, undefined, true));
    const a = resp(await s.waitFor((x) => responseOf(job)(x) && resp(x).task_type === 2));
    assert.equal(a.success, false);
    assert.match(a.error_message, /agg_proofs/);
  });

  test('task_type without its params member → dispatch failure', async () => {
    const s = await server();
    await worker(s);
    s.send('w1', { execute_task: { worker_id: 'w1', job_id: 'job-mm', task_type: 3, contribution_params: { hash_id: HASH } } });
    const r = resp(await s.waitFor(responseOf('job-mm')));
    assert.equal(r.success, false);
    assert.equal(r.task_type, 3);
    assert.match(r.error_message, /execution_params/);
  });
});

describe('sim worker: execute and wrap', () => {
  test('EXECUTION → Execution{instances, executed_steps, zisk_execution_time, publics}', async () => {
    const s = await server();
    await worker(s);
    const job = 'job-exec';
    s.send('w1', executionTask('w1', job, 0, 1));
    const r = resp(await s.waitFor(responseOf(job)));
    assert.equal(r.success, true);
    assert.equal(r.result_data, 'execution');
    assert.equal(r.execution?.executed_steps, simExecutedSteps(job).toString());
    assert.equal(r.execution?.instances, simInstances(job).toString());
    assert.ok(r.execution?.zisk_execution_time);
    assert.deepEqual(r.execution?.witness_info?.publics, simPublics(job).map(String));
  });

  test('WRAP blocks the loop: no heartbeat during it, queued heartbeat answered after the result', async () => {
    const s = await server();
    const w = await worker(s, { heartbeatIntervalMs: 50, wrapDelayMs: 400 });
    const input = Buffer.from('proof-to-wrap');
    const sentAt = Date.now();
    s.send('w1', wrapTask('w1', 'job-wrap', input, 2));
    await sleep(100);
    s.send('w1', { heartbeat: { timestamp: null } });
    const res = await s.waitFor(responseOf('job-wrap'), 3000);
    assert.ok(Date.now() - sentAt >= 380);
    const r = resp(res);
    assert.equal(r.success, true);
    assert.deepEqual(r.wrap_result?.proof_data, simWrapProof(input, 2, 1024));
    const taskIn = w.log.find((e) => e.dir === 'in' && e.jobId === 'job-wrap');
    assert.ok(taskIn);
    const during = s.received.filter((x) => x.msg.heartbeat_ack && x.at > taskIn.at + 5 && x.at < res.at);
    assert.equal(during.length, 0, 'no heartbeat_ack while blocked');
    await s.waitFor((x) => x.msg.heartbeat_ack !== undefined && x.at >= res.at, 1000, 'heartbeat after wrap');
    assert.equal(w.stats.heartbeatsReceived, 1);
  });

  test('WRAP with an invalid proof_dest → dispatch failure', async () => {
    const s = await server();
    await worker(s);
    s.send('w1', wrapTask('w1', 'job-w0', Buffer.from('x'), 0));
    const r = resp(await s.waitFor(responseOf('job-w0')));
    assert.equal(r.success, false);
    assert.match(r.error_message, /proof_dest/);
  });
});

describe('sim worker: input and hints streams', () => {
  test('input_stream_data: counts bytes, rejects a non-multiple-of-8 chunk and a foreign job with WorkerError', async () => {
    const s = await server();
    const w = await worker(s, { contributionDelayMs: 300 });
    w.enableStreamDigests();
    const job = 'job-in';
    s.send('w1', contributionTask('w1', job, 0, 1));
    s.send('w1', inputChunk(job, Buffer.alloc(16, 1)));
    s.send('w1', inputChunk(job, Buffer.alloc(0)));
    s.send('w1', inputChunk(job, Buffer.alloc(5, 2)));
    s.send('w1', inputChunk('job-other', Buffer.alloc(8)));
    const errs = await s.waitForCount((r) => r.msg.error !== undefined, 2, 2000, 'worker errors');
    assert.equal(errs[0].msg.error?.job_id, job);
    assert.match(errs[0].msg.error?.error_message ?? '', /multiple of 8/);
    assert.equal(errs[1].msg.error?.job_id, 'job-other');
    const c = w.streamCounters(job);
    assert.equal(c?.inputBytes, 16);
    assert.equal(c?.inputChunks, 2);
    assert.equal(c?.inputRejected, 1);
    assert.match(w.streamDigest(job, 'input') ?? '', /^[0-9a-f]{64}$/);
  });

  test('hints: reordered DATA applied in sequence, contribution completes only after END', async () => {
    const s = await server();
    const w = await worker(s, { preSetup: [{ hashId: HASH, withHints: true }], contributionDelayMs: 10 });
    const job = 'job-hints';
    s.send('w1', contributionTask('w1', job, 0, 1, { hints_stream: true, hints_path: 'grpc://hints' }));
    s.send('w1', hints(job, 0, 0));
    s.send('w1', hints(job, 1, 2, Buffer.alloc(16)));
    s.send('w1', hints(job, 1, 1, Buffer.alloc(8)));
    await sleep(80);
    assert.equal(s.received.filter(responseOf(job)).length, 0, 'no result before END');
    assert.equal(w.streamCounters(job)?.hintsBytes, 24);
    s.send('w1', hints(job, 2, 3));
    const r = resp(await s.waitFor(responseOf(job)));
    assert.equal(r.success, true);
    const c = w.streamCounters(job);
    assert.equal(c?.hintsEnded, true);
    assert.equal(c?.hintsMessages, 2);
    assert.deepEqual(c?.errors, []);
  });

  test('hints sequence errors: DATA before START, second START, END with a gap', async () => {
    const s = await server();
    const w = await worker(s, { preSetup: [{ hashId: HASH, withHints: true }], contributionDelayMs: 5000 });
    const job = 'job-hseq';
    s.send('w1', contributionTask('w1', job, 0, 1, { hints_stream: true }));
    s.send('w1', hints(job, 1, 1, Buffer.alloc(8)));
    s.send('w1', hints(job, 0, 0));
    s.send('w1', hints(job, 0, 0));
    s.send('w1', hints(job, 1, 2, Buffer.alloc(8)));
    s.send('w1', hints(job, 2, 3));
    const errs = await s.waitForCount((r) => r.msg.error?.job_id === job, 3, 2000, 'hint errors');
    assert.match(errs[0].msg.error?.error_message ?? '', /before START/);
    assert.match(errs[1].msg.error?.error_message ?? '', /START received twice/);
    assert.match(errs[2].msg.error?.error_message ?? '', /gaps/);
    assert.equal(w.streamCounters(job)?.hintsEnded, false);
  });
});

describe('sim worker: cancellation', () => {
  test('job_cancelled while computing → ack, then recovery_complete after the recovery delay, no result', async () => {
    const s = await server();
    const w = await worker(s, { contributionDelayMs: 500, recoveryDelayMs: 80 });
    const job = 'job-c1';
    s.send('w1', contributionTask('w1', job, 0, 1));
    await sleep(50);
    s.send('w1', jobCancelled(job));
    const ack = await s.waitFor((r) => r.msg.job_cancelled_ack?.job_id === job);
    const rc = await s.waitFor((r) => r.msg.recovery_complete !== undefined);
    assert.ok(rc.at - ack.at >= 60, `recovery after ${rc.at - ack.at} ms`);
    assert.equal(w.jobContext, null);
    await sleep(550);
    assert.equal(s.received.filter(responseOf(job)).length, 0);
  });

  test('an instant task (delay 0) answers, and job_cancelled in the same turn stops it before it answers', async () => {
    const s = await server();
    await worker(s, { contributionDelayMs: 0, recoveryDelayMs: 0 });
    s.send('w1', contributionTask('w1', 'job-i1', 0, 1));
    await s.waitFor(responseOf('job-i1'));
    // Written in one turn, the two arrive in one read. An instant computation still ends on a later
    // turn (as a real one does), so the cancel handled first stops it and no result follows.
    s.send('w1', contributionTask('w1', 'job-i2', 0, 1));
    s.send('w1', jobCancelled('job-i2'));
    await s.waitFor((r) => r.msg.job_cancelled_ack?.job_id === 'job-i2');
    await s.waitFor((r) => r.msg.recovery_complete !== undefined);
    await sleep(50);
    assert.equal(s.received.filter(responseOf('job-i2')).length, 0);
  });

  test('job_cancelled holding an idle context → immediate recovery_complete; other job → ack only', async () => {
    const s = await server();
    const w = await worker(s, { recoveryDelayMs: 1000 });
    const job = 'job-c2';
    s.send('w1', contributionTask('w1', job, 0, 1));
    await s.waitFor(responseOf(job));
    s.send('w1', jobCancelled('job-unrelated'));
    await s.waitFor((r) => r.msg.job_cancelled_ack?.job_id === 'job-unrelated');
    assert.equal(w.jobContext?.jobId, job);
    s.send('w1', jobCancelled(job));
    const ack = await s.waitFor((r) => r.msg.job_cancelled_ack?.job_id === job);
    const rc = await s.waitFor((r) => r.msg.recovery_complete !== undefined, 500);
    assert.ok(rc.at - ack.at < 500, 'not after the 1 s recovery delay');
    assert.equal(s.received.filter((r) => r.msg.recovery_complete).length, 1);
  });
});

describe('sim worker: job context', () => {
  test('a new contribution replaces a running one silently; shutdown reports a WorkerError and stays connected', async () => {
    const s = await server();
    const w = await worker(s, { contributionDelayMs: 150 });
    s.send('w1', contributionTask('w1', 'job-a', 0, 1));
    await sleep(30);
    s.send('w1', contributionTask('w1', 'job-b', 0, 1));
    await s.waitFor(responseOf('job-b'));
    await sleep(150);
    assert.equal(s.received.filter(responseOf('job-a')).length, 0, 'the replaced computation never answers');
    assert.equal(s.received.filter((r) => r.msg.recovery_complete).length, 0);
    assert.equal(w.jobContext?.jobId, 'job-b');
    s.send('w1', { shutdown: { reason: 'maintenance', grace_period_seconds: 0 } });
    const e = await s.waitFor((r) => r.msg.error !== undefined);
    assert.equal(e.msg.error?.job_id, 'job-b');
    assert.match(e.msg.error?.error_message ?? '', /maintenance/);
    assert.equal(w.jobContext, null);
    assert.equal(w.registered, true);
    assert.equal(s.connections.length, 1);
  });
});
