/**
 * The coordinator's Prometheus metrics (docs/decisions.md, Metrics; the list is in docs/operations.md,
 * Health and metrics).
 *
 * Everything lives in a private prom-client Registry (several coordinators can share one process in
 * tests) and every metric is registered at construction, so a dashboard sees each series from the
 * first scrape instead of "no data" until something happens. Label sets that are closed (job kinds,
 * outcomes, worker states, byte kinds, phases, loop stats) are initialised to zero for the same
 * reason; open ones (RPC method × status, worker ids, message types, ignore reasons) appear on first
 * use. Callers get intention-named methods; prom-client objects stay inside this file so the
 * bookkeeping rules (what goes up, what goes down, what is clamped) live in one place.
 *
 * Names kept from upstream count what upstream counted, so upstream's dashboard shows the same thing
 * against us (docs/metrics.md, Upstream's names): `coordinator_jobs_total`,
 * `coordinator_job_duration_seconds` and `coordinator_worker_jobs_total` are prove jobs only, and
 * `coordinator_active_jobs` is prove and execute jobs; every kind is in names of our own.
 */
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { Handles } from './label-handles';
import { LeanHistogram } from './lean-histogram';

export type JobKindLabel = 'setup' | 'prove' | 'execute' | 'wrap';
export type JobOutcomeLabel = 'success' | 'failure' | 'cancelled';
export type WorkerStateLabel = 'idle' | 'setting_up' | 'ready' | 'computing' | 'disconnected';
export type PhaseLabel = 'contributions' | 'prove' | 'aggregate';
export type BytesKindLabel = 'elf' | 'input' | 'hints' | 'task' | 'other';
export type LoopThreadLabel = 'main' | 'scheduler';

/** The configured timeouts, exported so alert rules can compare durations with them (0 = none). */
export interface TimeoutSettings {
  phase: Readonly<Record<PhaseLabel, number>>;
  job: Readonly<Record<JobKindLabel, number>>;
}

export interface MetricsOptions {
  /** `coordinator_build_info{version}`. */
  version?: string;
  /**
   * Length of the main thread's event-loop window, in ms (the scheduler thread reports on the same
   * period from app.ts). Scrapes read the latest finished window and never start one.
   */
  loopWindowMs?: number;
}

/** A job that reached its terminal state (epoch ms). */
export interface FinishedJob {
  id: string;
  kind: JobKindLabel;
  outcome: JobOutcomeLabel;
  acceptedAt: number;
  /** Start of the attempt that ended; undefined when it ended before being dispatched. */
  startedAt?: number;
  at: number;
}

export const LOOP_WINDOW_MS = 5_000;

/**
 * prom-client's own event-loop figures, dropped from the registry: `monitorEventLoopDelay` is reset
 * by every scrape (two Prometheus servers each see half the stalls) and the plain lag gauge is
 * measured after the scrape it belongs to is sent. `coordinator_event_loop_delay_seconds` replaces
 * them (docs/metrics.md, Event loop).
 */
const PROM_CLIENT_LOOP_METRICS = [
  'nodejs_eventloop_lag_seconds',
  'nodejs_eventloop_lag_min_seconds',
  'nodejs_eventloop_lag_max_seconds',
  'nodejs_eventloop_lag_mean_seconds',
  'nodejs_eventloop_lag_stddev_seconds',
  'nodejs_eventloop_lag_p50_seconds',
  'nodejs_eventloop_lag_p90_seconds',
  'nodejs_eventloop_lag_p99_seconds',
];

/** gRPC status code names, indexed by code (grpc-js `status` enum order). */
const GRPC_STATUS_NAMES = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
] as const;
export type GrpcStatusName = (typeof GRPC_STATUS_NAMES)[number];

