/**
 * Wires the process together: logger, metrics, scheduler host, the three listeners, signals and the
 * drain (docs/operations.md, Stopping and restarting). `runCoordinator` resolves with the process exit
 * code.
 */
import * as grpc from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { HealthImplementation } from 'grpc-health-check';
import type { LoadedConfig } from '../../shared/config/load';
import type { Config } from '../../shared/config/types';
import type { Directories } from '../../shared/config/types';
import { createLogger, flushLogger, type Logger } from '../../shared/logging';
import { TunedGrpcServer, type GrpcServerTuning } from './grpc-server';
import { loadSecurity, reloadSecurity, type SecurityInput, type SecurityMaterial, type TlsIdentity } from './security';
import { ReloadableServerCredentials } from './tls-credentials';
import { ApiToken, bearerTokenInterceptor } from '../api/auth';
import { DiskSpaceWatch } from '../state/disk-space';
import { EmbeddedJobStore } from '../state/embedded-store';
import { MemoryJobStore, StoreError, type JobStore } from '../state/store';
import type { SchedulerEvent } from '../../shared/scheduler/events';
import type { SchedulerEffect } from '../../shared/scheduler/effects';
import { CLIENT_API_SERVICE } from '../../shared/proto';
import type { CoreConfig, CoreInternals } from '../../threads/scheduler-core';
import { CoordinatorMetrics, type TimeoutSettings } from '../observability/metrics';
import { startHttpServer, type HttpServerHandle } from './http-server';
import { Lifecycle } from './lifecycle';
import { BlobStore } from '../data/blob-store';
import { ClusterService } from '../cluster/service';
import { ApiService } from '../api/service';
import { InlineSchedulerHost, ThreadSchedulerHost, type SchedulerHost } from '../scheduler/host';
import { MockSchedulerHost } from '../scheduler/mock-backend';
import { applyEffects } from './effects';
import { reloadLogging } from './reload';
import { SystemdNotifier } from './systemd-notify';
import { WORKER_MAX_MESSAGE_BYTES, workerSendLimit } from '../../shared/wire-limits';

export const EXIT_OK = 0;
export const EXIT_LISTEN_FAILED = 1;
/** The configuration, a directory or the state store cannot be used (EX_CONFIG). */
export const EXIT_CONFIG = 78;
export const EXIT_SCHEDULER_DIED = 70;
/** A write to the state store failed (EX_IOERR): the process stops at once, the store is intact. */
export const EXIT_STORE_FAILED = 74;

/**
 * Once the drain is over, how long closing gets: in-flight unary calls finish and HTTP responses go
 * out; then every session is destroyed. Together with ABANDON_FLUSH_MS this is the "~1 s" the process
 * may take past its drain window (docs/operations.md, "Stopping and restarting").
 */
const SERVER_CLOSE_GRACE_MS = 500;
/** After abandoning jobs, how long their terminal events and job_cancelled messages get to go out. */
const ABANDON_FLUSH_MS = 500;
/** If anything still holds the event loop this long after the close hooks, exit anyway and say so. */
const EXIT_BACKSTOP_MS = 1_000;
const SCHEDULER_STATS_INTERVAL_MS = 5_000;
/**
 * A stop signal this soon after the last one taken is the same request delivered twice, not a
 * second one: Ctrl-C reaches every process of the terminal's foreground group, so under `npm start`
 * the coordinator gets its own SIGINT and the copy npm forwards (a control-group stop does the same
 * with SIGTERM). Taking the copy as a second signal would abandon every job at once.
 */
export const REPEATED_SIGNAL_MS = 1_000;
export { WORKER_MAX_MESSAGE_BYTES };

export function apiServerTuning(config: Config): GrpcServerTuning {
  return {
    windowBytes: config.server.http2_window_bytes,
    maxMessageBytes: config.server.max_message_bytes,
    keepaliveTimeMs: config.server.keepalive_time_seconds * 1000,
    keepaliveTimeoutMs: config.server.keepalive_timeout_seconds * 1000,
  };
}

export function clusterServerTuning(config: Config): GrpcServerTuning {
  return {
    windowBytes: config.server.http2_window_bytes,
    maxMessageBytes: config.server.max_message_bytes,
    maxSendMessageBytes: workerSendLimit(config.server.max_message_bytes),
    keepaliveTimeMs: config.coordinator.keepalive_time_seconds * 1000,
    keepaliveTimeoutMs: config.coordinator.keepalive_timeout_seconds * 1000,
  };
}

