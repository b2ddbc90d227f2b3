/**
 * The durable job store (docs/decisions.md, Durable jobs): what survives the coordinator, behind one
 * small interface with two implementations today, `embedded` (LMDB in `[state] dir`) and `memory`
 * (upstream's behaviour: nothing survives). It is shaped so a shared database (PostgreSQL, for an
 * active/standby pair) can implement it later: records go in and out whole, writes are batched into
 * one transaction and acknowledged when durable, and nothing reads it on the hot path.
 *
 * Records hold small values; bulk bytes (a big inline input, spooled pushed input, a proof bigger
 * than a SNARK) live in files under `filesDir` and records name them.
 */
import type { EpochMs, JobFailure, JobKind, JobPhase } from '../../shared/scheduler/types';

/** Bytes kept with a record, or in a file of the store's when they are big. */
export type StoredBytes = { inline: Buffer } | { file: string; bytes: number };

/** How a job takes its input or hints, as recorded. */
export type StoredData =
  | { kind: 'none' }
  | { kind: 'inline'; data: StoredBytes }
  /** Pushed by the client; `spool` once every byte of the stream is on disk (so it can be replayed). */
  | { kind: 'grpc'; uri: string; spool?: { file: string; bytes: number } }
  | { kind: 'local'; uri: string; path: string; source: 'file' | 'unix' };

export type StoredEventKind = 'queued' | 'started' | 'progress' | 'completed' | 'failed' | 'cancelled';

/** One WatchJob event as it happened (a completed event's result is the record's `result`). */
export interface StoredEvent {
  kind: StoredEventKind;
  at: EpochMs;
  phase?: JobPhase;
  failure?: JobFailure;
}

/**
 * A job as the store keeps it. `request` is the client API's own description of what was asked
 * (opaque here); `result` is the built result with its proof bytes moved to `proofFile`.
 */
export interface StoredJob {
  /** Record format; a store refuses records of a format it does not know. */
  v: 1;
  id: string;
  kind: JobKind;
  createdAt: EpochMs;
  request: StoredRequest;
  input: StoredData;
  hints: StoredData;
  /** The proof a wrap job wraps. */
  wrapProof?: StoredBytes;
  attempt: number;
  /** Why each earlier attempt failed, oldest first. */
  failedAttempts: string[];
  history: StoredEvent[];
  result?: StoredResult;
}

/** What the request asked for, in the client API's terms (opaque to the store). */
export type StoredRequest = Record<string, unknown> & { kind: JobKind };

export interface StoredResult {
  /** The result's wire object, with the proof bytes (if any) left out: they are in `proof` or `proofFile`. */
  response: Record<string, unknown>;
  /** A small proof (a SNARK), kept with the record: a file and its two syncs would cost more than it. */
  proof?: Buffer;
  proofFile?: string;
  executedSteps?: string;
}

export interface JobStore {
  /** False for the memory store: nothing written survives the process. */
  readonly durable: boolean;
  /** Where records' files live; undefined for the memory store (big bytes stay in memory). */
  readonly filesDir: string | undefined;
  /** Every stored job. Read once, at start. */
  load(): Promise<StoredJob[]>;
  /** Puts and removes in one transaction; resolves once it is durable. */
  write(puts: readonly StoredJob[], removes: readonly string[]): Promise<void>;
  close(): Promise<void>;
}

/** The store cannot be opened or read: a startup error naming the path (exit 78). */
export class StoreError extends Error {
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`state store ${path}: ${reason}`);
    this.name = 'StoreError';
  }
}

/** Upstream's behaviour: nothing is kept. */
export class MemoryJobStore implements JobStore {
  readonly durable = false;
  readonly filesDir = undefined;

  async load(): Promise<StoredJob[]> {
    return [];
  }

  async write(): Promise<void> {
    return undefined;
  }

  async close(): Promise<void> {
    return undefined;
  }
}