export const JOB_KINDS: readonly JobKindLabel[] = ['setup', 'prove', 'execute', 'wrap'];
export const JOB_OUTCOMES: readonly JobOutcomeLabel[] = ['success', 'failure', 'cancelled'];
export const WORKER_STATES: readonly WorkerStateLabel[] = ['idle', 'setting_up', 'ready', 'computing', 'disconnected'];
export const PHASES: readonly PhaseLabel[] = ['contributions', 'prove', 'aggregate'];
export const BYTES_KINDS: readonly BytesKindLabel[] = ['elf', 'input', 'hints', 'task', 'other'];
/** The `limit` label of `coordinator_limit_rejections_total` (docs/operations.md, Limits). */
export const LIMIT_NAMES = [
  'elf_bytes',
  'inline_bytes',
  'wrap_proof_bytes',
  'hints_batch_bytes',
  'worker_message_bytes',
  'request_field',
  'worker_id',
  'compute_units',
  'watchers_per_job',
  'watchers_total',
  'unregistered_streams',
  'handshake_timeout',
] as const;
export type LimitName = (typeof LIMIT_NAMES)[number];
const LOOP_THREADS: readonly LoopThreadLabel[] = ['main', 'scheduler'];
const RETRY_REASONS: readonly RetryReasonName[] = ['worker_lost', 'phase_timeout', 'coordinator_restart'];

/**
 * Job, phase and request durations (docs/decisions.md, Metrics). They reach 2 h because a large prove
 * can run that long; a histogram whose top bucket is below the real durations only says "+Inf".
 */
export const DURATION_BUCKETS: readonly number[] = [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1200, 3600, 7200];

/**
 * Request durations add millisecond buckets below that list: most RPCs (Register, Cancel, a refused
 * JobRequest) answer in a few ms and would all land in the 0.1 s bucket otherwise, while
 * WaitJobResult holds and Push streams still need the long tail up to 2 h.
 */
export const REQUEST_DURATION_BUCKETS: readonly number[] = [0.001, 0.005, 0.01, 0.025, 0.05, ...DURATION_BUCKETS];

import { LoopStatsSampler, type LoopStats } from '../../shared/loop-stats';
import type { RetryReasonName } from '../../shared/scheduler/types';
export { LoopStatsSampler, type LoopStats };

export interface RenderedMetrics {
  contentType: string;
  body: string;
}

/**
 * Counts bumped per worker message (10,000 workers send and receive tens of thousands a second) are
 * tallied in a plain map and folded into their prom-client counter when it is scraped.
 */
class Tally {
  private readonly pending = new Map<string, number>();

  add(label: string, n: number): void {
    this.pending.set(label, (this.pending.get(label) ?? 0) + n);
  }

  flushInto(counter: Counter<string>, labelName: string): void {
    for (const [label, n] of this.pending) if (n > 0) counter.inc({ [labelName]: label }, n);
    this.pending.clear();
  }
}

export class CoordinatorMetrics {
  private readonly registry = new Registry();
  private readonly mainLoop = new LoopStatsSampler(10);
  private readonly loopTimer: NodeJS.Timeout;
  /** Jobs queued now (id → when), for the queue wait of the attempt that starts. */
  private readonly queuedAt = new Map<string, number>();
  /** Jobs running now (id → kind and start of their attempt). */
  private readonly running = new Map<string, { kind: JobKindLabel; startedAt: number }>();
  // Gauges fed by the scheduler's snapshots, which arrive with nearly every effect batch: kept as plain
  // numbers and set on the prom-client gauges when they are scraped.
  private connectedCount = 0;
  private queueDepthCount = 0;
  private readonly workerStateCounts: Record<WorkerStateLabel, number> = { idle: 0, setting_up: 0, ready: 0, computing: 0, disconnected: 0 };

