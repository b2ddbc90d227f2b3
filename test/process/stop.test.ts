/**
 * The real process stops on SIGTERM whatever its peers do. Every peer here is rude: a worker stream
 * that never half-closes on a connection that ignores GOAWAY (a real zisk-worker), an idle client
 * connection that ignores GOAWAY, a WatchJob stream whose connection stays open, and an idle
 * HTTP/1.1 keep-alive socket on the metrics port; the busy worker is a sim on the upstream wire.
 * Regression: the process logged "stopped" and then stayed alive until the peers hung up (forever
 * with a real worker).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnCoordinator, stopCoordinator, type SpawnedCoordinator } from '../helpers/spawn-coordinator';
import { apiClient } from '../helpers/coordinator';
import { REPEATED_SIGNAL_MS } from '../../src/main/process/app';
import { fakeElf, register, submit, inline } from '../api/helpers';
import { SimWorker } from '../../src/sim/worker';
import { idleKeepAliveSocket, rudeCall, rudeSession, rudeWorkerStream } from '../helpers/rude-peers';
import { CLIENT_API_PROTO, CLIENT_API_SERVICE, serviceDefinition } from '../../src/shared/proto';

const LOOPBACK_ENV = {
  ZISK_COORDINATOR_SERVER_HOST: '127.0.0.1',
  ZISK_COORDINATOR_METRICS_HOST: '127.0.0.1',
};
const EPHEMERAL = ['--api-port', '0', '--cluster-port', '0', '--metrics-port', '0'];
/** What the process may take past its drain window (docs/operations.md, "Stopping"), plus slack for a loaded CI box. */
const PAST_WINDOW_MS = 3_000;

const WATCH_JOB = serviceDefinition(CLIENT_API_PROTO, CLIENT_API_SERVICE).WatchJob;

interface RudePeers {
  closedByServer: Promise<unknown>;
  destroy(): void;
}

/** Opens every kind of rude peer against `c` and waits until each is established. */
async function rudePeers(c: SpawnedCoordinator, watchJobId?: string): Promise<RudePeers> {
  const workerSession = await rudeSession(c.ports.cluster!);
  const worker = rudeWorkerStream(workerSession.session, 'rude-worker');
  await worker.headers;
  await c.waitForLine((l) => l.worker_id === 'rude-worker' && typeof l.msg === 'string' && /registered/.test(l.msg));
  const idleApi = await rudeSession(c.ports.api!);
  const watchSession = await rudeSession(c.ports.api!);
  if (watchJobId) {
    const watchCall = rudeCall(watchSession.session, WATCH_JOB.path, WATCH_JOB.requestSerialize({ job_id: watchJobId }));
    watchCall.stream.end();
    await watchCall.headers;
  }
  const keepAlive = idleKeepAliveSocket(c.ports.metrics!);
  await keepAlive.answered;
  return {
    closedByServer: Promise.all([workerSession.closed, idleApi.closed, watchSession.closed, keepAlive.closed]),
    destroy: () => {
      workerSession.destroy();
      idleApi.destroy();
      watchSession.destroy();
      keepAlive.destroy();
    },
  };
}

/**
 * A sim worker that will sit on its contribution, on the upstream wire: like a real worker it never
 * half-closes and only notices the coordinator going away when the connection dies or a send fails.
 */
function busySim(c: SpawnedCoordinator): SimWorker {
  return new SimWorker({
    coordinator: `127.0.0.1:${c.ports.cluster}`,
    workerId: 'busy-sim',
    wire: 'upstream',
    contributionDelayMs: 600_000,
    setupDelayMs: 1,
    reconnectIntervalMs: 50,
  });
}

async function exitWithin(c: SpawnedCoordinator, ms: number): Promise<{ code: number | null; elapsedMs: number }> {
  const t0 = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const exit = await Promise.race([
    c.exited,
    new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms))),
  ]);
  clearTimeout(timer);
  if (!exit) {
    const last = c.lines.slice(-3).map((l) => l.msg);
    throw new Error(`still running ${ms} ms after the signal; last log lines: ${JSON.stringify(last)}`);
  }
  return { code: exit.code, elapsedMs: performance.now() - t0 };
}

function assertCleanExit(c: SpawnedCoordinator): void {
  assert.ok(c.lines.some((l) => l.msg === 'zisk-coordinator stopped'));
  // The backstop exit is a safety net; a clean stop never needs it.
  assert.ok(!c.lines.some((l) => l.msg === 'event loop still busy after stopping; exiting anyway'), JSON.stringify(c.lines.slice(-3)));
}

