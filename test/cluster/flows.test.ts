/**
 * End to end over real gRPC: an in-process coordinator, simulated workers speaking the real
 * cluster protocol, and a client of the public proto. Every job must reach a terminal state within
 * its deadlines and no worker may stay parked. Each case runs on both sim wires: the upstream one
 * notices a dead stream only when the real worker would, so a stream the coordinator leaves
 * half-open shows there and not on grpc-js.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SimFleet, type SimFleetOptions } from '../../src/sim/fleet';
import { SIM_WIRES } from '../../src/sim/options';
import { SimWorker, type SimWorkerEvents } from '../../src/sim/worker';
import { startTestCoordinator } from '../helpers/coordinator';
import { FAST_SIM, assertAllReady, failureOf, startCluster, workersState, type Cluster, type ClusterOptions } from '../helpers/cluster';
import { inline, submit, waitTerminal, watch, sample, sleep } from '../api/helpers';

for (const wire of SIM_WIRES) {
  describe(`${wire} wire`, () => {
    const cluster = (workers: number, opts: ClusterOptions = {}): Promise<Cluster> =>
      startCluster(workers, { tag: 'flows', ...opts, sim: { wire, ...opts.sim } });

    function prove(c: Cluster, extra: object = {}): Promise<string> {
      return submit(c.client, { prove: { hash_id: c.hashId, input: inline(Buffer.alloc(64, 1)), proof_dest: 1, ...extra } });
    }

    for (const n of [1, 2, 5]) {
      test(`a prove job runs end to end on ${n} worker(s), with phases in order and an intact proof`, async () => {
        const c = await cluster(n);
        try {
          const jobId = await prove(c);
          const w = watch(c.client, jobId);
          const r = await waitTerminal(c.client, jobId);
          assert.equal(r.job_status.status, 'completed', JSON.stringify(r.job_status));
          const proof = (r.result as unknown as { prove: { proof: { data: Buffer; proof_id: string; hash_id: string; proof_kind: number } } }).prove.proof;
          assert.equal(proof.hash_id, c.hashId);
          assert.equal(proof.proof_kind, 1);
          assert.equal(Buffer.from(proof.data).length, 1024, 'final proof bytes relayed');
          await w.done;
          const kinds = w.events.map((e) => (e.event === 'progress' ? `progress:${(e.progress as { phase: number }).phase}` : e.event));
          assert.deepEqual(kinds, ['queued', 'started', 'progress:1', 'progress:2', 'progress:3', 'completed']);
          // Every worker got the full challenge list, bit-exact; the aggregator got n-1 relayed proof lists.
          const stats = c.fleet.stats();
          assert.equal(stats.challengeMismatches, 0);
          const agg = c.fleet.workers.flatMap((wk) => wk.aggTasks.filter((t) => t.jobId === jobId));
          assert.equal(agg.length, n, 'one AGGREGATE task per prove result');
          assert.equal(agg.filter((t) => t.lastProof).length, 1, 'exactly one final aggregation');
          assert.ok(agg.every((t) => t.valuesIntact !== false), 'relayed uint64 values intact');
          await assertAllReady(c, n);
        } finally {
          await c.close();
        }
      });
    }

    test('an execute job completes with public outputs in the upstream layout', async () => {
      const c = await cluster(2);
      try {
        const jobId = await submit(c.client, { execute: { hash_id: c.hashId, input: inline(Buffer.alloc(8)) } });
        const r = await waitTerminal(c.client, jobId);
        assert.equal(r.job_status.status, 'completed', JSON.stringify(r.job_status));
        const out = (r.result as unknown as { execute: { public_outputs: Buffer; stats: { steps: string } } }).execute;
        assert.equal(Buffer.from(out.public_outputs).length, 32 + 64 * 8);
        assert.ok(Buffer.from(out.public_outputs).subarray(0, 32).equals(Buffer.alloc(32)));
        await assertAllReady(c, 2);
      } finally {
        await c.close();
      }
    });

    for (const phase of ['contribution', 'prove', 'aggregate'] as const) {
      test(`a worker error in the ${phase} phase fails the job at once with the worker's reason`, async () => {
        const c = await cluster(2, {
          sim: { perWorker: (i) => (i === 0 ? { faults: { [phase]: { action: 'error', message: `boom in ${phase}` } } } : undefined) },
        });
        try {
          const t0 = Date.now();
          const jobId = await prove(c);
          const failure = failureOf(await waitTerminal(c.client, jobId));
          assert.equal(failure.kind, 'execution');
          assert.match(String((failure.execution as { reason: string }).reason), new RegExp(`boom in ${phase}`));
          assert.ok(Date.now() - t0 < 5_000, 'failed at once, not at a timeout');
          await assertAllReady(c, 2);
        } finally {
          await c.close();
        }
      });
    }

    for (const phase of ['contribution', 'prove'] as const) {
      test(`a silent worker in the ${phase} phase fails the job at the phase timeout`, async () => {
        const c = await cluster(2, {
          coordinator: { phase1_timeout_seconds: 1, phase2_timeout_seconds: 1 },
          sim: { perWorker: (i) => (i === 1 ? { faults: { [phase]: { delayMs: 60_000 } } } : undefined) },
        });
        try {
          const jobId = await prove(c);
          const failure = failureOf(await waitTerminal(c.client, jobId, 10_000));
          assert.equal(failure.kind, 'timeout');
          assert.equal((failure.timeout as { phase: number }).phase, phase === 'contribution' ? 1 : 2);
        } finally {
          await c.close();
        }
      });
    }

    test('heartbeat loss disconnects the worker and fails its job; it is not put back to Ready', async () => {
      const c = await cluster(2, {
        coordinator: { heartbeat_interval_seconds: 1, heartbeat_max_missed: 2 },
        sim: { heartbeatIntervalMs: 300, perWorker: (i) => (i === 1 ? { faults: { contribution: { action: 'silence' } } } : undefined) },
      });
      try {
        const jobId = await prove(c);
        const failure = failureOf(await waitTerminal(c.client, jobId, 10_000));
        assert.equal(failure.kind, 'execution');
        assert.match(String((failure.execution as { reason: string }).reason), /heartbeat/);
        const states = await workersState(c);
        assert.equal(states.ready, 1, `the silent worker is not Ready: ${JSON.stringify(states)}`);
      } finally {
        await c.close();
      }
    });

    test('a worker that drops and reconnects inside the grace period keeps its job', async () => {
      const c = await cluster(2, {
        coordinator: { reconnect_grace_period_ms: 2_000 },
        sim: { perWorker: (i) => (i === 1 ? { faults: { prove: { action: 'disconnect', reconnectAfterMs: 50 } } } : undefined) },
      });
      try {
        const jobId = await prove(c);
        const r = await waitTerminal(c.client, jobId, 10_000);
        assert.equal(r.job_status.status, 'completed', JSON.stringify(r.job_status));
      } finally {
        await c.close();
      }
    });

    test('a worker that stays away past the grace period fails its job', async () => {
      const c = await cluster(2, {
        coordinator: { reconnect_grace_period_ms: 100 },
        sim: { reconnectIntervalMs: 3_000, perWorker: (i) => (i === 1 ? { faults: { contribution: { action: 'disconnect', reconnectAfterMs: 2_000 } } } : undefined) },
      });
      try {
        const jobId = await prove(c);
        const failure = failureOf(await waitTerminal(c.client, jobId, 10_000));
        assert.match(String((failure.execution as { reason: string }).reason), /connection dropped/);
      } finally {
        await c.close();
      }
    });

    for (const phase of ['contribution', 'prove', 'aggregate'] as const) {
      test(`cancel during the ${phase} phase returns once Cancelled and frees every worker`, async () => {
        const c = await cluster(2, { sim: { [`${phase}DelayMs`]: 1_000 } as Partial<SimFleetOptions> });
        try {
          const jobId = await prove(c);
          const w = watch(c.client, jobId);
          const want = phase === 'contribution' ? 1 : phase === 'prove' ? 2 : 3;
          const end = Date.now() + 5_000;
          while (!w.events.some((e) => e.event === 'progress' && (e.progress as { phase: number }).phase === want)) {
            if (Date.now() > end) assert.fail(`phase ${want} not reached: ${JSON.stringify(w.events)}`);
            await sleep(10);
          }
          const res = await new Promise<{ cancelled: boolean }>((resolve, reject) =>
            (c.client as unknown as { CancelJob: (r: object, cb: (e: Error | null, v: { cancelled: boolean }) => void) => void }).CancelJob(
              { job_id: jobId },
              (e, v) => (e ? reject(e) : resolve(v)),
            ),
          );
          assert.equal(res.cancelled, true);
          const r = await waitTerminal(c.client, jobId);
          assert.equal(r.job_status.status, 'cancelled');
          await assertAllReady(c, 2);
        } finally {
          await c.close();
        }
      });
    }
  });
}

describe('upstream wire: streams the coordinator ends after a handshake', () => {
  function upstreamSim(address: string, workerId: string): SimWorker {
    const w = new SimWorker({ coordinator: address, workerId, ...FAST_SIM, wire: 'upstream', heartbeatIntervalMs: 100 });
    w.start();
    return w;
  }

  function next<E extends 'registered' | 'disconnected' | 'responseEnded'>(w: SimWorker, event: E, timeoutMs: number): Promise<SimWorkerEvents[E][0]> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${w.id}: no ${event} within ${timeoutMs} ms`)), timeoutMs);
      w.once(event, ((arg: SimWorkerEvents[E][0]) => {
        clearTimeout(timer);
        resolve(arg);
      }) as never);
    });
  }

  test('a rejected worker reads accepted=false, leaves the stream, retries at once, and gets in when a slot frees', async () => {
    const tc = await startTestCoordinator({ coordinator: { max_total_workers: 1 } });
    const first = upstreamSim(tc.clusterAddress, 'first');
    let second: SimWorker | undefined;
    try {
      if (!first.registered) await next(first, 'registered', 5_000);
      second = upstreamSim(tc.clusterAddress, 'second');
      const info = await next(second, 'disconnected', 5_000);
      assert.equal(info.reason, 'rejected');
      await first.stop();
      await next(second, 'registered', 5_000);
      assert.ok(second.stats.rejections >= 1);
      // Each attempt was answered by a (delayed) rejection: the immediate retries did not spin.
      assert.equal(second.stats.connects, second.stats.rejections + 1, JSON.stringify(second.stats));
      assert.equal(second.stats.sendFailures, 0);
    } finally {
      await first.stop();
      await second?.stop();
      await tc.stop();
    }
  });

  test(
    'a worker whose stream was taken over learns it at its next send and reconnects at once',
    async () => {
      const tc = await startTestCoordinator();
      const old = upstreamSim(tc.clusterAddress, 'dup');
      let newer: SimWorker | undefined;
      try {
        if (!old.registered) await next(old, 'registered', 5_000);
        const ended = next(old, 'responseEnded', 5_000);
        newer = upstreamSim(tc.clusterAddress, 'dup');
        await next(newer, 'registered', 5_000);
        assert.equal((await ended).code, 0, 'the coordinator ended the old stream with status OK');
        // Gone before the old worker's next heartbeat, or the two would take each other over for ever.
        await newer.stop();
        const info = await next(old, 'disconnected', 2_000);
        assert.equal(info.reason, 'sendFailed');
        await next(old, 'registered', 5_000);
      } finally {
        await old.stop();
        await newer?.stop();
        await tc.stop();
      }
    },
  );
});

test('200 workers register at once', async () => {
  const tc = await startTestCoordinator({ coordinator: { max_total_workers: 1000 } });
  const fleet = new SimFleet({ coordinator: tc.clusterAddress, workers: 200, ...FAST_SIM, sharedChannel: true }).start();
  try {
    await fleet.waitAllRegistered(20_000);
    const end = Date.now() + 5_000;
    let idle = 0;
    while (Date.now() < end) {
      idle = sample(await (await fetch(`${tc.metricsUrl}/metrics`)).text(), 'coordinator_workers{state="idle"}');
      if (idle === 200) break;
      await sleep(50);
    }
    assert.equal(idle, 200);
  } finally {
    await fleet.stop();
    await tc.stop();
  }
});
