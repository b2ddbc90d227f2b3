/**
 * No acknowledged job is lost (docs/decisions.md, Durable jobs): the real binary takes a steady
 * stream of prove jobs from a client while simulated workers (upstream's wire) run them, and is
 * SIGKILLed at seeded random moments (a job may be queued, in any phase, or just completed), then
 * started again on the same state directory and ports. In the end every job whose JobRequest was
 * answered reaches exactly one terminal state, and a job seen completed before a kill answers with
 * the same result, byte for byte, after it. `CRASH_SEEDS=1,2,3,…` runs other kill points.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { SimFleet } from '../../src/sim/fleet';
import { freePort, spawnCoordinator, stopCoordinator, tempDir, type SpawnedCoordinator } from '../helpers/spawn-coordinator';
import { apiClient, fakeElf, inline, register, submit, wait, waitTerminal, watch, type WaitResult } from '../api/helpers';
import { seededRandom } from '../helpers/seeded-random';

const SEEDS = (process.env.CRASH_SEEDS ?? '1,2,3').split(',').map(Number);
const KILLS_PER_SEED = 3;
const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

for (const seed of SEEDS) {
  test(`seed ${seed}: ${KILLS_PER_SEED} SIGKILLs during a stream of jobs lose nothing that was acknowledged`, { timeout: 120_000 }, async (t) => {
    const random = seededRandom(seed);
    const dir = tempDir('zisk-crash-');
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const p = { api: await freePort(), cluster: await freePort(), metrics: await freePort() };
    const start = (): Promise<SpawnedCoordinator> =>
      spawnCoordinator({
        args: ['--api-port', String(p.api), '--cluster-port', String(p.cluster), '--metrics-port', String(p.metrics)],
        env: {
          ZISK_COORDINATOR_SERVER_HOST: '127.0.0.1',
          ZISK_COORDINATOR_METRICS_HOST: '127.0.0.1',
          ZISK_COORDINATOR_STATE_DIR: path.join(dir, 'state'),
          ZISK_COORDINATOR_COORDINATOR_CACHE_DIR: path.join(dir, 'cache'),
          ZISK_COORDINATOR_COORDINATOR_RECONNECT_GRACE_PERIOD_MS: '200',
          // Each kill can cost a running job one attempt.
          ZISK_COORDINATOR_COORDINATOR_MAX_JOB_ATTEMPTS: String(KILLS_PER_SEED + 1),
        },
      });
    let c = await start();
    t.after(() => stopCoordinator(c));
    const fleet = new SimFleet({
      coordinator: `127.0.0.1:${p.cluster}`,
      workers: 3,
      wire: 'upstream',
      setupDelayMs: 5,
      contributionDelayMs: 40 + Math.floor(random() * 200),
      proveDelayMs: 30,
      aggregateDelayMs: 10,
      reconnectIntervalMs: 100,
    }).start();
    t.after(() => fleet.stop());
    // Short reconnect backoff: the client keeps submitting across the restarts, as an SDK retrying would.
    const client: grpc.Client = apiClient(`127.0.0.1:${p.api}`, {
      'grpc.use_local_subchannel_pool': 1,
      'grpc.initial_reconnect_backoff_ms': 50,
      'grpc.max_reconnect_backoff_ms': 200,
    });
    t.after(() => client.close());
    await fleet.waitAllRegistered(10_000);
    const hashId = await register(client, fakeElf(`crash-${seed}`));
    const setup = await submit(client, { setup: { hash_id: hashId, with_hints: false, program_name: 'crash' } });
    assert.equal((await waitTerminal(client, setup)).job_status.status, 'completed');

    // A client submitting jobs all along; only answered JobRequests count as acknowledged.
    const acknowledged: string[] = [];
    let submitting = true;
    let n = 0;
    const submitter = (async () => {
      while (submitting) {
        try {
          acknowledged.push(await submit(client, { prove: { hash_id: hashId, input: inline(Buffer.alloc(64, ++n % 256)), proof_dest: 1 } }));
        } catch {
          await sleep(20); // the coordinator is down or refusing: not acknowledged
        }
        await sleep(10 + Math.floor(random() * 40));
      }
    })();

    const seenCompleted = new Map<string, WaitResult>();
    for (let kill = 0; kill < KILLS_PER_SEED; kill++) {
      await sleep(200 + Math.floor(random() * 1_300));
      // What clients have seen completed so far must not change (asked all at once: a WaitJobResult
      // on a job still running holds for a second).
      const unseen = acknowledged.filter((id) => !seenCompleted.has(id));
      const now = await Promise.all(unseen.map((id) => wait(client, id, 0).catch(() => undefined)));
      now.forEach((r, i) => {
        if (r?.job_status.status === 'completed') seenCompleted.set(unseen[i], r);
      });
      c.kill('SIGKILL');
      await c.exited;
      c = await start();
    }
    submitting = false;
    await submitter;
    assert.ok(acknowledged.length > 10, `jobs acknowledged: ${acknowledged.length}`);

    // A channel of its own: the first one may sit in grpc-js's reconnect backoff after the last kill.
    const after: grpc.Client = apiClient(`127.0.0.1:${p.api}`, { 'grpc.use_local_subchannel_pool': 1 });
    t.after(() => after.close());
    const finalOf = new Map<string, WaitResult>();
    const finals = await Promise.all(acknowledged.map((id) => waitTerminal(after, id, 60_000)));
    finals.forEach((r, i) => finalOf.set(acknowledged[i], r));
    for (const id of acknowledged) {
      const r = finalOf.get(id) as WaitResult;
      assert.ok(TERMINAL.has(r.job_status.status), `${id}: ${r.job_status.status}`);
      const before = seenCompleted.get(id);
      if (before) assert.deepEqual(r, before, `${id}: the result after the kills is the one seen before`);
    }
    // Exactly one terminal event each, and it is the last thing in the job's history.
    const histories = await Promise.all(
      acknowledged.map(async (id) => {
        const w = watch(after, id);
        await w.done;
        return { id, kinds: w.events.map((e) => e.event) };
      }),
    );
    for (const { id, kinds } of histories) {
      assert.equal(kinds.filter((k) => TERMINAL.has(k)).length, 1, `${id}: ${kinds.join(',')}`);
      assert.ok(TERMINAL.has(kinds[kinds.length - 1]), `${id}: ${kinds.join(',')}`);
      assert.equal(kinds[0], 'queued');
    }
    const completed = [...finalOf.values()].filter((r) => r.job_status.status === 'completed').length;
    t.diagnostic(`seed ${seed}: ${acknowledged.length} acknowledged, ${completed} completed, ${acknowledged.length - completed} failed; ${seenCompleted.size} checked across kills`);
  });
}
