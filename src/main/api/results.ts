/**
 * Client-visible job results and failures as wire objects of `zisk_coordinator_api.proto`
 * (docs/decisions.md, Job states and events; Data plane).
 *
 * A result is built once, when the job completes, and every later read (WaitJobResult, WatchJob's
 * `completed`, late subscribers) returns that same object: stable `proof_id`, timestamps, VK and
 * kind. uint64 values stay decimal strings.
 */
import { randomUUID } from 'node:crypto';
import type { BlobId, EpochMs, JobFailure, JobResultSummary, ProofKind } from '../../shared/scheduler/types';
import type { BlobStore } from '../data/blob-store';

/**
 * `seconds` is an int64 on the wire; a number encodes exactly up to 2^53 s and skips the decimal
 * string round trip (`long.fromString`) that a string costs on every event of every job.
 */
export interface TimestampWire {
  seconds: number;
  nanos: number;
}

export interface DurationWire {
  seconds: number;
  nanos: number;
}

export interface CostPerTypeWire {
  main: string;
  opcode: string;
  memory: string;
  precompile: string;
  tables: string;
  other: string;
}

export interface ExecutionStatsWire {
  steps: string;
  duration_nanos: string;
  cost_per_type: CostPerTypeWire;
}

export interface ProofWire {
  proof_id: string;
  hash_id: string;
  verification_key: Buffer;
  proof_kind: number;
  data: Buffer;
  public_inputs: Buffer;
  started_at: TimestampWire;
  completed_at: TimestampWire;
}

export type JobKindResponseWire =
  | { setup: { vk: Buffer } }
  | { prove: { proof: ProofWire; stats: ExecutionStatsWire } }
  | { wrap: { proof: ProofWire } }
  | { execute: { stats: ExecutionStatsWire; public_outputs: Buffer } };

export type JobFailureWire =
  | { timeout: { phase?: number; limit: DurationWire } }
  | { input: { reason: string } }
  | { execution: { reason: string } }
  | { internal: { trace_id: string } };

/** What the request asked for, kept with the job so the result can say it back. */
export type RequestMeta =
  | { kind: 'setup'; hashId: string; withHints: boolean; programName: string }
  | { kind: 'prove'; hashId: string; proofKind: ProofKind }
  | { kind: 'execute'; hashId: string }
  | {
      kind: 'wrap';
      proofDest: ProofKind;
      /** carried over from the submitted proof: the wrapped proof is of the same program */
      hashId: string;
      verificationKey: Buffer;
      publicInputs: Buffer;
    };

export interface BuiltResult {
  response: JobKindResponseWire;
  /** proof bytes (prove, wrap) for proofs_dir and the webhook */
  proofData?: Buffer;
  executedSteps?: string;
  /** blobs the result was read from: released when the job is evicted */
  blobIds: BlobId[];
  /** problems worth a log line (a referenced blob was gone) */
  warnings: string[];
}

export function timestampOf(ms: EpochMs): TimestampWire {
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: Math.round((ms - seconds * 1000) * 1_000_000) };
}

const ZERO_COSTS: CostPerTypeWire = { main: '0', opcode: '0', memory: '0', precompile: '0', tables: '0', other: '0' };

function stats(steps: string, startedAt: EpochMs, completedAt: EpochMs): ExecutionStatsWire {
  // upstream: whole milliseconds × 10^6
  const ms = Math.max(0, Math.round(completedAt - startedAt));
  return { steps: /^\d+$/.test(steps) ? steps : '0', duration_nanos: (BigInt(ms) * 1_000_000n).toString(), cost_per_type: { ...ZERO_COSTS } };
}

const PUBLICS_COUNT = 64;
const PUBLICS_PREFIX_BYTES = 32;

/**
 * The execute job's `public_outputs` layout, also used for `Proof.public_inputs` (upstream's;
 * docs/decisions.md, Data plane): when the packed `publics` hold exactly 64 uint64 values, 32 zero bytes
 * followed by the 64 values as little-endian u64 (544 bytes); otherwise empty. `packed` is the payload
 * of a packed `repeated uint64` field, i.e. consecutive varints.
 */
/** 2^(7·i): the weight of the i-th 7-bit group within each of the two halves decoded below. */
const GROUP_WEIGHTS = [1, 2 ** 7, 2 ** 14, 2 ** 21, 2 ** 28];