  private readonly requests: Counter<'method' | 'status'>;
  private readonly requestDuration: LeanHistogram<'method'>;
  private readonly activeJobs: Gauge<never>;
  private readonly runningJobs: Gauge<'kind'>;
  private readonly oldestRunning: Gauge<'kind'>;
  private readonly jobs: Counter<'kind' | 'outcome'>;
  private readonly jobDuration: LeanHistogram<'outcome'>;
  private readonly submitted: Counter<'kind'>;
  private readonly finished: Counter<'kind' | 'outcome'>;
  private readonly latency: LeanHistogram<'kind' | 'outcome'>;
  private readonly queueWait: LeanHistogram<'kind'>;
  private readonly phaseTimeout: Gauge<'phase'>;
  private readonly jobTimeout: Gauge<'kind'>;
  private readonly registrations: Counter;
  private readonly disconnects: Counter;
  private readonly workerJobs: Counter<'worker_id' | 'outcome'>;
  private readonly registeredPrograms: Gauge<never>;
  private readonly workersConnected: Gauge<never>;
  private readonly queueDepth: Gauge<never>;
  private readonly workers: Gauge<'state'>;
  private readonly phaseDuration: LeanHistogram<'phase'>;
  private readonly workerMessages: Counter<'type'>;
  private readonly ignoredWorkerMessages: Counter<'reason'>;
  private readonly recoveryTimeouts: Counter;
  private readonly tlsHandshakeFailures: Counter<'listener'>;
  private readonly retries: Counter<'kind' | 'reason'>;
  private readonly storeErrors: Counter;
  private stateDiskFreeBytes: Gauge | undefined;
  private stateMinFreeBytes: Gauge | undefined;
  private readonly bytes: Counter<'kind'>;
  private readonly limitHits: Counter<'limit'>;
  private readonly schedulerBatches: Counter<'direction'>;
  private readonly schedulerItems: Counter<'direction'>;
  private readonly schedulerBatchTally = new Tally();
  private readonly schedulerItemTally = new Tally();
  private readonly loopDelay: Gauge<'thread' | 'stat'>;
  private readonly requestHandles = new Handles((method, status) => this.requests.labels(method, status));
  private readonly finishedHandles = new Handles((kind, outcome) => this.finished.labels(kind, outcome));
  private readonly workerJobHandles = new Handles((workerId, outcome) => this.workerJobs.labels(workerId, outcome));
  private readonly workerStateHandles = new Handles((state) => this.workers.labels(state));
  private readonly workerMessageTally = new Tally();
  private readonly ignoredWorkerMessageTally = new Tally();
  private readonly bytesTally = new Tally();
  private readonly loopUtilization: Gauge<'thread'>;

