/**
 * The client API (`zisk.coordinator.v1.ZiskCoordinatorApi`) on the main thread.
 *
 * Handlers validate at the edge (client-api.md §2.0, decisions D2), keep bulk bytes in the blob store,
 * and talk to the scheduler only by posting events and applying its effects. The job table mirrors
 * what the scheduler reports so WaitJobResult and WatchJob answer from memory without a round trip.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { ServiceDefinition } from '@grpc/proto-loader';
import { CLIENT_API_PROTO, CLIENT_API_SERVICE, serviceDefinition } from '../shared/proto';
import type { Config } from '../shared/config/types';
import type { Logger } from '../shared/logging';
import { apiErrors, ERROR_CODES, type ApiErrorData } from '../shared/errors';
import type {
  BlobId,
  EpochMs,
  InputSpec,
  JobEventBody,
  JobKind,
  JobSpec,
  ProofKind,
  SchedulerEffect,
  SchedulerEvent,
} from '../shared/scheduler-protocol';
import type { BlobStore } from './blob-store';
import type { CoordinatorMetrics, GrpcStatusName } from './metrics';
import type { Lifecycle } from './lifecycle';
import type { ElfSource, TaskDataSource } from './cluster-service';
import type { WorkerLink } from './worker-link';
import { ApiFailure, internalFailure, toServiceError } from './grpc-errors';
import { JobRecord, JobTable, JobWatcher, parseUuid, type DataMode, type JobEventWire, type RecordedEvent } from './jobs';
import { HASH_ID_PATTERN, ProgramRegistry, resolveCacheDir } from './programs';
import { buildResult, failureText, type BuiltResult, type JobKindResponseWire, type RequestMeta } from './results';
import { JobRelay, RelayError } from './relays';
import { QUIC_UNSUPPORTED_MESSAGE, resolveLocalUri, startLocalSource, type LocalSourceKind } from './local-sources';
import { WEBHOOK_CANCELLED_MESSAGE, WEBHOOK_FAILURE_MESSAGE, WebhookNotifier } from './webhook';

export interface ApiServiceDeps {
  config: Config;
  post(event: SchedulerEvent): void;
  blobs: BlobStore;
  /** Worker links by id, for input/hints relays. */
  link(id: number): WorkerLink | undefined;
  /** Encodes a CoordinatorMessage object once (relays write the same bytes to every worker). */
  encodeWorkerMessage(message: Record<string, unknown>): Buffer;
  metrics: CoordinatorMetrics;
  logger: Logger;
  lifecycle: Lifecycle;
}

/** WaitJobResult hold (client-api.md §2.3). */
export const WAIT_DEFAULT_SECONDS = 5;
export const WAIT_MIN_SECONDS = 1;
export const WAIT_MAX_SECONDS = 3600;
/** How long before the client's own deadline a held WaitJobResult answers (at most). */
export const WAIT_DEADLINE_MARGIN_MS = 250;
/** A scheduler that does not answer a submit or cancel within this is broken; the client gets INTERNAL. */
const SCHEDULER_REPLY_TIMEOUT_MS = 30_000;
/** Webhook deliveries in flight get this long at shutdown before they are abandoned. */
const WEBHOOK_CLOSE_GRACE_MS = 2_000;

const PROOF_KIND_NAMES: Record<ProofKind, string> = { 1: 'Stark', 2: 'StarkMinimal', 3: 'Plonk' };

// ---------------------------------------------------------------------------------------------
// Decoded request shapes (proto-loader objects: `kind` names the member set in a oneof)
// ---------------------------------------------------------------------------------------------

interface TimestampMsg {
  seconds?: string | number;
  nanos?: number;
}

interface InputKindMsg {
  kind?: string;
  inline?: { data?: Buffer } | null;
  stream_uri?: string;
}

interface ProofMsg {
  proof_id?: string;
  hash_id?: string;
  verification_key?: Buffer;
  proof_kind?: number;
  data?: Buffer;
  public_inputs?: Buffer;
}

interface JobKindMsg {
  kind?: string;
  setup?: { hash_id?: string; with_hints?: boolean; program_name?: string } | null;
  prove?: { hash_id?: string; input?: InputKindMsg | null; proof_timeout?: TimestampMsg | null; proof_dest?: number; hints?: InputKindMsg | null } | null;
  execute?: { hash_id?: string; input?: InputKindMsg | null; execute_timeout?: TimestampMsg | null; hints?: InputKindMsg | null } | null;
  wrap?: { proof?: ProofMsg | null; proof_dest?: number; wrap_timeout?: TimestampMsg | null } | null;
}

interface JobRequestMsg {
  job_kind?: JobKindMsg | null;
}

interface JobIdMsg {
  job_id?: string;
}

interface WaitMsg extends JobIdMsg {
  timeout_seconds?: number;
  _timeout_seconds?: string;
}

interface PushMsg extends JobIdMsg {
  chunk?: { data?: Buffer } | null;
}

interface WaitResponse {
  job_id: string;
  job_status: ReturnType<JobRecord['status']>;
  result?: JobKindResponseWire;
}

