import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CLUSTER_API_PROTO, CLUSTER_API_SERVICE, serviceDefinition } from '../../src/shared/proto';
import { FakeClusterServer, type FakeServerOptions } from '../helpers/fake-cluster-server';
import { HASH, contributionTask, jobCancelled, proveTask, resp, responseOf, setupProgram, sleep } from '../helpers/sim-tasks';
import { SimWorker } from '../../src/sim/worker';
import { SIM_WIRES, type SimWire, type SimWorkerInit } from '../../src/sim/options';
import { simChallenges, simVk } from '../../src/sim/data';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function server(opts: FakeServerOptions = {}): Promise<FakeClusterServer> {
  const s = await FakeClusterServer.start(opts);
  cleanups.push(() => s.stop());
  return s;
}

async function worker(s: FakeClusterServer, wire: SimWire, init: Partial<SimWorkerInit> = {}): Promise<SimWorker> {
  const w = new SimWorker({
    coordinator: s.address,
    workerId: 'w1',
    wire,
    heartbeatIntervalMs: 10_000,
    reconnectIntervalMs: 200,
    preSetup: [{ hashId: HASH, withHints: false }],
    contributionDelayMs: 20,
    proveDelayMs: 20,
    recoveryDelayMs: 30,
    ...init,
  });
  cleanups.push(() => w.stop());
  w.start();
  await new Promise<void>((resolve) => w.once('registered', () => resolve()));
  return w;
}

const oneRankChallenges = (job: string) => [{ worker_index: 0, airgroup_id: 0, challenge: simChallenges(job, 0).map(String) }];

