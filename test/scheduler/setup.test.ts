/**
 * Setup jobs (docs/decisions.md, Setup jobs) and per-worker program sets.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HASH, HASH2, Harness, VK, eventKinds, failureOf, none, one, only, terminalEvent } from './harness';

const setupSpec = (hashId = HASH, withHints = false) => ({ kind: 'setup' as const, hashId, withHints, programName: 'guest' });

describe('setup jobs', () => {
  it('completes when every target acked with one VK', () => {
    const h = new Harness();
    h.registerAll(3);
    const { jobId, effects } = h.submit(setupSpec());
    assert.deepEqual(one(effects, 'submitResult'), { type: 'submitResult', requestId: 1, jobId, ok: true });
    const send = one(effects, 'sendSetup');
    assert.deepEqual(send.setup, { setupJobId: jobId, hashId: HASH, withHints: false, programName: 'guest' });
    assert.deepEqual(send.linkIds, [h.link('w0'), h.link('w1'), h.link('w2')]);
    assert.deepEqual(eventKinds(effects, jobId), ['queued', 'started']);
    h.ackSetup('w0', jobId);
    h.ackSetup('w1', jobId);
    assert.equal(h.job(jobId).status, 'running');
    const out = h.ackSetup('w2', jobId);
    assert.deepEqual(terminalEvent(out, jobId), { kind: 'completed', result: { kind: 'setup', vkHex: VK } });
    assert.deepEqual(one(out, 'setupCompleted'), {
      type: 'setupCompleted',
      hashId: HASH,
      withHints: false,
      programName: 'guest',
      vkHex: VK,
    });
    assert.deepEqual(
      only(out, 'workerJobOutcome').map((o) => [o.workerId, o.outcome]),
      [
        ['w0', 'success'],
        ['w1', 'success'],
        ['w2', 'success'],
      ],
    );
    for (const w of ['w0', 'w1', 'w2']) assert.equal(h.state(w), 'ready');
    // setup jobs report running without a phase
    assert.equal(only(h.all, 'jobEvent').some((e) => e.jobId === jobId && e.event.kind === 'progress'), false);
  });

  it('different VKs fail it, and the disagreeing program is not left eligible', () => {
    const h = new Harness();
    h.registerAll(2);
    const { jobId } = h.submit(setupSpec());
    h.ackSetup('w0', jobId, { vk: 'aa' });
    const out = h.ackSetup('w1', jobId, { vk: 'bb' });
    assert.deepEqual(failureOf(out, jobId), {
      kind: 'execution',
      reason: `job ${jobId}: worker w1 returned a different VK than the first worker`,
    });
    none(out, 'setupCompleted');
    const refused = one(h.prove().effects, 'submitResult');
    assert.equal(refused.ok, false);
    assert.equal(refused.ok === false && refused.code, 'CLUSTER_UNAVAILABLE');
  });

  it('partial failure completes; the failed worker stays ineligible for that program', () => {
    const h = new Harness();
    h.registerAll(3);
    const { jobId } = h.submit(setupSpec());
    h.ackSetup('w0', jobId);
    h.ackSetup('w1', jobId, { success: false });
    const out = h.ackSetup('w2', jobId);
    assert.equal(terminalEvent(out, jobId).kind, 'completed');
    assert.equal(h.state('w1'), 'idle');
    const prove = h.prove();
    assert.deepEqual(h.job(prove.jobId).workers, ['w0', 'w2']);
  });

  it('all failed → the job fails', () => {
    const h = new Harness();
    h.registerAll(2);
    const { jobId } = h.submit(setupSpec());
    h.ackSetup('w0', jobId, { success: false });
    const out = h.ackSetup('w1', jobId, { success: false });
    assert.deepEqual(failureOf(out, jobId), {
      kind: 'execution',
      reason: `job ${jobId}: all workers failed setup, no VK received`,
    });
    assert.equal(h.state('w0'), 'idle');
  });

  it('is idempotent: a setup every connected worker holds completes at once with the stored VK', () => {
    const h = new Harness();
    h.cluster(2);
    const { jobId, effects } = h.submit(setupSpec());
    none(effects, 'sendSetup');
    assert.deepEqual(eventKinds(effects, jobId), ['queued', 'started', 'completed']);
    assert.deepEqual(terminalEvent(effects, jobId), { kind: 'completed', result: { kind: 'setup', vkHex: VK } });
    assert.equal(h.state('w0'), 'ready');
  });

  it('a new worker that lacks the program makes a re-run setup send it again', () => {
    const h = new Harness();
    h.cluster(1);
    h.hello('w1'); // replayed setup left un-acked
    const { effects } = h.submit(setupSpec());
    assert.deepEqual(one(effects, 'sendSetup').linkIds, [h.link('w0'), h.link('w1')]);
  });

  it('Setup job lifecycle: times out after setup_timeout_seconds and releases the silent worker', () => {
    const h = new Harness({ setup_timeout_seconds: 60 });
    h.registerAll(2);
    const { jobId } = h.submit(setupSpec());
    h.ackSetup('w0', jobId);
    none(h.advance(59_999), 'jobEvent');
    const out = h.advance(1);
    assert.deepEqual(failureOf(out, jobId), { kind: 'timeout', limitSeconds: 60 });
    assert.equal(h.state('w1'), 'idle');
    assert.equal(h.state('w0'), 'ready');
    // a late ack only changes that worker's eligibility
    const late = h.ackSetup('w1', jobId);
    none(late, 'jobEvent');
    assert.equal(h.state('w1'), 'ready');
  });

  it('Setup job lifecycle: fails when every target worker is gone', () => {
    const h = new Harness();
    h.registerAll(1);
    const { jobId } = h.submit(setupSpec());
    const out = h.close('w0');
    assert.deepEqual(failureOf(out, jobId), {
      kind: 'execution',
      reason: `job ${jobId}: every target worker disconnected before acknowledging the setup`,
    });
  });

  it('a target that disconnects is no longer waited for', () => {
    const h = new Harness();
    h.registerAll(2);
    const { jobId } = h.submit(setupSpec());
    h.ackSetup('w0', jobId);
    const out = h.close('w1');
    assert.equal(terminalEvent(out, jobId).kind, 'completed');
    assert.deepEqual(h.job(jobId).workers, ['w0']);
  });

  it('can be cancelled; its workers leave SettingUp', () => {
    const h = new Harness();
    h.registerAll(1);
    const { jobId } = h.submit(setupSpec());
    const out = h.cancel(jobId);
    assert.equal(terminalEvent(out, jobId).kind, 'cancelled');
    assert.deepEqual(one(out, 'cancelResult'), { type: 'cancelResult', requestId: 2, jobId, found: true, cancelled: true });
    none(out, 'sendJobCancelled');
    assert.equal(h.state('w0'), 'idle');
    assert.equal(h.worker('w0').parked, false);
  });

  it('Setup clobbers computing workers: a setup does not clobber a computing worker; it gets the setup when it frees', () => {
    const h = new Harness({ default_compute_units: 10 });
    h.cluster(2);
    const prove = h.prove();
    assert.deepEqual(h.job(prove.jobId).workers, ['w0']);
    const { jobId, effects } = h.submit(setupSpec(HASH2));
    assert.deepEqual(one(effects, 'sendSetup').linkIds, [h.link('w1')]);
    assert.equal(h.state('w0'), 'computing');
    const done = h.ackSetup('w1', jobId, { hashId: HASH2 });
    assert.equal(terminalEvent(done, jobId).kind, 'completed');
    // w0 finishes its job and only then gets the setup, with the setup job's own id
    const finish = h.runProve(prove.jobId);
    const owed = one(finish, 'sendSetup');
    assert.deepEqual(owed.linkIds, [h.link('w0')]);
    assert.equal(owed.setup.setupJobId, jobId);
    const jobDone = finish.findIndex((e) => e.type === 'jobEvent' && e.event.kind === 'completed');
    assert.ok(jobDone < finish.indexOf(owed), 'the setup goes out once the job that held the worker is over');
    assert.equal(h.state('w0'), 'setting_up');
    h.ackSetup('w0', jobId, { hashId: HASH2 });
    assert.equal(h.state('w0'), 'ready');
    assert.equal(h.worker('w0').programs.length, 2);
  });

  it('with only computing workers it waits for the first to free', () => {
    const h = new Harness();
    h.cluster(2);
    const prove = h.prove();
    const { jobId, effects } = h.submit(setupSpec(HASH2));
    none(effects, 'sendSetup');
    assert.equal(h.job(jobId).status, 'running');
    const released = [...h.contribute('w0', prove.jobId), ...h.contribute('w1', prove.jobId)];
    none(released, 'sendSetup');
    h.proofs('w0', prove.jobId);
    const w1Free = h.proofs('w1', prove.jobId);
    assert.deepEqual(one(w1Free, 'sendSetup').linkIds, [h.link('w1')]);
    const out = h.ackSetup('w1', jobId, { hashId: HASH2 });
    assert.equal(terminalEvent(out, jobId).kind, 'completed');
  });

  it('a worker registering while a setup runs joins it', () => {
    const h = new Harness();
    h.registerAll(1);
    const { jobId } = h.submit(setupSpec());
    const accept = one(h.hello('w1'), 'acceptWorker');
    assert.deepEqual(
      accept.setups.map((s) => s.setupJobId),
      [jobId],
    );
    h.ackSetup('w0', jobId);
    assert.equal(h.job(jobId).status, 'running');
    h.ackSetup('w1', jobId);
    assert.equal(h.job(jobId).status, 'completed');
  });

  it('no worker connected → UNAVAILABLE no workers connected', () => {
    const h = new Harness();
    const { jobId, effects } = h.submit(setupSpec());
    assert.deepEqual(one(effects, 'submitResult'), {
      type: 'submitResult',
      requestId: 1,
      jobId,
      ok: false,
      code: 'CLUSTER_UNAVAILABLE',
      message: 'Cluster unavailable: no workers connected',
    });
    assert.equal(h.hasJob(jobId), false);
  });

  it('with_hints is a separate setup: a hints job is refused on a no-hints setup', () => {
    const h = new Harness();
    h.cluster(1);
    const refused = one(h.prove({ hints: true }).effects, 'submitResult');
    assert.equal(refused.ok === false && refused.message, 'Cluster unavailable: workers connected but setup not done; call setup() first');
    h.setup({ withHints: true });
    const ok = one(h.prove({ hints: true }).effects, 'submitResult');
    assert.equal(ok.ok, true);
  });

  it('a setup ack for an unknown setup id is ignored', () => {
    const h = new Harness();
    h.registerAll(1);
    const out = h.ackSetup('w0', 'nope');
    assert.equal(one(out, 'ignoredMessage').reason, 'unknown_setup');
    assert.equal(h.state('w0'), 'idle');
  });
});