export function publicsLayout(packed: Buffer | undefined): Buffer {
  if (!packed || packed.length === 0) return Buffer.alloc(0);
  const out = Buffer.allocUnsafe(PUBLICS_PREFIX_BYTES + 8 * PUBLICS_COUNT);
  out.fill(0, 0, PUBLICS_PREFIX_BYTES);
  let pos = 0;
  let count = 0;
  // Varints decoded as two exact doubles (bits 0–34 and 35–69) instead of BigInt: this runs for
  // every prove and execute result, and BigInt arithmetic made it a visible share of a job's CPU.
  while (pos < packed.length) {
    if (count === PUBLICS_COUNT) return Buffer.alloc(0);
    let low = 0;
    let high = 0;
    let i = 0;
    for (;;) {
      if (pos >= packed.length || i === 10) return Buffer.alloc(0);
      const b = packed[pos++];
      if (i < 5) low += (b & 0x7f) * GROUP_WEIGHTS[i];
      else high += (b & 0x7f) * GROUP_WEIGHTS[i - 5];
      i++;
      if ((b & 0x80) === 0) break;
    }
    // value = low + high·2^35, truncated to 64 bits as protobuf does.
    const lo32 = low % 2 ** 32;
    const hi32 = (Math.floor(low / 2 ** 32) + (high % 2 ** 29) * 8) % 2 ** 32;
    const off = PUBLICS_PREFIX_BYTES + 8 * count;
    out.writeUInt32LE(lo32, off);
    out.writeUInt32LE(hi32, off + 4);
    count++;
  }
  return count === PUBLICS_COUNT ? out : Buffer.alloc(0);
}

function hexBytes(hex: string): Buffer {
  return /^(?:[0-9a-fA-F]{2})*$/.test(hex) ? Buffer.from(hex, 'hex') : Buffer.alloc(0);
}

/** Builds the one result object of a completed job. */
export function buildResult(
  meta: RequestMeta,
  summary: JobResultSummary,
  completedAt: EpochMs,
  blobs: BlobStore,
  newId: () => string = randomUUID,
): BuiltResult {
  const warnings: string[] = [];
  const read = (id: BlobId | undefined, what: string): Buffer | undefined => {
    if (id === undefined) return undefined;
    const b = blobs.get(id);
    if (!b) warnings.push(`${what} blob ${id} is gone`);
    return b;
  };
  switch (summary.kind) {
    case 'setup':
      return { response: { setup: { vk: hexBytes(summary.vkHex) } }, blobIds: [], warnings };
    case 'prove': {
      const data = read(summary.proofBlobId, 'proof') ?? Buffer.alloc(0);
      const publics = read(summary.publicsBlobId, 'publics');
      const proof: ProofWire = {
        proof_id: newId(),
        hash_id: meta.kind === 'prove' ? meta.hashId : '',
        verification_key: hexBytes(summary.vkHex),
        proof_kind: meta.kind === 'prove' ? meta.proofKind : 1,
        data,
        public_inputs: publicsLayout(publics),
        started_at: timestampOf(summary.startedAt),
        completed_at: timestampOf(completedAt),
      };
      return {
        response: { prove: { proof, stats: stats(summary.executedSteps, summary.startedAt, completedAt) } },
        proofData: data,
        executedSteps: summary.executedSteps,
        blobIds: blobIdsOf(summary.proofBlobId, summary.publicsBlobId),
        warnings,
      };
    }
    case 'execute': {
      const publics = read(summary.publicsBlobId, 'publics');
      return {
        response: {
          execute: {
            stats: stats(summary.executedSteps, summary.startedAt, completedAt),
            public_outputs: publicsLayout(publics),
          },
        },
        executedSteps: summary.executedSteps,
        blobIds: blobIdsOf(summary.publicsBlobId),
        warnings,
      };
    }
    case 'wrap': {
      const data = read(summary.proofBlobId, 'wrapped proof') ?? Buffer.alloc(0);
      const proof: ProofWire = {
        proof_id: newId(),
        hash_id: meta.kind === 'wrap' ? meta.hashId : '',
        verification_key: meta.kind === 'wrap' ? meta.verificationKey : Buffer.alloc(0),
        proof_kind: meta.kind === 'wrap' ? meta.proofDest : 3,
        data,
        public_inputs: meta.kind === 'wrap' ? meta.publicInputs : Buffer.alloc(0),
        started_at: timestampOf(summary.startedAt),
        completed_at: timestampOf(completedAt),
      };
      return { response: { wrap: { proof } }, proofData: data, blobIds: blobIdsOf(summary.proofBlobId), warnings };
    }
  }
}

function blobIdsOf(...ids: (BlobId | undefined)[]): BlobId[] {
  return ids.filter((id): id is BlobId => id !== undefined);
}

export function failureWire(f: JobFailure): JobFailureWire {
  switch (f.kind) {
    case 'timeout': {
      const limit: DurationWire = { seconds: Math.max(0, Math.round(f.limitSeconds)), nanos: 0 };
      return { timeout: f.phase !== undefined ? { phase: f.phase, limit } : { limit } };
    }
    case 'input':
      return { input: { reason: f.reason } };
    case 'execution':
      return { execution: { reason: f.reason } };
    case 'internal':
      return { internal: { trace_id: f.traceId } };
  }
}