for (const wire of SIM_WIRES) {
  describe(`sim worker: failure injection (${wire} wire)`, () => {
    test('error with worker_in_recovery → failed response, context dropped, then recovery_complete', async () => {
      const s = await server();
      const w = await worker(s, wire, { faults: { contribution: { action: 'error', message: 'boom', workerInRecovery: true } } });
      s.send('w1', contributionTask('w1', 'job-e1', 0, 1));
      const r = resp(await s.waitFor(responseOf('job-e1')));
      assert.equal(r.success, false);
      assert.equal(r.error_message, 'boom');
      assert.equal(r.worker_in_recovery, true);
      assert.equal(r.result_data, undefined);
      await s.waitFor((x) => x.msg.recovery_complete?.worker_id === 'w1', 1000);
      assert.equal(w.jobContext, null);
      // times defaults to 1: the next contribution succeeds.
      s.send('w1', contributionTask('w1', 'job-e2', 0, 1));
      assert.equal(resp(await s.waitFor(responseOf('job-e2'))).success, true);
    });

    test('error without recovery on prove keeps the context; workerError sends WorkerError', async () => {
      const s = await server();
      const w = await worker(s, wire, { faults: { prove: { action: 'error', times: 1 } } });
      const job = 'job-e3';
      s.send('w1', contributionTask('w1', job, 0, 1));
      await s.waitFor(responseOf(job));
      s.send('w1', proveTask('w1', job, oneRankChallenges(job)));
      const r = resp(await s.waitFor((x) => responseOf(job)(x) && resp(x).task_type === 1));
      assert.equal(r.success, false);
      assert.equal(r.worker_in_recovery, false);
      assert.equal(w.jobContext?.jobId, job);
      w.inject('prove', { action: 'workerError', message: 'gpu fell off' });
      s.send('w1', proveTask('w1', job, oneRankChallenges(job)));
      const e = await s.waitFor((x) => x.msg.error !== undefined);
      assert.deepEqual(e.msg.error, { worker_id: 'w1', job_id: job, error_message: 'gpu fell off' });
    });

    test('disconnect mid-task → reconnect with last_known_job_id; KEEP_COMPUTING delivers the result on the new stream', async () => {
      const s = await server({ decide: (m) => ({ accepted: true, directive: m.reconnect ? 1 : undefined }) });
      await worker(s, wire, { contributionDelayMs: 250, faults: { contribution: { action: 'disconnect', atMs: 80, reconnectAfterMs: 20 } } });
      const job = 'job-d1';
      const t0 = Date.now();
      s.send('w1', contributionTask('w1', job, 0, 1));
      const re = await s.waitFor((x) => x.msg.reconnect !== undefined, 2000, 'reconnect');
      assert.ok(Date.now() - t0 >= 80, 'dropped mid-task, not on receipt');
      assert.equal(re.msg.reconnect?.last_known_job_id, job);
      assert.equal(s.connections[0].closed, true);
      const r = await s.waitFor(responseOf(job), 2000);
      assert.equal(r.conn, re.conn, 'result delivered on the new stream');
      assert.equal(resp(r).success, true);
    });

    test('disconnect, then CANCEL_STALE_JOB → running computation dropped, recovery_complete, no result', async () => {
      const s = await server({ decide: (m) => ({ accepted: true, directive: m.reconnect ? 2 : undefined }) });
      const w = await worker(s, wire, { contributionDelayMs: 300, faults: { contribution: { action: 'disconnect' } } });
      const job = 'job-d2';
      s.send('w1', contributionTask('w1', job, 0, 1));
      await s.waitFor((x) => x.msg.reconnect?.last_known_job_id === job, 2000);
      await s.waitFor((x) => x.msg.recovery_complete !== undefined, 1000);
      await sleep(350);
      assert.equal(s.received.filter(responseOf(job)).length, 0);
      assert.equal(w.jobContext, null);
    });

    test('silence: no heartbeats, no answers, cancels ignored; unsilence resumes', async () => {
      const s = await server();
      const w = await worker(s, wire, { heartbeatIntervalMs: 40, faults: { contribution: { action: 'silence' } } });
      const job = 'job-s1';
      s.send('w1', contributionTask('w1', job, 0, 1));
      await sleep(30);
      const t0 = Date.now();
      const mark = s.received.length;
      s.send('w1', jobCancelled(job));
      s.send('w1', { heartbeat: { timestamp: null } });
      await sleep(250);
      assert.equal(s.received.length, mark, `silent worker sent ${s.received.slice(mark).map((r) => r.msg.payload).join(',')}`);
      assert.ok(w.isSilent);
      w.unsilence();
      await s.waitFor((x) => x.msg.heartbeat_ack !== undefined && x.at > t0 + 250, 1000, 'heartbeats after unsilence');
      assert.equal(s.received.filter(responseOf(job)).length, 0, 'the silenced task is never answered');
    });

    test('kill mid-task → the connection goes, the new process registers afresh with no job, no result and no setups', async () => {
      const s = await server();
      // Set up by the coordinator, not preSetup: a new process must not keep it.
      const w = await worker(s, wire, { preSetup: [], contributionDelayMs: 200, faults: { contribution: { action: 'kill', atMs: 50, reconnectAfterMs: 30 } } });
      s.send('w1', { setup_program: setupProgram('s1') });
      await s.waitFor((x) => x.msg.setup_program_ack?.job_id === 's1');
      const killed = new Promise<string>((resolve) => w.once('disconnected', (d) => resolve(d.reason)));
      s.send('w1', contributionTask('w1', 'job-k1', 0, 1));
      assert.equal(await killed, 'killed');
      const again = await s.waitForCount((x) => x.msg.register !== undefined, 2, 2000, 'second register');
      assert.notEqual(again[1].conn, again[0].conn, 'a new connection');
      assert.equal(again[0].conn.closed, true);
      assert.equal(s.received.filter((x) => x.msg.reconnect !== undefined).length, 0, 'register, not reconnect');
      assert.equal(w.jobContext, null);
      assert.equal(w.stats.kills, 1);
      // The next task on the new stream is refused for want of a setup; the killed task's result,
      // which would have gone out first on this stream, never does.
      s.send('w1', contributionTask('w1', 'job-k2', 0, 1));
      const r = resp(await s.waitFor(responseOf('job-k2')));
      assert.equal(r.success, false);
      assert.match(r.error_message ?? '', /is not set up/);
      assert.equal(s.received.filter(responseOf('job-k1')).length, 0);
      assert.equal(s.received.filter((x) => x.msg.recovery_complete !== undefined).length, 0, 'a new process has nothing to recover from');
    });

    test('a reconnect due during a silence happens once the silence ends', async () => {
      const s = await server();
      const w = await worker(s, wire);
      w.disconnect(5);
      w.silence();
      // Let the reconnect timer fire while silent (it must then leave the reconnect to unsilence()).
      await sleep(50);
      w.unsilence();
      await s.waitForCount((x) => x.msg.register !== undefined || x.msg.reconnect !== undefined, 2, 2000, 'the handshake after the silence');
    });

    test('kill() with no restart stays down; silence(ms) and pauseReading(ms) end by themselves', async () => {
      const s = await server();
      const w = await worker(s, wire, { heartbeatIntervalMs: 40 });
      w.silence(150);
      assert.ok(w.isSilent);
      const t0 = Date.now();
      await s.waitFor((x) => x.msg.heartbeat_ack !== undefined && x.at > t0 + 100, 2000, 'heartbeats after the silence');
      assert.equal(w.isSilent, false);
      w.pauseReading(150);
      const t1 = Date.now();
      const before = s.received.filter((r) => r.msg.heartbeat_ack).length;
      s.send('w1', { heartbeat: { timestamp: null } });
      await s.waitForCount((r) => r.msg.heartbeat_ack !== undefined, before + 3, 2000, 'heartbeats while paused and after');
      await s.waitFor((x) => x.msg.heartbeat_ack !== undefined && x.at > t1 + 150, 2000);
      const gone = new Promise<string>((resolve) => w.once('disconnected', (d) => resolve(d.reason)));
      w.kill(null);
      assert.equal(await gone, 'killed');
      assert.equal(w.state, 'disconnected');
      assert.equal(w.registered, false);
    });

    test('slowReader: inbound messages wait until reading resumes', async () => {
      const s = await server();
      await worker(s, wire, { faults: { contribution: { action: 'slowReader', durationMs: 300 } } });
      s.send('w1', contributionTask('w1', 'job-r1', 0, 1));
      await s.waitFor(responseOf('job-r1'));
      const t0 = Date.now();
      const before = s.received.filter((r) => r.msg.heartbeat_ack).length;
      s.send('w1', { heartbeat: { timestamp: null } });
      await s.waitForCount((r) => r.msg.heartbeat_ack !== undefined, before + 1, 2000, 'late heartbeat answer');
      assert.ok(Date.now() - t0 >= 200, `answered after ${Date.now() - t0} ms`);
    });

    test('setup faults: wrongVk and error', async () => {
      const s = await server();
      const w = await worker(s, wire, { faults: { setup: { action: 'wrongVk' } } });
      s.send('w1', { setup_program: setupProgram('s1') });
      const a1 = (await s.waitFor((x) => x.msg.setup_program_ack?.job_id === 's1')).msg.setup_program_ack;
      assert.equal(a1?.success, true);
      assert.equal(a1?.vk.length, 32);
      assert.notDeepEqual(a1?.vk, simVk(HASH, false));
      w.inject('setup', { action: 'error', message: 'no disk' });
      s.send('w1', { setup_program: setupProgram('s2', 'ee'.repeat(32)) });
      const a2 = (await s.waitFor((x) => x.msg.setup_program_ack?.job_id === 's2')).msg.setup_program_ack;
      assert.equal(a2?.success, false);
      assert.equal(a2?.error_message, 'no disk');
      assert.equal(a2?.vk.length, 0);
      assert.equal(w.setups.has(`${'ee'.repeat(32)}:0`), false);
    });

    test('delay override and jobId filter', async () => {
      const s = await server();
      await worker(s, wire, { faults: { contribution: { delayMs: 600, jobId: 'job-slow' } } });
      const t0 = Date.now();
      s.send('w1', contributionTask('w1', 'job-fast', 0, 1));
      await s.waitFor(responseOf('job-fast'));
      assert.ok(Date.now() - t0 < 500);
      const t1 = Date.now();
      s.send('w1', contributionTask('w1', 'job-slow', 0, 1));
      await s.waitFor(responseOf('job-slow'));
      assert.ok(Date.now() - t1 >= 580);
    });

    test('sendRaw writes objects and pre-encoded bytes', async () => {
      const s = await server();
      const w = await worker(s, wire);
      assert.equal(w.sendRaw({ recovery_complete: { worker_id: 'w1' } }), true);
      const pub = serviceDefinition(CLUSTER_API_PROTO, CLUSTER_API_SERVICE).WorkerStream;
      assert.equal(w.sendRaw(pub.requestSerialize({ job_cancelled_ack: { worker_id: 'w1', job_id: 'raw' } })), true);
      await s.waitFor((x) => x.msg.recovery_complete !== undefined);
      await s.waitFor((x) => x.msg.job_cancelled_ack?.job_id === 'raw');
    });
  });
}
