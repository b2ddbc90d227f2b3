/**
 * Wires the process together: logger, metrics, scheduler host, the three listeners, signals and the
 * drain of decisions D6. `runCoordinator` resolves with the process exit code.
 */
import * as grpc from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import { HealthImplementation } from 'grpc-health-check';
import type { LoadedConfig } from '../shared/config/load';
import type { Config } from '../shared/config/types';
import { createLogger, flushLogger, type Logger } from '../shared/logging';
import type { SchedulerEffect, SchedulerEvent } from '../shared/scheduler-protocol';
import { CLIENT_API_SERVICE } from '../shared/proto';
import type { CoreConfig } from '../threads/scheduler-core';
import { CoordinatorMetrics } from './metrics';
import { startHttpServer, type HttpServerHandle } from './http-server';
import { Lifecycle } from './lifecycle';
import { BlobStore } from './blob-store';
import { ClusterService } from './cluster-service';
import { ApiService } from './api-service';
import { InlineSchedulerHost, ThreadSchedulerHost, type SchedulerHost } from './scheduler-host';
import { MockSchedulerHost } from './mock-backend';

export const EXIT_OK = 0;
export const EXIT_LISTEN_FAILED = 1;
export const EXIT_SCHEDULER_DIED = 70;

/** How long closing servers may take once the drain is over. */
const SERVER_CLOSE_GRACE_MS = 2_000;
/** After abandoning jobs, how long their terminal events and job_cancelled messages get to go out. */
const ABANDON_FLUSH_MS = 3_000;
const SCHEDULER_STATS_INTERVAL_MS = 5_000;

export function grpcServerOptions(config: Config): grpc.ServerOptions {
  return {
    'grpc.max_receive_message_length': config.server.max_message_bytes,
    'grpc.max_send_message_length': config.server.max_message_bytes,
    // Half-open connections are otherwise never noticed (upstream A5); never max_connection_age.
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.keepalive_permit_without_calls': 1,
    // Nothing serves channelz here, and its per-call trackers and per-message timestamps cost CPU
    // on every heartbeat of every worker.
    'grpc.enable_channelz': 0,
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

function bindGrpc(server: grpc.Server, listener: string, host: string, port: number): Promise<number> {
  const address = hostPort(host, port);
  return new Promise((resolve, reject) => {
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, boundPort) => {
      if (err) reject(new ListenError(listener, address, err));
      else resolve(boundPort);
    });
  });
}