/**
 * The bounds the scheduler enforces (src/threads/core/deadlines.ts), for alert rules to compare with:
 * a prove attempt can last at most the sum of its phase timeouts, and has no bound if one is 0.
 */
export function timeoutSettings(config: Config): TimeoutSettings {
  const c = config.coordinator;
  const phases = [c.phase1_timeout_seconds, c.phase2_timeout_seconds, c.phase3_timeout_seconds];
  return {
    phase: { contributions: phases[0]!, prove: phases[1]!, aggregate: phases[2]! },
    job: {
      setup: c.setup_timeout_seconds,
      prove: phases.includes(0) ? 0 : phases[0]! + phases[1]! + phases[2]!,
      execute: c.execution_timeout_seconds,
      wrap: c.wrap_timeout_seconds,
    },
  };
}

function hostPort(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}

class ListenError extends Error {
  constructor(readonly listener: string, readonly address: string, cause: Error) {
    super(`${listener} listener: cannot listen on ${address}: ${describeListenError(cause)}`);
  }
}

function describeListenError(err: Error): string {
  const text = err.message;
  if (/EADDRINUSE|address already in use/i.test(text)) return 'port already in use';
  if (/EACCES|permission denied/i.test(text)) return 'permission denied';
  if (/EADDRNOTAVAIL|ENOTFOUND|EAI_AGAIN/i.test(text)) return 'address not available on this host';
  return text;
}

async function bindGrpc(server: TunedGrpcServer, listener: string, host: string, port: number, credentials: grpc.ServerCredentials): Promise<number> {
  const address = hostPort(host, port);
  try {
    return await server.bind(address, credentials);
  } catch (err) {
    throw new ListenError(listener, address, err as Error);
  }
}

function coreConfigOf(config: Config): CoreConfig {
  return { ...config.coordinator, log_level: config.logging.level };
}

export interface RunningCoordinator {
  /** Actual bound ports (useful with port 0). */
  ports: { api: number; cluster?: number; metrics?: number };
  /** Starts the drain (as SIGTERM does); a second call skips the wait. */
  shutdown(reason: string): void;
  /**
   * Runs the reload hooks, as SIGHUP does: the log file and level, and the certificate, key, CA and
   * token files (a bad file keeps the old material).
   */
  reload(): Promise<void>;
  /** Resolves with the exit code once stopped. */
  stopped: Promise<number>;
  /** Table sizes on both sides of the thread boundary, for leak checks in tests. */
  diagnostics(): Promise<Diagnostics>;
}

/** The security files as read at start, and how to read them again (docs/security.md). */
export interface SecuritySetup {
  input: SecurityInput;
  material: SecurityMaterial;
}

export interface Diagnostics {
  /** Worker streams the cluster service holds. */
  workerLinks: number;
  scheduler: CoreInternals | undefined;
}

export interface StartOptions {
  /** The security files as read at start, and how to read them again (docs/security.md); read here when absent. */
  security?: SecuritySetup;
  /** Reads the configuration again as at start, for SIGHUP (docs/operations.md, Reloading: SIGHUP). */
  reread?: () => LoadedConfig;
  /** Where NOTIFY_SOCKET is looked up (systemd readiness); default process.env. */
  env?: NodeJS.ProcessEnv;
}

