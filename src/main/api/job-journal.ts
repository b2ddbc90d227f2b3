/**
 * What the client API records of each job in the durable store (docs/decisions.md, Durable jobs),
 * and how a stored job becomes a record of the mirror again after a restart.
 *
 * Writes are batched: every job that changed during one turn of the event loop (one batch of the
 * scheduler's effects, or the JobRequests that arrived together) goes out in one transaction. Two
 * promises matter to callers: a JobRequest is answered once its job is durable, and a terminal event
 * is shown to clients once it is durable. Nothing here blocks the event loop: the store commits on
 * its own thread, files are written through the libuv pool.
 *
 * With the memory store every call returns at once (undefined) and nothing is built.
 */
import type { Logger } from '../../shared/logging';
import type { BlobStore } from '../data/blob-store';
import type { JobFiles, Spool } from '../state/job-files';
import type { JobStore, StoredBytes, StoredData, StoredEvent, StoredJob, StoredRequest, StoredResult } from '../state/store';
import type { DataMode, JobRecord, SpooledStream } from './job-mirror';
import type { BuiltResult, JobKindResponseWire, RequestMeta } from './results';

/** Inline bytes up to this size stay in the job's record; bigger ones go to a file. */
export const INLINE_RECORD_BYTES = 1 << 20;
/**
 * Proofs up to this size stay in the job's record; bigger ones go to a file. Smaller than the inputs'
 * limit because a restart reads every retained record back into memory, proofs included, while proofs
 * in files are read only when a client asks.
 */
export const PROOF_IN_RECORD_BYTES = 64 << 10;

export class JobJournal {
  private readonly dirty = new Map<string, JobRecord>();
  private readonly removed = new Set<string>();
  /** Jobs removed for good: a failed batch must not write them back. */
  private readonly gone = new WeakSet<JobRecord>();
  private readonly filesToRemove: string[] = [];
  private flushScheduled = false;
  private waiters: { resolve: () => void; reject: (err: Error) => void }[] = [];
  /** Flushes whose transaction is not durable yet (shutdown waits for them). */
  private readonly writing = new Set<Promise<void>>();

  constructor(
    private readonly store: JobStore,
    private readonly files: JobFiles | undefined,
    private readonly blobs: BlobStore,
    private readonly spoolMaxBytes: number,
    private readonly logger: Logger,
    /** Called once per failed transaction or file write (the metric of failed store writes). */
    private readonly onWriteFailed: () => void,
  ) {}

  get durable(): boolean {
    return this.store.durable;
  }

  /**
   * A new job: its big inline bytes go to files first, then its record joins the next batch.
   * Resolves once it is durable (undefined with the memory store).
   */
  async accepted(rec: JobRecord): Promise<void> {
    if (!this.store.durable || !this.files) return;
    await this.writeInlineFile(rec, 'input');
    await this.writeInlineFile(rec, 'hints');
    if (rec.kind === 'wrap' && rec.wrapProof && rec.wrapProof.length > INLINE_RECORD_BYTES) {
      rec.files.wrapProof = `${rec.id}.wrap-proof`;
      await this.writeFile(rec.files.wrapProof, rec.wrapProof);
    }
    await this.changed(rec);
  }

  /** The job's history or data changed: its record joins the next batch. */
  changed(rec: JobRecord): Promise<void> | undefined {
    if (!this.store.durable) return undefined;
    this.dirty.set(rec.id, rec);
    return this.nextFlush();
  }

  /**
   * The job changed in a way not worth a write of its own: its record goes with the next batch that
   * happens anyway (another job's change, or its own next one), or is lost with a crash before then.
   */
  changedLater(rec: JobRecord): void {
    if (this.store.durable) this.dirty.set(rec.id, rec);
  }