type ParsedData =
  | { kind: 'none' }
  | { kind: 'inline'; data: Buffer }
  | { kind: 'grpc'; uri: string }
  | { kind: 'local'; uri: string; path: string; source: LocalSourceKind };

interface ParsedJob {
  kind: JobKind;
  meta: RequestMeta;
  input: ParsedData;
  hints: ParsedData;
  deadline?: EpochMs;
  wrapProof?: Buffer;
}

type SubmitOutcome = { ok: true } | { ok: false; error: ApiErrorData };
type CancelOutcome = { found: boolean; cancelled: boolean };

function invalid(message: string): ApiFailure {
  return new ApiFailure(apiErrors.invalidArgument(message));
}

function invalidJobState(reason: string): ApiFailure {
  return new ApiFailure(apiErrors.invalidJobState(reason));
}

/** Smallest and largest valid `google.protobuf.Timestamp` seconds (0001-01-01 .. 9999-12-31). */
const TS_MIN_SECONDS = -62_135_596_800;
const TS_MAX_SECONDS = 253_402_300_799;

/** An absolute deadline from an optional Timestamp; out-of-range values count as absent (as upstream). */
function deadlineOf(ts: TimestampMsg | null | undefined): EpochMs | undefined {
  if (!ts) return undefined;
  const seconds = Number(ts.seconds ?? 0);
  const nanos = ts.nanos ?? 0;
  if (!Number.isSafeInteger(seconds) || seconds < TS_MIN_SECONDS || seconds > TS_MAX_SECONDS) return undefined;
  if (!Number.isInteger(nanos) || nanos < 0 || nanos > 999_999_999) return undefined;
  return seconds * 1000 + Math.floor(nanos / 1_000_000);
}

function isProofKind(n: number | undefined): n is ProofKind {
  return n === 1 || n === 2 || n === 3;
}

export class ApiService implements TaskDataSource, ElfSource {
  readonly service: ServiceDefinition = serviceDefinition(CLIENT_API_PROTO, CLIENT_API_SERVICE);

  private readonly mock: boolean;
  private readonly table = new JobTable();
  private readonly programs: ProgramRegistry;
  private readonly webhook: WebhookNotifier | undefined;
  private nextRequestId = 1;
  private readonly pendingSubmits = new Map<number, (o: SubmitOutcome) => void>();
  private readonly pendingCancels = new Map<number, (o: CancelOutcome) => void>();
  /** Held WaitJobResult calls: each entry answers its call now. */
  private readonly waits = new Set<() => void>();
  private readonly watchers = new Map<JobWatcher, grpc.ServerWritableStream<JobIdMsg, JobEventWire>>();
  private idleWaiters: (() => void)[] = [];
  private closed = false;

  constructor(private readonly deps: ApiServiceDeps) {
    this.mock = deps.config.backend.mode === 'mock';
    this.programs = new ProgramRegistry({
      cacheDir: resolveCacheDir(deps.config.coordinator.cache_dir),
      persist: !this.mock,
      logger: deps.logger,
      onNewProgram: () => deps.metrics.programRegistered(),
    });
    const url = deps.config.coordinator.webhook_url;
    this.webhook = url ? new WebhookNotifier({ url, logger: deps.logger }) : undefined;
  }

  /** Loads the program cache and replays recorded setups to the scheduler. Before listening. */
  async init(): Promise<void> {
    const restored = await this.programs.init();
    for (const s of restored) {
      this.deps.post({ type: 'restoreSetup', hashId: s.hashId, withHints: s.withHints, programName: s.programName, vkHex: s.vkHex });
    }
  }

  implementation(): grpc.UntypedServiceImplementation {
    return {
      RegisterGuestProgram: this.unary('RegisterGuestProgram', (req: { zisk_elf?: Buffer }) => this.registerProgram(req)),
      JobRequest: this.unary('JobRequest', (req: JobRequestMsg) => this.jobRequest(req)),
      WaitJobResult: (call: grpc.ServerUnaryCall<WaitMsg, WaitResponse>, cb: grpc.sendUnaryData<WaitResponse>) =>
        this.waitJobResult(call, cb),
      WatchJob: (call: grpc.ServerWritableStream<JobIdMsg, JobEventWire>) => this.watchJob(call),
      PushJobInput: (call: grpc.ServerReadableStream<PushMsg, object>, cb: grpc.sendUnaryData<object>) =>
        this.push('input', call, cb),
      PushJobHintsInput: (call: grpc.ServerReadableStream<PushMsg, object>, cb: grpc.sendUnaryData<object>) =>
        this.push('hints', call, cb),
      CancelJob: this.unary('CancelJob', (req: JobIdMsg) => this.cancelJob(req)),
    };
  }