export async function runCoordinator(loaded: LoadedConfig, directories: Directories, options: StartOptions = {}): Promise<number> {
  const logger = createLogger(loaded.config.logging);
  for (const w of loaded.warnings) logger.warn(`config: ${w}`);
  logger.debug({ config: loaded.config, files: loaded.files }, 'effective configuration');
  // Handlers go in before anything is bound: without one, a signal during startup kills the
  // process outright instead of draining it.
  let running: RunningCoordinator | undefined;
  const early: NodeJS.Signals[] = [];
  let acceptedAt = Number.NEGATIVE_INFINITY;
  const onSignal = (signal: NodeJS.Signals): void => {
    const now = performance.now();
    if (now - acceptedAt < REPEATED_SIGNAL_MS) {
      logger.info({ signal }, `received ${signal} again within ${REPEATED_SIGNAL_MS} ms: taken as the same stop request`);
      return;
    }
    acceptedAt = now;
    if (running) running.shutdown(signal);
    else early.push(signal);
  };
  // SIGHUP's default action would kill the process: reloads instead, once started.
  let reloadEarly = false;
  const onHangup = (): void => {
    logger.info({ signal: 'SIGHUP' }, 'received SIGHUP: reloading');
    if (running) void running.reload();
    else reloadEarly = true;
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('SIGHUP', onHangup);
  let code: number;
  try {
    try {
      running = await startCoordinator(loaded.config, logger, directories, options);
    } catch (err) {
      if (err instanceof ListenError) {
        logger.error({ listener: err.listener, address: err.address }, err.message);
        return EXIT_LISTEN_FAILED;
      }
      if (err instanceof StoreError) {
        // A store that cannot be read is never reset silently: the operator decides (docs/operations.md).
        logger.error({ path: err.path }, err.message);
        return EXIT_CONFIG;
      }
      throw err;
    }
    if (reloadEarly) void running.reload();
    for (const signal of early) running.shutdown(signal);
    code = await running.stopped;
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    process.off('SIGHUP', onHangup);
    flushLogger(logger);
  }
  armExitBackstop(code, logger);
  return code;
}

/**
 * Every close hook has run, so nothing of ours should keep the event loop alive. If something
 * does (a library's handle we do not know of), a supervisor would wait for its stop timeout and
 * SIGKILL: exit anyway after a moment, naming what was still open. Unref'd, so a clean exit never
 * waits for it.
 */
function armExitBackstop(code: number, logger: Logger): void {
  const timer = setTimeout(() => {
    logger.warn(
      { exit_code: code, open_resources: process.getActiveResourcesInfo().filter((r) => r !== 'Timeout') },
      'event loop still busy after stopping; exiting anyway',
    );
    flushLogger(logger);
    process.exit(code);
  }, EXIT_BACKSTOP_MS);
  timer.unref();
}

/**
 * `directories` come checked from `prepareDirectories` (directories.ts); `options.security` from
 * `loadSecurity` (read here from the configuration when not given).
 */
export async function startCoordinator(config: Config, logger: Logger, directories: Directories, options: StartOptions = {}): Promise<RunningCoordinator> {
  const startedAt = performance.now();
  // grpc-js writes its own errors to stderr ("No address added out of total 1 resolved" for a taken
  // port): a line outside the log's format, saying less than the error line we log for the same event.
  const grpcLine = (...args: unknown[]): void => logger.debug({ source: 'grpc-js' }, args.map(String).join(' '));
  grpc.setLogger({ error: grpcLine, info: grpcLine, debug: grpcLine });
  const securityInput: SecurityInput = options.security?.input ?? { config, cwd: process.cwd() };
  let material = options.security?.material ?? loadSecurity(securityInput);
  // First, before any thread or timer exists: a store that cannot be opened stops the start (exit 78).
  const store = openStore(config, directories, (reason) => {
    // LMDB is not usable after a failed commit, and lmdb-js leaves rejections nobody can handle:
    // stop at once, as a SIGKILL would (what was acknowledged is on disk already).
    logger.fatal({ err: reason, exit_code: EXIT_STORE_FAILED }, `state store write failed (${reason}); exiting at once, nothing acknowledged is lost: restart once the disk has room`);
    flushLogger(logger);
    process.exit(EXIT_STORE_FAILED);
  });
  const lifecycle = new Lifecycle();
  lifecycle.onClose('state store', () => store.close());
  const closeFailed = (hook: string, err: unknown): void => logger.error({ err, hook }, `close hook ${hook} failed`);
  const reloadFailed = (hook: string, err: unknown): void => logger.error({ err, hook }, `reload hook ${hook} failed`);
  // Registered first, so it closes last: STOPPING=1 reaches systemd before the process exits.
  const notifier = SystemdNotifier.fromEnv(options.env ?? process.env, logger);
  if (notifier) {
    lifecycle.onChange((state) => {
      if (state === 'draining') void notifier.notify(['STOPPING=1']);
    });
    lifecycle.onClose('systemd notify', () => notifier.settled());
  }
  const metrics = new CoordinatorMetrics({ version: config.service.version, loopWindowMs: SCHEDULER_STATS_INTERVAL_MS });
  metrics.setTimeouts(timeoutSettings(config));
  lifecycle.onClose('metrics', () => metrics.stop());
  const diskSpace =
    store.durable && directories.state !== undefined
      ? new DiskSpaceWatch(directories.state, config.state.min_free_bytes, logger, (free) => metrics.stateDiskFree(free, config.state.min_free_bytes))
      : undefined;
  if (diskSpace) lifecycle.onClose('disk space watch', () => diskSpace.stop());
  const blobs = new BlobStore();
  const mock = config.backend.mode === 'mock';
  let resolveStopped!: (code: number) => void;
  const stopped = new Promise<number>((resolve) => (resolveStopped = resolve));
  if (config.server.max_message_bytes > WORKER_MAX_MESSAGE_BYTES && !mock) {
    logger.warn(
      { max_message_bytes: config.server.max_message_bytes, worker_send_limit: WORKER_MAX_MESSAGE_BYTES },
      `[server] max_message_bytes is above 128 MiB: the worker port still sends at most 128 MiB per message (the worker's decoder limit); larger messages fail their job`,
    );
  }

  // Effects arrive before every consumer exists only in theory (no event is posted before they
  // are built), but routing through these late-bound references keeps construction order free.
  const sinks: { cluster?: ClusterService; api?: ApiService } = {};
  const onEffects = (effects: SchedulerEffect[]): void => {
    const api = sinks.api;
    if (!api) {
      logger.error({ effects: effects.length }, 'scheduler effects before the client API exists; dropped');
      return;
    }
    applyEffects(effects, { blobs, metrics, logger, api, cluster: sinks.cluster });
  };

  let schedulerDied = false;
  const onSchedulerDeath = (err: Error): void => {
    if (schedulerDied) return;
    schedulerDied = true;
    logger.fatal({ err: err.message }, 'scheduler thread died; stopping the coordinator');
    void stopEverything(EXIT_SCHEDULER_DIED);
  };

  // The scheduler thread boots while the rest starts up; events posted meanwhile wait in its port.
  let host: SchedulerHost;
  let schedulerReady: Promise<void> = Promise.resolve();
  const countBatch = (direction: 'to_scheduler' | 'from_scheduler', items: number): void => metrics.schedulerBatch(direction, items);
  if (mock) host = new MockSchedulerHost(blobs, onEffects);
  else if (config.coordinator.scheduler_thread) {
    const threadHost = ThreadSchedulerHost.spawn(coreConfigOf(config), onEffects, onSchedulerDeath, { countBatch });
    host = threadHost;
    schedulerReady = threadHost.ready;
  } else host = new InlineSchedulerHost(coreConfigOf(config), onEffects, countBatch);
  lifecycle.onClose('scheduler', () => host.close());
  const post = (event: SchedulerEvent): void => host.post(event);
  lifecycle.onReload('logging', () =>
    reloadLogging({
      logger,
      running: config,
      reread: options.reread,
      applyLevel: (level) => {
        logger.level = level;
        post({ type: 'setLogLevel', level });
      },
    }),
  );
  lifecycle.onReload('security', () => reloadSecurityFiles());


  const apiService = new ApiService({
    config,
    directories,
    store,
    storeShortage: () => diskSpace?.shortage,
    post,
    blobs,
    link: (id) => sinks.cluster?.link(id),
    encodeWorkerMessage: (m) => {
      if (!sinks.cluster) throw new Error('no worker port in mock mode');
      return sinks.cluster.encodeMessage(m);
    },
    metrics,
    logger,
    lifecycle,
  });
  sinks.api = apiService;
  const cluster = mock
    ? undefined
    : new ClusterService({
        maxWorkerQueueBytes: config.coordinator.max_worker_queue_bytes,
        maxEgressBytes: config.coordinator.max_egress_bytes,
        maxSendBytes: workerSendLimit(config.server.max_message_bytes),
        maxUnregisteredStreams: config.coordinator.max_unregistered_streams,
        heartbeatIntervalMs: config.coordinator.heartbeat_interval_seconds * 1000,
        post,
        blobs,
        elves: apiService,
        taskData: apiService,
        metrics,
        logger,
        bindWorkerIdToCert: material.bindWorkerIdToCert,
      });
  sinks.cluster = cluster;
  // The client side closes before the scheduler (watchers and waiters get their answers), and
  // heartbeats stop before the listeners go.
  lifecycle.onClose('api', () => apiService.close());
  if (cluster) lifecycle.onClose('cluster', () => cluster.stop());

  // Both readiness signals start NOT_SERVING and flip in the same lifecycle listener call.
  const health = new HealthImplementation({ '': 'NOT_SERVING', [CLIENT_API_SERVICE]: 'NOT_SERVING' });
  lifecycle.onChange((state) => {
    const status = lifecycle.ready ? 'SERVING' : 'NOT_SERVING';
    if (state === 'serving' || state === 'draining') {
      health.setStatus('', status);
      health.setStatus(CLIENT_API_SERVICE, status);
    }
  });
  // The opt-in protections (docs/security.md). Without them: insecure credentials and no interceptor,
  // so the default path costs nothing per call.
  const apiToken = material.apiToken ? new ApiToken(material.apiToken.digest) : undefined;
  const interceptors = apiToken
    ? [
        bearerTokenInterceptor(apiToken, (method, verdict) => {
          metrics.recordRequest(method, 'UNAUTHENTICATED', 0);
          logger.debug({ method, reason: verdict }, `client API call ${method} refused: ${verdict} bearer token`);
        }),
      ]
    : undefined;
  const apiCredentials = material.tls ? new ReloadableServerCredentials({ identity: material.tls }, false) : undefined;
  const clusterCredentials =
    material.tls && !mock
      ? new ReloadableServerCredentials({ identity: material.tls, ...(material.clientCa ? { clientCa: material.clientCa } : {}) }, material.clientCa !== undefined)
      : undefined;
  const onTlsClientError = (listener: 'api' | 'cluster') => (err: Error, socket: TLSSocket) => {
    metrics.tlsHandshakeFailed(listener);
    // A refused client certificate closes the socket without an error of its own: the reason is the
    // socket's authorizationError (a code such as CERT_HAS_EXPIRED, typed as an Error by @types/node).
    const authError: unknown = socket.authorizationError;
    const reason = typeof authError === 'string' ? authError : authError instanceof Error ? authError.message : ((err as NodeJS.ErrnoException).code ?? err.message);
    logger.debug({ listener, peer: `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`, reason, err: err.message }, `TLS handshake on the ${listener} port failed: ${reason}`);
  };
  logSecurity(config, material, logger);

  const apiServer = new TunedGrpcServer(apiServerTuning(config), {
    ...(interceptors ? { interceptors } : {}),
    onTlsClientError: onTlsClientError('api'),
  });
  apiServer.server.addService(apiService.service, apiService.implementation());
  health.addToServer(apiServer.server);
  const clusterServer = cluster ? new TunedGrpcServer(clusterServerTuning(config), { onTlsClientError: onTlsClientError('cluster') }) : undefined;
  if (cluster && clusterServer) clusterServer.server.addService(cluster.service, cluster.implementation());

  let http: HttpServerHandle | undefined;
  const ports: RunningCoordinator['ports'] = { api: 0 };
  // One hook for the three listeners: they close side by side, each within the same grace, and
  // every session they hold is destroyed at its end whatever the peer does.
  lifecycle.onClose('listeners', async () => {
    await Promise.all([
      apiServer.close(SERVER_CLOSE_GRACE_MS),
      // Workers never close on GOAWAY (they reconnect): waiting for them gains nothing.
      clusterServer?.close(0),
      http?.close(SERVER_CLOSE_GRACE_MS),
    ]);
  });
  try {
    await apiService.init();
    if (clusterServer) {
      ports.cluster = await bindGrpc(clusterServer, 'cluster', config.server.host, config.coordinator.port, clusterCredentials ?? grpc.ServerCredentials.createInsecure());
    }
    ports.api = await bindGrpc(apiServer, 'api', config.server.host, config.server.port, apiCredentials ?? grpc.ServerCredentials.createInsecure());
    // The HTTP listener always runs: `metrics.enabled = false` removes /metrics, not /health.
    const address = hostPort(config.metrics.host, config.metrics.port);
    try {
      http = await startHttpServer({
        host: config.metrics.host,
        port: config.metrics.port,
        ...(config.metrics.enabled ? { metrics } : {}),
        readiness: () => ({ ready: lifecycle.ready, state: lifecycle.state }),
        logger,
      });
    } catch (err) {
      throw new ListenError('metrics', address, err as Error);
    }
    ports.metrics = http.address.port;
    logListeners(config, ports, logger);
    await schedulerReady;
  } catch (err) {
    await lifecycle.close(closeFailed);
    throw err;
  }

  cluster?.startHeartbeats();
  const statsTimer = setInterval(() => {
    host.loopStats().then(
      (s) => s && metrics.setSchedulerLoopStats(s),
      () => undefined,
    );
  }, SCHEDULER_STATS_INTERVAL_MS);
  statsTimer.unref();
  lifecycle.onClose('scheduler stats', () => clearInterval(statsTimer));

  lifecycle.advance('serving');
  logger.info(
    {
      mode: config.backend.mode,
      scheduler_thread: !mock && config.coordinator.scheduler_thread,
      startup_ms: Math.round(performance.now() - startedAt),
      environment: config.service.environment,
      version: config.service.version,
      // The launcher's V8 flags matter for memory at scale: say whether they are in effect.
      node_flags: process.execArgv.join(' '),
      // Under a wrapper (`npm start`, a shell) the PID a supervisor knows is not this process's.
      pid: process.pid,
    },
    'zisk-coordinator serving',
  );
  // Supervisors and scripts wait for this line: it must not sit in the log batch for 100 ms.
  flushLogger(logger);
  // After the line: a supervisor that hears READY=1 finds it in the log.
  void notifier?.notify(['READY=1']);

  let skipWait: (() => void) | undefined;
  let stopping: Promise<void> | undefined;

  function stopEverything(code: number): Promise<void> {
    stopping ??= (async () => {
      await lifecycle.close(closeFailed);
      logger.info({ exit_code: code }, 'zisk-coordinator stopped');
      resolveStopped(code);
    })();
    return stopping;
  }

  async function drain(reason: string): Promise<void> {
    const inFlight = apiService.activeJobCount();
    const windowMs = config.server.shutdown_timeout_seconds * 1000;
    logger.info(
      { reason, jobs_in_flight: inFlight, window_seconds: config.server.shutdown_timeout_seconds },
      `received ${reason}: draining (new jobs refused; ${inFlight} job(s) in flight get up to ${config.server.shutdown_timeout_seconds}s)`,
    );
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      apiService.waitIdle().then(() => 'idle' as const),
      new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), windowMs))),
      new Promise<'forced'>((resolve) => (skipWait = () => resolve('forced'))),
    ]);
    if (timer) clearTimeout(timer);
    const remaining = apiService.activeJobCount();
    if (outcome === 'idle' || remaining === 0) {
      logger.info({ drained: inFlight, abandoned: 0 }, `drain complete: ${inFlight} job(s) finished, none abandoned`);
    } else {
      const traceId = randomUUID();
      logger.warn(
        { drained: Math.max(0, inFlight - remaining), abandoned: remaining, trace_id: traceId, cause: outcome },
        `${outcome === 'forced' ? 'second signal' : 'drain window elapsed'}: abandoning ${remaining} job(s) (they fail with an internal error, trace id ${traceId})`,
      );
      post({ type: 'abandonAll', traceId });
      let flushTimer: NodeJS.Timeout | undefined;
      await Promise.race([
        apiService.waitIdle(),
        new Promise<void>((resolve) => (flushTimer = setTimeout(resolve, ABANDON_FLUSH_MS))),
      ]);
      if (flushTimer) clearTimeout(flushTimer);
    }
    await stopEverything(schedulerDied ? EXIT_SCHEDULER_DIED : EXIT_OK);
  }

  /**
   * SIGHUP: each part (certificate and key, client CA, token) is read again on its own; a part whose
   * files are bad keeps what it had and the error line names the file. New connections and calls use
   * the new material; established connections keep theirs (docs/security.md, Rotating certificates).
   */
  function reloadSecurityFiles(): void {
    // Nothing to re-read: the logging hook says what the reload did.
    if (!material.tls && !material.clientCa && !material.apiToken) return;
    const outcome = reloadSecurity(securityInput, material);
    for (const f of outcome.failures) {
      logger.error({ setting: f.setting, file: f.file, reason: f.reason }, `SIGHUP: ${f.message}; keeping the previous material`);
    }
    const next = outcome.material;
    const applied: string[] = [];
    if (next.tls !== material.tls || next.clientCa !== material.clientCa) {
      try {
        if (next.tls) {
          clusterCredentials?.update({ identity: next.tls, ...(next.clientCa ? { clientCa: next.clientCa } : {}) });
          apiCredentials?.update({ identity: next.tls });
        }
        material = { ...material, tls: next.tls, clientCa: next.clientCa };
        applied.push(...outcome.reloaded.filter((p) => p !== 'API token'));
        if (next.tls) warnIfExpired(next.tls, logger);
      } catch (err) {
        logger.error({ err: (err as Error).message }, `SIGHUP: the new TLS material cannot be used (${(err as Error).message}); keeping the previous material`);
      }
    }
    if (next.apiToken && next.apiToken !== material.apiToken) {
      apiToken?.replace(next.apiToken.digest);
      material = { ...material, apiToken: next.apiToken };
      applied.push('API token');
    }
    logger.info(
      { reloaded: applied, kept: outcome.failures.map((f) => f.setting) },
      `SIGHUP: re-read ${applied.length > 0 ? applied.join(', ') : 'nothing'}${outcome.failures.length > 0 ? ` (${outcome.failures.length} kept, see the error above)` : ''}; new connections use it, established ones keep theirs`,
    );
  }

  return {
    ports,
    stopped,
    diagnostics: async () => ({ workerLinks: cluster?.linkCount ?? 0, scheduler: await host.internals() }),
    reload: () => lifecycle.reload(reloadFailed),
    shutdown(reason: string) {
      if (lifecycle.state === 'serving') {
        lifecycle.advance('draining');
        void drain(reason);
      } else if (lifecycle.state === 'draining' && skipWait) {
        logger.warn({ reason }, `received ${reason} again: skipping the rest of the drain window`);
        skipWait();
      }
    },
  };
}