  /**
   * The job ended: a completed job's big proof goes to a file first, then the record. Resolves once it
   * is durable; undefined with the memory store (the caller goes on at once).
   */
  finished(rec: JobRecord): Promise<void> | undefined {
    if (!this.store.durable || !this.files) return undefined;
    const pending = rec.terminalEvent?.event;
    const proof = pending?.kind === 'completed' ? pending.result.proofData : undefined;
    return (async () => {
      if (proof && proof.length > PROOF_IN_RECORD_BYTES) {
        rec.files.proof = `${rec.id}.proof`;
        await this.writeFile(rec.files.proof, proof);
      }
      // What is left of its streamed data cannot be replayed any more.
      for (const s of [rec.spools.input, rec.spools.hints]) s?.discard('the job ended');
      await this.changed(rec);
    })();
  }

  /** Jobs gone for good (retention): their records and files go in the next batch. */
  evicted(recs: readonly JobRecord[]): void {
    if (!this.store.durable) return;
    for (const rec of recs) {
      this.gone.add(rec);
      this.dirty.delete(rec.id);
      this.removed.add(rec.id);
      this.filesToRemove.push(...filesOf(rec));
    }
    void this.nextFlush().catch(() => undefined);
  }

  /** Starts copying a pushed stream to disk (only with a durable store). */
  spool(rec: JobRecord, kind: 'input' | 'hints'): Spool | undefined {
    if (!this.files) return undefined;
    return (rec.spools[kind] ??= this.files.spool(`${rec.id}.${kind}.spool`, this.spoolMaxBytes));
  }

  /** Bytes a record names in a file (a restored job's proof, a big inline input). */
  read(name: string): Promise<Buffer> {
    if (!this.files) return Promise.reject(new Error('no files without a durable store'));
    return this.files.read(name);
  }

  /** Path of a file the store holds (a spooled stream, read again as a local source). */
  pathOf(name: string): string | undefined {
    return this.files?.pathOf(name);
  }

  /** Every stored job, for the restart. */
  load(): Promise<StoredJob[]> {
    return this.store.load();
  }

  /** Waits for what is being written (shutdown). */
  async settle(): Promise<void> {
    if (this.flushScheduled || this.dirty.size > 0) await this.nextFlush().catch(() => undefined);
    await Promise.all(this.writing);
  }

  // ------------------------------------------------------------------------------------- internals

  private async writeInlineFile(rec: JobRecord, kind: 'input' | 'hints'): Promise<void> {
    const mode = kind === 'input' ? rec.input : rec.hints;
    if (mode.kind !== 'inline' || !this.files) return;
    const data = this.blobs.get(mode.blobId);
    if (!data || data.length <= INLINE_RECORD_BYTES) return;
    const name = `${rec.id}.${kind}`;
    await this.writeFile(name, data);
    rec.files[kind] = name;
  }

  private async writeFile(name: string, data: Buffer): Promise<void> {
    if (!this.files) throw new Error('no files without a durable store');
    try {
      await this.files.writeDurable(name, data);
    } catch (err) {
      this.onWriteFailed();
      await this.files.remove([`${name}.tmp`]);
      throw new Error(`writing ${name} failed: ${(err as Error).message}`);
    }
  }

  private nextFlush(): Promise<void> {
    const p = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
    return p;
  }

  private flush(): void {
    this.flushScheduled = false;
    const puts: StoredJob[] = [];
    const recs = [...this.dirty.values()];
    for (const rec of recs) puts.push(this.storedOf(rec));
    this.dirty.clear();
    const removes = [...this.removed];
    this.removed.clear();
    const files = this.filesToRemove.splice(0);
    const waiters = this.waiters;
    this.waiters = [];
    // Issued now, not after the previous batch is durable: the store applies batches in the order
    // they are issued, and its commits and syncs overlap (a sync waits for no later commit).
    const written = this.store
      .write(puts, removes)
      .then(
        async () => {
          for (const w of waiters) w.resolve();
          if (files.length > 0 && this.files) await this.files.remove(files);
        },
        (err: Error) => {
          this.onWriteFailed();
          this.logger.error({ err: err.message, jobs: puts.length }, `state store write failed: ${err.message}`);
          for (const w of waiters) w.reject(err);
          // Written again with the next batch (once the disk has room again), unless gone or newer by then.
          for (const rec of recs) if (!this.gone.has(rec) && !this.dirty.has(rec.id)) this.dirty.set(rec.id, rec);
          for (const id of removes) this.removed.add(id);
          this.filesToRemove.push(...files);
        },
      );
    this.writing.add(written);
    void written.finally(() => this.writing.delete(written));
  }

