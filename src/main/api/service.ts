/**
 * The client API (`zisk.coordinator.v1.ZiskCoordinatorApi`) on the main thread: wires the handlers in
 * `./api/` to the service definition, routes job-facing scheduler effects, and closes everything.
 *
 * Handlers validate at the edge (docs/architecture.md, Edge validation; docs/decisions.md, Errors), keep
 * bulk bytes in the blob store, and talk to the scheduler only by posting events and applying its
 * effects. The job table mirrors what the scheduler reports so WaitJobResult and WatchJob answer from
 * memory without a round trip.
 */
import { clientSizeLimits, workerSendLimit } from '../../shared/wire-limits';
import type * as grpc from '@grpc/grpc-js';
import type { ServiceDefinition } from '@grpc/proto-loader';
import { CLIENT_API_PROTO, CLIENT_API_SERVICE, serviceDefinition } from '../../shared/proto';
import type { EffectOf } from '../../shared/scheduler/effects';
import type { ElfSource, TaskDataSource } from '../cluster/service';
import type { JobEventWire } from './job-mirror';
import { ProgramRegistry } from './programs';
import { WebhookNotifier } from './webhook';
import { CallRecorder } from './calls';
import type { ApiContext } from './context';
import type { ApiServiceDeps } from './deps';
import { JobRegistry } from './job-registry';
import { JobJournal } from './job-journal';
import { JobFiles } from '../state/job-files';
import type { JobIdMsg, JobRequestMsg, PushMsg, RegisterProgramMsg, WaitMsg, WaitResponse } from './messages';
import { handlePush } from './push-streams';
import { SchedulerRequests } from './scheduler-requests';
import { cancelJob, jobRequest, registerProgram } from './unary-handlers';
import { WaitHolds } from './wait-holds';
import { WatchStreams } from './watch-streams';
import { FramedMessage } from './result-frames';

export type { ApiServiceDeps } from './deps';
export { WAIT_DEADLINE_MARGIN_MS, WAIT_DEFAULT_SECONDS, WAIT_MAX_SECONDS, WAIT_MIN_SECONDS } from './validation';

/** Webhook deliveries in flight get this long at shutdown before they are abandoned. */
const WEBHOOK_CLOSE_GRACE_MS = 2_000;

/**
 * The client API definition with two changes: WatchJob writes hand-encoded events as Buffers
 * (job-event-encoding.ts), which its serializer passes through, and WatchJob and WaitJobResult write
 * big results as `FramedMessage`s (result-frames.ts), which `shared-writes.ts` writes without a copy;
 * should a call not allow that, their serializers write them whole. The shared definition is not mutated.
 */
function apiServiceDefinition(): ServiceDefinition {
  const def = serviceDefinition(CLIENT_API_PROTO, CLIENT_API_SERVICE);
  const watch = def.WatchJob;
  const wait = def.WaitJobResult;
  const encodeEvent = watch.responseSerialize;
  const encodeWait = wait.responseSerialize;
  return {
    ...def,
    WatchJob: {
      ...watch,
      responseSerialize: (value: object) => (Buffer.isBuffer(value) ? value : value instanceof FramedMessage ? value.contiguous() : encodeEvent(value)),
    },
    WaitJobResult: { ...wait, responseSerialize: (value: object) => (value instanceof FramedMessage ? value.contiguous() : encodeWait(value)) },
  };
}

export class ApiService implements TaskDataSource, ElfSource {
  readonly service: ServiceDefinition = apiServiceDefinition();

  private readonly programs: ProgramRegistry;
  private readonly webhook: WebhookNotifier | undefined;
  private readonly jobs: JobRegistry;
  private readonly scheduler: SchedulerRequests;
  private readonly ctx: ApiContext;
  private readonly waits: WaitHolds;
  private readonly watches: WatchStreams;
  private closed = false;

  constructor(private readonly deps: ApiServiceDeps) {
    const mock = deps.config.backend.mode === 'mock';
    this.programs = new ProgramRegistry({
      cacheDir: deps.directories.cache,
      logger: deps.logger,
      onNewProgram: () => deps.metrics.programRegistered(),
    });
    const url = deps.config.coordinator.webhook_url;
    this.webhook = url ? new WebhookNotifier({ url, logger: deps.logger }) : undefined;
    const files = deps.store.filesDir !== undefined ? new JobFiles(deps.store.filesDir, () => deps.storeShortage()) : undefined;
    this.jobs = new JobRegistry({
      deps,
      programs: this.programs,
      webhook: this.webhook,
      mock,
      journal: new JobJournal(deps.store, files, deps.blobs, deps.config.state.spool_max_bytes, deps.logger, () => deps.metrics.stateStoreError()),
      endWatcher: (watcher) => this.watches.end(watcher),
    });
    this.scheduler = new SchedulerRequests((event) => deps.post(event));
    this.ctx = {
      deps,
      mock,
      programs: this.programs,
      jobs: this.jobs,
      scheduler: this.scheduler,
      calls: new CallRecorder(deps.metrics, deps.logger),
      limits: clientSizeLimits(workerSendLimit(deps.config.server.max_message_bytes)),
      closed: () => this.closed,
    };
    this.waits = new WaitHolds(this.ctx);
    this.watches = new WatchStreams(this.ctx);
  }

