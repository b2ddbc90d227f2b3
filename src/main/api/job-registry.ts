/** The client API's jobs: lookup, the scheduler's events, and what each job holds until it ends or is evicted. */
import { apiErrors } from '../../shared/errors';
import type { EpochMs, JobEventBody, LinkId, RetryReasonName } from '../../shared/scheduler/types';
import type { TaskDataSource } from '../cluster/service';
import { ApiFailure } from './grpc-errors';
import { JobRecord, JobMirror, type DataMode, type LocalSourceRef, type RecordedEvent } from './job-mirror';
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

  constructor(private readonly opts: JobRegistryOptions) {}

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
    if (!this.opts.mock) {
      if (isRelayed(rec.input)) rec.relays.input = this.newRelay(rec.id, 'input');
      if (isRelayed(rec.hints)) rec.relays.hints = this.newRelay(rec.id, 'hints');
    }
    this.table.add(rec);
  }

  /** Starts reading the job's `file://` / `unix://` sources into its relays. */
  startLocalSources(rec: JobRecord, parsed: ParsedJob): void {
    if (parsed.input.kind === 'local') rec.localSources.input = { path: parsed.input.path, source: parsed.input.source };
    if (parsed.hints.kind === 'local') rec.localSources.hints = { path: parsed.hints.path, source: parsed.hints.source };
    this.readLocalSources(rec);
  }

  private readLocalSources(rec: JobRecord): void {
    const start = (d: LocalSourceRef | undefined, relay: JobRelay | undefined): void => {
      if (!d || !relay) return;
      rec.sourceAbort ??= new AbortController();
      startLocalSource(d.path, d.source, relay, rec.sourceAbort.signal).catch((err: unknown) =>
        relay.fail(`${d.source} source ${d.path} failed: ${err instanceof Error ? err.message : String(err)}`),
      );
    };
    start(rec.localSources.input, rec.relays.input);
    start(rec.localSources.hints, rec.relays.hints);
  }

  /**
   * An attempt failed and the job waits for the next one: that attempt reads its streamed data again
   * from the start, through fresh relays (hints sequence numbers restart at 0). Only jobs whose data
   * can be read again are retried (inline data, `file://` sources).
   */
  retried(jobId: string, reason: RetryReasonName): void {
    const rec = this.table.get(jobId);
    if (!rec || rec.terminal) return;
    this.opts.deps.metrics.jobRetried(rec.kind, reason);
    if (!rec.relays.input && !rec.relays.hints) return;
    rec.sourceAbort?.abort();
    rec.sourceAbort = undefined;
    rec.relays.input?.abort();
    rec.relays.hints?.abort();
    rec.relays = {};
    if (isRelayed(rec.input)) rec.relays.input = this.newRelay(rec.id, 'input');
    if (isRelayed(rec.hints)) rec.relays.hints = this.newRelay(rec.id, 'hints');
    this.readLocalSources(rec);
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

  onEvent(jobId: string, at: EpochMs, body: JobEventBody): void {
    const rec = this.table.get(jobId);
    if (!rec || rec.terminal) return;
    let added: RecordedEvent[];
    if (body.kind === 'completed') {
      const built = this.build(rec, body.result, at);
      added = this.table.apply(rec, at, { kind: 'completed', result: built });
    } else {
      added = this.table.apply(rec, at, body);
    }
    for (const e of added) {
      if (e.kind === 'started') this.opts.deps.metrics.jobStarted();
      for (const o of [...rec.observers]) o.push(e);
    }
    if (rec.terminal && rec.accepted) this.afterTerminal(rec);
  }

  setLinks(jobId: string, linkIds: LinkId[]): void {
    const rec = this.table.get(jobId);
    if (rec && !rec.terminal) {
      rec.relays.input?.setLinks(linkIds);
      rec.relays.hints?.setLinks(linkIds);
    }
  }

  evict(jobIds: string[]): void {
    for (const id of jobIds) this.evictOne(id);
    this.checkIdle();
  }

  /** Everything a terminal job sets off, once. */
  afterTerminal(rec: JobRecord): void {
    const { deps, programs, webhook } = this.opts;
    const at = rec.terminalAt ?? Date.now();
    const outcome = outcomeOf(rec);
    deps.metrics.jobFinished(rec.kind, outcome, (at - rec.createdAt) / 1000, { wasStarted: rec.startedAt !== undefined });
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

  private evictOne(jobId: string): void {
    const rec = this.table.delete(jobId);
    if (!rec) return;
    if (!rec.terminal) {
      // Not expected (only terminal jobs are evicted), but nothing may stay attached to a dropped job.
      this.detach(rec);
      for (const o of [...rec.observers]) if (o instanceof JobWatcher) this.opts.endWatcher(o);
      if (this.holdsElf(rec) && rec.accepted) this.opts.programs.releaseElf(rec.hashId);
    }
    this.releaseBlobs(rec);
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
