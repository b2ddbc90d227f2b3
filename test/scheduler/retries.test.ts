/**
 * Bounded retries (docs/decisions.md, Retries): an attempt that infrastructure failed (a worker lost,
 * a phase timeout) goes back to the head of the queue and runs again from phase 1 on whatever workers
 * are eligible then, up to `max_job_attempts`; everything else a job can fail of is final.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CONTRIBUTION, Harness, eventKinds, failureOf, none, one, only, terminalEvent } from './harness';

const RETRYING = { max_job_attempts: 3 };

function retried(h: Harness, jobId: string): number {
  return only(h.all, 'jobRetried').filter((e) => e.jobId === jobId).length;
}

describe('retries', () => {
  it('a worker lost in phase 1: the job goes back to the queue and runs again on the workers left', () => {
    const h = new Harness(RETRYING);
    h.cluster(3);
    const { jobId } = h.prove();
    assert.deepEqual(h.job(jobId).workers, ['w0', 'w1', 'w2']);
    h.contribute('w0', jobId);
    h.close('w1');
    const out = h.advance(500); // the reconnect grace
    assert.deepEqual(one(out, 'jobRetried'), {
      type: 'jobRetried',
      jobId,
      jobKind: 'prove',
      reason: 'worker_lost',
      attempt: 2,
      failedAttempt: 'Worker w1 connection dropped (phase 1)',
    });
    // The lost attempt's members still on it are told to drop it; the next attempt waits for them to
    // acknowledge that, so no answer of the old attempt can be taken for the new one.
    assert.deepEqual(one(out, 'sendJobCancelled').linkIds.sort(), [h.link('w0'), h.link('w2')].sort());
    assert.deepEqual(eventKinds(out, jobId), ['queued']);
    none(out, 'dispatchContributions');
    assert.deepEqual(eventKinds(h.cancelAck('w0', jobId), jobId), [], 'w2 has not acknowledged yet');
    // Clients see it started again on the two workers left once both have.
    const acked = h.cancelAck('w2', jobId);
    assert.deepEqual(eventKinds(acked, jobId), ['started', 'progress:1']);
    assert.deepEqual(h.job(jobId).workers, ['w0', 'w2']);
    assert.equal(one(acked, 'dispatchContributions').totalWorkers, 2);
    const done = h.runProve(jobId);
    assert.equal(terminalEvent(done, jobId).kind, 'completed');
    assert.equal(retried(h, jobId), 1);
  });

  it('a worker lost in phase 2 or 3 is retried the same way, from phase 1', () => {
    for (const phase of [2, 3] as const) {
      const h = new Harness(RETRYING);
      h.cluster(3);
      const { jobId } = h.prove();
      for (const w of ['w0', 'w1', 'w2']) h.contribute(w, jobId);
      if (phase === 3) h.proofs('w0', jobId); // w0 becomes the aggregator
      assert.equal(h.job(jobId).phase, phase);
      h.close('w2');
      const out = h.advance(500);
      assert.equal(one(out, 'jobRetried').attempt, 2, `phase ${phase}`);
      h.ackCancels(out);
      assert.equal(h.job(jobId).phase, 1);
      assert.equal(terminalEvent(h.runProve(jobId), jobId).kind, 'completed');
    }
  });

  it('a phase timeout is retried; the attempt\'s results are dropped, the request\'s blobs kept', () => {
    const h = new Harness({ ...RETRYING, phase2_timeout_seconds: 60 });
    h.cluster(2);
    const { jobId } = h.prove();
    const input = one(h.all, 'dispatchContributions');
    assert.ok(input);
    h.contribute('w0', jobId);
    h.contribute('w1', jobId);
    const challenges = h.lastChallenges();
    const out = h.advance(60_000);
    assert.equal(one(out, 'jobRetried').reason, 'phase_timeout');
    const released = new Set(only(out, 'releaseBlobs').flatMap((r) => r.blobIds));
    for (const b of challenges) assert.ok(released.has(b), 'the failed attempt\'s challenges are freed');
    h.ackCancels(out);
    assert.equal(h.job(jobId).status, 'running', 'started again on the same two workers once they dropped the old attempt');
  });

  it('attempts run out: the final failure names every attempt, the last one last', () => {
    const h = new Harness({ ...RETRYING, heartbeat_interval_seconds: 0 });
    h.cluster(4);
    const { jobId } = h.prove();
    for (const lost of ['w0', 'w1', 'w2']) {
      h.close(lost);
      h.ackCancels(h.advance(500));
    }
    const failure = failureOf(h.all, jobId);
    assert.equal(failure.kind, 'execution');
    assert.match(
      (failure as { reason: string }).reason,
      /^failed after 3 attempts: Worker w2 connection dropped \(phase 1\) \(last; attempt 1: Worker w0 connection dropped \(phase 1\); attempt 2: Worker w1 connection dropped \(phase 1\)\)$/,
    );
    assert.equal(retried(h, jobId), 2);
    assert.equal(h.state('w3'), 'ready', 'the worker left is free');
  });

  it('a worker-reported error, an invalid result and the client\'s own deadline are not retried', () => {
    const h = new Harness(RETRYING);
    h.cluster(2);
    const a = h.prove();
    h.fail('w0', a.jobId, CONTRIBUTION, { errorMessage: 'out of memory' });
    assert.equal(h.job(a.jobId).status, 'failed');
    const b = h.prove();
    h.contribute('w0', b.jobId, 'wk-a');
    h.contribute('w1', b.jobId, 'wk-b'); // witness mismatch
    assert.equal(h.job(b.jobId).status, 'failed');
    const c = h.prove({ deadline: h.now + 5_000 });
    h.advance(5_000);
    assert.equal(h.job(c.jobId).status, 'failed');
    none(h.all, 'jobRetried');
  });

  it('a job whose pushed input cannot be sent again is not retried', () => {
    const h = new Harness(RETRYING);
    h.cluster(2);
    const { jobId } = h.prove({ input: { kind: 'grpc' } });
    h.close('w1');
    h.advance(500);
    assert.equal(h.job(jobId).status, 'failed');
    none(h.all, 'jobRetried');
  });

  it('a retried job goes back to the head of the queue, ahead of jobs that were waiting', () => {
    const h = new Harness(RETRYING);
    h.cluster(2);
    const first = h.prove();
    const waiting = h.prove();
    assert.deepEqual(h.core.snapshot().queue, [waiting.jobId]);
    h.close('w1');
    const out = h.advance(500);
    // w0 is the only eligible worker now: the retried job holds it while w0 drops the old attempt,
    // and takes it then; the other keeps waiting.
    assert.deepEqual(h.core.snapshot().queue, [first.jobId, waiting.jobId]);
    h.ackCancels(out);
    assert.deepEqual(h.job(first.jobId).workers, ['w0']);
    assert.deepEqual(h.core.snapshot().queue, [waiting.jobId]);
  });

  it('a cancel during the next attempt wins: cancelled, not retried again', () => {
    const h = new Harness(RETRYING);
    h.cluster(3);
    const { jobId } = h.prove();
    h.close('w2');
    h.ackCancels(h.advance(500));
    assert.equal(h.job(jobId).status, 'running');
    const out = h.cancel(jobId);
    assert.equal(terminalEvent(out, jobId).kind, 'cancelled');
    h.close('w1');
    h.advance(500);
    assert.equal(h.job(jobId).status, 'cancelled');
    assert.equal(retried(h, jobId), 1);
  });

  it("an answer of the cancelled attempt that arrives before the worker's acknowledgement is not taken by the next attempt", () => {
    const h = new Harness(RETRYING);
    h.cluster(2);
    const { jobId } = h.prove();
    h.close('w1');
    const out = h.advance(500);
    assert.equal(one(out, 'jobRetried').attempt, 2);
    // w0 finished attempt 1's contribution just before it read the cancel.
    const stale = h.contribute('w0', jobId);
    assert.equal(one(stale, 'ignoredMessage').reason, 'not_member');
    none(stale, 'dispatchProve');
    // Then it acknowledges the cancel and attempt 2 starts on it from phase 1, answered afresh.
    const acked = h.cancelAck('w0', jobId);
    assert.deepEqual(eventKinds(acked, jobId), ['started', 'progress:1']);
    assert.equal(terminalEvent(h.runProve(jobId), jobId).kind, 'completed');
  });

  it('a worker that registers again owes no acknowledgement (the cancel may have been lost with its stream)', () => {
    const h = new Harness(RETRYING);
    h.cluster(2);
    const { jobId } = h.prove();
    h.close('w1');
    const out = h.advance(500);
    assert.equal(one(out, 'jobRetried').attempt, 2);
    assert.equal(h.job(jobId).status, 'queued');
    h.close('w0');
    // A new process: the setups it is sent again, then the job, without waiting for an acknowledgement.
    h.ackSetups(h.hello('w0'));
    assert.equal(h.job(jobId).status, 'running');
    assert.deepEqual(h.job(jobId).workers, ['w0']);
  });

  it('max_job_attempts = 1 fails at once, as upstream', () => {
    const h = new Harness({ max_job_attempts: 1 });
    h.cluster(2);
    const { jobId } = h.prove();
    h.close('w1');
    h.advance(500);
    assert.deepEqual(failureOf(h.all, jobId), { kind: 'execution', reason: 'Worker w1 connection dropped' });
  });
});