test('SIGTERM with no job running exits while rude peers keep their connections open', async (t) => {
  const c = await spawnCoordinator({ args: EPHEMERAL, env: { ...LOOPBACK_ENV, ZISK_COORDINATOR_SERVER_SHUTDOWN_TIMEOUT_SECONDS: '30' } });
  t.after(() => stopCoordinator(c));
  const peers = await rudePeers(c);
  t.after(() => peers.destroy());

  c.kill('SIGTERM');
  const exit = await exitWithin(c, PAST_WINDOW_MS);
  assert.equal(exit.code, 0);
  assertCleanExit(c);
  // Every session was destroyed by the coordinator, not by the peers.
  await peers.closedByServer;
});

test('SIGTERM with a job running: the drain window expires, the job is abandoned, the process exits', async (t) => {
  const windowSeconds = 1;
  const c = await spawnCoordinator({
    args: EPHEMERAL,
    env: { ...LOOPBACK_ENV, ZISK_COORDINATOR_SERVER_SHUTDOWN_TIMEOUT_SECONDS: String(windowSeconds) },
  });
  t.after(() => stopCoordinator(c));
  const sim = busySim(c);
  sim.start();
  t.after(() => sim.stop());
  const client = apiClient(`127.0.0.1:${c.ports.api}`);
  t.after(() => client.close());
  await c.waitForLine((l) => l.worker_id === 'busy-sim' && typeof l.msg === 'string' && /registered/.test(l.msg));
  const hashId = await register(client, fakeElf('stop-running'));
  await submit(client, { setup: { hash_id: hashId, with_hints: false, program_name: 'guest' } });
  await c.waitForLine((l) => typeof l.msg === 'string' && /^setup job \S+ completed/.test(l.msg));
  const jobId = await submit(client, { prove: { hash_id: hashId, input: inline(Buffer.alloc(8)), proof_dest: 1 } });
  await c.waitForLine((l) => l.job_id === jobId && typeof l.msg === 'string' && /^prove job \S+ started/.test(l.msg));
  const peers = await rudePeers(c, jobId);
  t.after(() => peers.destroy());

  c.kill('SIGTERM');
  const exit = await exitWithin(c, windowSeconds * 1000 + PAST_WINDOW_MS);
  assert.equal(exit.code, 0);
  assertCleanExit(c);
  assert.ok(c.lines.some((l) => typeof l.msg === 'string' && l.msg.startsWith('drain window elapsed: abandoning 1 job')));
  await peers.closedByServer;
});

test('a second SIGTERM skips the drain window and the process exits with rude peers connected', async (t) => {
  const c = await spawnCoordinator({ args: EPHEMERAL, env: { ...LOOPBACK_ENV, ZISK_COORDINATOR_SERVER_SHUTDOWN_TIMEOUT_SECONDS: '600' } });
  t.after(() => stopCoordinator(c));
  const sim = busySim(c);
  sim.start();
  t.after(() => sim.stop());
  const client = apiClient(`127.0.0.1:${c.ports.api}`);
  t.after(() => client.close());
  await c.waitForLine((l) => l.worker_id === 'busy-sim' && typeof l.msg === 'string' && /registered/.test(l.msg));
  const hashId = await register(client, fakeElf('stop-second'));
  await submit(client, { setup: { hash_id: hashId, with_hints: false, program_name: 'guest' } });
  await c.waitForLine((l) => typeof l.msg === 'string' && /^setup job \S+ completed/.test(l.msg));
  const jobId = await submit(client, { prove: { hash_id: hashId, input: inline(Buffer.alloc(8)), proof_dest: 1 } });
  await c.waitForLine((l) => l.job_id === jobId && typeof l.msg === 'string' && /^prove job \S+ started/.test(l.msg));
  const peers = await rudePeers(c, jobId);
  t.after(() => peers.destroy());

  const firstSignalAt = performance.now();
  c.kill('SIGTERM');
  await c.waitForLine((l) => typeof l.msg === 'string' && l.msg.startsWith('received SIGTERM: draining'));
  // Sooner, the second SIGTERM would be taken as the same request (app.ts, REPEATED_SIGNAL_MS).
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, firstSignalAt + REPEATED_SIGNAL_MS + 100 - performance.now())));
  c.kill('SIGTERM');
  const exit = await exitWithin(c, PAST_WINDOW_MS);
  assert.equal(exit.code, 0);
  assertCleanExit(c);
  assert.ok(c.lines.some((l) => typeof l.msg === 'string' && l.msg.startsWith('second signal: abandoning 1 job')));
  await peers.closedByServer;
});