  constructor(opts: MetricsOptions = {}) {
    const registers = [this.registry];

    new Gauge({
      name: 'coordinator_build_info',
      help: 'Always 1; the version label is the running coordinator\'s package version.',
      labelNames: ['version'],
      registers,
    }).set({ version: opts.version ?? 'unknown' }, 1);

    this.requests = new Counter({
      name: 'coordinator_requests_total',
      help: 'Client API calls by RPC method and final gRPC status code name (OK, NOT_FOUND, ...), including calls refused by validation.',
      labelNames: ['method', 'status'],
      registers,
    });
    this.requestDuration = new LeanHistogram(
      'coordinator_request_duration_seconds',
      'Client API call duration by RPC method, from arrival to final status (whole stream for PushJobInput/PushJobHintsInput, stream setup for WatchJob).',
      ['method'],
      REQUEST_DURATION_BUCKETS,
      this.registry,
    );
    this.activeJobs = new Gauge({
      name: 'coordinator_active_jobs',
      help: 'Prove and execute jobs dispatched to workers and not yet terminal, as upstream (every kind: coordinator_running_jobs; queued: coordinator_queue_depth).',
      registers,
      collect: () => this.collectRunning(),
    });
    this.runningJobs = new Gauge({
      name: 'coordinator_running_jobs',
      help: 'Jobs dispatched to workers and not yet terminal, by job kind.',
      labelNames: ['kind'],
      registers,
    });
    this.oldestRunning = new Gauge({
      name: 'coordinator_oldest_running_job_seconds',
      help: 'Age of the current attempt of the longest-running job of each kind (0 when none runs).',
      labelNames: ['kind'],
      registers,
    });
    this.jobs = new Counter({
      name: 'coordinator_jobs_total',
      help: 'Prove jobs that reached a terminal state, by outcome (success, failure, cancelled); kind is always prove, as upstream. Every kind: coordinator_jobs_finished_total.',
      labelNames: ['kind', 'outcome'],
      registers,
    });
    this.jobDuration = new LeanHistogram(
      'coordinator_job_duration_seconds',
      'Prove jobs: from the start of the attempt that ended (contributions phase) to the terminal state, by outcome, as upstream; not observed for jobs that never started.',
      ['outcome'],
      DURATION_BUCKETS,
      this.registry,
    );
    this.submitted = new Counter({
      name: 'coordinator_jobs_submitted_total',
      help: 'Jobs accepted (their JobRequest answered with a job id), by job kind.',
      labelNames: ['kind'],
      registers,
    });
    this.finished = new Counter({
      name: 'coordinator_jobs_finished_total',
      help: 'Jobs that reached a terminal state, by job kind (setup, prove, execute, wrap) and outcome (success, failure, cancelled).',
      labelNames: ['kind', 'outcome'],
      registers,
    });
    this.latency = new LeanHistogram(
      'coordinator_job_latency_seconds',
      'Job duration from acceptance to terminal state (queue wait and retries included), by job kind and outcome.',
      ['kind', 'outcome'],
      DURATION_BUCKETS,
      this.registry,
    );
    this.queueWait = new LeanHistogram(
      'coordinator_queue_wait_seconds',
      'Time an attempt waited in the queue before it was dispatched, by job kind.',
      ['kind'],
      DURATION_BUCKETS,
      this.registry,
    );
    this.phaseTimeout = new Gauge({
      name: 'coordinator_phase_timeout_seconds',
      help: 'Configured timeout of each proving phase ([coordinator] phaseN_timeout_seconds); 0 = none.',
      labelNames: ['phase'],
      registers,
    });
    this.jobTimeout = new Gauge({
      name: 'coordinator_job_timeout_seconds',
      help: 'Longest a job attempt of each kind can run before the coordinator times it out (prove: the sum of the phase timeouts); 0 = no bound.',
      labelNames: ['kind'],
      registers,
    });
    this.registrations = new Counter({
      name: 'coordinator_worker_registrations_total',
      help: 'Worker streams registered (accepted); a worker that reconnects counts again.',
      registers,
    });
    this.disconnects = new Counter({
      name: 'coordinator_worker_disconnects_total',
      help: 'Registered worker streams that ended (the worker hung up, was dropped for silence, or was taken over).',
      registers,
    });
    this.workerJobs = new Counter({
      name: 'coordinator_worker_jobs_total',
      help: 'Prove jobs each worker took part in, counted when the job ends, by worker id and job outcome (as upstream).',
      labelNames: ['worker_id', 'outcome'],
      registers,
    });
    this.registeredPrograms = new Gauge({
      name: 'coordinator_registered_programs_total',
      help: 'Guest programs (ELFs) registered with this coordinator process. A gauge despite the _total suffix: the name is kept from upstream so existing dashboards work.',
      registers,
    });
    this.workersConnected = new Gauge({
      name: 'coordinator_workers_connected',
      help: 'Workers with a live stream (every state except disconnected).',
      registers,
      collect: () => this.workersConnected.set(this.connectedCount),
    });
    this.queueDepth = new Gauge({
      name: 'coordinator_queue_depth',
      help: 'Jobs accepted and waiting in the queue for worker capacity.',
      registers,
      collect: () => this.queueDepth.set(this.queueDepthCount),
    });
    this.workers = new Gauge({
      name: 'coordinator_workers',
      help: 'Known workers by state (idle, setting_up, ready, computing, disconnected).',
      labelNames: ['state'],
      registers,
      collect: () => {
        for (const state of WORKER_STATES) this.workerStateHandles.get(state).set(this.workerStateCounts[state]);
      },
    });
    this.phaseDuration = new LeanHistogram(
      'coordinator_phase_duration_seconds',
      'Duration of each proving phase (contributions, prove, aggregate) of a job, observed when the phase ends.',
      ['phase'],
      DURATION_BUCKETS,
      this.registry,
    );
    this.workerMessages = new Counter({
      name: 'coordinator_worker_messages_total',
      help: 'Messages received from workers, by WorkerMessage payload name.',
      labelNames: ['type'],
      registers,
      collect: () => this.workerMessageTally.flushInto(this.workerMessages, 'type'),
    });
    this.ignoredWorkerMessages = new Counter({
      name: 'coordinator_ignored_worker_messages_total',
      help: 'Worker messages logged and dropped (late, from the wrong worker, wrong phase, ...), by reason.',
      labelNames: ['reason'],
      registers,
      collect: () => this.ignoredWorkerMessageTally.flushInto(this.ignoredWorkerMessages, 'reason'),
    });
    this.recoveryTimeouts = new Counter({
      name: 'coordinator_recovery_timeouts_total',
      help: 'Workers released to Ready because they sent no recovery_complete within recovery_timeout_seconds.',
      registers,
    });
    this.tlsHandshakeFailures = new Counter({
      name: 'coordinator_tls_handshake_failures_total',
      help: 'TLS handshakes refused or broken off, by listener (api/cluster): a worker certificate refused, a plaintext peer, a probe (docs/security.md).',
      labelNames: ['listener'],
      registers,
    });
    this.retries = new Counter({
      name: 'coordinator_job_retries_total',
      help: 'Job attempts failed by infrastructure and retried (docs/decisions.md, Retries), by job kind and reason.',
      labelNames: ['kind', 'reason'],
      registers,
    });
    this.storeErrors = new Counter({
      name: 'coordinator_state_store_errors_total',
      help: 'Files of the durable job store (big inputs, proofs) that could not be written: those jobs may not survive a restart as shown. A failed store transaction stops the process instead (exit 74).',
      registers,
    });
    this.bytes = new Counter({
      name: 'coordinator_bytes_sent_total',
      help: 'Bytes written to worker streams, by content kind (elf, input, hints, task, other); a fan-out counts once per target.',
      labelNames: ['kind'],
      registers,
      collect: () => this.bytesTally.flushInto(this.bytes, 'kind'),
    });
    this.limitHits = new Counter({
      name: 'coordinator_limit_rejections_total',
      help: 'Requests, registrations and messages refused because they exceed one of the limits of docs/operations.md (Limits), by limit.',
      labelNames: ['limit'],
      registers,
    });
    this.schedulerBatches = new Counter({
      name: 'coordinator_scheduler_batches_total',
      help: 'Batches that crossed the channel to and from the scheduler (one wake-up of the receiving thread each when it runs on its own thread), by direction.',
      labelNames: ['direction'],
      registers,
      collect: () => this.schedulerBatchTally.flushInto(this.schedulerBatches, 'direction'),
    });
    this.schedulerItems = new Counter({
      name: 'coordinator_scheduler_batch_items_total',
      help: 'Events sent to the scheduler (to_scheduler) and effects it returned (from_scheduler), by direction.',
      labelNames: ['direction'],
      registers,
      collect: () => this.schedulerItemTally.flushInto(this.schedulerItems, 'direction'),
    });
    this.loopDelay = new Gauge({
      name: 'coordinator_event_loop_delay_seconds',
      help: 'Event-loop delay per thread (main, scheduler): p50, p99 and max over the latest finished 5 s window (scrapes do not reset it).',
      labelNames: ['thread', 'stat'],
      registers,
    });
    this.loopUtilization = new Gauge({
      name: 'coordinator_event_loop_utilization',
      help: 'Fraction of time (0..1) each thread (main, scheduler) spent running code rather than waiting, over the latest finished 5 s window.',
      labelNames: ['thread'],
      registers,
    });

    this.initialiseClosedLabelSets();
    collectDefaultMetrics({ register: this.registry });
    for (const name of PROM_CLIENT_LOOP_METRICS) this.registry.removeSingleMetric(name);
    this.mainLoop.start();
    // Fixed windows rather than "since the previous scrape": with two scrapers (an HA pair, a
    // debugging curl) each would see only the stalls since the other's scrape.
    this.loopTimer = setInterval(() => this.setLoopStats('main', this.mainLoop.sample()), opts.loopWindowMs ?? LOOP_WINDOW_MS);
    this.loopTimer.unref();
  }