/** tryShutdown never resolves while a stream stays open: race it, then force. */
function shutdownGrpc(server: grpc.Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function coreConfigOf(config: Config): CoreConfig {
  return { ...config.coordinator, log_level: config.logging.level };
}

export interface RunningCoordinator {
  /** Actual bound ports (useful with port 0). */
  ports: { api: number; cluster?: number; metrics?: number };
  /** Starts the drain (as SIGTERM does); a second call skips the wait. */
  shutdown(reason: string): void;
  /** Resolves with the exit code once stopped. */
  stopped: Promise<number>;
}

export async function runCoordinator(loaded: LoadedConfig): Promise<number> {
  const logger = createLogger(loaded.config.logging);
  for (const w of loaded.warnings) logger.warn(`config: ${w}`);
  logger.debug({ config: loaded.config, files: loaded.files }, 'effective configuration');
  // Handlers go in before anything is bound: without one, a signal during startup kills the
  // process outright instead of draining it.
  let running: RunningCoordinator | undefined;
  const early: NodeJS.Signals[] = [];
  const onSignal = (signal: NodeJS.Signals): void => {
    if (running) running.shutdown(signal);
    else early.push(signal);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    try {
      running = await startCoordinator(loaded.config, logger);
    } catch (err) {
      if (err instanceof ListenError) {
        logger.error({ listener: err.listener, address: err.address }, err.message);
        return EXIT_LISTEN_FAILED;
      }
      throw err;
    }
    for (const signal of early) running.shutdown(signal);
    return await running.stopped;
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    flushLogger(logger);
  }
}

export async function startCoordinator(config: Config, logger: Logger): Promise<RunningCoordinator> {
  const startedAt = performance.now();
  const lifecycle = new Lifecycle();
  const metrics = new CoordinatorMetrics();
  const blobs = new BlobStore();
  const mock = config.backend.mode === 'mock';
  let resolveStopped!: (code: number) => void;
  const stopped = new Promise<number>((resolve) => (resolveStopped = resolve));

  // Effects arrive before every consumer exists only in theory (no event is posted before they
  // are built), but routing through these late-bound references keeps construction order free.
  const sinks: { cluster?: ClusterService; api?: ApiService } = {};
  const applyEffects = (effects: SchedulerEffect[]): void => {
    for (const effect of effects) {
      try {
        applyEffect(effect);
      } catch (err) {
        logger.error({ err, effect: effect.type }, 'failed to apply a scheduler effect');
      }
    }
  };
  const applyEffect = (effect: SchedulerEffect): void => {
    switch (effect.type) {
      case 'releaseBlobs':
        blobs.release(effect.blobIds);
        return;
      case 'workerCounts':
        metrics.setWorkerStates(effect.counts);
        metrics.setQueueDepth(effect.queueDepth);
        return;
      case 'phaseFinished':
        metrics.phaseFinished(effect.phase, effect.seconds);
        return;
      case 'workerJobOutcome':
        metrics.workerJob(effect.workerId, effect.outcome);
        return;
      case 'recoveryTimedOut':
        metrics.recoveryTimedOut();
        return;
      case 'log':
        logger[effect.level](effect.fields, effect.msg);
        return;
    }
    if (sinks.cluster?.apply(effect)) return;
    sinks.api?.apply(effect);
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
  if (mock) host = new MockSchedulerHost(blobs, applyEffects);
  else if (config.coordinator.scheduler_thread) {
    const threadHost = ThreadSchedulerHost.spawn(coreConfigOf(config), applyEffects, onSchedulerDeath);
    host = threadHost;
    schedulerReady = threadHost.ready;
  } else host = new InlineSchedulerHost(coreConfigOf(config), applyEffects);
  const post = (event: SchedulerEvent): void => host.post(event);

  const apiService = new ApiService({
    config,
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
        heartbeatIntervalMs: config.coordinator.heartbeat_interval_seconds * 1000,
        post,
        blobs,
        elves: apiService,
        taskData: apiService,
        metrics,
        logger,
      });
  sinks.cluster = cluster;
  await apiService.init();

  const health = new HealthImplementation({ '': 'SERVING', [CLIENT_API_SERVICE]: 'SERVING' });
  const apiServer = new grpc.Server(grpcServerOptions(config));
  apiServer.addService(apiService.service, apiService.implementation());
  health.addToServer(apiServer);
  const clusterServer = cluster ? new grpc.Server(grpcServerOptions(config)) : undefined;
  if (cluster && clusterServer) clusterServer.addService(cluster.service, cluster.implementation());

  let http: HttpServerHandle | undefined;
  const ports: RunningCoordinator['ports'] = { api: 0 };
  try {
    if (clusterServer) {
      ports.cluster = await bindGrpc(clusterServer, 'cluster', config.server.host, config.coordinator.port);
    }
    ports.api = await bindGrpc(apiServer, 'api', config.server.host, config.server.port);
    // The HTTP listener always runs: `metrics.enabled = false` removes /metrics, not /health.
    const address = hostPort(config.metrics.host, config.metrics.port);
    try {
      http = await startHttpServer({
        host: config.metrics.host,
        port: config.metrics.port,
        ...(config.metrics.enabled ? { metrics } : {}),
        isHealthy: () => lifecycle.healthy,
        logger,
      });
    } catch (err) {
      throw new ListenError('metrics', address, err as Error);
    }
    ports.metrics = http.address.port;
  } catch (err) {
    apiServer.forceShutdown();
    clusterServer?.forceShutdown();
    await http?.close();
    await host.close();
    metrics.stop();
    throw err;
  }

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

  try {
    await schedulerReady;
  } catch (err) {
    apiServer.forceShutdown();
    clusterServer?.forceShutdown();
    await http?.close();
    await host.close();
    metrics.stop();
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

  lifecycle.onChange((state) => {
    if (state === 'draining') {
      health.setStatus('', 'NOT_SERVING');
      health.setStatus(CLIENT_API_SERVICE, 'NOT_SERVING');
    }
  });
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
    },
    'zisk-coordinator serving',
  );
  // Supervisors and scripts wait for this line: it must not sit in the log batch for 100 ms.
  flushLogger(logger);

  let skipWait: (() => void) | undefined;
  let stopping: Promise<void> | undefined;

  async function stopEverything(code: number): Promise<void> {
    if (stopping) return stopping;
    stopping = (async () => {
      lifecycle.advance('draining');
      clearInterval(statsTimer);
      cluster?.stop();
      await apiService.close();
      await Promise.all([
        shutdownGrpc(apiServer, SERVER_CLOSE_GRACE_MS),
        clusterServer ? shutdownGrpc(clusterServer, 0) : Promise.resolve(),
        http?.close(),
      ]);
      await host.close();
      metrics.stop();
      lifecycle.advance('stopped');
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

  return {
    ports,
    stopped,
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
