/** The client API's jobs: lookup, the scheduler's events, and what each job holds until it ends or is evicted. */
import { dirname } from 'node:path';
import { apiErrors } from '../../shared/errors';
import { clientSizeLimits, workerSendLimit } from '../../shared/wire-limits';
import type { EpochMs, JobEventBody, LinkId } from '../../shared/scheduler/types';
import type { EffectOf } from '../../shared/scheduler/effects';
import type { JobJournal } from './job-journal';
import { replayable, restoreRecord, setProofData, specOfRestored } from './job-restore';
import type { TaskDataSource } from '../cluster/service';
import { ApiFailure } from './grpc-errors';
import { JobRecord, JobMirror, type DataMode, type IncomingEvent, type LocalSourceRef } from './job-mirror';
import { JobWatcher } from './job-watcher';
import { startLocalSource } from '../data/local-sources';
import type { ProgramRegistry } from './programs';
import { JobRelay, type RelayKind } from '../data/relays';
import { failureText } from '../../shared/job-failure';
import { buildResult, type BuiltResult } from './results';
import type { WebhookNotifier } from './webhook';
import type { ApiServiceDeps } from './deps';
import { outcomeOf, saveProof, webhookNotice } from './job-outputs';
import { parseJobId, type ParsedJob } from './validation';

export interface JobRegistryOptions {
  deps: ApiServiceDeps;
  programs: ProgramRegistry;
  webhook: WebhookNotifier | undefined;
  mock: boolean;
  /** Records jobs in the durable store (a no-op with the memory store). */
  journal: JobJournal;
  /** Ends the WatchJob stream of a watcher whose job is dropped before its terminal event. */
  endWatcher(watcher: JobWatcher): void;
}

type CompletedSummary = Extract<JobEventBody, { kind: 'completed' }>['result'];

/** Data that reaches workers through a relay (pushed by the client or read from a local source). */
function isRelayed(m: DataMode): m is Extract<DataMode, { kind: 'grpc' | 'local' }> {
  return m.kind === 'grpc' || m.kind === 'local';
}

export class JobRegistry {
  private readonly table = new JobMirror();
  private idleWaiters: (() => void)[] = [];
  private readonly hintsBatchBytes: number;

  constructor(private readonly opts: JobRegistryOptions) {
    this.hintsBatchBytes = clientSizeLimits(workerSendLimit(opts.deps.config.server.max_message_bytes)).hintsBatchBytes;
  }

  /** An accepted job, or `Job not found`. */
  find(jobId: string): JobRecord {
    const rec = this.table.get(jobId);
    if (!rec || !rec.accepted) throw new ApiFailure(apiErrors.jobNotFound(jobId));
    return rec;
  }

  /** `find` of a client-supplied id, validated first. */
  lookup(rawId: string | undefined): JobRecord {
    return this.find(parseJobId(rawId));
  }

  /** Non-terminal accepted jobs (queued or running). */
  activeCount(): number {
    return this.table.activeCount();
  }