  /** One finished client API call; `status` is a grpc-js status code or its name. */
  recordRequest(method: string, status: GrpcStatusName | number, seconds: number): void {
    const name = statusName(status);
    this.requestHandles.get(method, name).inc();
    this.requestDuration.labels(method).observe(duration(seconds));
  }

  /** A JobRequest was answered with a job id. */
  jobSubmitted(kind: JobKindLabel): void {
    this.submitted.labels(kind).inc();
  }

  /** An attempt of the job waits in the queue (first, or again after a retry). */
  jobQueued(id: string, at: number): void {
    this.running.delete(id);
    this.queuedAt.set(id, at);
  }

  /** An attempt was dispatched to workers (left the queue or started directly). */
  jobStarted(id: string, kind: JobKindLabel, at: number): void {
    const queued = this.queuedAt.get(id);
    this.queuedAt.delete(id);
    if (queued !== undefined) this.queueWait.labels(kind).observe(duration((at - queued) / 1000));
    this.running.set(id, { kind, startedAt: at });
  }

  /** A job reached a terminal state, running or not. */
  jobFinished(job: FinishedJob): void {
    this.queuedAt.delete(job.id);
    this.running.delete(job.id);
    this.finishedHandles.get(job.kind, job.outcome).inc();
    this.latency.labels(job.kind, job.outcome).observe(duration((job.at - job.acceptedAt) / 1000));
    if (job.kind !== 'prove') return;
    this.jobs.labels('prove', job.outcome).inc();
    if (job.startedAt !== undefined) this.jobDuration.labels(job.outcome).observe(duration((job.at - job.startedAt) / 1000));
  }

