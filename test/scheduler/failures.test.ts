/**
 * Failure, cancel and late messages (docs/decisions.md, Scheduling, Job states and events, Workers),
 * plus the main thread's failJob and abandonAll.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CONTRIBUTION, HASH2, Harness, PROVE, eventKinds, failureOf, none, one, only, terminalEvent } from './harness';

describe('what fails a job', () => {
  it('a failed task fails the job (non-recovering: every Computing member back to Ready)', () => {
    const h = new Harness();
    h.cluster(3);
    const { jobId } = h.prove();
    h.advance(1_000);
    const out = h.fail('w1', jobId, CONTRIBUTION, { errorMessage: 'out of memory' });
    assert.deepEqual(failureOf(out, jobId), {
      kind: 'execution',
      reason: 'Task execution failed on worker w1: out of memory',
    });
    for (const w of ['w0', 'w1', 'w2']) {
      assert.equal(h.state(w), 'ready');
      assert.equal(h.worker(w).parked, false);
    }
    // cause first: the terminal event, then job_cancelled, per-worker outcomes, blobs
    const at = (type: string): number => out.findIndex((e) => e.type === type);
    assert.ok(at('jobEvent') < at('sendJobCancelled'));
    assert.ok(at('sendJobCancelled') < at('workerJobOutcome'));
    assert.ok(at('workerJobOutcome') < at('releaseBlobs'));
    assert.deepEqual(one(out, 'sendJobCancelled'), {
      type: 'sendJobCancelled',
      jobId,
      reason: 'Task execution failed on worker w1: out of memory',
      linkIds: [h.link('w0'), h.link('w1'), h.link('w2')],
    });
    assert.deepEqual(
      only(out, 'workerJobOutcome').map((o) => [o.workerId, o.outcome]),
      [
        ['w0', 'failure'],
        ['w1', 'failure'],
        ['w2', 'failure'],
      ],
    );
    const failed = only(out, 'jobEvent').find((e) => e.event.kind === 'failed');
    assert.equal(failed?.at, h.now);
    assert.ok(only(out, 'log').some((l) => l.level === 'error' && l.fields.job_id === jobId));
  });

  it('a failed task with no message says so', () => {
    const h = new Harness();
    h.cluster(1);
    const { jobId } = h.prove();
    const out = h.fail('w0', jobId, CONTRIBUTION, { errorMessage: '' });
    assert.deepEqual(failureOf(out, jobId), {
      kind: 'execution',
      reason: 'Task execution failed on worker w0: (no detail)',
    });
  });

  it('worker_in_recovery parks the responder only', () => {
    const h = new Harness();
    h.cluster(2);
    const { jobId } = h.prove();
    h.contribute('w0', jobId);
    h.contribute('w1', jobId);
    h.fail('w1', jobId, PROVE, { inRecovery: true });
    assert.equal(h.worker('w1').parked, true);
    assert.equal(h.state('w1'), 'setting_up');
    assert.equal(h.worker('w0').parked, false);
    assert.equal(h.state('w0'), 'ready');
    // a parked worker is not eligible: the next job runs without it
    const next = h.prove();
    assert.deepEqual(h.job(next.jobId).workers, ['w0']);
  });

  it('a WorkerError fails the job with its text verbatim', () => {
    const h = new Harness();
    h.cluster(2);
    const { jobId } = h.prove();
    const out = h.send({ type: 'workerError', linkId: h.link('w0'), jobId, message: 'GPU fell off the bus' });
    assert.deepEqual(failureOf(out, jobId), { kind: 'execution', reason: 'GPU fell off the bus' });
    assert.equal(h.state('w0'), 'ready');
    assert.equal(h.state('w1'), 'ready');
  });

  it('a WorkerError for a job the worker is not computing is ignored', () => {
    const h = new Harness({ default_compute_units: 10 });
    h.cluster(2);
    const a = h.prove();
    const b = h.prove();
    const out = h.send({ type: 'workerError', linkId: h.link('w1'), jobId: a.jobId, message: 'x' });
    assert.equal(one(out, 'ignoredMessage').reason, 'not_member');
    assert.equal(h.job(a.jobId).status, 'running');
    assert.equal(h.job(b.jobId).status, 'running');
  });

  it('input relay errors from main (failJob) go through the fail procedure (Relay failures leak, Zombie launch)', () => {
    const h = new Harness();
    h.cluster(2);
    const { jobId } = h.prove();
    const out = h.send({ type: 'failJob', jobId, failure: { kind: 'input', reason: 'hints stream: data after CTRL_END' } });
    assert.deepEqual(failureOf(out, jobId), { kind: 'input', reason: 'hints stream: data after CTRL_END' });
    assert.deepEqual(one(out, 'sendJobCancelled').linkIds, [h.link('w0'), h.link('w1')]);
    assert.equal(h.state('w0'), 'ready');
    assert.ok(one(out, 'releaseBlobs').blobIds.length >= 1);
    // a second failure of a terminal job is a no-op
    assert.equal(h.send({ type: 'failJob', jobId, failure: { kind: 'input', reason: 'again' } }).length, 0);
  });

  it('a timer that fires late still reports its own deadline', () => {
    const h = new Harness({ phase1_timeout_seconds: 30, heartbeat_interval_seconds: 0 });
    h.cluster(1);
    const { jobId } = h.prove();
    const out = h.advance(75_000); // the host woke up 45 s late
    const failed = only(out, 'jobEvent').find((e) => e.jobId === jobId && e.event.kind === 'failed');
    assert.equal(failed?.at, h.now - 45_000);
  });

  it('the terminal event is sent exactly once', () => {
    const h = new Harness();
    h.cluster(1);
    const { jobId } = h.prove();
    h.runProve(jobId);
    h.send({ type: 'failJob', jobId, failure: { kind: 'execution', reason: 'late' } });
    h.cancel(jobId);
    terminalEvent(h.all, jobId);
  });
});

describe('Over-broad resets: failure touches only Computing(this job)', () => {
  it('a released non-aggregator now on another job is not reset when the first job fails', () => {
    const h = new Harness();
    h.cluster(2);
    const a = h.prove();
    h.contribute('w0', a.jobId);
    h.contribute('w1', a.jobId);
    h.proofs('w0', a.jobId); // aggregator
    h.proofs('w1', a.jobId); // released
    const wrap = h.wrap(); // takes w1
    assert.deepEqual(h.job(wrap.jobId).workers, ['w1']);
    const out = h.fail('w0', a.jobId, 2);
    assert.equal(failureOf(out, a.jobId).kind, 'execution');
    assert.equal(h.state('w1'), 'computing');
    assert.equal(h.worker('w1').jobId, wrap.jobId);
    // the busy worker is not told: its current job is another one
    assert.deepEqual(one(out, 'sendJobCancelled').linkIds, [h.link('w0')]);
  });
});

describe('Late response clobbers state: a late response after reassignment does not clobber the new job', () => {
  it('a late result with worker_in_recovery for a finished job leaves a re-dispatched worker computing', () => {
    const h = new Harness();
    h.cluster(2);
    const a = h.prove();
    h.fail('w1', a.jobId, CONTRIBUTION); // w0 and w1 back to Ready
    const b = h.prove();
    assert.equal(h.worker('w0').jobId, b.jobId);
    const out = h.fail('w0', a.jobId, CONTRIBUTION, { inRecovery: true });
    assert.equal(one(out, 'ignoredMessage').reason, 'terminal_job');
    assert.equal(h.state('w0'), 'computing');
    assert.equal(h.worker('w0').parked, false);
    assert.equal(h.job(b.jobId).status, 'running');
  });

  it('a late in-recovery result from an idle member parks it', () => {
    const h = new Harness();
    h.cluster(2);
    const a = h.prove();
    h.fail('w1', a.jobId, CONTRIBUTION);
    h.fail('w0', a.jobId, CONTRIBUTION, { inRecovery: true });
    assert.equal(h.worker('w0').parked, true);
    assert.equal(h.worker('w1').parked, false);
  });
});

describe('cancel', () => {
  it('unknown → not found; terminal → not cancelled', () => {
    const h = new Harness();
    h.cluster(1);
    assert.deepEqual(one(h.cancel('nope'), 'cancelResult'), {
      type: 'cancelResult',
      requestId: 2,
      jobId: 'nope',
      found: false,
      cancelled: false,
    });
    const { jobId } = h.prove();
    h.runProve(jobId);
    const again = one(h.cancel(jobId), 'cancelResult');
    assert.equal(again.found, true);
    assert.equal(again.cancelled, false);
  });

  it('running → Cancelled at once, Computing workers parked and told', () => {
    const h = new Harness();
    h.cluster(2);
    const { jobId } = h.prove();
    const out = h.cancel(jobId);
    assert.deepEqual(one(out, 'sendJobCancelled'), {
      type: 'sendJobCancelled',
      jobId,
      reason: 'cancelled by client',
      linkIds: [h.link('w0'), h.link('w1')],
    });
    assert.deepEqual(eventKinds(out, jobId), ['cancelled']);
    const result = one(out, 'cancelResult');
    assert.equal(result.cancelled, true);
    assert.ok(out.indexOf(result) > out.findIndex((e) => e.type === 'jobEvent'));
    assert.deepEqual(
      only(out, 'workerJobOutcome').map((o) => o.outcome),
      ['cancelled', 'cancelled'],
    );
    assert.equal(h.worker('w0').parked, true);
    assert.equal(h.state('w1'), 'setting_up');
    assert.equal(h.job(jobId).status, 'cancelled');
  });
});

describe('abandonAll (shutdown deadline)', () => {
  it('fails every non-terminal job with internal, queued ones included; workers are told', () => {
    const h = new Harness();
    h.cluster(1);
    const finished = h.prove();
    const queued = h.prove();
    const wrap = h.wrap();
    h.runProve(finished.jobId); // frees w0: `queued` starts on it, the wrap still waits
    assert.equal(h.job(queued.jobId).status, 'running');
    assert.equal(h.job(wrap.jobId).status, 'queued');
    const setup = h.submit({ kind: 'setup', hashId: 'c'.repeat(64), withHints: false, programName: 'x' });
    const out = h.send({ type: 'abandonAll', traceId: 'trace-1' });
    for (const id of [queued.jobId, wrap.jobId, setup.jobId]) {
      assert.deepEqual(failureOf(out, id), { kind: 'internal', traceId: 'trace-1', reason: 'coordinator shutting down' });
    }
    assert.deepEqual(eventKinds(out, finished.jobId), []);
    assert.deepEqual(one(out, 'sendJobCancelled'), {
      type: 'sendJobCancelled',
      jobId: queued.jobId,
      reason: 'coordinator shutting down',
      linkIds: [h.link('w0')],
    });
    assert.deepEqual(h.core.snapshot().queue, []);
    none(h.send({ type: 'abandonAll', traceId: 'trace-2' }), 'jobEvent');
  });
});

describe('effects leave cause first', () => {
  it('a dropped worker that owes a setup: its prove job times out, then (as a consequence) the setup fails', () => {
    // The grace outlives the phase-1 timeout, so the job's timeout is what releases the worker.
    const h = new Harness({ phase1_timeout_seconds: 60, reconnect_grace_period_ms: 120_000 });
    h.cluster(1);
    const prove = h.prove();
    const setup = h.submit({ kind: 'setup', hashId: HASH2, withHints: false, programName: 'other' });
    assert.equal(h.job(setup.jobId).status, 'running', 'the setup waits for the computing worker');
    h.close('w0');
    const out = h.advance(60_000);
    const failedAt = (jobId: string): number =>
      out.findIndex((e) => e.type === 'jobEvent' && e.jobId === jobId && e.event.kind === 'failed');
    assert.deepEqual(failureOf(out, prove.jobId), { kind: 'timeout', phase: 1, limitSeconds: 60 });
    assert.match(String((terminalEvent(out, setup.jobId) as { failure: { reason: string } }).failure.reason), /disconnected/);
    assert.ok(failedAt(prove.jobId) < failedAt(setup.jobId), 'the prove job fails before the setup it caused to fail');
    // and each log line follows its own event
    const logAt = (re: RegExp): number => out.findIndex((e) => e.type === 'log' && re.test(e.msg));
    assert.ok(logAt(/^prove job \S+ failed/) < logAt(/^setup job \S+ failed/));
  });
});