  private storedOf(rec: JobRecord): StoredJob {
    const stored: StoredJob = {
      v: 1,
      id: rec.id,
      kind: rec.kind,
      createdAt: rec.createdAt,
      request: requestOf(rec.meta, rec.deadline),
      input: this.dataOf(rec, 'input'),
      hints: this.dataOf(rec, 'hints'),
      attempt: rec.attempt,
      failedAttempts: rec.failedAttempts,
      history: rec.history.map(eventOf(rec)),
    };
    // A terminal event on its way to the client is written as if shown (it is shown once this is durable).
    const pending = rec.terminalEvent;
    if (pending) {
      const ev: StoredEvent = { kind: pending.event.kind, at: pending.at };
      if (pending.event.kind === 'failed') ev.failure = pending.event.failure;
      stored.history.push(ev);
      if (pending.event.kind === 'completed') stored.result = resultOf(pending.event.result, rec.files.proof);
    }
    if (rec.kind === 'wrap' && rec.wrapProof) {
      stored.wrapProof = rec.files.wrapProof ? { file: rec.files.wrapProof, bytes: rec.wrapProof.length } : { inline: rec.wrapProof };
    }
    if (rec.state === 'completed' && rec.result) stored.result = resultOf(rec.result, rec.files.proof);
    return stored;
  }

  private dataOf(rec: JobRecord, kind: 'input' | 'hints'): StoredData {
    const mode: DataMode = kind === 'input' ? rec.input : rec.hints;
    switch (mode.kind) {
      case 'none':
        return { kind: 'none' };
      case 'inline': {
        const file = rec.files[kind];
        const data = this.blobs.get(mode.blobId) ?? Buffer.alloc(0);
        const bytes: StoredBytes = file ? { file, bytes: data.length } : { inline: data };
        return { kind: 'inline', data: bytes };
      }
      case 'grpc': {
        const spooled: SpooledStream | undefined = rec.spooled[kind];
        return spooled ? { kind: 'grpc', uri: mode.uri, spool: spooled } : { kind: 'grpc', uri: mode.uri };
      }
      case 'local': {
        const src = rec.localSources[kind];
        return { kind: 'local', uri: mode.uri, path: src?.path ?? '', source: src?.source ?? 'file' };
      }
    }
  }
}

function requestOf(meta: RequestMeta, deadline: number | undefined): StoredRequest {
  return deadline === undefined ? { ...meta } : { ...meta, deadline };
}

function eventOf(rec: JobRecord): (e: JobRecord['history'][number]) => StoredEvent {
  return (e) => {
    const out: StoredEvent = { kind: e.kind, at: e.at };
    if (e.phase !== undefined) out.phase = e.phase;
    if (e.kind === 'failed' && rec.failure) out.failure = rec.failure;
    return out;
  };
}

/** The result's wire object without its proof bytes (they are in `proofFile`, or beside it when small). */
function resultOf(result: BuiltResult, proofFile: string | undefined): StoredResult {
  const response = withoutProofData(result.response);
  const out: StoredResult = { response: response as unknown as Record<string, unknown> };
  if (proofFile) out.proofFile = proofFile;
  else if (result.proofData && result.proofData.length > 0) out.proof = result.proofData;
  if (result.executedSteps !== undefined) out.executedSteps = result.executedSteps;
  return out;
}

function withoutProofData(r: JobKindResponseWire): JobKindResponseWire {
  if ('prove' in r) return { prove: { ...r.prove, proof: { ...r.prove.proof, data: Buffer.alloc(0) } } };
  if ('wrap' in r) return { wrap: { proof: { ...r.wrap.proof, data: Buffer.alloc(0) } } };
  return r;
}

function filesOf(rec: JobRecord): string[] {
  const out = Object.values(rec.files).filter((f): f is string => typeof f === 'string');
  for (const s of [rec.spooled.input, rec.spooled.hints]) if (s) out.push(s.file);
  return out;
}