function warnIfExpired(identity: TlsIdentity, logger: Logger): void {
  if (new Date(identity.notAfter).getTime() < Date.now()) {
    logger.warn({ file: identity.files.cert, not_after: identity.notAfter }, `TLS certificate ${identity.files.cert} expired on ${identity.notAfter}: clients will refuse it`);
  }
}

/** One line saying which protections are on; warnings where one is weaker than it looks. */
function logSecurity(config: Config, m: SecurityMaterial, logger: Logger): void {
  const mock = config.backend.mode === 'mock';
  logger.info(
    {
      tls: m.tls !== undefined,
      worker_client_certificates: !mock && m.clientCa !== undefined,
      bind_worker_id_to_cert: !mock && m.bindWorkerIdToCert,
      api_token: m.apiToken !== undefined,
      ...(m.tls ? { tls_cert: m.tls.files.cert, tls_not_after: m.tls.notAfter } : {}),
    },
    m.tls || m.apiToken
      ? `security: TLS ${m.tls ? 'on' : 'off'}, worker client certificates ${m.clientCa && !mock ? 'required' : 'not required'}, client API token ${m.apiToken ? 'required' : 'not required'}`
      : 'security: off (plaintext, no token), as upstream; see docs/security.md',
  );
  if (m.tls) warnIfExpired(m.tls, logger);
  if (m.apiToken && !m.tls) {
    logger.warn('[server] api_token_file is set without TLS: the token crosses the network in clear text (set [server] tls_cert and tls_key)');
  }
}

/** The durable store in the state directory, or the memory store (which keeps nothing). */
function openStore(config: Config, directories: Directories, onCommitFailed: (reason: string) => never): JobStore {
  if (config.backend.mode === 'mock' || config.state.backend === 'memory' || directories.state === undefined) {
    return new MemoryJobStore();
  }
  return EmbeddedJobStore.open(directories.state, onCommitFailed);
}

function logListeners(config: Config, ports: RunningCoordinator['ports'], logger: Logger): void {
  logger.info(
    { listener: 'api', address: config.server.host, port: ports.api },
    `client API listening on ${hostPort(config.server.host, ports.api)}`,
  );
  if (ports.cluster !== undefined) {
    logger.info(
      { listener: 'cluster', address: config.server.host, port: ports.cluster },
      `cluster (worker) API listening on ${hostPort(config.server.host, ports.cluster)}`,
    );
  }
  if (ports.metrics !== undefined) {
    logger.info(
      { listener: 'metrics', address: config.metrics.host, port: ports.metrics, metrics_enabled: config.metrics.enabled },
      `HTTP ${config.metrics.enabled ? '/metrics and ' : ''}/health listening on ${hostPort(config.metrics.host, ports.metrics)}`,
    );
  }
}
