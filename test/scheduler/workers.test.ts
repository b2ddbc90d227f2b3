/**
 * Worker connections and worker states (docs/decisions.md, Workers; docs/protocol.md, Takeover and
 * Liveness).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  HASH,
  HASH2,
  Harness,
  VK,
  eventKinds,
  failureOf,
  none,
  one,
  only,
} from './harness';

describe('handshake', () => {
  it('a stream that never registers is closed after handshake_timeout_seconds', () => {
    const h = new Harness();
    const linkId = h.open();
    assert.equal(h.advance(9_999).length, 0);
    const close = one(h.advance(1), 'closeWorker');
    assert.deepEqual(close, {
      type: 'closeWorker',
      linkId,
      status: 'DEADLINE_EXCEEDED',
      message: 'Handshake timeout: no registration within 10s',
    });
  });

  it('a hello in time cancels the handshake timer', () => {
    const h = new Harness();
    h.hello('w0');
    h.alive('w0');
    none(h.advance(20_000), 'closeWorker');
  });

  it('a stream closed before its hello leaves nothing behind', () => {
    const h = new Harness();
    const linkId = h.open();
    h.send({ type: 'workerClosed', linkId });
    none(h.advance(20_000), 'closeWorker');
    assert.equal(h.core.nextDeadline(), undefined);
  });

  it('a second hello on the same stream ends it with INVALID_ARGUMENT', () => {
    const h = new Harness();
    h.hello('w0');
    const out = h.hello('w0', {}, h.link('w0'));
    assert.deepEqual(one(out, 'closeWorker'), {
      type: 'closeWorker',
      linkId: h.link('w0'),
      status: 'INVALID_ARGUMENT',
      message: 'Already registered on this stream',
    });
    none(out, 'acceptWorker');
  });
});

describe('register', () => {
  it('a new worker with no completed setups is accepted Idle', () => {
    const h = new Harness();
    const out = h.hello('w0', { units: 4 });
    assert.deepEqual(one(out, 'acceptWorker'), {
      type: 'acceptWorker',
      linkId: h.link('w0'),
      workerId: 'w0',
      message: 'Registration successful',
      setups: [],
    });
    const w = h.worker('w0');
    assert.equal(w.state, 'idle');
    assert.equal(w.capacity, 4);
    assert.equal(w.generation, 0);
    const counts = one(out, 'workerCounts');
    assert.equal(counts.counts.idle, 1);
    assert.equal(counts.queueDepth, 0);
  });

  it('every completed setup is replayed with fresh ids; SettingUp until all are acked', () => {
    const h = new Harness();
    h.registerAll(['w0']);
    h.setup();
    h.setup({ hashId: HASH2, withHints: true });
    const accept = one(h.hello('w1'), 'acceptWorker');
    assert.deepEqual(
      accept.setups.map((s) => [s.hashId, s.withHints, s.programName]),
      [
        [HASH, false, 'guest'],
        [HASH2, true, 'guest'],
      ],
    );
    const ids = accept.setups.map((s) => s.setupJobId);
    assert.equal(new Set(ids).size, 2);
    for (const id of ids) assert.match(id, /^id-\d+$/);
    assert.equal(h.state('w1'), 'setting_up');
    h.ackSetup('w1', ids[0]);
    assert.equal(h.state('w1'), 'setting_up');
    h.ackSetup('w1', ids[1], { hashId: HASH2 });
    assert.equal(h.state('w1'), 'ready');
    assert.deepEqual(h.worker('w1').programs, [
      { hashId: HASH, withHints: false },
      { hashId: HASH2, withHints: true },
    ]);
  });

  it('restoreSetup entries are replayed like completed setups', () => {
    const h = new Harness();
    h.send({ type: 'restoreSetup', hashId: HASH, withHints: false, programName: 'p', vkHex: VK });
    const accept = one(h.hello('w0'), 'acceptWorker');
    assert.equal(accept.setups.length, 1);
    assert.equal(accept.setups[0].programName, 'p');
    h.ackSetup('w0', accept.setups[0].setupJobId);
    assert.equal(h.state('w0'), 'ready');
  });

  it('Reconnect storm: max_total_workers counts live workers only, and a rejection is delayed', () => {
    const h = new Harness({ max_total_workers: 2 });
    h.registerAll(['w0', 'w1']);
    const rejected = one(h.hello('w2'), 'rejectWorker');
    assert.equal(rejected.message, 'Maximum concurrent connections reached: (2)');
    assert.equal(rejected.delayMs, 1000);
    assert.equal(h.hasWorker('w2'), false);
    // a takeover of a live worker does not add one
    one(h.hello('w1'), 'acceptWorker');
    h.close('w0');
    assert.equal(h.state('w0'), 'disconnected');
    one(h.hello('w2'), 'acceptWorker');
  });

  it('a takeover keeps the registration order and closes the old stream', () => {
    const h = new Harness();
    h.registerAll(['w0', 'w1']);
    const oldLink = h.link('w0');
    const out = h.hello('w0');
    assert.deepEqual(one(out, 'closeWorker'), {
      type: 'closeWorker',
      linkId: oldLink,
      status: 'OK',
      message: 'Replaced by a newer connection',
    });
    assert.notEqual(h.link('w0'), oldLink);
    assert.deepEqual(
      h.core.snapshot().workers.map((w) => [w.id, w.generation, w.linkId]),
      [
        ['w0', 1, h.link('w0')],
        ['w1', 0, h.link('w1')],
      ],
    );
    // the old stream's close no longer concerns the worker
    h.send({ type: 'workerClosed', linkId: oldLink });
    assert.equal(h.state('w0'), 'idle');
  });

  it('register while SettingUp is a takeover and the owed setup is sent again', () => {
    const h = new Harness();
    h.registerAll(['w0', 'w1']);
    const { jobId, effects } = h.submit({ kind: 'setup', hashId: HASH, withHints: false, programName: 'guest' });
    assert.deepEqual(one(effects, 'sendSetup').linkIds, [h.link('w0'), h.link('w1')]);
    const accept = one(h.hello('w0'), 'acceptWorker');
    assert.deepEqual(
      accept.setups.map((s) => s.setupJobId),
      [jobId],
    );
    h.ackSetup('w1', jobId);
    assert.equal(h.job(jobId).status, 'running', 'still waiting for the re-sent setup');
    const out = h.ackSetup('w0', jobId);
    assert.deepEqual(terminalKind(out, jobId), 'completed');
    assert.equal(h.state('w0'), 'ready');
  });

  it('Silent takeover: a takeover mid-job fails the job', () => {
    const h = new Harness();
    h.cluster(2);
    const { jobId } = h.prove();
    const oldLink = h.link('w0');
    const out = h.hello('w0');
    assert.deepEqual(failureOf(out, jobId), {
      kind: 'execution',
      reason: `Worker w0 re-registered while computing job ${jobId}`,
    });
    // the other member is told, and so is the stream being replaced
    assert.deepEqual(one(out, 'sendJobCancelled').linkIds, [oldLink, h.link('w1')]);
    const closeIdx = out.findIndex((e) => e.type === 'closeWorker');
    const acceptIdx = out.findIndex((e) => e.type === 'acceptWorker');
    assert.ok(closeIdx >= 0 && closeIdx < acceptIdx);
    assert.equal(h.state('w1'), 'ready');
    // register clears the recovery entry: the new process never sends recovery_complete
    assert.equal(h.worker('w0').parked, false);
    assert.equal(h.state('w0'), 'setting_up');
    h.ackSetups(out);
    assert.equal(h.state('w0'), 'ready');
  });
});

describe('reconnect', () => {
  it('no last_known_job_id → no directive; unknown or terminal job → CANCEL_STALE_JOB', () => {
    const h = new Harness();
    h.cluster(1);
    const noJob = one(h.hello('w0', { reconnect: true }), 'acceptWorker');
    assert.equal(noJob.directive, undefined);
    assert.equal(noJob.message, 'Reconnection successful');
    h.ackSetups([noJob]);
    const unknown = one(h.hello('w0', { reconnect: true, lastKnownJobId: 'nope' }), 'acceptWorker');
    assert.equal(unknown.directive, 'CANCEL_STALE_JOB');
    h.ackSetups([unknown]);
    const { jobId } = h.prove();
    h.runProve(jobId);
    const terminal = one(h.hello('w0', { reconnect: true, lastKnownJobId: jobId }), 'acceptWorker');
    assert.equal(terminal.directive, 'CANCEL_STALE_JOB');
  });

  it('an active job the worker is not part of → CANCEL_STALE_JOB', () => {
    const h = new Harness({ default_compute_units: 10 });
    h.cluster(2);
    const { jobId } = h.prove();
    assert.deepEqual(h.job(jobId).workers, ['w0']);
    const accept = one(h.hello('w1', { reconnect: true, lastKnownJobId: jobId }), 'acceptWorker');
    assert.equal(accept.directive, 'CANCEL_STALE_JOB');
  });

  it('KEEP_COMPUTING keeps a Computing(that job) worker on its job and re-points the relays', () => {
    const h = new Harness();
    h.cluster(2);
    const { jobId } = h.prove();
    h.close('w0');
    assert.equal(h.state('w0'), 'computing');
    h.advance(300);
    const out = h.hello('w0', { reconnect: true, lastKnownJobId: jobId });
    const accept = one(out, 'acceptWorker');
    assert.equal(accept.directive, 'KEEP_COMPUTING');
    assert.deepEqual(accept.setups, []);
    assert.deepEqual(one(out, 'jobLinks'), { type: 'jobLinks', jobId, linkIds: [h.link('w0'), h.link('w1')] });
    assert.equal(h.state('w0'), 'computing');
    assert.equal(h.worker('w0').generation, 1);
    // the old grace timer must not fire (connection generations)
    none(h.advance(1_000), 'jobEvent');
    assert.equal(terminalKind(h.runProve(jobId), jobId), 'completed');
  });

  it('KEEP_COMPUTING copies Disconnected: KEEP_COMPUTING for a released worker does not copy Disconnected', () => {
    const h = new Harness();
    h.cluster(2);
    const { jobId } = h.prove();
    h.contribute('w0', jobId);
    h.contribute('w1', jobId);
    h.proofs('w0', jobId); // w0 aggregates
    h.proofs('w1', jobId); // w1 released
    assert.equal(h.state('w1'), 'ready');
    h.close('w1');
    assert.equal(h.state('w1'), 'disconnected');
    const accept = one(h.hello('w1', { reconnect: true, lastKnownJobId: jobId }), 'acceptWorker');
    assert.equal(accept.directive, 'KEEP_COMPUTING');
    assert.notEqual(h.state('w1'), 'disconnected');
    h.ackSetups([accept]);
    assert.equal(h.state('w1'), 'ready');
  });

  it('a reconnect without the job a worker was computing fails that job and parks the worker', () => {
    const h = new Harness();
    h.cluster(2);
    const { jobId } = h.prove();
    const out = h.hello('w0', { reconnect: true, lastKnownJobId: 'other' });
    assert.equal(one(out, 'acceptWorker').directive, 'CANCEL_STALE_JOB');
    assert.deepEqual(failureOf(out, jobId), {
      kind: 'execution',
      reason: `Worker w0 reconnected without job ${jobId}`,
    });
    assert.equal(h.worker('w0').parked, true);
    assert.equal(h.state('w0'), 'setting_up');
    assert.equal(h.state('w1'), 'ready');
  });
});

describe('liveness', () => {
  it('an idle worker that goes silent is disconnected, not selected', () => {
    const h = new Harness();
    h.registerAll(['w0']);
    none(h.advance(89_999), 'closeWorker');
    const out = h.advance(1);
    assert.deepEqual(one(out, 'closeWorker'), {
      type: 'closeWorker',
      linkId: h.link('w0'),
      status: 'UNAVAILABLE',
      message: 'heartbeat timeout',
    });
    assert.equal(h.state('w0'), 'disconnected');
    assert.equal(one(out, 'workerCounts').counts.disconnected, 1);
  });

  it('heartbeats keep a ready worker alive', () => {
    const h = new Harness();
    h.cluster(1);
    for (let i = 0; i < 20; i++) {
      h.advance(30_000);
      h.alive('w0');
    }
    assert.equal(h.state('w0'), 'ready');
    none(h.all, 'closeWorker');
  });

  it('one workersAlive keeps every listed worker alive and ignores links it does not know', () => {
    const h = new Harness();
    h.registerAll(['w0', 'w1', 'w2']);
    for (let i = 0; i < 4; i++) {
      h.advance(30_000);
      const stranger = h.open();
      assert.deepEqual(h.send({ type: 'workersAlive', linkIds: [h.link('w0'), stranger, h.link('w2'), 9_999] }), []);
    }
    assert.equal(h.state('w0'), 'idle');
    assert.equal(h.state('w2'), 'idle');
    // w1 was never listed: its 90 s ran out
    assert.equal(h.state('w1'), 'disconnected');
    const registered = ['w0', 'w1', 'w2'].map((w) => h.link(w));
    const closed = only(h.all, 'closeWorker').filter((c) => registered.includes(c.linkId));
    assert.deepEqual(closed.map((c) => [c.linkId, c.message]), [[h.link('w1'), 'heartbeat timeout']]);
  });

  it('Dead worker back to Ready: a stale worker is not put back to Ready', () => {
    const h = new Harness();
    h.cluster(2);
    const { jobId } = h.prove();
    for (let t = 0; t < 3; t++) {
      h.advance(29_999);
      h.alive('w1');
    }
    const out = h.advance(3);
    assert.deepEqual(failureOf(out, jobId), {
      kind: 'execution',
      reason: `Worker w0 missed heartbeats for job ${jobId}`,
    });
    assert.equal(h.state('w0'), 'disconnected');
    assert.equal(h.state('w1'), 'ready');
    // the dead stream is not sent job_cancelled; the live member is
    assert.deepEqual(one(out, 'sendJobCancelled').linkIds, [h.link('w1')]);
  });

  it('task results and setup acks count as liveness', () => {
    const h = new Harness();
    h.cluster(1);
    const { jobId } = h.prove();
    h.advance(80_000);
    h.contribute('w0', jobId);
    h.advance(80_000);
    h.proofs('w0', jobId);
    h.advance(80_000);
    assert.equal(terminalKind(h.finalProof('w0', jobId), jobId), 'completed');
    none(h.all, 'closeWorker');
  });

  it('is not checked while SettingUp; restarts from the ack', () => {
    const h = new Harness();
    h.registerAll(['w0']);
    const { jobId } = h.submit({ kind: 'setup', hashId: HASH, withHints: false, programName: 'guest' });
    none(h.advance(300_000), 'closeWorker');
    h.ackSetup('w0', jobId);
    none(h.advance(89_999), 'closeWorker');
    one(h.advance(1), 'closeWorker');
  });

  it('is not checked while computing a wrap', () => {
    const h = new Harness();
    h.registerAll(['w0']);
    const { jobId } = h.wrap();
    none(h.advance(500_000), 'closeWorker');
    assert.equal(terminalKind(h.wrapped('w0', jobId), jobId), 'completed');
    none(h.advance(89_999), 'closeWorker');
    one(h.advance(1), 'closeWorker');
  });

  it('a heartbeat costs no timer churn: one wake-up per threshold at most', () => {
    const h = new Harness();
    h.registerAll(['w0']);
    for (let i = 0; i < 1000; i++) {
      h.advance(10);
      h.alive('w0');
    }
    // still the first deadline (registration + 90 s): acks did not reschedule anything
    assert.equal(h.core.nextDeadline(), h.now - 10_000 + 90_000);
  });
});

describe('disconnect and the reconnect grace period', () => {
  it('a worker that is not computing is Disconnected at once', () => {
    const h = new Harness();
    h.cluster(1);
    const out = h.close('w0');
    assert.equal(h.state('w0'), 'disconnected');
    assert.equal(one(out, 'workerCounts').counts.disconnected, 1);
  });

  it('no reconnect inside the grace: the job fails (recovering variant) and the worker is Disconnected', () => {
    const h = new Harness();
    h.cluster(2);
    const { jobId } = h.prove();
    h.close('w0');
    none(h.advance(499), 'jobEvent');
    const out = h.advance(1);
    assert.deepEqual(failureOf(out, jobId), { kind: 'execution', reason: 'Worker w0 connection dropped' });
    assert.equal(h.state('w0'), 'disconnected');
    assert.equal(h.worker('w0').parked, true);
    assert.equal(h.state('w1'), 'ready');
    // a later reconnect finds the job over, and the recovery entry survives it
    const accept = one(h.hello('w0', { reconnect: true, lastKnownJobId: jobId }), 'acceptWorker');
    assert.equal(accept.directive, 'CANCEL_STALE_JOB');
    h.ackSetups([accept]);
    assert.equal(h.state('w0'), 'setting_up');
    h.recoveryComplete('w0');
    assert.equal(h.state('w0'), 'ready');
  });

  it('Generation race: a second drop after a reconnect gets its own grace period', () => {
    const h = new Harness();
    h.cluster(1);
    const { jobId } = h.prove();
    h.close('w0');
    h.advance(400);
    h.hello('w0', { reconnect: true, lastKnownJobId: jobId });
    h.advance(50);
    h.close('w0');
    // the first grace would have ended here
    none(h.advance(100), 'jobEvent');
    assert.equal(h.state('w0'), 'computing');
    const out = h.advance(400);
    assert.equal(failureOf(out, jobId).kind, 'execution');
  });

  it('Disconnected entries are purged after the stale threshold, with their recovery entry', () => {
    const h = new Harness();
    h.cluster(1);
    const { jobId } = h.prove();
    h.cancel(jobId);
    assert.equal(h.worker('w0').parked, true);
    h.close('w0');
    h.advance(299_999);
    assert.equal(h.hasWorker('w0'), true);
    const out = h.advance(1);
    assert.equal(h.hasWorker('w0'), false);
    assert.equal(one(out, 'workerCounts').counts.disconnected, 0);
    const accept = one(h.hello('w0', { reconnect: true }), 'acceptWorker');
    h.ackSetups([accept]);
    assert.equal(h.worker('w0').parked, false);
    assert.equal(h.state('w0'), 'ready');
  });
});

describe('recovery', () => {
  it('a parked worker returns to Ready on recovery_complete', () => {
    const h = new Harness();
    h.cluster(1);
    const { jobId } = h.prove();
    h.cancel(jobId);
    assert.equal(h.state('w0'), 'setting_up');
    h.recoveryComplete('w0');
    assert.equal(h.state('w0'), 'ready');
  });

  it('Recovery wedges: a parked worker is released by the recovery timeout', () => {
    const h = new Harness();
    h.cluster(1);
    const { jobId } = h.prove();
    h.cancel(jobId);
    for (let i = 0; i < 12; i++) {
      h.advance(29_999);
      h.alive('w0');
    }
    assert.equal(h.state('w0'), 'setting_up');
    const out = h.advance(360_000 - 12 * 29_999);
    assert.equal(h.state('w0'), 'ready');
    assert.deepEqual(one(out, 'recoveryTimedOut'), { type: 'recoveryTimedOut', workerId: 'w0' });
    assert.ok(only(out, 'log').some((l) => l.level === 'warn' && l.fields.worker_id === 'w0'));
  });

  it('Recovery wedges: a parked worker is released by register', () => {
    const h = new Harness();
    h.cluster(1);
    const { jobId } = h.prove();
    h.cancel(jobId);
    const reconnect = one(h.hello('w0', { reconnect: true, lastKnownJobId: jobId }), 'acceptWorker');
    h.ackSetups([reconnect]);
    assert.equal(h.state('w0'), 'setting_up', 'a reconnect keeps the recovery entry');
    h.ackSetups(h.hello('w0'));
    assert.equal(h.worker('w0').parked, false);
    assert.equal(h.state('w0'), 'ready');
  });

  it('a setup ack never flips a parked worker', () => {
    const h = new Harness();
    h.cluster(2);
    const { jobId } = h.prove();
    h.cancel(jobId);
    const setup = h.submit({ kind: 'setup', hashId: HASH2, withHints: false, programName: 'other' });
    h.ackSetups(setup.effects);
    assert.equal(terminalKind(h.all, setup.jobId), 'completed');
    assert.equal(h.state('w0'), 'setting_up');
    h.recoveryComplete('w0');
    assert.equal(h.state('w0'), 'ready');
    assert.equal(h.worker('w0').programs.length, 2);
  });

  it('recovery_complete from a worker that is not parked changes nothing', () => {
    const h = new Harness();
    h.cluster(1);
    const { jobId } = h.prove();
    h.recoveryComplete('w0');
    assert.equal(h.state('w0'), 'computing');
    assert.equal(h.job(jobId).status, 'running');
  });
});

describe('worker states', () => {
  it('walks one worker through Idle → SettingUp → Ready → Computing → Ready', () => {
    const h = new Harness();
    h.registerAll(['w0']);
    assert.equal(h.state('w0'), 'idle');
    const { jobId, effects } = h.submit({ kind: 'setup', hashId: HASH, withHints: false, programName: 'guest' });
    assert.equal(h.state('w0'), 'setting_up');
    h.ackSetups(effects);
    assert.equal(h.state('w0'), 'ready');
    assert.equal(h.job(jobId).status, 'completed');
    const prove = h.prove();
    assert.equal(h.state('w0'), 'computing');
    assert.equal(h.worker('w0').jobId, prove.jobId);
    h.contribute('w0', prove.jobId);
    assert.equal(h.job(prove.jobId).phase, 2);
    h.proofs('w0', prove.jobId);
    assert.equal(h.job(prove.jobId).phase, 3);
    assert.equal(h.state('w0'), 'computing');
    h.finalProof('w0', prove.jobId);
    assert.equal(h.state('w0'), 'ready');
    assert.deepEqual(eventKinds(h.all, prove.jobId), [
      'queued',
      'started',
      'progress:1',
      'progress:2',
      'progress:3',
      'completed',
    ]);
  });

  it('a failed setup ack leaves an unset-up worker Idle', () => {
    const h = new Harness();
    h.registerAll(['w0', 'w1']);
    const { jobId } = h.submit({ kind: 'setup', hashId: HASH, withHints: false, programName: 'guest' });
    h.ackSetup('w0', jobId, { success: false });
    assert.equal(h.state('w0'), 'idle');
    h.ackSetup('w1', jobId);
    assert.equal(h.state('w1'), 'ready');
  });

  it('a result for a job the worker is not computing changes no state', () => {
    const h = new Harness();
    h.cluster(2);
    const a = h.prove();
    const out = h.contribute('w0', 'job-unknown');
    assert.equal(one(out, 'ignoredMessage').reason, 'unknown_job');
    assert.equal(h.state('w0'), 'computing');
    assert.equal(h.worker('w0').jobId, a.jobId);
    assert.equal(only(out, 'releaseBlobs')[0].blobIds.length, 3);
    // a heartbeat from an unregistered stream is harmless
    const linkId = h.open();
    assert.equal(h.send({ type: 'workerAlive', linkId }).length, 0);
    assert.equal(only(h.contribute('w0', a.jobId, 'wk', { linkId }), 'ignoredMessage')[0].reason, 'unregistered_link');
  });
});

function terminalKind(effects: Parameters<typeof eventKinds>[0], jobId: string): string | undefined {
  const kinds = eventKinds(effects, jobId).filter((k) => k === 'completed' || k === 'failed' || k === 'cancelled');
  return kinds.length === 1 ? kinds[0] : `${kinds.length} terminal events`;
}
