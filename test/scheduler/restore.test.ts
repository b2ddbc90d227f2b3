/**
 * Jobs read back from the durable store at start (docs/decisions.md, Durable jobs), as the core takes
 * them: finished jobs as they ended, queued ones back in the queue in their order, a job that was
 * running as its next attempt (or failed, when its data went with the old process or it has no
 * attempt left); workers that reconnect holding such a job are told to drop it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SchedulerEvent } from '../../src/shared/scheduler/events';
import type { JobSpec, JobStatus } from '../../src/shared/scheduler/types';
import { HASH, Harness, T0, eventKinds, failureOf, none, one, only } from './harness';

type Restore = Extract<SchedulerEvent, { type: 'restoreJob' }>;

function restore(h: Harness, jobId: string, status: JobStatus, extra: Partial<Restore> = {}, spec?: JobSpec): ReturnType<Harness['send']> {
  return h.send({
    type: 'restoreJob',
    jobId,
    spec: spec ?? h.proveSpec(),
    status,
    attempt: 1,
    failedAttempts: [],
    submittedAt: T0 - 60_000,
    replayable: true,
    ...extra,
  });
}

describe('restoring jobs at start', () => {
  it('a finished job comes back as it ended: nothing emitted, cancel says already terminal, retention evicts it', () => {
    const h = new Harness({ job_ttl_seconds: 100 });
    const out = restore(h, 'done-1', 'completed', { terminatedAt: T0 - 10_000 });
    none(out, 'jobEvent');
    assert.equal(h.job('done-1').status, 'completed');
    const cancel = one(h.cancel('done-1'), 'cancelResult');
    assert.deepEqual([cancel.found, cancel.cancelled], [true, false]);
    const evicted = one(h.advance(90_000), 'jobsEvicted');
    assert.deepEqual(evicted.jobIds, ['done-1']);
  });

  it('queued jobs go back to the queue in the order they come, and start when workers are ready', () => {
    const h = new Harness();
    // As at a real start: the setups recorded in the cache dir come back before the jobs.
    h.send({ type: 'restoreSetup', hashId: HASH, withHints: false, programName: 'guest', vkHex: '0102030405060708' });
    restore(h, 'q1', 'queued');
    restore(h, 'q2', 'queued');
    assert.deepEqual(h.core.snapshot().queue, ['q1', 'q2']);
    none(h.all, 'jobEvent');
    h.cluster(1);
    assert.deepEqual(h.job('q1').workers, ['w0']);
    assert.deepEqual(h.core.snapshot().queue, ['q2']);
    // Nothing new to tell the client about the wait itself: it saw `queued` before the restart.
    assert.deepEqual(eventKinds(h.all, 'q1'), ['started', 'progress:1']);
  });

  it('a job that was running becomes its next attempt: queued again, with the restart as the reason', () => {
    const h = new Harness({ max_job_attempts: 3 });
    const out = restore(h, 'r1', 'running');
    assert.deepEqual(one(out, 'jobRetried'), {
      type: 'jobRetried',
      jobId: 'r1',
      jobKind: 'prove',
      reason: 'coordinator_restart',
      attempt: 2,
      failedAttempt: 'the coordinator restarted',
    });
    assert.deepEqual(eventKinds(out, 'r1'), ['queued']);
    assert.deepEqual(h.core.snapshot().queue, ['r1']);
  });

  it('a running job with no attempt left fails, naming every attempt', () => {
    const h = new Harness({ max_job_attempts: 2 });
    const out = restore(h, 'r2', 'running', { attempt: 2, failedAttempts: ['Worker w1 connection dropped (phase 2)'] });
    assert.deepEqual(failureOf(out, 'r2'), {
      kind: 'execution',
      reason: 'failed after 2 attempts: the coordinator restarted (last; attempt 1: Worker w1 connection dropped (phase 2))',
    });
  });

  it('a job whose pushed data was not held whole fails: input stream lost when the coordinator restarted', () => {
    for (const status of ['running', 'queued'] as const) {
      const h = new Harness({ max_job_attempts: 3 });
      const out = restore(h, `lost-${status}`, status, { replayable: false }, h.proveSpec({ input: { kind: 'grpc' } }));
      const failure = failureOf(out, `lost-${status}`);
      assert.equal(failure.kind, 'internal');
      assert.equal((failure as { reason: string }).reason, 'input stream lost when the coordinator restarted');
      none(out, 'jobRetried');
    }
  });

  it('a worker that reconnects holding a job this process did not start is told to drop it', () => {
    const h = new Harness({ max_job_attempts: 3 });
    restore(h, 'r3', 'running');
    const out = h.hello('w0', { reconnect: true, lastKnownJobId: 'r3' });
    assert.equal(one(out, 'acceptWorker').directive, 'CANCEL_STALE_JOB');
  });

  it('a job that becomes replayable (its pushed data spooled whole) is retried; one that stops being is not', () => {
    const h = new Harness({ max_job_attempts: 3 });
    h.cluster(2);
    const a = h.prove({ input: { kind: 'grpc' } });
    h.send({ type: 'jobReplayable', jobId: a.jobId, replayable: true });
    h.close('w1');
    h.advance(500);
    assert.equal(only(h.all, 'jobRetried').length, 1);
    h.cluster(1);
    const b = h.prove({ input: { kind: 'grpc' }, hashId: HASH });
    h.send({ type: 'jobReplayable', jobId: b.jobId, replayable: true });
    h.send({ type: 'jobReplayable', jobId: b.jobId, replayable: false });
    const holder = h.job(b.jobId).workers[0];
    if (holder) {
      h.close(holder);
      h.advance(500);
      assert.equal(h.job(b.jobId).status, 'failed');
    }
  });
});