  /** Resolves when no job is queued or running. */
  waitIdle(): Promise<void> {
    if (this.activeCount() === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Adds a job before its submit is posted (the scheduler's first events for it may arrive in the same
   * batch as, or before, its answer), with a relay for each stream it takes unless the backend is mocked.
   */
  add(rec: JobRecord): void {
    if (!this.opts.mock) this.openRelays(rec);
    this.table.add(rec);
  }

  private openRelays(rec: JobRecord): void {
    if (isRelayed(rec.input)) rec.relays.input = this.newRelay(rec.id, 'input');
    if (isRelayed(rec.hints)) rec.relays.hints = this.newRelay(rec.id, 'hints');
  }

  /** Starts reading the job's `file://` / `unix://` sources into its relays. */
  startLocalSources(rec: JobRecord, parsed: ParsedJob): void {
    if (parsed.input.kind === 'local') rec.localSources.input = { path: parsed.input.path, source: parsed.input.source };
    if (parsed.hints.kind === 'local') rec.localSources.hints = { path: parsed.hints.path, source: parsed.hints.source };
    this.readLocalSources(rec);
  }

  /** Reads the job's local sources (and, for another attempt, its spooled pushes) into its relays. */
  private readLocalSources(rec: JobRecord): void {
    const spooledSource = (kind: 'input' | 'hints'): (LocalSourceRef & { root: string | undefined }) | undefined => {
      const file = rec.spooled[kind]?.file;
      const path = file !== undefined ? this.opts.journal.pathOf(file) : undefined;
      return path !== undefined ? { path, source: 'file', root: dirname(path) } : undefined;
    };
    const clientSource = (d: LocalSourceRef | undefined): (LocalSourceRef & { root: string | undefined }) | undefined =>
      d ? { ...d, root: this.opts.deps.directories.inputs } : undefined;
    const start = (d: (LocalSourceRef & { root: string | undefined }) | undefined, relay: JobRelay | undefined): void => {
      if (!d || !relay) return;
      rec.sourceAbort ??= new AbortController();
      startLocalSource(d.path, d.source, relay, rec.sourceAbort.signal, { root: d.root }).catch((err: unknown) =>
        relay.fail(`${d.source} source ${d.path} failed: ${err instanceof Error ? err.message : String(err)}`),
      );
    };
    start(clientSource(rec.localSources.input) ?? spooledSource('input'), rec.relays.input);
    start(clientSource(rec.localSources.hints) ?? spooledSource('hints'), rec.relays.hints);
  }

  /**
   * An attempt failed and the job waits for the next one: that attempt reads its streamed data again
   * from the start, through fresh relays (hints sequence numbers restart at 0). Only jobs whose data
   * can be read again are retried (inline data, `file://` sources).
   */
  retried(effect: EffectOf<'jobRetried'>): void {
    const rec = this.table.get(effect.jobId);
    if (!rec || rec.terminal) return;
    this.opts.deps.metrics.jobRetried(rec.id, rec.kind, effect.reason);
    rec.attempt = effect.attempt;
    rec.failedAttempts.push(effect.failedAttempt);
    this.persist(rec);
    if (!rec.relays.input && !rec.relays.hints) return;
    rec.sourceAbort?.abort();
    rec.sourceAbort = undefined;
    rec.relays.input?.abort();
    rec.relays.hints?.abort();
    rec.relays = {};
    this.openRelays(rec);
    this.readLocalSources(rec);
  }

  /**
   * A pushed stream of the job ended. With a durable store its copy on disk is synced; once every
   * streamed part of the job is held whole, another attempt can replay it.
   */
  async pushEnded(rec: JobRecord, kind: 'input' | 'hints'): Promise<void> {
    const spool = rec.spools[kind];
    if (!spool) return;
    const bytes = await spool.finish();
    if (bytes === undefined || rec.terminal) {
      if (spool.abandoned && !rec.terminal) {
        this.opts.deps.logger.info({ job_id: rec.id, kind, reason: spool.abandoned }, `job ${rec.id}: pushed ${kind} not kept on disk (${spool.abandoned}); the job cannot be retried`);
      }
      return;
    }
    rec.spooled[kind] = { file: spool.name, bytes };
    this.persist(rec);
    const whole = (m: DataMode, k: 'input' | 'hints'): boolean => m.kind !== 'grpc' || rec.spooled[k] !== undefined;
    if (whole(rec.input, 'input') && whole(rec.hints, 'hints') && rec.localSources.input?.source !== 'unix' && rec.localSources.hints?.source !== 'unix') {
      this.opts.deps.post({ type: 'jobReplayable', jobId: rec.id, replayable: true });
    }
  }

  /**
   * The scheduler accepted the job: it is answered once its record is durable (docs/decisions.md,
   * Durable jobs). A store that fails to take it fails the job: nobody would ever learn its id.
   */
  async accepted(rec: JobRecord): Promise<void> {
    rec.accepted = true;
    try {
      await this.opts.journal.accepted(rec);
      this.opts.deps.metrics.jobSubmitted(rec.kind);
    } catch (err) {
      const reason = `the state store did not take the job: ${(err as Error).message}`;
      this.opts.deps.post({ type: 'failJob', jobId: rec.id, failure: { kind: 'internal', traceId: rec.id, reason } });
      throw err;
    }
  }

  /** Copies a pushed chunk to disk too (durable store only), so another attempt can replay it. */
  spool(rec: JobRecord, kind: 'input' | 'hints', chunk: Buffer): Promise<void> | undefined {
    const s = this.opts.journal.spool(rec, kind);
    if (!s) return undefined;
    const written = s.append(chunk);
    if (s.abandoned && rec.spooled[kind]) {
      rec.spooled[kind] = undefined;
      this.persist(rec);
      this.opts.deps.post({ type: 'jobReplayable', jobId: rec.id, replayable: false });
    }
    return written;
  }

  /** A refused submit leaves no record and no blob behind. */
  discard(rec: JobRecord): void {
    this.table.delete(rec.id);
    this.detach(rec);
    this.releaseBlobs(rec);
    if (this.holdsElf(rec)) this.opts.programs.releaseElf(rec.hashId);
  }

  /** The job's data for its contribution tasks; undefined (the dispatch fails the job) if any is gone. */
  contributionData(jobId: string): ReturnType<TaskDataSource['contributionData']> {
    const rec = this.table.get(jobId);
    if (!rec) return undefined;
    const { blobs, logger } = this.opts.deps;
    const inline = (m: DataMode): { ok: boolean; data?: Buffer } => {
      if (m.kind !== 'inline') return { ok: true };
      const data = blobs.get(m.blobId);
      if (!data) logger.error({ job_id: jobId, blob: m.blobId }, `job ${jobId}: inline data released before dispatch`);
      return { ok: data !== undefined, data };
    };
    const input = inline(rec.input);
    const hints = inline(rec.hints);
    if (!input.ok || !hints.ok) return undefined;
    const streamUri = isRelayed(rec.hints) ? rec.hints.uri : undefined;
    return { hashId: rec.hashId, inputData: input.data, hintsData: hints.data, hintsStreamUri: streamUri };
  }

  // -------------------------------------------------------------------------- scheduler effects

  /**
   * One event of the job from the scheduler. A terminal one is shown to clients (history, waiters,
   * watchers) only once the job's record says so on disk; the others at once.
   */
  onEvent(jobId: string, at: EpochMs, body: JobEventBody): void {
    const rec = this.table.get(jobId);
    if (!rec || rec.terminal || rec.pendingTerminal) return;
    const event: IncomingEvent = body.kind === 'completed' ? { kind: 'completed', result: this.build(rec, body.result, at) } : body;
    if (event.kind !== 'completed' && event.kind !== 'failed' && event.kind !== 'cancelled') {
      this.record(rec, at, event);
      // A phase change is history only: it rides with the job's next write. `started` is written at
      // once, since a restart charges an attempt only to a job it knows was running.
      if (event.kind === 'progress') this.opts.journal.changedLater(rec);
      else this.persist(rec);
      return;
    }
    // The record written is the job as it will be, terminal event included.
    rec.terminalEvent = { at, event };
    const durable = this.opts.journal.finished(rec);
    if (!durable) {
      rec.terminalEvent = undefined;
      this.record(rec, at, event);
      return;
    }
    rec.pendingTerminal = durable
      .catch((err: Error) => {
        this.opts.deps.logger.error({ job_id: rec.id, err: err.message }, `job ${rec.id}: its ${event.kind} state is not on disk (${err.message}); shown anyway`);
      })
      .then(() => {
        rec.pendingTerminal = undefined;
        rec.terminalEvent = undefined;
        this.record(rec, at, event);
        if (rec.evictWhenRecorded) this.evict([rec.id]);
      });
  }

  /** Applies an event to the mirror and tells whoever follows the job. */
  private record(rec: JobRecord, at: EpochMs, event: IncomingEvent): void {
    for (const e of this.table.apply(rec, at, event)) {
      if (e.kind === 'queued') this.opts.deps.metrics.jobQueued(rec.id, at);
      else if (e.kind === 'started') this.opts.deps.metrics.jobStarted(rec.id, rec.kind, at);
      for (const o of [...rec.observers]) o.push(e);
    }
    if (rec.terminal && rec.accepted) this.afterTerminal(rec);
  }

  /** The job's record joins the next batch to the store. */
  private persist(rec: JobRecord): void {
    if (!rec.accepted) return;
    // A failed write is counted and logged once per transaction by the journal.
    this.opts.journal.changed(rec)?.catch(() => undefined);
  }

  setLinks(jobId: string, linkIds: LinkId[]): void {
    const rec = this.table.get(jobId);
    if (rec && !rec.terminal) {
      rec.relays.input?.setLinks(linkIds);
      rec.relays.hints?.setLinks(linkIds);
    }
  }

  evict(jobIds: string[]): void {
    const gone: JobRecord[] = [];
    for (const id of jobIds) {
      const rec = this.evictOne(id);
      if (rec) gone.push(rec);
    }
    this.opts.journal.evicted(gone);
    this.checkIdle();
  }

  /**
   * The job's completed result with its proof bytes in memory: a job restored from the store keeps
   * its proof in a file until a client asks for it.
   */
  async ensureResult(rec: JobRecord): Promise<void> {
    const result = rec.result;
    const file = rec.files.proof;
    if (rec.state !== 'completed' || !result || result.proofData || !file) return;
    const data = await this.opts.journal.read(file);
    setProofData(result.response, data);
    result.proofData = data;
  }

  /** Everything a terminal job sets off, once. */
  afterTerminal(rec: JobRecord): void {
    const { deps, programs, webhook } = this.opts;
    const at = rec.terminalAt ?? Date.now();
    const outcome = outcomeOf(rec);
    deps.metrics.jobFinished({ id: rec.id, kind: rec.kind, outcome, acceptedAt: rec.createdAt, startedAt: rec.startedAt, at });
    // The scheduler logs outcomes with their cause; this line adds what only the API side knows.
    deps.logger.debug(
      { job_id: rec.id, kind: rec.kind, outcome, duration_ms: at - rec.createdAt, reason: rec.failure ? failureText(rec.failure) : undefined },
      `job ${rec.id} ${rec.state}`,
    );

    this.detach(rec);
    // Request bytes are no use once the job is over; a result that reuses one keeps it until eviction.
    const kept = new Set(rec.result?.blobIds ?? []);
    deps.blobs.release(rec.requestBlobIds.filter((id) => !kept.has(id)));
    rec.requestBlobIds.length = 0;
    if (this.holdsElf(rec)) {
      // whatever order the scheduler reports it in, a completed setup keeps its program's bytes
      if (rec.state === 'completed') programs.markSetUp(rec.hashId);
      programs.releaseElf(rec.hashId);
    }
    if (rec.kind !== 'setup') webhook?.notify(webhookNotice(rec, at));
    const proofsDir = deps.directories.proofs;
    if (proofsDir && rec.kind === 'prove' && rec.state === 'completed' && rec.result?.proofData) {
      saveProof(proofsDir, rec.id, rec.result.proofData, deps.logger);
    }
    this.checkIdle();
  }

  // -------------------------------------------------------------------------- restart

  /**
   * Brings back every stored job (docs/decisions.md, Durable jobs), before any worker connects:
   * records for the mirror (terminal jobs answer WaitJobResult and WatchJob with their history), and
   * one `restoreJob` event each for the scheduler, terminal jobs in termination order first, then the
   * others in submission order. Returns how many of each.
   */
  async restore(): Promise<{ terminal: number; queued: number; running: number }> {
    const counts = { terminal: 0, queued: 0, running: 0 };
    const stored = await this.opts.journal.load();
    const restored: { rec: JobRecord }[] = [];
    for (const job of stored) {
      const rec = await restoreRecord(job, this.opts.deps.blobs, this.opts.journal, (r, at, event) => this.table.apply(r, at, event));
      this.table.add(rec);
      restored.push({ rec });
    }
    const terminalAt = (r: JobRecord): number => r.terminalAt ?? r.createdAt;
    const ended = restored.filter(({ rec }) => rec.terminal).sort((a, b) => terminalAt(a.rec) - terminalAt(b.rec));
    const open = restored.filter(({ rec }) => !rec.terminal).sort((a, b) => a.rec.createdAt - b.rec.createdAt);
    for (const { rec } of [...ended, ...open]) {
      const status = rec.state;
      if (rec.terminal) counts.terminal++;
      else if (status === 'queued') counts.queued++;
      else counts.running++;
      if (!rec.terminal && !this.opts.mock) {
        this.openRelays(rec);
        this.readLocalSources(rec);
      }
      this.opts.deps.post({
        type: 'restoreJob',
        jobId: rec.id,
        spec: specOfRestored(rec, this.opts.deps.blobs),
        status,
        attempt: rec.attempt,
        failedAttempts: [...rec.failedAttempts],
        submittedAt: rec.createdAt,
        ...(rec.terminalAt !== undefined ? { terminatedAt: rec.terminalAt } : {}),
        replayable: replayable(rec),
      });
    }
    return counts;
  }

  /** Shutdown: waits for the records being written. */
  settle(): Promise<void> {
    return this.opts.journal.settle();
  }

  /** Shutdown: stops every job's sources and relays (its held calls are answered already). */
  abortAll(): void {
    for (const rec of this.table.values()) this.detach(rec);
  }

  // -------------------------------------------------------------------------- internals

  private build(rec: JobRecord, summary: CompletedSummary, at: EpochMs): BuiltResult {
    const built = buildResult(rec.meta, summary, at, this.opts.deps.blobs);
    for (const w of built.warnings) this.opts.deps.logger.error({ job_id: rec.id }, `job ${rec.id} result: ${w}`);
    return built;
  }

  private evictOne(jobId: string): JobRecord | undefined {
    const current = this.table.get(jobId);
    if (current?.pendingTerminal) {
      // Its terminal event is being written: it goes once that is shown.
      current.evictWhenRecorded = true;
      return undefined;
    }
    const rec = this.table.delete(jobId);
    if (!rec) return undefined;
    if (!rec.terminal) {
      // Not expected (only terminal jobs are evicted), but nothing may stay attached to a dropped job.
      this.detach(rec);
      for (const o of [...rec.observers]) if (o instanceof JobWatcher) this.opts.endWatcher(o);
      if (this.holdsElf(rec) && rec.accepted) this.opts.programs.releaseElf(rec.hashId);
    }
    this.releaseBlobs(rec);
    return rec;
  }

  /** Stops the job's sources and relays and answers its held WaitJobResult calls. */
  private detach(rec: JobRecord): void {
    rec.sourceAbort?.abort();
    rec.relays.input?.abort();
    rec.relays.hints?.abort();
    for (const answer of [...rec.waiters]) answer();
  }

  private releaseBlobs(rec: JobRecord): void {
    this.opts.deps.blobs.release(rec.requestBlobIds);
    if (rec.result) this.opts.deps.blobs.release(rec.result.blobIds);
  }

  /** Workers are sent a setup's program from memory, so a real (not mocked) setup holds its ELF bytes. */
  private holdsElf(rec: JobRecord): boolean {
    return rec.kind === 'setup' && !this.opts.mock;
  }

  private newRelay(jobId: string, kind: RelayKind): JobRelay {
    const { deps } = this.opts;
    return new JobRelay({
      jobId,
      kind,
      encode: (m) => deps.encodeWorkerMessage(m),
      target: (id) => deps.link(id),
      maxHintsBatchBytes: this.hintsBatchBytes,
      onBatchTooLarge: () => deps.metrics.limitHit('hints_batch_bytes'),
      onFailure: (reason) => {
        const rec = this.table.get(jobId);
        if (!rec || rec.terminal) return;
        deps.logger.warn({ job_id: jobId, relay: kind, reason }, `job ${jobId}: ${kind} stream failed: ${reason}`);
        deps.post({ type: 'failJob', jobId, failure: { kind: 'input', reason } });
      },
    });
  }

  private checkIdle(): void {
    if (this.idleWaiters.length === 0 || this.activeCount() > 0) return;
    const ready = this.idleWaiters;
    this.idleWaiters = [];
    for (const r of ready) r();
  }
}