  /** Applies one job-facing effect; false when the effect is not for this service. */
  apply(effect: SchedulerEffect): boolean {
    switch (effect.type) {
      case 'submitResult': {
        const resolve = this.pendingSubmits.get(effect.requestId);
        this.pendingSubmits.delete(effect.requestId);
        resolve?.(effect.ok ? { ok: true } : { ok: false, error: { code: effect.code, message: effect.message } });
        return true;
      }
      case 'cancelResult': {
        const resolve = this.pendingCancels.get(effect.requestId);
        this.pendingCancels.delete(effect.requestId);
        resolve?.({ found: effect.found, cancelled: effect.cancelled });
        return true;
      }
      case 'jobEvent':
        this.onJobEvent(effect.jobId, effect.at, effect.event);
        return true;
      case 'jobLinks': {
        const rec = this.table.get(effect.jobId);
        if (rec && !rec.terminal) {
          rec.relays.input?.setLinks(effect.linkIds);
          rec.relays.hints?.setLinks(effect.linkIds);
        }
        return true;
      }
      case 'jobsEvicted':
        for (const id of effect.jobIds) this.evict(id);
        this.checkIdle();
        return true;
      case 'setupCompleted':
        void this.programs.recordSetup({
          hashId: effect.hashId,
          withHints: effect.withHints,
          programName: effect.programName,
          vkHex: effect.vkHex,
        });
        return true;
      default:
        return false;
    }
  }

  /** The job's data for its contribution tasks; undefined (the dispatch fails the job) if any is gone. */
  contributionData(jobId: string): ReturnType<TaskDataSource['contributionData']> {
    const rec = this.table.get(jobId);
    if (!rec) return undefined;
    const inline = (m: DataMode): { ok: boolean; data?: Buffer } => {
      if (m.kind !== 'inline') return { ok: true };
      const data = this.deps.blobs.get(m.blobId);
      if (!data) this.deps.logger.error({ job_id: jobId, blob: m.blobId }, `job ${jobId}: inline data released before dispatch`);
      return { ok: data !== undefined, data };
    };
    const input = inline(rec.input);
    const hints = inline(rec.hints);
    if (!input.ok || !hints.ok) return undefined;
    const streamUri = rec.hints.kind === 'grpc' || rec.hints.kind === 'local' ? rec.hints.uri : undefined;
    return { hashId: rec.hashId, inputData: input.data, hintsData: hints.data, hintsStreamUri: streamUri };
  }

  elfBytes(hashId: string): Buffer | undefined {
    return this.programs.elfBytes(hashId);
  }

  /** Non-terminal jobs (queued or running). */
  activeJobCount(): number {
    return this.table.activeCount();
  }

  /** Resolves when no job is queued or running. */
  waitIdle(): Promise<void> {
    if (this.activeJobCount() === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Ends every open watch stream and pending wait; stops timers. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const answer of [...this.waits]) answer();
    const shuttingDown = toServiceError(apiErrors.shuttingDown());
    for (const [watcher, call] of [...this.watchers]) {
      watcher.cancel();
      call.emit('error', shuttingDown);
    }
    for (const rec of this.table.values()) {
      rec.sourceAbort.abort();
      rec.relays.input?.abort();
      rec.relays.hints?.abort();
    }
    for (const resolve of this.pendingSubmits.values()) resolve({ ok: false, error: apiErrors.shuttingDown() });
    this.pendingSubmits.clear();
    for (const resolve of this.pendingCancels.values()) resolve({ found: true, cancelled: false });
    this.pendingCancels.clear();
    await Promise.all([this.webhook?.close(WEBHOOK_CLOSE_GRACE_MS), this.programs.close()]);
    this.deps.logger.debug('api service closed');
  }

  // ===========================================================================================
  // Plumbing
  // ===========================================================================================

  /** Starts timing a call; the returned function records it once with its final status. */
  private track(method: string): (status: GrpcStatusName | number) => void {
    const t0 = performance.now();
    let recorded = false;
    return (status) => {
      if (recorded) return;
      recorded = true;
      this.deps.metrics.recordRequest(method, status, (performance.now() - t0) / 1000);
    };
  }

  /** An ApiFailure as is; anything else becomes INTERNAL with a trace id logged next to the cause. */
  private errorOf(method: string, err: unknown): grpc.ServiceError {
    if (err instanceof ApiFailure) return toServiceError(err.data);
    const { traceId, error } = internalFailure();
    this.deps.logger.error(
      { method, trace_id: traceId, err: err instanceof Error ? err.message : String(err), stack: err instanceof Error ? err.stack : undefined },
      `${method} failed with an internal error (trace id ${traceId})`,
    );
    return toServiceError(error);
  }

  private unary<Req, Res>(method: string, fn: (req: Req) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
    return (call, callback) => {
      const done = this.track(method);
      fn(call.request).then(
        (res) => {
          done(call.cancelled ? grpc.status.CANCELLED : grpc.status.OK);
          callback(null, res);
        },
        (err: unknown) => {
          const se = this.errorOf(method, err);
          done(se.code);
          callback(se);
        },
      );
    };
  }

  /** The canonical job id, or the §2.0 `invalid UUID` error. */
  private jobIdOf(rawId: string | undefined): string {
    const text = rawId ?? '';
    const parsed = parseUuid(text);
    if (!parsed.ok) throw invalid(`invalid UUID: ${text}`);
    return parsed.uuid;
  }

