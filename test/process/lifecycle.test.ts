/**
 * The real process, spawned as users run it: listeners, /health and /metrics, gRPC health, signals,
 * exit codes, a port in use. Ports are 0 (ephemeral) unless a test checks precedence.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { freePort, spawnCoordinator, stopCoordinator, tempDir, type SpawnedCoordinator } from '../helpers/spawn-coordinator';
import { apiClient, unary } from '../helpers/coordinator';
import { REPEATED_SIGNAL_MS } from '../../src/main/process/app';

const LOOPBACK_ENV = {
  ZISK_COORDINATOR_SERVER_HOST: '127.0.0.1',
  ZISK_COORDINATOR_METRICS_HOST: '127.0.0.1',
};
const EPHEMERAL = ['--api-port', '0', '--cluster-port', '0', '--metrics-port', '0'];

type HealthStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';
interface HealthClient extends grpc.Client {
  check(req: { service: string }, cb: (err: grpc.ServiceError | null, res: { status: HealthStatus }) => void): void;
  watch(req: { service: string }): grpc.ClientReadableStream<{ status: HealthStatus }>;
}

function healthClient(port: number): HealthClient {
  const def = protoLoader.loadSync(healthProtoPath, { keepCase: true, enums: String, defaults: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
  };
  return new pkg.grpc.health.v1.Health(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as HealthClient;
}

async function httpGet(port: number, p: string, method = 'GET'): Promise<{ status: number; type: string | null; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${p}`, { method });
  return { status: res.status, type: res.headers.get('content-type'), body: await res.text() };
}

const D8_METRICS = [
  'coordinator_requests_total',
  'coordinator_request_duration_seconds',
  'coordinator_active_jobs',
  'coordinator_jobs_total',
  'coordinator_job_duration_seconds',
  'coordinator_worker_jobs_total',
  'coordinator_registered_programs_total',
  'coordinator_workers_connected',
  'coordinator_queue_depth',
  'coordinator_workers',
  'coordinator_phase_duration_seconds',
  'coordinator_worker_messages_total',
  'coordinator_ignored_worker_messages_total',
  'coordinator_bytes_sent_total',
  'coordinator_event_loop_delay_seconds',
  'coordinator_event_loop_utilization',
  'coordinator_build_info',
];

test('starts on its listeners, serves /health, /metrics and gRPC health, then stops on SIGTERM with exit 0', async (t) => {
  const c = await spawnCoordinator({ args: EPHEMERAL, env: LOOPBACK_ENV });
  t.after(() => stopCoordinator(c));
  t.diagnostic(`startup to serving: ${c.startupMs.toFixed(0)} ms (spawn included)`);
  assert.ok(c.ports.api && c.ports.cluster && c.ports.metrics, `all three listener lines logged: ${JSON.stringify(c.ports)}`);
  // Run through its shebang, the launcher applies its V8 flags, and the serving line says so.
  const servingLine = c.lines.find((l) => l.msg === 'zisk-coordinator serving');
  assert.match(String(servingLine?.node_flags), /(^| )--max-semi-space-size=64( |$)/, JSON.stringify(servingLine));

  const health = await httpGet(c.ports.metrics!, '/health');
  assert.equal(health.status, 200);
  assert.equal(health.body, 'OK');
  const head = await httpGet(c.ports.metrics!, '/health', 'HEAD');
  assert.equal(head.status, 200);
  assert.equal((await httpGet(c.ports.metrics!, '/nope')).status, 404);

  const metrics = await httpGet(c.ports.metrics!, '/metrics');
  assert.equal(metrics.status, 200);
  assert.match(metrics.type ?? '', /^text\/plain; version=0\.0\.4/);
  for (const name of D8_METRICS) assert.match(metrics.body, new RegExp(`^# HELP ${name} `, 'm'), `${name} registered`);
  assert.match(metrics.body, /^process_cpu_user_seconds_total /m, 'Node default metrics');
  assert.match(metrics.body, /coordinator_event_loop_delay_seconds\{thread="main",stat="p99"\}/);
  const version = (JSON.parse(fs.readFileSync(path.join(__dirname, '../../../package.json'), 'utf8')) as { version: string }).version;
  assert.match(metrics.body, new RegExp(`^coordinator_build_info\\{version="${version.replace(/\./g, '\\.')}"\\} 1$`, 'm'));

  const client = healthClient(c.ports.api!);
  const serving = await new Promise<HealthStatus>((resolve, reject) =>
    client.check({ service: '' }, (err, res) => (err ? reject(err) : resolve(res.status))),
  );
  assert.equal(serving, 'SERVING');
  client.close();

  c.kill('SIGTERM');
  const exit = await c.exited;
  assert.equal(exit.code, 0);
  assert.ok(c.lines.some((l) => l.msg === 'zisk-coordinator stopped'), 'logs that it stopped');
  assert.ok(c.lines.some((l) => typeof l.msg === 'string' && l.msg.startsWith('received SIGTERM')), 'logs the signal');
});

test('gRPC health turns NOT_SERVING when the drain starts', async (t) => {
  const c = await spawnCoordinator({ args: EPHEMERAL, env: LOOPBACK_ENV });
  t.after(() => stopCoordinator(c));
  const client = healthClient(c.ports.api!);
  t.after(() => client.close());
  const seen: HealthStatus[] = [];
  const stream = client.watch({ service: '' });
  const notServing = new Promise<void>((resolve, reject) => {
    stream.on('data', (m: { status: HealthStatus }) => {
      seen.push(m.status);
      if (m.status === 'SERVING') c.kill('SIGTERM');
      if (m.status === 'NOT_SERVING') resolve();
    });
    stream.on('error', (err: grpc.ServiceError) => (seen.includes('NOT_SERVING') ? resolve() : reject(err)));
  });
  await notServing;
  assert.deepEqual(seen.slice(0, 2), ['SERVING', 'NOT_SERVING']);
  assert.equal((await c.exited).code, 0);
});

test('SIGINT stops it gracefully too', async (t) => {
  const c = await spawnCoordinator({ args: EPHEMERAL, env: LOOPBACK_ENV });
  t.after(() => stopCoordinator(c));
  c.kill('SIGINT');
  assert.equal((await c.exited).code, 0);
});

for (const listener of ['api', 'cluster', 'metrics'] as const) {
  test(`a port in use on the ${listener} listener exits 1 naming the listener and the port, leaving nothing bound`, async (t) => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
    const busy = (blocker.address() as net.AddressInfo).port;
    const ports = { api: await freePort(), cluster: await freePort(), metrics: await freePort() };
    ports[listener] = busy;
    const c = await spawnCoordinator({
      args: ['--api-port', String(ports.api), '--cluster-port', String(ports.cluster), '--metrics-port', String(ports.metrics)],
      env: LOOPBACK_ENV,
      waitServing: false,
    });
    t.after(() => stopCoordinator(c));
    const exit = await c.exited;
    assert.equal(exit.code, 1);
    const error = c.lines.find((l) => l.level === 'error');
    assert.ok(error, `an error line: ${JSON.stringify(c.lines)}`);
    assert.match(String(error.msg), new RegExp(`^${listener} listener: cannot listen on 127\\.0\\.0\\.1:${busy}: port already in use`));
    // In JSON mode nothing else reaches the terminal: no line of grpc-js's own on stderr.
    assert.equal(c.stderr(), '');
    // Whatever was bound before the failure was released.
    for (const [name, port] of Object.entries(ports)) {
      if (name === listener) continue;
      const probe = net.createServer();
      await new Promise<void>((resolve, reject) => {
        probe.once('error', reject);
        probe.listen(port, '127.0.0.1', resolve);
      });
      await new Promise<void>((resolve) => probe.close(() => resolve()));
    }
  });
}

test('every port honours TOML < environment < command line', async (t) => {
  const dir = tempDir();
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const toml = { api: await freePort(), cluster: await freePort(), metrics: await freePort() };
  const env = { api: await freePort(), cluster: await freePort(), metrics: await freePort() };
  const cli = { api: await freePort(), cluster: await freePort(), metrics: await freePort() };
  const file = path.join(dir, 'coordinator.toml');
  fs.writeFileSync(
    file,
    `[server]\nhost = "127.0.0.1"\nport = ${toml.api}\n[coordinator]\nport = ${toml.cluster}\n[metrics]\nhost = "127.0.0.1"\nport = ${toml.metrics}\n`,
  );
  const layers: { name: string; args: string[]; env: NodeJS.ProcessEnv; expect: typeof toml }[] = [
    { name: 'TOML', args: ['--config', file], env: {}, expect: toml },
    {
      name: 'environment over TOML',
      args: ['--config', file],
      env: {
        ZISK_COORDINATOR_API_PORT: String(env.api),
        ZISK_COORDINATOR_CLUSTER_PORT: String(env.cluster),
        ZISK_COORDINATOR_METRICS_PORT: String(env.metrics),
      },
      expect: env,
    },
    {
      name: 'command line over environment',
      args: ['--config', file, '-a', String(cli.api), '--cluster-port', String(cli.cluster), '--metrics-port', String(cli.metrics)],
      env: {
        ZISK_COORDINATOR_API_PORT: String(env.api),
        ZISK_COORDINATOR_CLUSTER_PORT: String(env.cluster),
        ZISK_COORDINATOR_METRICS_PORT: String(env.metrics),
      },
      expect: cli,
    },
    {
      name: 'generic environment names, config file from ZISK_COORDINATOR_CONFIG',
      args: [],
      env: {
        ZISK_COORDINATOR_CONFIG: file,
        ZISK_COORDINATOR_SERVER_PORT: String(env.api),
        ZISK_COORDINATOR_COORDINATOR_PORT: String(env.cluster),
        ZISK_COORDINATOR_METRICS_PORT: String(env.metrics),
      },
      expect: env,
    },
  ];
  for (const layer of layers) {
    const c = await spawnCoordinator({ args: layer.args, env: layer.env });
    try {
      assert.deepEqual(c.ports, layer.expect, layer.name);
      c.kill('SIGTERM');
      assert.equal((await c.exited).code, 0);
    } finally {
      await stopCoordinator(c);
    }
  }
});

test('RUST_LOG sets the level unless --log-level is given', async (t) => {
  const debugSeen = (c: SpawnedCoordinator): boolean => c.lines.some((l) => l.level === 'debug');
  const withRustLog = await spawnCoordinator({ args: EPHEMERAL, env: { ...LOOPBACK_ENV, RUST_LOG: 'debug,h2=info' } });
  t.after(() => stopCoordinator(withRustLog));
  assert.ok(debugSeen(withRustLog), 'RUST_LOG=debug,h2=info → debug lines');
  withRustLog.kill('SIGTERM');
  await withRustLog.exited;

  const cliWins = await spawnCoordinator({ args: [...EPHEMERAL, '--log-level', 'info'], env: { ...LOOPBACK_ENV, RUST_LOG: 'debug' } });
  t.after(() => stopCoordinator(cliWins));
  assert.ok(!debugSeen(cliWins), '--log-level info beats RUST_LOG=debug');
  cliWins.kill('SIGTERM');
  await cliWins.exited;
});

test('metrics.enabled = false removes /metrics but keeps /health', async (t) => {
  const c = await spawnCoordinator({ args: EPHEMERAL, env: { ...LOOPBACK_ENV, ZISK_COORDINATOR_METRICS_ENABLED: 'false' } });
  t.after(() => stopCoordinator(c));
  assert.equal((await httpGet(c.ports.metrics!, '/metrics')).status, 404);
  assert.equal((await httpGet(c.ports.metrics!, '/health')).status, 200);
  c.kill('SIGTERM');
  assert.equal((await c.exited).code, 0);
});

test('a second SIGTERM skips the drain window: the running job fails with internal and the process exits 0', async (t) => {
  const c = await spawnCoordinator({
    args: EPHEMERAL,
    env: { ...LOOPBACK_ENV, ZISK_COORDINATOR_BACKEND_MODE: 'mock', ZISK_COORDINATOR_SERVER_SHUTDOWN_TIMEOUT_SECONDS: '60' },
  });
  t.after(() => stopCoordinator(c));
  const client = apiClient(`127.0.0.1:${c.ports.api}`);
  t.after(() => client.close());
  const { hash_id: hashId } = await unary<{ hash_id: string }>(client, 'RegisterGuestProgram', { zisk_elf: Buffer.from('\x7fELF drain') });
  const { job_id: jobId } = await unary<{ job_id: string }>(client, 'JobRequest', {
    job_kind: { prove: { hash_id: hashId, input: { inline: { data: Buffer.alloc(8) } }, proof_dest: 1 } },
  });
  const events: string[] = [];
  const stream = (client as unknown as { WatchJob: (r: object) => grpc.ClientReadableStream<{ event: string; failed?: { failure: { kind: string } } }> }).WatchJob({ job_id: jobId });
  const terminal = new Promise<string>((resolve) => {
    stream.on('data', (e) => {
      events.push(e.event);
      if (e.event === 'failed') resolve(e.failed?.failure.kind ?? '?');
    });
    stream.on('error', () => resolve('stream error'));
  });
  const firstSignalAt = performance.now();
  c.kill('SIGTERM');
  await c.waitForLine((l) => typeof l.msg === 'string' && l.msg.startsWith('received SIGTERM'));
  assert.equal((await httpGet(c.ports.metrics!, '/health')).status, 503, '/health is 503 while draining');
  const refused = await unary(client, 'JobRequest', { job_kind: { prove: { hash_id: hashId, input: { inline: { data: Buffer.alloc(8) } } } } }).then(
    () => undefined,
    (err: grpc.ServiceError) => err,
  );
  assert.equal(refused?.code, grpc.status.UNAVAILABLE);
  assert.equal(refused?.details, 'Coordinator is shutting down');
  await afterRepeatWindow(firstSignalAt);
  const t0 = Date.now();
  c.kill('SIGTERM');
  assert.equal(await terminal, 'internal', `watcher events: ${events.join(',')}`);
  assert.equal((await c.exited).code, 0);
  assert.ok(Date.now() - t0 < 10_000, 'did not wait out the 60 s window');
  assert.ok(c.lines.some((l) => l.abandoned === 1), 'logs what was abandoned');
});

test('a repeat within the repeat window is the same stop request: the running job finishes', async (t) => {
  // What Ctrl-C under `npm start` delivers (test/process/npm-start.test.ts), without npm.
  const c = await spawnCoordinator({
    args: EPHEMERAL,
    env: { ...LOOPBACK_ENV, ZISK_COORDINATOR_BACKEND_MODE: 'mock', ZISK_COORDINATOR_SERVER_SHUTDOWN_TIMEOUT_SECONDS: '60' },
  });
  t.after(() => stopCoordinator(c));
  const client = apiClient(`127.0.0.1:${c.ports.api}`);
  t.after(() => client.close());
  const { hash_id: hashId } = await unary<{ hash_id: string }>(client, 'RegisterGuestProgram', { zisk_elf: Buffer.from('\x7fELF repeat') });
  await unary(client, 'JobRequest', { job_kind: { setup: { hash_id: hashId, program_name: 'guest' } } });
  c.kill('SIGTERM');
  // Once the first is taken: sent back to back, the kernel may merge the two into one.
  await c.waitForLine((l) => typeof l.msg === 'string' && l.msg.startsWith('received SIGTERM: draining'));
  c.kill('SIGTERM');
  assert.equal((await c.exited).code, 0);
  assert.ok(c.lines.some((l) => l.msg === 'drain complete: 1 job(s) finished, none abandoned'), JSON.stringify(c.lines.slice(-4).map((l) => l.msg)));
});

/** Waits until a signal sent now counts as a second one (app.ts, REPEATED_SIGNAL_MS). */
async function afterRepeatWindow(firstSignalAt: number): Promise<void> {
  const wait = firstSignalAt + REPEATED_SIGNAL_MS + 100 - performance.now();
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
}