  /** Per worker that took part in a job, when that job ends; upstream counted prove jobs only. */
  workerJob(workerId: string, outcome: JobOutcomeLabel, kind: JobKindLabel): void {
    if (kind === 'prove') this.workerJobHandles.get(workerId, outcome).inc();
  }

  workerRegistered(): void {
    this.registrations.inc();
  }

  workerDisconnected(): void {
    this.disconnects.inc();
  }

  setTimeouts(t: TimeoutSettings): void {
    for (const phase of PHASES) this.phaseTimeout.set({ phase }, count(t.phase[phase]));
    for (const kind of JOB_KINDS) this.jobTimeout.set({ kind }, count(t.job[kind]));
  }

  /** A new guest program was stored by this process. */
  programRegistered(): void {
    this.registeredPrograms.inc();
  }

  setRegisteredPrograms(n: number): void {
    this.registeredPrograms.set(count(n));
  }

  /** Full snapshot of worker states; also drives `coordinator_workers_connected`. */
  setWorkerStates(counts: Readonly<Record<WorkerStateLabel, number>>): void {
    let connected = 0;
    for (const state of WORKER_STATES) {
      const n = count(counts[state]);
      this.workerStateCounts[state] = n;
      if (state !== 'disconnected') connected += n;
    }
    this.connectedCount = connected;
  }

  setQueueDepth(n: number): void {
    this.queueDepthCount = count(n);
  }

  phaseFinished(phase: PhaseLabel, seconds: number): void {
    this.phaseDuration.labels(phase).observe(duration(seconds));
  }

  /** One inbound worker message, by its `WorkerMessage` payload name (e.g. `execute_task_response`). */
  workerMessage(type: string): void {
    this.workerMessageTally.add(type, 1);
  }

  /** An attempt failed and the job waits for the next one: it is no longer running. */
  jobRetried(id: string, kind: JobKindLabel, reason: RetryReasonName): void {
    this.retries.labels(kind, reason).inc();
    this.running.delete(id);
  }

  stateStoreError(): void {
    this.storeErrors.inc();
  }

  /** Only with the embedded store: a memory coordinator has no disk to watch, and no series. */
  stateDiskFree(bytes: number, minFreeBytes: number): void {
    this.stateDiskFreeBytes ??= new Gauge({
      name: 'coordinator_state_disk_free_bytes',
      help: 'Free bytes on the filesystem of [state] dir (checked every second); below [state] min_free_bytes new jobs are refused.',
      registers: [this.registry],
    });
    this.stateMinFreeBytes ??= new Gauge({
      name: 'coordinator_state_min_free_bytes',
      help: 'The configured [state] min_free_bytes: below it new jobs are refused.',
      registers: [this.registry],
    });
    this.stateDiskFreeBytes.set(count(bytes));
    this.stateMinFreeBytes.set(count(minFreeBytes));
  }

  tlsHandshakeFailed(listener: 'api' | 'cluster'): void {
    this.tlsHandshakeFailures.labels(listener).inc();
  }

  recoveryTimedOut(): void {
    this.recoveryTimeouts.inc();
  }

  ignoredWorkerMessage(reason: string): void {
    this.ignoredWorkerMessageTally.add(reason, 1);
  }

  bytesSent(kind: BytesKindLabel, n: number): void {
    this.bytesTally.add(kind, count(n));
  }

  /** A batch crossed the scheduler channel (src/main/scheduler/host.ts). */
  schedulerBatch(direction: 'to_scheduler' | 'from_scheduler', items: number): void {
    this.schedulerBatchTally.add(direction, 1);
    this.schedulerItemTally.add(direction, items);
  }