  private find(jobId: string): JobRecord {
    const rec = this.table.get(jobId);
    if (!rec || !rec.accepted) throw new ApiFailure(apiErrors.jobNotFound(jobId));
    return rec;
  }

  private lookup(rawId: string | undefined): JobRecord {
    return this.find(this.jobIdOf(rawId));
  }

  private checkIdle(): void {
    if (this.idleWaiters.length === 0 || this.activeJobCount() > 0) return;
    const ready = this.idleWaiters;
    this.idleWaiters = [];
    for (const r of ready) r();
  }

  /** Posts a request to the scheduler and waits for its matching reply, bounded in time. */
  private request<T>(pending: Map<number, (o: T) => void>, build: (requestId: number) => SchedulerEvent, what: string): Promise<T> {
    const requestId = this.nextRequestId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(requestId);
        reject(new Error(`the scheduler did not answer a ${what} within ${SCHEDULER_REPLY_TIMEOUT_MS} ms`));
      }, SCHEDULER_REPLY_TIMEOUT_MS);
      pending.set(requestId, (o) => {
        clearTimeout(timer);
        resolve(o);
      });
      this.deps.post(build(requestId));
    });
  }

  // ===========================================================================================
  // RegisterGuestProgram
  // ===========================================================================================

  private async registerProgram(req: { zisk_elf?: Buffer }): Promise<{ hash_id: string }> {
    const elf = req.zisk_elf;
    if (!elf || elf.length === 0) throw invalid('zisk_elf must not be empty');
    const size = elf.length;
    const { hashId, created } = await this.programs.register(elf);
    this.deps.logger.info(
      { hash_id: hashId, bytes: size, created },
      created ? `registered guest program ${hashId} (${size} bytes)` : `guest program ${hashId} already registered`,
    );
    return { hash_id: hashId };
  }

  // ===========================================================================================
  // JobRequest
  // ===========================================================================================

  private parseData(msg: InputKindMsg, what: 'input' | 'hints'): ParsedData {
    if (msg.kind === 'inline') return { kind: 'inline', data: msg.inline?.data ?? Buffer.alloc(0) };
    const uri = msg.stream_uri ?? '';
    if (/^grpc:\/\//i.test(uri)) return { kind: 'grpc', uri };
    if (/^quic:\/\//i.test(uri)) throw invalid(QUIC_UNSUPPORTED_MESSAGE);
    const r = resolveLocalUri(uri, this.deps.config.coordinator.inputs_dir);
    if (!r.ok) throw invalid(what === 'hints' ? `hints: ${r.message}` : r.message);
    return { kind: 'local', uri, path: r.path, source: r.kind };
  }

  /** Shape and format checks of decisions D2, in order; throws the first failure. */
  private parseJobRequest(req: JobRequestMsg): ParsedJob {
    const jk = req.job_kind;
    if (!jk) throw invalid('job_kind must be set');
    switch (jk.kind) {
      case 'setup': {
        const s = jk.setup ?? {};
        const hashId = s.hash_id ?? '';
        if (!HASH_ID_PATTERN.test(hashId)) throw invalid(`invalid hash_id: ${hashId}`);
        return {
          kind: 'setup',
          meta: { kind: 'setup', hashId, withHints: s.with_hints === true, programName: s.program_name ?? '' },
          input: { kind: 'none' },
          hints: { kind: 'none' },
        };
      }
      case 'prove':
      case 'execute': {
        const kind = jk.kind;
        const p = (kind === 'prove' ? jk.prove : jk.execute) ?? {};
        if (!p.input) throw invalid('input must be set');
        if (!p.input.kind) throw invalid('input.kind must be set');
        if (p.hints && !p.hints.kind) throw invalid('input.kind must be set');
        const hashId = p.hash_id ?? '';
        if (!HASH_ID_PATTERN.test(hashId)) throw invalid(`invalid hash_id: ${hashId}`);
        const input = this.parseData(p.input, 'input');
        const hints = p.hints ? this.parseData(p.hints, 'hints') : ({ kind: 'none' } as const);
        const timeout = kind === 'prove' ? jk.prove?.proof_timeout : jk.execute?.execute_timeout;
        const dest = kind === 'prove' ? jk.prove?.proof_dest : 1;
        const proofKind: ProofKind = isProofKind(dest) ? dest : 1;
        const meta: RequestMeta = kind === 'prove' ? { kind, hashId, proofKind } : { kind, hashId };
        return { kind, meta, input, hints, deadline: deadlineOf(timeout) };
      }
      case 'wrap': {
        const w = jk.wrap ?? {};
        const proof = w.proof;
        if (!proof) throw invalid('wrap.proof must be set');
        const proofId = proof.proof_id ?? '';
        const id = parseUuid(proofId);
        if (!id.ok) throw invalid(`invalid wrap.proof: invalid proof_id: invalid UUID '${proofId}': ${id.detail}`);
        const from = proof.proof_kind ?? 0;
        if (!isProofKind(from)) throw invalid(`invalid wrap.proof: invalid proof_kind ${from}`);
        const dest = w.proof_dest ?? 0;
        if (!isProofKind(dest)) throw invalid('invalid proof_dest');
        if (dest === 1) {
          throw new ApiFailure(apiErrors.invalidProofConversion(PROOF_KIND_NAMES[from], PROOF_KIND_NAMES[dest]));
        }
        return {
          kind: 'wrap',
          meta: {
            kind: 'wrap',
            proofDest: dest,
            hashId: proof.hash_id ?? '',
            verificationKey: proof.verification_key ?? Buffer.alloc(0),
            publicInputs: proof.public_inputs ?? Buffer.alloc(0),
          },
          input: { kind: 'none' },
          hints: { kind: 'none' },
          wrapProof: proof.data ?? Buffer.alloc(0),
          deadline: deadlineOf(w.wrap_timeout),
        };
      }
      default:
        throw invalid('job_kind.kind must be set');
    }
  }

  private async jobRequest(req: JobRequestMsg): Promise<{ job_id: string }> {
    const parsed = this.parseJobRequest(req);
    const { meta } = parsed;
    if (meta.kind !== 'wrap' && !this.programs.has(meta.hashId)) {
      throw new ApiFailure(apiErrors.programNotFound(meta.hashId));
    }
    if (!this.deps.lifecycle.acceptingJobs || this.closed) throw new ApiFailure(apiErrors.shuttingDown());
    // Workers are sent the ELF of a setup from memory; a cache file that vanished means "not found".
    const holdsElf = meta.kind === 'setup' && !this.mock;
    if (holdsElf && !(await this.programs.acquireElf(meta.hashId))) {
      throw new ApiFailure(apiErrors.programNotFound(meta.hashId));
    }

    const jobId = randomUUID();
    const blobs = this.deps.blobs;
    const requestBlobs: BlobId[] = [];
    const toMode = (d: ParsedData): DataMode => {
      if (d.kind === 'inline') {
        const blobId = blobs.put(d.data);
        requestBlobs.push(blobId);
        return { kind: 'inline', blobId };
      }
      if (d.kind === 'grpc' || d.kind === 'local') return { kind: d.kind, uri: d.uri };
      return { kind: 'none' };
    };
    const input = toMode(parsed.input);
    const hints = toMode(parsed.hints);
    const specOf = (m: DataMode): InputSpec => {
      switch (m.kind) {
        case 'inline':
          return { kind: 'inline', blobId: m.blobId, bytes: blobs.get(m.blobId)?.length ?? 0 };
        case 'grpc':
          return { kind: 'grpc' };
        case 'local':
          return { kind: 'local', uri: m.uri };
        case 'none':
          return { kind: 'none' };
      }
    };
    let spec: JobSpec;
    const deadline = parsed.deadline !== undefined ? { deadline: parsed.deadline } : {};
    switch (meta.kind) {
      case 'setup':
        spec = { kind: 'setup', hashId: meta.hashId, withHints: meta.withHints, programName: meta.programName };
        break;
      case 'prove':
      case 'execute':
        spec = {
          kind: meta.kind,
          hashId: meta.hashId,
          input: specOf(input),
          hints: specOf(hints),
          proofKind: meta.kind === 'prove' ? meta.proofKind : 1,
          ...deadline,
        };
        break;
      case 'wrap': {
        const proofBlobId = blobs.put(parsed.wrapProof ?? Buffer.alloc(0));
        requestBlobs.push(proofBlobId);
        spec = { kind: 'wrap', proofBlobId, proofDest: meta.proofDest, ...deadline };
        break;
      }
    }

    // The record exists before the submit is posted: the scheduler's first events for the job may
    // arrive in the same batch as (or before) its answer.
    const rec = new JobRecord(jobId, parsed.kind, meta, input, hints, Date.now());
    rec.requestBlobIds.push(...requestBlobs);
    if (!this.mock) {
      if (input.kind === 'grpc' || input.kind === 'local') rec.relays.input = this.newRelay(jobId, 'input');
      if (hints.kind === 'grpc' || hints.kind === 'local') rec.relays.hints = this.newRelay(jobId, 'hints');
    }
    this.table.add(rec);

    let outcome: SubmitOutcome;
    try {
      outcome = await this.request(this.pendingSubmits, (requestId) => ({ type: 'submitJob', requestId, jobId, spec }), 'submit');
    } catch (err) {
      // Whatever the scheduler does later with this job, nobody will ever know its id.
      this.deps.post({ type: 'cancelJob', requestId: this.nextRequestId++, jobId });
      this.discard(rec, holdsElf);
      throw err;
    }
    if (!outcome.ok) {
      this.discard(rec, holdsElf);
      const code = outcome.error.code in ERROR_CODES ? outcome.error.code : 'INTERNAL';
      throw new ApiFailure({ code, message: outcome.error.message });
    }
    rec.accepted = true;
    this.deps.logger.info({ job_id: jobId, kind: rec.kind, hash_id: meta.hashId || undefined }, `job ${jobId} accepted (${rec.kind})`);
    if (rec.terminal) this.afterTerminal(rec);
    else if (!this.mock) this.startLocalSources(rec, parsed);
    return { job_id: jobId };
  }

  /** A refused submit leaves no record and no blob behind. */
  private discard(rec: JobRecord, heldElf: boolean): void {
    this.table.delete(rec.id);
    rec.relays.input?.abort();
    rec.relays.hints?.abort();
    rec.sourceAbort.abort();
    this.deps.blobs.release(rec.requestBlobIds);
    if (rec.result) this.deps.blobs.release(rec.result.blobIds);
    if (heldElf) this.programs.releaseElf(rec.hashId);
    for (const answer of [...rec.waiters]) answer();
  }

  private newRelay(jobId: string, kind: 'input' | 'hints'): JobRelay {
    return new JobRelay({
      jobId,
      kind,
      encode: (m) => this.deps.encodeWorkerMessage(m),
      target: (id) => this.deps.link(id),
      onFailure: (reason) => {
        const rec = this.table.get(jobId);
        if (!rec || rec.terminal) return;
        this.deps.logger.warn({ job_id: jobId, relay: kind, reason }, `job ${jobId}: ${kind} stream failed: ${reason}`);
        this.deps.post({ type: 'failJob', jobId, failure: { kind: 'input', reason } });
      },
    });
  }

  private startLocalSources(rec: JobRecord, parsed: ParsedJob): void {
    const start = (d: ParsedData, relay: JobRelay | undefined): void => {
      if (d.kind !== 'local' || !relay) return;
      startLocalSource(d.path, d.source, relay, rec.sourceAbort.signal).catch((err: unknown) =>
        relay.fail(`${d.source} source ${d.path} failed: ${err instanceof Error ? err.message : String(err)}`),
      );
    };
    start(parsed.input, rec.relays.input);
    start(parsed.hints, rec.relays.hints);
  }

  // ===========================================================================================
  // Scheduler job events
  // ===========================================================================================

  private onJobEvent(jobId: string, at: EpochMs, body: JobEventBody): void {
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
      if (e.kind === 'started') this.deps.metrics.jobStarted();
      for (const o of [...rec.observers]) o.push(e);
    }
    if (rec.terminal && rec.accepted) this.afterTerminal(rec);
  }

  private build(rec: JobRecord, summary: Extract<JobEventBody, { kind: 'completed' }>['result'], at: EpochMs): BuiltResult {
    const built = buildResult(rec.meta, summary, at, this.deps.blobs);
    for (const w of built.warnings) this.deps.logger.error({ job_id: rec.id }, `job ${rec.id} result: ${w}`);
    return built;
  }

  /** Everything a terminal job sets off, once. */
  private afterTerminal(rec: JobRecord): void {
    const at = rec.terminalAt ?? Date.now();
    const outcome = rec.state === 'completed' ? 'success' : rec.state === 'cancelled' ? 'cancelled' : 'failure';
    this.deps.metrics.jobFinished(rec.kind, outcome, (at - rec.createdAt) / 1000, { wasStarted: rec.startedAt !== undefined });
    // The scheduler logs outcomes with their cause; this line adds what only the API side knows.
    this.deps.logger.debug(
      { job_id: rec.id, kind: rec.kind, outcome, duration_ms: at - rec.createdAt, reason: rec.failure ? failureText(rec.failure) : undefined },
      `job ${rec.id} ${rec.state}`,
    );

    rec.sourceAbort.abort();
    rec.relays.input?.abort();
    rec.relays.hints?.abort();
    for (const answer of [...rec.waiters]) answer();
    // Request bytes are no use once the job is over; a result that reuses one keeps it until eviction.
    const kept = new Set(rec.result?.blobIds ?? []);
    this.deps.blobs.release(rec.requestBlobIds.filter((id) => !kept.has(id)));
    rec.requestBlobIds.length = 0;
    if (rec.kind === 'setup' && !this.mock) {
      // whatever order the scheduler reports it in, a completed setup keeps its program's bytes
      if (rec.state === 'completed') this.programs.markSetUp(rec.hashId);
      this.programs.releaseElf(rec.hashId);
    }
    if (rec.kind !== 'setup') this.notifyWebhook(rec, at);
    if (rec.kind === 'prove' && rec.state === 'completed' && rec.result?.proofData) this.saveProof(rec.id, rec.result.proofData);
    this.checkIdle();
  }

  private notifyWebhook(rec: JobRecord, at: EpochMs): void {
    if (!this.webhook) return;
    const success = rec.state === 'completed';
    this.webhook.notify({
      jobId: rec.id,
      success,
      durationMs: at - (rec.startedAt ?? rec.createdAt),
      executedSteps: success ? (rec.result?.executedSteps ?? '0') : null,
      at,
      ...(success ? {} : { errorMessage: rec.state === 'cancelled' ? WEBHOOK_CANCELLED_MESSAGE : WEBHOOK_FAILURE_MESSAGE }),
      ...(success && rec.result?.proofData ? { proofData: rec.result.proofData } : {}),
    });
  }

  /** `[coordinator] proofs_dir`: `proof_<job_id>.bin`, written to a temp file and renamed. */
  private saveProof(jobId: string, data: Buffer): void {
    const dir = this.deps.config.coordinator.proofs_dir;
    if (!dir) return;
    const final = path.join(dir, `proof_${jobId}.bin`);
    const tmp = path.join(dir, `.proof_${jobId}.${randomBytes(4).toString('hex')}.tmp`);
    (async () => {
      await fs.promises.mkdir(dir, { recursive: true });
      try {
        await fs.promises.writeFile(tmp, data, { flag: 'wx' });
        await fs.promises.rename(tmp, final);
      } catch (err) {
        await fs.promises.rm(tmp, { force: true }).catch(() => undefined);
        throw err;
      }
    })().then(
      () => this.deps.logger.debug({ job_id: jobId, path: final, bytes: data.length }, 'proof saved'),
      (err: Error) => this.deps.logger.error({ job_id: jobId, path: final, err: err.message }, `could not save the proof of job ${jobId}`),
    );
  }

  private evict(jobId: string): void {
    const rec = this.table.delete(jobId);
    if (!rec) return;
    if (!rec.terminal) {
      // Not expected (only terminal jobs are evicted), but nothing may stay attached to a dropped job.
      rec.sourceAbort.abort();
      rec.relays.input?.abort();
      rec.relays.hints?.abort();
      for (const answer of [...rec.waiters]) answer();
      for (const o of [...rec.observers]) if (o instanceof JobWatcher) this.endWatcher(o);
      if (rec.kind === 'setup' && !this.mock && rec.accepted) this.programs.releaseElf(rec.hashId);
    }
    this.deps.blobs.release(rec.requestBlobIds);
    if (rec.result) this.deps.blobs.release(rec.result.blobIds);
  }

  // ===========================================================================================
  // WaitJobResult
  // ===========================================================================================

  private waitResponse(rec: JobRecord): WaitResponse {
    const res: WaitResponse = { job_id: rec.id, job_status: rec.status() };
    if (rec.state === 'completed' && rec.result) res.result = rec.result.response;
    return res;
  }

  private waitJobResult(call: grpc.ServerUnaryCall<WaitMsg, WaitResponse>, callback: grpc.sendUnaryData<WaitResponse>): void {
    const done = this.track('WaitJobResult');
    let rec: JobRecord;
    try {
      rec = this.lookup(call.request.job_id);
    } catch (err) {
      const se = this.errorOf('WaitJobResult', err);
      done(se.code);
      callback(se);
      return;
    }
    if (rec.terminal || this.closed) {
      done(grpc.status.OK);
      callback(null, this.waitResponse(rec));
      return;
    }
    const req = call.request;
    const present = req._timeout_seconds === 'timeout_seconds';
    const seconds = present
      ? Math.min(WAIT_MAX_SECONDS, Math.max(WAIT_MIN_SECONDS, req.timeout_seconds ?? 0))
      : WAIT_DEFAULT_SECONDS;
    let holdMs = seconds * 1000;
    const d = call.getDeadline();
    const deadlineMs = d instanceof Date ? d.getTime() : d;
    if (Number.isFinite(deadlineMs)) {
      const remaining = deadlineMs - Date.now();
      holdMs = Math.min(holdMs, Math.max(0, remaining - Math.min(WAIT_DEADLINE_MARGIN_MS, remaining / 10)));
    }
    let finished = false;
    const cleanup = (): void => {
      finished = true;
      clearTimeout(timer);
      rec.waiters.delete(answer);
      this.waits.delete(answer);
    };
    const answer = (): void => {
      if (finished) return;
      cleanup();
      done(grpc.status.OK);
      callback(null, this.waitResponse(rec));
    };
    const timer = setTimeout(answer, holdMs);
    rec.waiters.add(answer);
    this.waits.add(answer);
    call.on('cancelled', () => {
      if (finished) return;
      cleanup();
      done(grpc.status.CANCELLED);
    });
  }

  // ===========================================================================================
  // WatchJob
  // ===========================================================================================

  private watchJob(call: grpc.ServerWritableStream<JobIdMsg, JobEventWire>): void {
    const done = this.track('WatchJob');
    let rec: JobRecord;
    try {
      rec = this.lookup(call.request.job_id);
    } catch (err) {
      const se = this.errorOf('WatchJob', err);
      done(se.code);
      call.emit('error', se);
      return;
    }
    if (this.closed) {
      const se = toServiceError(apiErrors.shuttingDown());
      done(se.code);
      call.emit('error', se);
      return;
    }
    done(grpc.status.OK);
    const watcher: JobWatcher = new JobWatcher(
      {
        write: (event, written) => {
          call.write(event, () => written());
        },
        end: () => call.end(),
      },
      () => {
        rec.observers.delete(watcher);
        this.watchers.delete(watcher);
      },
    );
    this.watchers.set(watcher, call);
    for (const e of rec.history) watcher.push(e);
    if (watcher.done) return;
    rec.observers.add(watcher);
    call.on('cancelled', () => watcher.cancel());
  }

  private endWatcher(watcher: JobWatcher): void {
    const call = this.watchers.get(watcher);
    watcher.cancel();
    call?.end();
  }

  // ===========================================================================================
  // PushJobInput / PushJobHintsInput
  // ===========================================================================================

  private push(kind: 'input' | 'hints', call: grpc.ServerReadableStream<PushMsg, object>, callback: grpc.sendUnaryData<object>): void {
    const method = kind === 'input' ? 'PushJobInput' : 'PushJobHintsInput';
    const done = this.track(method);
    let rec: JobRecord | undefined;
    let relay: JobRelay | undefined;
    let finished = false;
    let chunks = 0;
    let bytes = 0;

    const release = (): void => {
      if (rec) rec.pushOpen[kind] = false;
    };
    const fail = (err: unknown): void => {
      if (finished) return;
      finished = true;
      release();
      // A client error mid-stream is still the end of this stream's data.
      relay?.end();
      const se = this.errorOf(method, err);
      done(se.code);
      // The call stays paused: whatever the client still sends is dropped with the call.
      callback(se);
    };
    const succeed = (): void => {
      if (finished) return;
      finished = true;
      release();
      relay?.end();
      if (rec) this.deps.logger.debug({ job_id: rec.id, kind, chunks, bytes }, `${method} stream ended`);
      done(grpc.status.OK);
      callback(null, {});
    };

    const first = (msg: PushMsg): void => {
      const jobId = this.jobIdOf(msg.job_id);
      if (!msg.chunk) throw invalid('chunk must be set');
      const r = this.find(jobId);
      if (r.terminal) throw invalidJobState(`job ${r.id} is already terminal (current: ${r.statusName()})`);
      const mode = kind === 'input' ? r.input : r.hints;
      if (mode.kind !== 'grpc') {
        const what = mode.kind === 'none' ? 'no' : mode.kind === 'inline' ? 'Inline' : 'StreamUri';
        throw invalidJobState(
          mode.kind === 'none'
            ? `job ${r.id} has ${what} ${kind} — cannot push ${kind} via gRPC`
            : `job ${r.id} uses ${what} ${kind} — cannot push ${kind} via gRPC`,
        );
      }
      if (r.pushOpen[kind]) throw invalidJobState(`job ${r.id} already has an open ${method} stream`);
      const rl = kind === 'input' ? r.relays.input : r.relays.hints;
      if (kind === 'hints' && rl?.ended) throw invalidJobState(`hints stream of job ${r.id} already ended`);
      r.pushOpen[kind] = true;
      rec = r;
      relay = rl;
    };

    const handle = async (msg: PushMsg): Promise<void> => {
      if (!rec) first(msg);
      else if (!msg.chunk) throw invalid('chunk must be set');
      const data = msg.chunk?.data ?? Buffer.alloc(0);
      chunks++;
      bytes += data.length;
      const r = rec as JobRecord;
      // Mock mode and finished jobs: accepted and dropped.
      if (!relay || r.terminal || data.length === 0) return;
      try {
        await relay.push(data);
      } catch (err) {
        if (r.terminal) return;
        if (err instanceof RelayError) throw invalid(err.reason);
        throw err;
      }
    };

    call.on('data', (msg: PushMsg) => {
      if (finished) return;
      call.pause();
      handle(msg).then(
        () => {
          if (!finished) call.resume();
        },
        (err: unknown) => fail(err),
      );
    });
    call.on('end', () => {
      if (finished) return;
      if (!rec) fail(invalid(`${method} stream must not be empty`));
      else succeed();
    });
    call.on('error', (err: Error) => {
      if (finished) return;
      if (!rec) {
        fail(new ApiFailure({ code: 'INTERNAL', message: `stream read error: ${err.message}` }));
        return;
      }
      finished = true;
      release();
      relay?.end();
      done(grpc.status.CANCELLED);
    });
    call.on('cancelled', () => {
      if (finished) return;
      finished = true;
      release();
      relay?.end();
      done(grpc.status.CANCELLED);
    });
  }

  // ===========================================================================================
  // CancelJob
  // ===========================================================================================

  private async cancelJob(req: JobIdMsg): Promise<{ job_id: string; cancelled: boolean }> {
    const rec = this.lookup(req.job_id);
    if (rec.terminal) return { job_id: rec.id, cancelled: false };
    const outcome = await this.request(this.pendingCancels, (requestId) => ({ type: 'cancelJob', requestId, jobId: rec.id }), 'cancel');
    if (!outcome.found) throw new ApiFailure(apiErrors.jobNotFound(rec.id));
    if (outcome.cancelled) this.deps.logger.info({ job_id: rec.id }, `job ${rec.id} cancelled by the client`);
    return { job_id: rec.id, cancelled: outcome.cancelled };
  }
}
