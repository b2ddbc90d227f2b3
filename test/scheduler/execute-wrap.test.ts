/**
 * Execute-only jobs and wrap jobs (docs/decisions.md, Scheduling; Job states and events).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Harness, T0, WRAP, eventKinds, failureOf, none, one, only, terminalEvent } from './harness';

describe('execute-only jobs', () => {
  it('all results in → completed with rank 0 steps and publics; workers stay Computing until then', () => {
    const h = new Harness();
    h.cluster(2);
    const { jobId, effects } = h.execute();
    const d = one(effects, 'dispatchContributions');
    assert.equal(d.executionOnly, true);
    assert.deepEqual(eventKinds(effects, jobId), ['queued', 'started', 'progress:1']);
    h.executed('w1', jobId, '111');
    assert.equal(h.state('w1'), 'computing');
    h.advance(3_000);
    h.executed('w0', jobId, '222');
    const rank0Publics = h.lastResult?.kind === 'execution' ? h.lastResult.publicsBlobId : undefined;
    const out = h.all.slice(-20);
    assert.deepEqual(terminalEvent(out, jobId), {
      kind: 'completed',
      result: { kind: 'execute', executedSteps: '222', publicsBlobId: rank0Publics, startedAt: T0 },
    });
    assert.deepEqual(one(out, 'phaseFinished'), { type: 'phaseFinished', phase: 'contributions', seconds: 3 });
    assert.equal(h.state('w0'), 'ready');
    assert.equal(h.state('w1'), 'ready');
    none(h.all, 'dispatchProve');
  });

  it('uses execution_timeout_seconds instead of the phase-1 timeout', () => {
    const h = new Harness({ execution_timeout_seconds: 50, phase1_timeout_seconds: 10, heartbeat_interval_seconds: 0 });
    h.cluster(1);
    const { jobId } = h.execute();
    none(h.advance(49_999), 'jobEvent');
    assert.deepEqual(failureOf(h.advance(1), jobId), { kind: 'timeout', phase: 1, limitSeconds: 50 });
  });

  it('a result of the wrong task type is ignored', () => {
    const h = new Harness();
    h.cluster(1);
    const { jobId } = h.execute();
    const out = h.contribute('w0', jobId);
    assert.equal(one(out, 'ignoredMessage').reason, 'wrong_task');
    assert.equal(h.job(jobId).status, 'running');
  });
});

describe('wrap jobs', () => {
  it('runs on any one free worker, no setup needed; proof_dest maps 2→1 and 3→2', () => {
    const h = new Harness();
    h.registerAll(['w0', 'w1']);
    const plonk = h.wrap({ proofDest: 3 });
    const minimal = h.wrap({ proofDest: 2 });
    const [d0, d1] = only(h.all, 'dispatchWrap');
    assert.deepEqual(
      [d0.workerId, d0.proofDest, d0.jobId, d1.workerId, d1.proofDest, d1.jobId],
      ['w0', 2, plonk.jobId, 'w1', 1, minimal.jobId],
    );
    assert.deepEqual(eventKinds(plonk.effects, plonk.jobId), ['queued', 'started']);
    const out = h.wrapped('w0', plonk.jobId);
    const done = terminalEvent(out, plonk.jobId);
    assert.ok(done.kind === 'completed' && done.result.kind === 'wrap');
    assert.equal(done.result.startedAt, T0);
    // the input proof is released, the wrapped one kept
    const released = only(out, 'releaseBlobs').flatMap((r) => r.blobIds);
    assert.deepEqual(released, [d0.proofBlobId]);
    assert.equal(h.state('w0'), 'idle');
  });

  it('wrap_timeout_seconds fails it without a phase', () => {
    const h = new Harness({ wrap_timeout_seconds: 120 });
    h.registerAll(1);
    const { jobId } = h.wrap();
    none(h.advance(119_999), 'jobEvent');
    const out = h.advance(1);
    assert.deepEqual(failureOf(out, jobId), { kind: 'timeout', limitSeconds: 120 });
    // silence during the wrap is excused; the liveness window starts when the wrap is over
    assert.equal(h.state('w0'), 'idle');
    none(h.advance(89_999), 'closeWorker');
    one(h.advance(1), 'closeWorker');
  });

  it('the request deadline applies when earlier', () => {
    const h = new Harness();
    h.registerAll(1);
    const { jobId } = h.wrap({ deadline: T0 + 20_000 });
    assert.deepEqual(failureOf(h.advance(20_000), jobId), { kind: 'timeout', limitSeconds: 20 });
  });

  it('a failed wrap fails the job with the worker message', () => {
    const h = new Harness();
    h.registerAll(1);
    const { jobId } = h.wrap();
    const out = h.fail('w0', jobId, WRAP, { errorMessage: 'bad proof' });
    assert.deepEqual(failureOf(out, jobId), {
      kind: 'execution',
      reason: 'Task execution failed on worker w0: bad proof',
    });
    assert.equal(h.state('w0'), 'idle');
  });
});