  /** Something was refused at one of the limits of docs/operations.md (Limits). */
  limitHit(limit: LimitName): void {
    this.limitHits.inc({ limit });
  }

  /** A message to a worker was over the send limit and was not written (its job failed instead). */
  messageRefused(): void {
    this.limitHits.inc({ limit: 'worker_message_bytes' });
  }

  /** The scheduler thread's own `LoopStatsSampler` figures (seconds; utilization 0..1). */
  setSchedulerLoopStats(stats: LoopStats): void {
    this.setLoopStats('scheduler', stats);
  }

  /** Prometheus text exposition (format 0.0.4) of every metric, with its content type. */
  async render(): Promise<RenderedMetrics> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  /** Stops the main-thread loop monitor; the registry can still be rendered. */
  stop(): void {
    clearInterval(this.loopTimer);
    this.mainLoop.stop();
  }

  private setLoopStats(thread: LoopThreadLabel, stats: LoopStats): void {
    this.loopDelay.set({ thread, stat: 'p50' }, nonNegative(stats.p50));
    this.loopDelay.set({ thread, stat: 'p99' }, nonNegative(stats.p99));
    this.loopDelay.set({ thread, stat: 'max' }, nonNegative(stats.max));
    this.loopUtilization.set({ thread }, nonNegative(stats.utilization));
  }

  private collectRunning(): void {
    const now = Date.now();
    const n: Record<JobKindLabel, number> = { setup: 0, prove: 0, execute: 0, wrap: 0 };
    const oldest: Record<JobKindLabel, number> = { setup: now, prove: now, execute: now, wrap: now };
    for (const { kind, startedAt } of this.running.values()) {
      n[kind]++;
      if (startedAt < oldest[kind]) oldest[kind] = startedAt;
    }
    this.activeJobs.set(n.prove + n.execute);
    for (const kind of JOB_KINDS) {
      this.runningJobs.set({ kind }, n[kind]);
      this.oldestRunning.set({ kind }, (now - oldest[kind]) / 1000);
    }
  }

  private initialiseClosedLabelSets(): void {
    for (const outcome of JOB_OUTCOMES) {
      this.jobs.inc({ kind: 'prove', outcome }, 0);
      this.jobDuration.zero({ outcome });
    }
    for (const kind of JOB_KINDS) {
      this.submitted.inc({ kind }, 0);
      this.queueWait.zero({ kind });
      this.runningJobs.set({ kind }, 0);
      this.oldestRunning.set({ kind }, 0);
      for (const outcome of JOB_OUTCOMES) {
        this.finished.inc({ kind, outcome }, 0);
        this.latency.zero({ kind, outcome });
      }
    }
    // A counter that appears at 1 loses its first increment to rate() and increase(): the
    // retry alert would miss the first retries.
    for (const kind of JOB_KINDS) for (const reason of RETRY_REASONS) this.retries.inc({ kind, reason }, 0);
    for (const phase of PHASES) this.phaseDuration.zero({ phase });
    for (const state of WORKER_STATES) this.workers.set({ state }, 0);
    for (const kind of BYTES_KINDS) this.bytes.inc({ kind }, 0);
    for (const limit of LIMIT_NAMES) this.limitHits.inc({ limit }, 0);
    for (const direction of ['to_scheduler', 'from_scheduler']) {
      this.schedulerBatches.inc({ direction }, 0);
      this.schedulerItems.inc({ direction }, 0);
    }
    for (const thread of LOOP_THREADS) {
      for (const stat of ['p50', 'p99', 'max'] as const) this.loopDelay.set({ thread, stat }, 0);
      this.loopUtilization.set({ thread }, 0);
    }
  }
}

function statusName(status: GrpcStatusName | number): GrpcStatusName {
  if (typeof status === 'string') return status;
  return GRPC_STATUS_NAMES[status] ?? 'UNKNOWN';
}

// Metrics must never throw into the code that records them: prom-client rejects NaN and negative
// increments, so bad inputs are clamped instead.
function duration(seconds: number): number {
  return Number.isFinite(seconds) && seconds > 0 ? seconds : 0;
}

function count(n: number): number {
  return Number.isFinite(n) && n > 0 ? Math.floor(n) : 0;
}

function nonNegative(x: number): number {
  return Number.isFinite(x) && x > 0 ? x : 0;
}
