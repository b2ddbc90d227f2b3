/**
 * Retention of terminal jobs (docs/decisions.md, Job states and events), determinism of the core, and
 * its cost at scale.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Harness, none, one, only } from './harness';

const evicted = (effects: Parameters<typeof only>[0]): string[] => only(effects, 'jobsEvicted').flatMap((e) => e.jobIds);

describe('retention', () => {
  it('a terminal job is evicted job_ttl_seconds after it ended', () => {
    const h = new Harness({ job_ttl_seconds: 60, job_monitor_interval_seconds: 1, heartbeat_interval_seconds: 0 });
    h.cluster(1);
    const { jobId } = h.prove();
    h.advance(5_000);
    h.runProve(jobId);
    assert.equal(evicted(h.advance(59_999)).includes(jobId), false);
    assert.deepEqual(evicted(h.advance(1)), [jobId]);
    assert.equal(h.hasJob(jobId), false);
    assert.equal(one(h.cancel(jobId), 'cancelResult').found, false);
  });

  it('job_monitor_interval_seconds paces the sweeps', () => {
    const h = new Harness({ job_ttl_seconds: 60, job_monitor_interval_seconds: 10, heartbeat_interval_seconds: 0 });
    h.registerAll(1);
    const a = h.wrap().jobId;
    h.wrapped('w0', a);
    h.advance(1_000);
    const b = h.wrap().jobId;
    h.wrapped('w0', b);
    assert.deepEqual(evicted(h.advance(59_000)), [a]);
    // b expired 1 s later, but the next sweep is one interval after the last
    assert.deepEqual(evicted(h.advance(9_999)), []);
    assert.deepEqual(evicted(h.advance(1)), [b]);
  });

  it('at most max_retained_jobs are kept, oldest evicted first', () => {
    const h = new Harness({ max_retained_jobs: 1 });
    h.registerAll(1);
    const a = h.wrap().jobId;
    assert.deepEqual(evicted(h.wrapped('w0', a)), []);
    const b = h.wrap().jobId;
    const out = h.wrapped('w0', b);
    assert.deepEqual(evicted(out), [a]);
    assert.deepEqual(
      h.core.snapshot().jobs.map((j) => j.id),
      [b],
    );
  });

  it('job_ttl_seconds = 0 evicts at the next sweep; running jobs are never evicted', () => {
    const h = new Harness({ job_ttl_seconds: 0, heartbeat_interval_seconds: 0, phase1_timeout_seconds: 0 });
    h.cluster(1);
    const setupId = h.core.snapshot().jobs[0].id;
    assert.deepEqual(one(h.advance(0), 'jobsEvicted').jobIds, [setupId]);
    const running = h.prove();
    h.advance(10 * 3600_000);
    assert.equal(h.job(running.jobId).status, 'running');
  });

  it('an evicted setup id is unknown to a late ack', () => {
    const h = new Harness({ job_ttl_seconds: 1, setup_timeout_seconds: 1 });
    h.registerAll(1);
    const { jobId } = h.submit({ kind: 'setup', hashId: 'a'.repeat(64), withHints: false, programName: 'g' });
    h.advance(1_000);
    assert.equal(h.job(jobId).status, 'failed');
    h.advance(1_000);
    assert.equal(h.hasJob(jobId), false);
    assert.equal(one(h.ackSetup('w0', jobId), 'ignoredMessage').reason, 'unknown_setup');
    assert.equal(h.state('w0'), 'idle');
  });
});

function scenario(): Harness {
  const h = new Harness({ default_compute_units: 20, queue_timeout_seconds: 100 });
  h.cluster(4, 10);
  const a = h.prove().jobId;
  const b = h.execute().jobId;
  const c = h.prove().jobId; // queued
  h.advance(1_000);
  for (const w of h.job(a).workers) h.contribute(w, a);
  for (const w of h.job(b).workers) h.executed(w, b);
  h.advance(2_000);
  h.close('w1');
  h.advance(400);
  h.hello('w1', { reconnect: true, lastKnownJobId: a });
  h.proofs('w1', a);
  h.proofs('w0', a);
  h.aggAck('w1', a);
  h.finalProof('w1', a);
  h.cancel(c);
  h.wrap();
  h.advance(700_000);
  h.hello('w9');
  h.send({ type: 'abandonAll', traceId: 't' });
  return h;
}

describe('determinism', () => {
  it('the same events at the same times give the same effects', () => {
    const first = scenario();
    const second = scenario();
    assert.ok(first.all.length > 100);
    assert.deepEqual(second.all, first.all);
    assert.deepEqual(second.core.snapshot(), first.core.snapshot());
  });
});

describe('scale', () => {
  // How fast this runs is the `scale` benchmark's business (bench/); here only what it does.
  it('10,000 workers: registration, one setup and one job fan out to all; 100,000 heartbeat acks keep them all alive', () => {
    const h = new Harness({ max_total_workers: 20_000 });
    const n = 10_000;
    const ids = h.registerAll(n, 1);
    const setup = h.setup();
    assert.equal(one(setup.effects, 'sendSetup').linkIds.length, n);
    const { effects } = h.prove();
    assert.equal(one(effects, 'dispatchContributions').targets.length, n);
    const links = ids.map((id) => h.link(id));
    for (let round = 0; round < 10; round++) {
      h.now += 3_000;
      for (const linkId of links) h.core.handle({ type: 'workerAlive', linkId }, h.now);
      none(h.core.advance(h.now), 'closeWorker');
    }
    assert.equal(h.core.snapshot().workers.filter((w) => w.state === 'computing').length, n);
  });
});