  /** Loads the program cache and replays recorded setups to the scheduler. Before listening. */
  /** Loads the program cache, replays recorded setups, then brings back stored jobs. Before listening. */
  async init(): Promise<void> {
    const restored = await this.programs.init();
    for (const s of restored) {
      this.deps.post({ type: 'restoreSetup', hashId: s.hashId, withHints: s.withHints, programName: s.programName, vkHex: s.vkHex });
    }
    const jobs = await this.jobs.restore();
    if (jobs.terminal + jobs.queued + jobs.running > 0) {
      this.deps.logger.info(
        { terminal: jobs.terminal, queued: jobs.queued, running: jobs.running },
        `restored ${jobs.terminal + jobs.queued + jobs.running} job(s) from the state store: ${jobs.queued} queued, ${jobs.running} were running (they start a new attempt), ${jobs.terminal} finished`,
      );
    }
  }

  implementation(): grpc.UntypedServiceImplementation {
    const { ctx } = this;
    return {
      RegisterGuestProgram: ctx.calls.unary('RegisterGuestProgram', (req: RegisterProgramMsg) => registerProgram(ctx, req)),
      JobRequest: ctx.calls.unary('JobRequest', (req: JobRequestMsg) => jobRequest(ctx, req)),
      WaitJobResult: (call: grpc.ServerUnaryCall<WaitMsg, WaitResponse | FramedMessage>, cb: grpc.sendUnaryData<WaitResponse | FramedMessage>) =>
        this.waits.handle(call, cb),
      WatchJob: (call: grpc.ServerWritableStream<JobIdMsg, JobEventWire | Buffer | FramedMessage>) => this.watches.handle(call),
      PushJobInput: (call: grpc.ServerReadableStream<PushMsg, object>, cb: grpc.sendUnaryData<object>) => handlePush(ctx, 'input', call, cb),
      PushJobHintsInput: (call: grpc.ServerReadableStream<PushMsg, object>, cb: grpc.sendUnaryData<object>) => handlePush(ctx, 'hints', call, cb),
      CancelJob: ctx.calls.unary('CancelJob', (req: JobIdMsg) => cancelJob(ctx, req)),
    };
  }

  submitResult(effect: EffectOf<'submitResult'>): void {
    this.scheduler.answerSubmit(effect);
  }

  cancelResult(effect: EffectOf<'cancelResult'>): void {
    this.scheduler.answerCancel(effect);
  }

  jobEvent(effect: EffectOf<'jobEvent'>): void {
    this.jobs.onEvent(effect.jobId, effect.at, effect.event);
  }

  jobRetried(effect: EffectOf<'jobRetried'>): void {
    this.jobs.retried(effect);
  }

  jobLinks(effect: EffectOf<'jobLinks'>): void {
    this.jobs.setLinks(effect.jobId, effect.linkIds);
  }

  jobsEvicted(effect: EffectOf<'jobsEvicted'>): void {
    this.jobs.evict(effect.jobIds);
  }

  setupCompleted(effect: EffectOf<'setupCompleted'>): void {
    const { hashId, withHints, programName, vkHex } = effect;
    void this.programs.recordSetup({ hashId, withHints, programName, vkHex });
  }

  /** The job's data for its contribution tasks; undefined (the dispatch fails the job) if any is gone. */
  contributionData(jobId: string): ReturnType<TaskDataSource['contributionData']> {
    return this.jobs.contributionData(jobId);
  }

  elfBytes(hashId: string): Buffer | undefined {
    return this.programs.elfBytes(hashId);
  }

  /** Non-terminal jobs (queued or running). */
  activeJobCount(): number {
    return this.jobs.activeCount();
  }

  /** Resolves when no job is queued or running. */
  waitIdle(): Promise<void> {
    return this.jobs.waitIdle();
  }

  /** Ends every open watch stream and pending wait; stops timers. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.waits.answerAll();
    this.watches.closeAll();
    this.jobs.abortAll();
    this.scheduler.close();
    await Promise.all([this.webhook?.close(WEBHOOK_CLOSE_GRACE_MS), this.programs.close(), this.jobs.settle()]);
    this.deps.logger.debug('api service closed');
  }
}
