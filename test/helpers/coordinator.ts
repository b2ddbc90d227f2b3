/**
 * In-process coordinators for integration tests: the real servers on 127.0.0.1 port 0, a captured
 * log, and typed gRPC clients of the public protos. Each test gets its own cache dir.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { defaultConfig } from '../../src/shared/config/schema';
import type { Config } from '../../src/shared/config/types';
import { createLogger } from '../../src/shared/logging';
import { startCoordinator, type RunningCoordinator } from '../../src/main/process/app';
import { prepareDirectories } from '../../src/main/process/directories';
import { CLIENT_API_PROTO, loadProto } from '../../src/shared/proto';

export type ConfigOverrides = { [S in keyof Config]?: Partial<Config[S]> };

export interface TestCoordinator {
  running: RunningCoordinator;
  config: Config;
  apiAddress: string;
  clusterAddress: string;
  metricsUrl: string;
  /** Every log record so far (JSON-decoded). */
  logs: Record<string, unknown>[];
  cacheDir: string;
  /** Resolves with the first log record (already written or to come) that matches. */
  waitForLog(pred: (l: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Drains (as SIGTERM) and waits; returns the exit code. */
  stop(): Promise<number>;
}

export async function startTestCoordinator(overrides: ConfigOverrides = {}): Promise<TestCoordinator> {
  const base = defaultConfig();
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'zisk-test-cache-'));
  const config: Config = {
    service: { ...base.service, ...overrides.service },
    server: { ...base.server, host: '127.0.0.1', port: 0, shutdown_timeout_seconds: 2, ...overrides.server },
    metrics: { ...base.metrics, host: '127.0.0.1', port: 0, ...overrides.metrics },
    logging: { ...base.logging, level: 'debug', format: 'json', ...overrides.logging },
    backend: { ...base.backend, ...overrides.backend },
    // One attempt per job unless a test asks for more: most tests pin what a single attempt does,
    // and the retry tests set max_job_attempts themselves.
    coordinator: { ...base.coordinator, port: 0, cache_dir: cacheDir, max_job_attempts: 1, ...overrides.coordinator },
    state: { ...base.state, ...overrides.state },
  };
  const logs: Record<string, unknown>[] = [];
  const logWaiters = new Set<(l: Record<string, unknown>) => void>();
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim() === '') continue;
        let record: Record<string, unknown>;
        try {
          record = JSON.parse(line) as Record<string, unknown>;
        } catch {
          record = { msg: line };
        }
        logs.push(record);
        for (const w of [...logWaiters]) w(record);
      }
      cb();
    },
  });
  const waitForLog = (pred: (l: Record<string, unknown>) => boolean, timeoutMs = 10_000): Promise<Record<string, unknown>> => {
    const seen = logs.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        logWaiters.delete(waiter);
        reject(new Error(`log record not seen within ${timeoutMs} ms; last: ${JSON.stringify(logs.slice(-3).map((l) => l.msg))}`));
      }, timeoutMs);
      const waiter = (l: Record<string, unknown>): void => {
        if (!pred(l)) return;
        clearTimeout(timer);
        logWaiters.delete(waiter);
        resolve(l);
      };
      logWaiters.add(waiter);
    });
  };
  const logger = createLogger(config.logging, { destination: sink });
  // The same resolution and checks as the binary (a bad inputs_dir or proofs_dir fails here too).
  const { directories } = prepareDirectories({ config, env: process.env, homeDir: os.homedir(), cwd: process.cwd() });
  const running = await startCoordinator(config, logger, directories);
  return {
    running,
    config,
    apiAddress: `127.0.0.1:${running.ports.api}`,
    clusterAddress: `127.0.0.1:${running.ports.cluster ?? 0}`,
    metricsUrl: `http://127.0.0.1:${running.ports.metrics ?? 0}`,
    logs,
    cacheDir,
    waitForLog,
    async stop() {
      running.shutdown('test');
      const code = await running.stopped;
      fs.rmSync(cacheDir, { recursive: true, force: true });
      return code;
    },
  };
}

/** A generic grpc-js client of the client API (public proto, lossless uint64 as strings); plaintext unless `credentials` say otherwise. */
export function apiClient(address: string, options: grpc.ChannelOptions = {}, credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure()): grpc.Client {
  const pkg = grpc.loadPackageDefinition(loadProto(CLIENT_API_PROTO));
  const ns = pkg.zisk as unknown as { coordinator: { v1: { ZiskCoordinatorApi: grpc.ServiceClientConstructor } } };
  return new ns.coordinator.v1.ZiskCoordinatorApi(address, credentials, {
    'grpc.max_receive_message_length': 128 << 20,
    'grpc.max_send_message_length': 128 << 20,
    ...options,
  });
}

/** Promise wrapper for a unary call on a generic client. */
export function unary<Res>(client: grpc.Client, method: string, request: object, deadlineMs = 10_000): Promise<Res> {
  return new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<string, (req: object, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: Res) => void) => void>)[method];
    fn.call(client, request, { deadline: Date.now() + deadlineMs }, (err, res) => (err ? reject(err) : resolve(res)));
  });
}
