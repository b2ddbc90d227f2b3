/**
 * `npm start` is how the README starts the coordinator, and supervisors, container runtimes and CI
 * signal the PID they started: npm's. Regression: npm ran the script through `sh -c`, forwarded
 * SIGTERM to the shell, and the shell died without passing it on; npm exited and the coordinator
 * kept serving on all three ports, orphaned. These tests spawn `npm start` itself.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { spawnCoordinator, stopCoordinator, type LogLine, type SpawnedCoordinator } from '../helpers/spawn-coordinator';
import { repoRoot } from '../helpers/run-cli';
import { apiClient } from '../helpers/coordinator';
import { fakeElf, register, submit } from '../api/helpers';

const EPHEMERAL = ['--api-port', '0', '--cluster-port', '0', '--metrics-port', '0'];
const ENV = {
  ZISK_COORDINATOR_SERVER_HOST: '127.0.0.1',
  ZISK_COORDINATOR_METRICS_HOST: '127.0.0.1',
  // An isolated HOME has no record of npm's last update check: without this npm would ask the registry.
  npm_config_update_notifier: 'false',
  npm_config_fund: 'false',
};
/** npm's own start-up plus the coordinator's, on a loaded 2-core box. */
const START_MS = 30_000;
/** Drain with nothing in flight, close, npm noticing its child's exit: well under this. */
const STOP_MS = 10_000;

function startViaNpm(extraEnv: NodeJS.ProcessEnv = {}, detached = false): Promise<SpawnedCoordinator> {
  return spawnCoordinator({
    command: ['npm', 'start', '--'],
    args: EPHEMERAL,
    cwd: repoRoot(),
    env: { ...ENV, ...extraEnv },
    timeoutMs: START_MS,
    detached,
  });
}

function servingLine(c: SpawnedCoordinator): LogLine {
  const line = c.lines.find((l) => l.msg === 'zisk-coordinator serving');
  assert.ok(line && typeof line.pid === 'number', `serving line with a pid: ${JSON.stringify(line)}`);
  return line;
}

/** Alive and still our coordinator (not a reused PID); a zombie has exited. */
function isCoordinatorAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return false;
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('zisk-coordinator');
  } catch {
    return false;
  }
}

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const deadline = performance.now() + ms;
  while (performance.now() < deadline) {
    if (!isCoordinatorAlive(pid)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return !isCoordinatorAlive(pid);
}

/** A coordinator left behind by a failing run must not outlive the test. */
function killIfAlive(pid: number): void {
  if (isCoordinatorAlive(pid)) process.kill(pid, 'SIGKILL');
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

async function assertStoppedCleanly(c: SpawnedCoordinator, pid: number): Promise<void> {
  assert.ok(await waitGone(pid, STOP_MS), `coordinator ${pid} still running ${STOP_MS} ms after the signal to npm`);
  const npmExit = await c.exited;
  // npm exits with its script's status: the coordinator's own exit code.
  assert.deepEqual(npmExit, { code: 0, signal: null }, c.stderr());
  const stopped = c.lines.find((l) => l.msg === 'zisk-coordinator stopped');
  assert.ok(stopped, `"stopped" logged; last lines: ${JSON.stringify(c.lines.slice(-3))}`);
  assert.equal(stopped.exit_code, 0);
  assert.ok(c.ports.api && c.ports.metrics, 'listener ports logged');
  for (const [listener, port] of Object.entries(c.ports)) {
    assert.ok(await refused(port), `nothing listens on the ${listener} port ${port} any more`);
  }
}

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`${signal} to the npm start PID stops the coordinator gracefully`, async (t) => {
    const c = await startViaNpm();
    t.after(() => stopCoordinator(c));
    const { pid } = servingLine(c) as { pid: number };
    t.after(() => killIfAlive(pid));
    assert.notEqual(pid, c.child.pid, 'the coordinator is npm\'s child, not npm');

    process.kill(c.child.pid!, signal);
    await assertStoppedCleanly(c, pid);
    assert.ok(c.lines.some((l) => l.reason === signal && typeof l.msg === 'string' && l.msg.startsWith(`received ${signal}: draining`)));
  });
}

test('Ctrl-C under npm start (SIGINT to the whole process group) drains once: a job in flight finishes', async (t) => {
  // Mock mode: a setup job takes about 2 s without any worker.
  const c = await startViaNpm({ ZISK_COORDINATOR_BACKEND_MODE: 'mock', ZISK_COORDINATOR_SERVER_SHUTDOWN_TIMEOUT_SECONDS: '30' }, true);
  t.after(() => stopCoordinator(c));
  const { pid } = servingLine(c) as { pid: number };
  t.after(() => killIfAlive(pid));
  const client = apiClient(`127.0.0.1:${c.ports.api}`);
  t.after(() => client.close());
  const hashId = await register(client, fakeElf('npm-ctrl-c'));
  const jobId = await submit(client, { setup: { hash_id: hashId, with_hints: false, program_name: 'guest' } });

  // The terminal signals the foreground group: npm and the coordinator both get it, and npm
  // forwards its copy. Both copies must count as one stop request.
  process.kill(-c.child.pid!, 'SIGINT');
  await assertStoppedCleanly(c, pid);
  assert.ok(
    c.lines.some((l) => typeof l.msg === 'string' && l.msg.startsWith('drain complete: 1 job(s) finished, none abandoned')),
    `the job was drained, not abandoned; lines: ${JSON.stringify(c.lines.filter((l) => l.job_id === jobId || /drain|abandon|again/.test(String(l.msg))).map((l) => l.msg))}`,
  );
});
