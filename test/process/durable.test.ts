/**
 * Jobs survive the coordinator (docs/decisions.md, Durable jobs), with the real binary killed by
 * SIGKILL and started again on the same state directory and ports; the simulated workers (on
 * upstream's wire) reconnect by themselves. A finished job answers with the same result and history;
 * a job that was running runs again as its next attempt; a queued one runs in its turn. With
 * `[state] backend = "memory"` nothing survives, as upstream. A store that is not one is exit 78.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { SimFleet } from '../../src/sim/fleet';
import { EmbeddedJobStore } from '../../src/main/state/embedded-store';
import type { StoredJob } from '../../src/main/state/store';
import { freePort, spawnCoordinator, stopCoordinator, tempDir, type SpawnedCoordinator } from '../helpers/spawn-coordinator';
import { apiClient, callError, fakeElf, inline, register, submit, unary, wait, waitTerminal, watch, type WaitResult } from '../api/helpers';

const LOOPBACK = { ZISK_COORDINATOR_SERVER_HOST: '127.0.0.1', ZISK_COORDINATOR_METRICS_HOST: '127.0.0.1' };

interface Ports {
  api: number;
  cluster: number;
  metrics: number;
}

async function ports(): Promise<Ports> {
  return { api: await freePort(), cluster: await freePort(), metrics: await freePort() };
}

function start(p: Ports, stateDir: string, cacheDir: string, env: NodeJS.ProcessEnv = {}): Promise<SpawnedCoordinator> {
  return spawnCoordinator({
    args: ['--api-port', String(p.api), '--cluster-port', String(p.cluster), '--metrics-port', String(p.metrics)],
    env: {
      ...LOOPBACK,
      ZISK_COORDINATOR_STATE_DIR: stateDir,
      ZISK_COORDINATOR_COORDINATOR_CACHE_DIR: cacheDir,
      ZISK_COORDINATOR_COORDINATOR_RECONNECT_GRACE_PERIOD_MS: '200',
      ...env,
    },
  });
}

async function kill(c: SpawnedCoordinator): Promise<void> {
  c.kill('SIGKILL');
  await c.exited;
}

const prove = (client: grpc.Client, hashId: string, tag: number): Promise<string> =>
  submit(client, { prove: { hash_id: hashId, input: inline(Buffer.alloc(64, tag)), proof_dest: 1 } });

test('SIGKILL and restart: finished jobs answer as before, a running one reruns as attempt 2, a queued one runs', { timeout: 90_000 }, async (t) => {
  const dir = tempDir('zisk-durable-');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const p = await ports();
  let c = await start(p, path.join(dir, 'state'), path.join(dir, 'cache'));
  t.after(() => stopCoordinator(c));
  // One worker: a second job queues behind the first.
  const fleet = new SimFleet({
    coordinator: `127.0.0.1:${p.cluster}`,
    workers: 1,
    wire: 'upstream',
    setupDelayMs: 5,
    // Long enough that the second job is still running, and the third queued, when the process is killed.
    contributionDelayMs: 2_000,
    proveDelayMs: 20,
    aggregateDelayMs: 10,
    reconnectIntervalMs: 100,
    // Bigger than a record keeps (a SNARK-sized proof stays in it; the crash test has those): a file.
    finalProofBytes: 100_000,
  }).start();
  t.after(() => fleet.stop());
  const client = apiClient(`127.0.0.1:${p.api}`);
  t.after(() => client.close());
  await fleet.waitAllRegistered(10_000);
  const hashId = await register(client, fakeElf('durable'));
  const setup = await submit(client, { setup: { hash_id: hashId, with_hints: false, program_name: 'durable' } });
  assert.equal((await waitTerminal(client, setup)).job_status.status, 'completed');

  const done = await prove(client, hashId, 1);
  const before: WaitResult = await waitTerminal(client, done);
  assert.equal(before.job_status.status, 'completed');
  assert.equal(fs.statSync(path.join(dir, 'state', 'files', `${done}.proof`)).size, 100_000);
  const historyBefore = watch(client, done);
  await historyBefore.done;
  const running = await prove(client, hashId, 2);
  const queued = await prove(client, hashId, 3);
  await c.waitForLine((l) => l.job_id === running && /^prove job \S+ started/.test(String(l.msg)));
  assert.equal((await wait(client, queued, 0)).job_status.status, 'queued');

  await kill(c);
  c = await start(p, path.join(dir, 'state'), path.join(dir, 'cache'));
  const restored = c.lines.find((l) => typeof l.msg === 'string' && l.msg.startsWith('restored '));
  assert.ok(restored, 'logs what it restored');
  assert.deepEqual([restored.terminal, restored.queued, restored.running], [2, 1, 1]);

  // The finished job: the same result, byte for byte, and the same history.
  const after = await wait(client, done, 0);
  assert.deepEqual(after, before);
  const historyAfter = watch(client, done);
  await historyAfter.done;
  assert.deepEqual(historyAfter.events, historyBefore.events);

  // The running job lost its attempt to the restart: it runs again and completes.
  const events = watch(client, running, 60_000);
  assert.equal((await waitTerminal(client, running, 30_000)).job_status.status, 'completed');
  await events.done;
  const kinds = events.events.map((e) => e.event);
  assert.deepEqual(kinds.filter((k) => k === 'queued' || k === 'started'), ['queued', 'started', 'queued', 'started']);
  assert.equal(kinds.filter((k) => k === 'completed').length, 1);
  assert.equal((await waitTerminal(client, queued, 30_000)).job_status.status, 'completed');
  const retries = await fetch(`http://127.0.0.1:${p.metrics}/metrics`).then((r) => r.text());
  assert.match(retries, /^coordinator_job_retries_total\{kind="prove",reason="coordinator_restart"\} 1$/m);
});

test('with [state] backend = "memory" nothing survives a restart, as upstream', { timeout: 60_000 }, async (t) => {
  const dir = tempDir('zisk-memory-');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const p = await ports();
  const env = { ZISK_COORDINATOR_STATE_BACKEND: 'memory' };
  let c = await start(p, path.join(dir, 'state'), path.join(dir, 'cache'), env);
  t.after(() => stopCoordinator(c));
  const fleet = new SimFleet({ coordinator: `127.0.0.1:${p.cluster}`, workers: 1, wire: 'upstream', setupDelayMs: 5, contributionDelayMs: 5, reconnectIntervalMs: 100 }).start();
  t.after(() => fleet.stop());
  const client = apiClient(`127.0.0.1:${p.api}`);
  t.after(() => client.close());
  await fleet.waitAllRegistered(10_000);
  const hashId = await register(client, fakeElf('memory'));
  const setup = await submit(client, { setup: { hash_id: hashId, with_hints: false, program_name: 'memory' } });
  assert.equal((await waitTerminal(client, setup)).job_status.status, 'completed');
  const job = await prove(client, hashId, 1);
  assert.equal((await waitTerminal(client, job)).job_status.status, 'completed');
  assert.ok(!fs.existsSync(path.join(dir, 'state')), 'no state directory is made');
  await kill(c);
  c = await start(p, path.join(dir, 'state'), path.join(dir, 'cache'), env);
  const e = await callError(client, 'WaitJobResult', { job_id: job });
  assert.equal(e.details, `Job not found: ${job}`);
  // Setups are kept in the cache dir either way: the program runs again without a new setup.
  await fleet.waitAllRegistered(10_000);
  const again = await unary<{ job_id: string }>(client, 'JobRequest', { job_kind: { prove: { hash_id: hashId, input: inline(Buffer.alloc(8)), proof_dest: 1 } } });
  assert.equal((await waitTerminal(client, again.job_id)).job_status.status, 'completed');
});

for (const damage of ['garbage', 'cut short'] as const) {
  test(`a state store that is ${damage} stops the start with exit 78 naming its path; it is never reset`, async (t) => {
    const dir = tempDir('zisk-corrupt-');
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const state = path.join(dir, 'state');
    const db = path.join(state, 'jobs.mdb');
    if (damage === 'garbage') {
      fs.mkdirSync(state, { recursive: true });
      fs.writeFileSync(db, Buffer.alloc(64 * 1024, 0x5a));
    } else {
      // A real store, then its last pages lost (a disk that lost the file's tail).
      fs.mkdirSync(state, { recursive: true });
      const store = EmbeddedJobStore.open(state, (reason) => {
        throw new Error(reason);
      });
      await store.write([storedJob('cut-1')], []);
      await store.close();
      fs.truncateSync(db, fs.statSync(db).size - 4096);
    }
    const damaged = fs.readFileSync(db);
    const c = await spawnCoordinator({
      args: ['--api-port', '0', '--cluster-port', '0', '--metrics-port', '0'],
      env: { ...LOOPBACK, ZISK_COORDINATOR_STATE_DIR: state, ZISK_COORDINATOR_COORDINATOR_CACHE_DIR: path.join(dir, 'cache') },
      waitServing: false,
    });
    t.after(() => stopCoordinator(c));
    const exit = await c.exited;
    assert.deepEqual(exit, { code: 78, signal: null });
    const line = c.lines.find((l) => l.level === 'error');
    assert.ok(line && typeof line.msg === 'string' && line.msg.includes(db), JSON.stringify(c.lines.slice(-3)));
    assert.match(String(line.msg), damage === 'garbage' ? /not an LMDB store/ : /cut short/);
    assert.ok(!c.lines.some((l) => l.msg === 'zisk-coordinator serving'));
    assert.ok(fs.readFileSync(db).equals(damaged), 'the store is left as it was');
  });
}

function storedJob(id: string): StoredJob {
  return {
    v: 1,
    id,
    kind: 'execute',
    createdAt: Date.now(),
    request: { kind: 'execute', hashId: 'a'.repeat(64) },
    input: { kind: 'inline', data: { inline: Buffer.alloc(16_000, 1) } },
    hints: { kind: 'none' },
    attempt: 1,
    failedAttempts: [],
    history: [{ kind: 'queued', at: Date.now() }],
  };
}
