/**
 * Prove jobs with the upstream bugs of docs/decisions.md fixed (Aggregation race, No membership
 * checks, Early phase-3 timer, Invalid results hang jobs) and the events of its Job states and events.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CONTRIBUTION,
  Harness,
  T0,
  VK,
  eventKinds,
  failureOf,
  none,
  one,
  only,
  terminalEvent,
} from './harness';
import type { CoreConfig } from '../../src/threads/core/context';

describe('prove flow', () => {
  it('1 worker: one final aggregation step with an empty agg_proofs list', () => {
    const h = new Harness();
    h.cluster(1);
    const { jobId } = h.prove();
    h.contribute('w0', jobId);
    h.proofs('w0', jobId);
    const agg = only(h.all, 'dispatchAggregate');
    assert.deepEqual(agg, [
      { type: 'dispatchAggregate', task: { jobId, linkId: h.link('w0'), workerId: 'w0', last: true, proofType: 0 } },
    ]);
    const out = h.finalProof('w0', jobId);
    const done = terminalEvent(out, jobId);
    assert.equal(done.kind, 'completed');
    assert.ok(done.kind === 'completed' && done.result.kind === 'prove');
    assert.equal(done.result.executedSteps, '12345');
    assert.equal(done.result.vkHex, VK);
    assert.equal(done.result.startedAt, T0);
    assert.deepEqual(eventKinds(h.all, jobId), [
      'queued',
      'started',
      'progress:1',
      'progress:2',
      'progress:3',
      'completed',
    ]);
    assert.equal(h.state('w0'), 'ready');
  });

  it('log effects below the configured level are never emitted (they would cross the thread for nothing)', () => {
    const logsOf = (level: CoreConfig['log_level']): Array<[string, string]> => {
      const h = new Harness({ log_level: level });
      h.cluster(1);
      const { jobId } = h.prove();
      h.contribute('w0', jobId);
      h.proofs('w0', jobId);
      h.finalProof('w0', jobId);
      return only(h.all, 'log').map((l) => [l.level, l.msg]);
    };
    const all = logsOf(undefined);
    assert.ok(all.some(([level]) => level === 'debug'), JSON.stringify(all));
    assert.ok(all.some(([level]) => level === 'info'), JSON.stringify(all));
    assert.deepEqual(logsOf('debug'), all);
    assert.deepEqual(logsOf('info'), all.filter(([level]) => level !== 'debug'));
    assert.deepEqual(logsOf('error'), all.filter(([level]) => level === 'error'));
  });

  it('2 workers: ranks, allocation, phase-2 fan-out and aggregation in order', () => {
    const h = new Harness();
    h.registerAll(['w0'], 2);
    h.registerAll(['w1'], 4);
    h.setup();
    const { jobId, effects } = h.prove({ proofKind: 3 });
    const contrib = one(effects, 'dispatchContributions');
    assert.equal(contrib.executionOnly, false);
    assert.equal(contrib.totalWorkers, 2);
    assert.equal(contrib.jobComputeUnits, 6);
    assert.match(contrib.dataId, /^id-\d+$/);
    assert.deepEqual(contrib.targets, [
      { linkId: h.link('w0'), workerId: 'w0', rank: 0, allocation: [0, 2] },
      { linkId: h.link('w1'), workerId: 'w1', rank: 1, allocation: [1, 3, 4, 5] },
    ]);
    // dispatch before the relays are pointed at the job's links
    assert.ok(effects.indexOf(contrib) < effects.indexOf(one(effects, 'jobLinks')));

    // contributions arrive out of rank order; challenges still go out in rank order
    const c1 = h.contribute('w1', jobId);
    const c1Blobs = h.lastChallenges();
    none(c1, 'dispatchProve');
    const c0 = h.contribute('w0', jobId);
    const c0Blobs = h.lastChallenges();
    const prove = one(c0, 'dispatchProve');
    assert.deepEqual(prove.targets, [
      { linkId: h.link('w0'), workerId: 'w0' },
      { linkId: h.link('w1'), workerId: 'w1' },
    ]);
    assert.deepEqual(prove.challengesBlobIds, [...c0Blobs, ...c1Blobs]);
    assert.deepEqual(one(c0, 'phaseFinished'), { type: 'phaseFinished', phase: 'contributions', seconds: 0 });

    // the first prove result names the aggregator; the other is released as its result arrives
    h.advance(2_000);
    const p1 = h.proofs('w1', jobId);
    assert.deepEqual(eventKinds(p1, jobId), ['progress:3']);
    assert.deepEqual(one(p1, 'dispatchAggregate').task, {
      jobId,
      linkId: h.link('w1'),
      workerId: 'w1',
      last: false,
      proofType: 2,
    });
    assert.equal(h.state('w1'), 'computing');
    const p0 = h.proofs('w0', jobId);
    assert.equal(h.state('w0'), 'ready');
    none(p0, 'dispatchAggregate'); // one in flight
    assert.deepEqual(one(p0, 'phaseFinished'), { type: 'phaseFinished', phase: 'prove', seconds: 2 });
    const next = one(h.aggAck('w1', jobId), 'dispatchAggregate').task;
    assert.equal(next.last, true);
    assert.equal(next.workerId, 'w1');
    assert.ok(next.proofsBlobId !== undefined);
    const out = h.finalProof('w1', jobId);
    assert.equal(terminalEvent(out, jobId).kind, 'completed');
    assert.equal(h.state('w1'), 'ready');
    assert.deepEqual(
      only(out, 'workerJobOutcome').map((o) => o.workerId),
      ['w0', 'w1'],
    );
  });

  it('5 workers with results in any order complete with one aggregation at a time', () => {
    const h = new Harness();
    const ids = h.cluster(5);
    const { jobId } = h.prove();
    for (const w of ['w3', 'w0', 'w4', 'w2', 'w1']) h.contribute(w, jobId);
    for (const w of ['w2', 'w4', 'w0', 'w1', 'w3']) h.proofs(w, jobId);
    assert.deepEqual(
      ids.map((w) => h.state(w)),
      ['ready', 'ready', 'computing', 'ready', 'ready'],
    );
    const dispatched = () => only(h.all, 'dispatchAggregate').length;
    assert.equal(dispatched(), 1);
    for (let i = 1; i < 5; i++) {
      h.aggAck('w2', jobId);
      assert.equal(dispatched(), i + 1);
    }
    const tasks = only(h.all, 'dispatchAggregate').map((d) => d.task);
    assert.deepEqual(
      tasks.map((t) => t.last),
      [false, false, false, false, true],
    );
    assert.equal(tasks[0].proofsBlobId, undefined);
    assert.equal(terminalEvent(h.finalProof('w2', jobId), jobId).kind, 'completed');
  });

  it('Aggregation race: one aggregation in flight', () => {
    const h = new Harness();
    h.cluster(3);
    const { jobId } = h.prove();
    for (const w of ['w0', 'w1', 'w2']) h.contribute(w, jobId);
    h.proofs('w0', jobId);
    const burst = [...h.proofs('w1', jobId), ...h.proofs('w2', jobId)];
    none(burst, 'dispatchAggregate');
    // an ack releases exactly the next queued task, FIFO
    const a1 = one(h.aggAck('w0', jobId), 'dispatchAggregate').task;
    const a2 = one(h.aggAck('w0', jobId), 'dispatchAggregate').task;
    const proofsOf = only(burst, 'releaseBlobs');
    assert.equal(proofsOf.length, 0, 'queued proofs are kept until aggregated');
    assert.equal(a1.last, false);
    assert.equal(a2.last, true);
    assert.ok(a1.proofsBlobId !== undefined && a2.proofsBlobId !== undefined && a1.proofsBlobId < a2.proofsBlobId);
  });

  it('releases the transient blobs at the end, keeping the proof and the publics', () => {
    const h = new Harness();
    h.cluster(2);
    const { jobId } = h.prove();
    const out = h.runProve(jobId);
    const done = terminalEvent(out, jobId);
    assert.ok(done.kind === 'completed' && done.result.kind === 'prove');
    const released = new Set(only(out, 'releaseBlobs').flatMap((r) => r.blobIds));
    assert.equal(released.has(done.result.proofBlobId), false);
    assert.ok(done.result.publicsBlobId !== undefined);
    assert.equal(released.has(done.result.publicsBlobId), false);
    // the input, both ranks' challenges, rank 1's publics and both proof lists are released
    assert.equal(released.size, 1 + 4 + 1 + 2);
  });

  it('Early phase-3 timer: the phase-3 timer starts when all prove results are in', () => {
    const h = new Harness({ heartbeat_interval_seconds: 0 });
    h.cluster(2);
    const { jobId } = h.prove();
    h.contribute('w0', jobId);
    h.contribute('w1', jobId);
    h.proofs('w0', jobId);
    none(h.advance(145_000), 'jobEvent');
    // 145 s after the aggregator was chosen: upstream would have failed at 100 s
    assert.equal(h.job(jobId).status, 'running');
    h.proofs('w1', jobId);
    none(h.advance(99_999), 'jobEvent');
    const out = h.advance(1);
    assert.deepEqual(failureOf(out, jobId), { kind: 'timeout', phase: 3, limitSeconds: 100 });
  });

  it('the aggregator is exempt from the silence check while its final PLONK AGGREGATE runs (the wrap blocks it), not before', () => {
    // 30 s heartbeats, 3 missed: silent for 90 s is a dead worker, except inside the exemption.
    const h = new Harness({ phase3_timeout_seconds: 600 });
    h.cluster(2);
    const { jobId } = h.prove({ proofKind: 3 });
    h.contribute('w0', jobId);
    h.contribute('w1', jobId);
    h.proofs('w0', jobId);
    h.proofs('w1', jobId);
    const w0Link = h.link('w0');
    // The first AGGREGATE step is not the final one: the aggregator must keep heartbeating.
    h.alive('w1');
    h.aggAck('w0', jobId);
    h.alive('w0');
    // Now the final PLONK step runs: 200 s of silence from the aggregator are excused.
    const out = h.advance(200_000);
    assert.ok(!only(out, 'closeWorker').some((c) => c.linkId === w0Link), 'the aggregator is not cut');
    assert.equal(h.job(jobId).status, 'running');
    const done = h.finalProof('w0', jobId);
    assert.equal(terminalEvent(done, jobId).kind, 'completed');
    // The silence window restarts when the exemption ends.
    none(h.advance(89_999).filter((e) => e.type === 'closeWorker' && e.linkId === w0Link), 'closeWorker');
  });

  it('a silent aggregator of a non-PLONK final step is still disconnected', () => {
    const h = new Harness({ phase3_timeout_seconds: 600 });
    h.cluster(2);
    const { jobId } = h.prove({ proofKind: 2 });
    h.contribute('w0', jobId);
    h.contribute('w1', jobId);
    h.proofs('w0', jobId);
    h.proofs('w1', jobId);
    const w0Link = h.link('w0');
    h.aggAck('w0', jobId);
    const out = h.advance(90_000);
    assert.ok(only(out, 'closeWorker').some((c) => c.linkId === w0Link));
    assert.equal(h.job(jobId).status, 'failed');
  });

  it('the phase-2 timeout still applies to stragglers after the aggregator is chosen', () => {
    const h = new Harness({ phase2_timeout_seconds: 60 });
    h.cluster(2);
    const { jobId } = h.prove();
    h.contribute('w0', jobId);
    h.contribute('w1', jobId);
    h.advance(10_000);
    h.proofs('w0', jobId);
    none(h.advance(49_999), 'jobEvent');
    assert.deepEqual(failureOf(h.advance(1), jobId), { kind: 'timeout', phase: 2, limitSeconds: 60 });
  });

  it('the phase-1 timeout fails a job in contributions', () => {
    const h = new Harness({ phase1_timeout_seconds: 30, heartbeat_interval_seconds: 0 });
    h.cluster(1);
    const { jobId } = h.prove();
    none(h.advance(29_999), 'jobEvent');
    const out = h.advance(1);
    assert.deepEqual(failureOf(out, jobId), { kind: 'timeout', phase: 1, limitSeconds: 30 });
    assert.equal(h.state('w0'), 'ready');
    assert.deepEqual(one(out, 'sendJobCancelled'), {
      type: 'sendJobCancelled',
      jobId,
      reason: 'timed out in phase 1 after 30s',
      linkIds: [h.link('w0')],
    });
  });

  it('a phase timeout of 0 disables it', () => {
    const h = new Harness({ phase1_timeout_seconds: 0, heartbeat_interval_seconds: 0 });
    h.cluster(1);
    const { jobId } = h.prove();
    h.advance(10 * 3600_000);
    assert.equal(h.job(jobId).status, 'running');
  });

  it('the request deadline fails the job when it is earlier than the phase limit', () => {
    const h = new Harness();
    h.cluster(1);
    const { jobId } = h.prove({ deadline: T0 + 45_500 });
    h.contribute('w0', jobId);
    none(h.advance(45_499), 'jobEvent');
    assert.deepEqual(failureOf(h.advance(1), jobId), { kind: 'timeout', phase: 2, limitSeconds: 45.5 });
  });

  it('proof_type is the proof kind minus one', () => {
    for (const [kind, type] of [
      [1, 0],
      [2, 1],
      [3, 2],
    ] as const) {
      const h = new Harness();
      h.cluster(1);
      const { jobId } = h.prove({ proofKind: kind });
      h.contribute('w0', jobId);
      assert.equal(one(h.proofs('w0', jobId), 'dispatchAggregate').task.proofType, type);
    }
  });
});

describe('Invalid results hang jobs: an invalid result fails at once', () => {
  const started = () => {
    const h = new Harness();
    h.cluster(2);
    return { h, jobId: h.prove().jobId };
  };

  it('an empty challenges list', () => {
    const { h, jobId } = started();
    const out = h.result('w0', jobId, CONTRIBUTION, {
      kind: 'challenges',
      challengesBlobIds: [],
      witnessKey: 'wk',
      publicsBlobId: 77,
      totalInstances: '0',
    });
    assert.deepEqual(failureOf(out, jobId), { kind: 'execution', reason: 'Worker w0 returned an empty challenges list' });
    assert.ok(only(out, 'releaseBlobs').some((r) => r.blobIds.includes(77)));
    assert.equal(h.state('w0'), 'ready');
    assert.equal(h.state('w1'), 'ready');
  });

  it('a result that failed edge validation', () => {
    const { h, jobId } = started();
    const out = h.result('w1', jobId, CONTRIBUTION, { kind: 'invalid', reason: 'missing witness_info' });
    assert.deepEqual(failureOf(out, jobId), {
      kind: 'execution',
      reason: 'Invalid contribution result from worker w1: missing witness_info',
    });
  });

  it('success without the expected result member', () => {
    const { h, jobId } = started();
    const out = h.result('w0', jobId, CONTRIBUTION, { kind: 'none' });
    assert.deepEqual(failureOf(out, jobId), {
      kind: 'execution',
      reason: 'Worker w0 returned no result for its contribution task',
    });
    const other = started();
    const out2 = other.h.result('w0', other.jobId, CONTRIBUTION, { kind: 'proofs', proofsBlobId: 5, bytes: 1 });
    assert.deepEqual(failureOf(out2, other.jobId), {
      kind: 'execution',
      reason: 'Worker w0 returned a proofs result for its contribution task',
    });
    assert.ok(only(out2, 'releaseBlobs').some((r) => r.blobIds.includes(5)));
  });

  it('a witness mismatch', () => {
    const { h, jobId } = started();
    h.contribute('w0', jobId, 'publics-A');
    const out = h.contribute('w1', jobId, 'publics-B');
    assert.deepEqual(failureOf(out, jobId), {
      kind: 'execution',
      reason: 'Witness info mismatch: worker w1 (rank 1) reported publics/proof_values that differ from worker w0 (rank 0)',
    });
    none(out, 'dispatchProve');
  });

  it('a final aggregation with empty proof data', () => {
    const h = new Harness();
    h.cluster(1);
    const { jobId } = h.prove();
    h.contribute('w0', jobId);
    h.proofs('w0', jobId);
    const out = h.aggAck('w0', jobId);
    assert.deepEqual(failureOf(out, jobId), {
      kind: 'execution',
      reason: 'Aggregator w0 returned an empty proof for the final aggregation step',
    });
  });

  it('a final proof before the last aggregation step', () => {
    const { h, jobId } = started();
    h.contribute('w0', jobId);
    h.contribute('w1', jobId);
    h.proofs('w0', jobId);
    const out = h.finalProof('w0', jobId);
    assert.deepEqual(failureOf(out, jobId), {
      kind: 'execution',
      reason: 'Aggregator w0 returned a final proof before the last aggregation step',
    });
  });
});

describe('No membership checks: results from non-members are ignored', () => {
  it('non-members, wrong phase, duplicates and AGGREGATE from a non-aggregator change nothing', () => {
    const h = new Harness({ default_compute_units: 20 });
    h.cluster(3);
    const { jobId } = h.prove();
    assert.deepEqual(h.job(jobId).workers, ['w0', 'w1']);

    const nonMember = h.contribute('w2', jobId);
    assert.equal(one(nonMember, 'ignoredMessage').reason, 'not_member');
    assert.equal(one(nonMember, 'releaseBlobs').blobIds.length, 3);

    const wrongPhase = h.proofs('w0', jobId);
    assert.equal(one(wrongPhase, 'ignoredMessage').reason, 'wrong_task');

    h.contribute('w0', jobId);
    const duplicate = h.contribute('w0', jobId);
    assert.equal(one(duplicate, 'ignoredMessage').reason, 'duplicate');

    h.contribute('w1', jobId);
    h.proofs('w0', jobId);
    const notAggregator = h.finalProof('w1', jobId);
    assert.equal(one(notAggregator, 'ignoredMessage').reason, 'not_aggregator');
    none(notAggregator, 'jobEvent');

    const errorFromOutsider = h.send({ type: 'workerError', linkId: h.link('w2'), jobId, message: 'nope' });
    assert.equal(one(errorFromOutsider, 'ignoredMessage').reason, 'not_member');

    h.proofs('w1', jobId);
    // w1 was released: its further results are ignored too
    assert.equal(one(h.proofs('w1', jobId), 'ignoredMessage').reason, 'not_computing');
    h.aggAck('w0', jobId);
    assert.equal(terminalEvent(h.finalProof('w0', jobId), jobId).kind, 'completed');
    assert.equal(
      only(h.all, 'ignoredMessage').every((m) => m.detail.length > 0),
      true,
    );
  });
});

describe('aggregator reconnect (upstream replay; docs/decisions.md, Scheduling)', () => {
  it('a KEEP_COMPUTING aggregator gets its in-flight AGGREGATE replayed on the new stream', () => {
    const h = new Harness();
    h.cluster(2);
    const { jobId } = h.prove();
    h.contribute('w0', jobId);
    h.contribute('w1', jobId);
    h.proofs('w0', jobId);
    const inFlight = one(h.all.slice(-10), 'dispatchAggregate').task;
    h.close('w0');
    h.advance(200);
    const out = h.hello('w0', { reconnect: true, lastKnownJobId: jobId });
    const accept = one(out, 'acceptWorker');
    assert.equal(accept.directive, 'KEEP_COMPUTING');
    assert.deepEqual(accept.replayAggregate, { ...inFlight, linkId: h.link('w0') });
    // a task created while the aggregator had no stream is not lost either
    h.proofs('w1', jobId);
    const next = one(h.aggAck('w0', jobId), 'dispatchAggregate').task;
    assert.equal(next.linkId, h.link('w0'));
    assert.equal(terminalEvent(h.finalProof('w0', jobId), jobId).kind, 'completed');
  });

  it('both copies of a replayed AGGREGATE answered: the extra empty answer is not taken for the final step', () => {
    const h = new Harness();
    h.cluster(2);
    const { jobId } = h.prove();
    h.contribute('w0', jobId);
    h.contribute('w1', jobId);
    h.proofs('w0', jobId); // step 1 (not the last) in flight to w0
    h.close('w0');
    h.advance(200);
    assert.ok(one(h.hello('w0', { reconnect: true, lastKnownJobId: jobId }), 'acceptWorker').replayAggregate);
    h.proofs('w1', jobId); // the last step waits behind step 1
    // The first copy's answer; the last step goes out.
    assert.equal(one(h.aggAck('w0', jobId), 'dispatchAggregate').task.last, true);
    // The replayed copy's answer (empty, as every step but the last): ignored, the job waits on.
    const dup = h.aggAck('w0', jobId);
    assert.equal(one(dup, 'ignoredMessage').reason, 'replayed_aggregate_duplicate');
    assert.equal(h.job(jobId).status, 'running');
    assert.equal(terminalEvent(h.finalProof('w0', jobId), jobId).kind, 'completed');
  });

  it('an empty answer to the last step fails the job when no step was replayed', () => {
    const h = new Harness();
    h.cluster(2);
    const { jobId } = h.prove();
    h.contribute('w0', jobId);
    h.contribute('w1', jobId);
    h.proofs('w0', jobId);
    h.proofs('w1', jobId);
    h.aggAck('w0', jobId);
    const out = h.aggAck('w0', jobId);
    assert.match(String((terminalEvent(out, jobId) as { failure: { reason: string } }).failure.reason), /returned an empty proof for the final aggregation step/);
  });

  it('a task queued while the aggregator is away is replayed when it returns', () => {
    const h = new Harness();
    h.cluster(2);
    const { jobId } = h.prove();
    h.contribute('w0', jobId);
    h.contribute('w1', jobId);
    h.proofs('w0', jobId);
    h.aggAck('w0', jobId); // nothing in flight now
    h.close('w0');
    const meanwhile = h.proofs('w1', jobId);
    none(meanwhile, 'dispatchAggregate');
    const accept = one(h.hello('w0', { reconnect: true, lastKnownJobId: jobId }), 'acceptWorker');
    assert.equal(accept.replayAggregate?.last, true);
    assert.equal(accept.replayAggregate?.linkId, h.link('w0'));
  });

  it('the aggregator dropping with no reconnect inside the grace fails the job', () => {
    const h = new Harness();
    h.cluster(2);
    const { jobId } = h.prove();
    h.contribute('w0', jobId);
    h.contribute('w1', jobId);
    h.proofs('w0', jobId);
    h.proofs('w1', jobId);
    h.close('w0');
    const out = h.advance(500);
    assert.deepEqual(failureOf(out, jobId), { kind: 'execution', reason: 'Worker w0 connection dropped' });
    // w1, released earlier, still holds the job context: it is told
    assert.deepEqual(one(out, 'sendJobCancelled').linkIds, [h.link('w1')]);
  });

  it('a prove task a member missed while away is sent on its KEEP_COMPUTING reconnect', () => {
    const h = new Harness();
    h.cluster(2);
    const { jobId } = h.prove();
    h.contribute('w1', jobId);
    h.close('w1');
    const phase2 = h.contribute('w0', jobId);
    assert.deepEqual(
      one(phase2, 'dispatchProve').targets.map((t) => t.workerId),
      ['w0'],
    );
    const out = h.hello('w1', { reconnect: true, lastKnownJobId: jobId });
    const resend = one(out, 'dispatchProve');
    assert.deepEqual(resend.targets, [{ linkId: h.link('w1'), workerId: 'w1' }]);
    assert.equal(resend.challengesBlobIds.length, 4);
    h.proofs('w0', jobId);
    h.proofs('w1', jobId);
    h.aggAck('w0', jobId);
    assert.equal(terminalEvent(h.finalProof('w0', jobId), jobId).kind, 'completed');
  });
});
