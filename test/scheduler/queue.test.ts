/**
 * Submission checks, capacity, selection and the queue (docs/decisions.md, Errors, Scheduling and Queue).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HASH2, Harness, T0, eventKinds, failureOf, none, one, only, terminalEvent } from './harness';

describe('submitJob checks, in order', () => {
  it('no live worker → no workers connected (prove, execute, wrap)', () => {
    const h = new Harness();
    h.cluster(1);
    h.close('w0');
    for (const { jobId, effects } of [h.prove(), h.execute(), h.wrap()]) {
      const r = one(effects, 'submitResult');
      assert.deepEqual(r, {
        type: 'submitResult',
        requestId: r.requestId,
        jobId,
        ok: false,
        code: 'CLUSTER_UNAVAILABLE',
        message: 'Cluster unavailable: no workers connected',
      });
      // a refused request's blobs are main's to drop
      none(effects, 'releaseBlobs');
      assert.equal(h.hasJob(jobId), false);
    }
  });

  it('No setup check at launch: workers connected but none set up for the program → setup not done', () => {
    const h = new Harness();
    h.cluster(1);
    const r = one(h.prove({ hashId: HASH2 }).effects, 'submitResult');
    assert.equal(r.ok === false && r.message, 'Cluster unavailable: workers connected but setup not done; call setup() first');
    // wrap needs no setup
    assert.equal(one(h.wrap().effects, 'submitResult').ok, true);
  });

  it('a program that is still being set up is accepted, queued, and starts after the ack', () => {
    const h = new Harness();
    h.registerAll(1);
    const setup = h.submit({ kind: 'setup', hashId: HASH2, withHints: false, programName: 'p' });
    const { jobId, effects } = h.prove({ hashId: HASH2 });
    assert.equal(one(effects, 'submitResult').ok, true);
    assert.deepEqual(eventKinds(effects, jobId), ['queued']);
    assert.deepEqual(h.core.snapshot().queue, [jobId]);
    const out = h.ackSetups(setup.effects);
    assert.deepEqual(eventKinds(out, jobId), ['started', 'progress:1']);
  });

  it('a job waiting for a setup that then fails everywhere fails at once instead of waiting forever', () => {
    const h = new Harness();
    h.registerAll(1);
    const setup = h.submit({ kind: 'setup', hashId: HASH2, withHints: false, programName: 'p' });
    const { jobId } = h.prove({ hashId: HASH2 });
    const out = h.ackSetup('w0', setup.jobId, { hashId: HASH2, success: false });
    assert.deepEqual(failureOf(out, jobId), {
      kind: 'execution',
      reason: `Program ${HASH2} is not set up on any connected worker: its setup failed`,
    });
    assert.deepEqual(h.core.snapshot().queue, []);
  });

  it('a job whose set-up workers are only away keeps waiting for them', () => {
    const h = new Harness();
    h.cluster(1);
    h.wrap(); // w0 busy
    const { jobId } = h.prove();
    h.close('w0'); // the wrap fails after the grace; w0 is gone but its setup is replayable
    h.advance(1_000);
    assert.equal(h.job(jobId).status, 'queued');
    const out = h.ackSetups(h.hello('w0'));
    assert.deepEqual(eventKinds(out, jobId), ['started', 'progress:1']);
  });

  it('accepted: submitResult, queued, then dispatch in the same call', () => {
    const h = new Harness();
    h.cluster(2);
    const { jobId, effects } = h.prove();
    const types = effects.map((e) => e.type).filter((t) => t !== 'log');
    assert.deepEqual(types, [
      'submitResult',
      'jobEvent',
      'jobEvent',
      'jobEvent',
      'dispatchContributions',
      'jobLinks',
      'workerCounts',
    ]);
    assert.deepEqual(eventKinds(effects, jobId), ['queued', 'started', 'progress:1']);
    for (const e of only(effects, 'jobEvent')) assert.equal(e.at, T0);
  });
});

describe('capacity', () => {
  it('default_compute_units = 0 waits for all eligible workers; never starts short', () => {
    const h = new Harness();
    h.cluster(3);
    const wrap = h.wrap();
    assert.deepEqual(h.job(wrap.jobId).workers, ['w0']);
    const { jobId, effects } = h.prove();
    assert.deepEqual(eventKinds(effects, jobId), ['queued']);
    assert.equal(one(effects, 'workerCounts').queueDepth, 1);
    const out = h.wrapped('w0', wrap.jobId);
    assert.deepEqual(eventKinds(out, jobId), ['started', 'progress:1']);
    assert.deepEqual(h.job(jobId).workers, ['w0', 'w1', 'w2']);
  });

  it('parked and disconnected workers do not count as eligible', () => {
    const h = new Harness();
    h.cluster(3);
    const first = h.prove();
    h.cancel(first.jobId); // all three parked
    h.recoveryComplete('w0');
    h.close('w1');
    const { jobId } = h.prove();
    assert.deepEqual(h.job(jobId).workers, ['w0']);
  });

  it('N > 0: Ready eligible workers in registration order until the units are covered', () => {
    const h = new Harness({ default_compute_units: 15 });
    h.registerAll(['wb', 'wa', 'wc'], 10);
    h.setup();
    const { jobId, effects } = h.prove();
    assert.deepEqual(h.job(jobId).workers, ['wb', 'wa']);
    assert.equal(one(effects, 'dispatchContributions').totalWorkers, 2);
  });

  it('Units mismatch: job_compute_units equals the allocated units', () => {
    const h = new Harness({ default_compute_units: 15 });
    h.cluster(3, 10);
    const d = one(h.prove().effects, 'dispatchContributions');
    assert.equal(d.jobComputeUnits, 20);
    const units = d.targets.flatMap((t) => t.allocation).sort((a, b) => a - b);
    assert.deepEqual(units, Array.from({ length: 20 }, (_, i) => i));
  });

  it('max_workers_per_job caps the count', () => {
    const h = new Harness({ max_workers_per_job: 2 });
    h.cluster(3);
    const { jobId } = h.prove();
    assert.deepEqual(h.job(jobId).workers, ['w0', 'w1']);
    const second = h.prove();
    assert.deepEqual(eventKinds(second.effects, second.jobId), ['queued'], 'w2 alone is short of the cap');
  });

  it('min_compute_units is a floor: the job waits for enough capacity', () => {
    const h = new Harness({ min_compute_units: 25 });
    h.cluster(2, 10);
    const { jobId } = h.prove();
    assert.equal(h.job(jobId).status, 'queued');
    const out = h.ackSetups(h.hello('w2', { units: 10 }));
    assert.deepEqual(eventKinds(out, jobId), ['started', 'progress:1']);
    assert.equal(one(out, 'dispatchContributions').jobComputeUnits, 30);
  });

  it('N > 0 starts with what is free above the floor', () => {
    const h = new Harness({ default_compute_units: 30 });
    h.cluster(2, 10);
    const { jobId } = h.prove();
    assert.deepEqual(h.job(jobId).workers, ['w0', 'w1']);
  });

  it('Double booking: none under concurrent submits', () => {
    const h = new Harness({ default_compute_units: 10 });
    h.cluster(3);
    const jobs = [h.prove(), h.prove(), h.prove(), h.prove()].map((j) => j.jobId);
    const snapshot = h.core.snapshot();
    const assigned = jobs.flatMap((id) => h.job(id).workers);
    assert.deepEqual(assigned, ['w0', 'w1', 'w2']);
    assert.equal(new Set(assigned).size, 3);
    assert.deepEqual(snapshot.queue, [jobs[3]]);
    for (const w of snapshot.workers) assert.equal(w.state, 'computing');
  });
});

describe('queue', () => {
  it('is FIFO: queued jobs start in submission order as capacity frees', () => {
    const h = new Harness({ default_compute_units: 10 });
    h.cluster(1);
    const a = h.prove().jobId;
    const b = h.prove().jobId;
    const c = h.prove().jobId;
    assert.deepEqual(h.core.snapshot().queue, [b, c]);
    const out = h.runProve(a);
    assert.deepEqual(eventKinds(out, b), ['started', 'progress:1']);
    assert.deepEqual(eventKinds(out, c), []);
    assert.deepEqual(h.core.snapshot().queue, [c]);
    assert.equal(only(out, 'workerCounts').at(-1)?.queueDepth, 1);
  });

  it('a job whose eligible workers are free is not held back by a blocked job of another program', () => {
    const h = new Harness({ default_compute_units: 10 });
    h.registerAll(['w0', 'w1']);
    const p = h.submit({ kind: 'setup', hashId: HASH2, withHints: false, programName: 'p2' });
    h.ackSetup('w1', p.jobId, { hashId: HASH2 });
    h.ackSetup('w0', p.jobId, { hashId: HASH2, success: false });
    h.setup(); // the default program on both
    const busy = h.prove({ hashId: HASH2 });
    assert.deepEqual(h.job(busy.jobId).workers, ['w1']);
    const blocked = h.prove({ hashId: HASH2 });
    assert.equal(h.job(blocked.jobId).status, 'queued');
    // the blocked job waits only for w1; a job of the other program runs on w0 now
    const other = h.prove();
    assert.deepEqual(h.job(other.jobId).workers, ['w0']);
    assert.deepEqual(h.core.snapshot().queue, [blocked.jobId]);
  });

  it('no starvation: a later job does not take workers an earlier blocked job waits for', () => {
    const h = new Harness();
    h.cluster(2);
    const busy = h.wrap(); // w0 busy
    const first = h.prove(); // needs w0 and w1: waits
    const later = h.wrap(); // w1 is free, but the earlier job waits for it
    assert.equal(h.job(first.jobId).status, 'queued');
    assert.equal(h.job(later.jobId).status, 'queued');
    assert.equal(h.state('w1'), 'ready');
    const out = h.wrapped('w0', busy.jobId);
    assert.deepEqual(eventKinds(out, first.jobId), ['started', 'progress:1']);
    assert.deepEqual(eventKinds(out, later.jobId), []);
    assert.deepEqual(h.core.snapshot().queue, [later.jobId]);
  });

  it('overflow: beyond max_queued_jobs a job that must wait is refused', () => {
    const h = new Harness({ max_queued_jobs: 1 });
    h.cluster(1);
    h.prove();
    const queued = h.prove();
    assert.equal(h.job(queued.jobId).status, 'queued');
    const refused = h.prove();
    assert.deepEqual(one(refused.effects, 'submitResult'), {
      type: 'submitResult',
      requestId: 4,
      jobId: refused.jobId,
      ok: false,
      code: 'QUEUE_FULL',
      message: 'Queue full (1 jobs)',
    });
    none(refused.effects, 'jobEvent');
  });

  it('overflow does not refuse a job that can start at once', () => {
    const h = new Harness({ max_queued_jobs: 0 });
    h.registerAll(['w0', 'w1']);
    const s = h.submit({ kind: 'setup', hashId: HASH2, withHints: false, programName: 'p2' });
    h.ackSetup('w0', s.jobId, { hashId: HASH2 });
    h.ackSetup('w1', s.jobId, { hashId: HASH2, success: false });
    h.prove({ hashId: HASH2 }); // w0
    const refused = one(h.prove({ hashId: HASH2 }).effects, 'submitResult');
    assert.equal(refused.ok === false && refused.code, 'QUEUE_FULL');
    const wrap = h.wrap();
    assert.equal(one(wrap.effects, 'submitResult').ok, true);
    assert.deepEqual(h.job(wrap.jobId).workers, ['w1']);
  });

  it('queue_timeout_seconds fails a job queued too long (no phase)', () => {
    const h = new Harness({ queue_timeout_seconds: 30, heartbeat_interval_seconds: 0 });
    h.cluster(1);
    h.prove();
    const { jobId } = h.prove();
    none(h.advance(29_999), 'jobEvent');
    const out = h.advance(1);
    assert.deepEqual(failureOf(out, jobId), { kind: 'timeout', limitSeconds: 30 });
    assert.deepEqual(h.core.snapshot().queue, []);
    assert.equal(one(out, 'workerCounts').queueDepth, 0);
    none(out, 'sendJobCancelled');
  });

  it('a started job does not keep its queue timeout', () => {
    const h = new Harness({ queue_timeout_seconds: 30, heartbeat_interval_seconds: 0 });
    h.cluster(1);
    const { jobId } = h.prove();
    h.advance(60_000);
    assert.equal(h.job(jobId).status, 'running');
  });

  it('the request deadline applies while queued (no phase)', () => {
    const h = new Harness({ heartbeat_interval_seconds: 0 });
    h.cluster(1);
    h.prove();
    const { jobId } = h.execute({ deadline: T0 + 5_000 });
    assert.deepEqual(failureOf(h.advance(5_000), jobId), { kind: 'timeout', limitSeconds: 5 });
  });

  it('cancelling a queued job just removes it from the queue', () => {
    const h = new Harness();
    h.cluster(1);
    h.prove();
    const { jobId } = h.prove();
    const out = h.cancel(jobId);
    assert.equal(terminalEvent(out, jobId).kind, 'cancelled');
    none(out, 'sendJobCancelled');
    none(out, 'workerJobOutcome');
    assert.deepEqual(h.core.snapshot().queue, []);
    assert.equal(h.state('w0'), 'computing');
  });

  it('the queue is re-evaluated when a worker registers', () => {
    const h = new Harness();
    h.registerAll(['w0']);
    const busy = h.wrap();
    const waiting = h.wrap();
    assert.equal(h.job(waiting.jobId).status, 'queued');
    const out = h.hello('w1');
    assert.deepEqual(eventKinds(out, waiting.jobId), ['started']);
    assert.equal(h.job(busy.jobId).status, 'running');
  });

  it('Random order: selection and ranks follow registration order', () => {
    const h = new Harness();
    h.registerAll(['zeta', 'alpha', 'mid']);
    h.setup();
    const d = one(h.prove().effects, 'dispatchContributions');
    assert.deepEqual(
      d.targets.map((t) => [t.workerId, t.rank]),
      [
        ['zeta', 0],
        ['alpha', 1],
        ['mid', 2],
      ],
    );
  });
});
