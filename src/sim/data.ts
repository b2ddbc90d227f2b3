/**
 * Deterministic payloads of the simulated worker. Everything a sim worker sends is a pure function
 * of (job id, rank, hash id, sizes), so tests, the coordinator's consistency checks and every other
 * sim worker can recompute the expected bytes independently.
 */
import { createHash } from 'node:crypto';
import { encodeChallenges, packUint64From, varintSize64, writeVarint64 } from './wire';

export const U64_MAX = 0xffffffffffffffffn;

function sha256(...parts: string[]): Buffer {
  const h = createHash('sha256');
  for (const p of parts) h.update(p).update('\0');
  return h.digest();
}

/**
 * `count` uint64 words (8 little-endian bytes each) of SHAKE256(`seed`): one hash call whatever the
 * count. A sha256 chain cost a hash object per 4 words, the largest share of a sim's CPU per job.
 */
function hashWordBytes(seed: string, count: number): Buffer {
  return createHash('shake256', { outputLength: count * 8 }).update(seed).digest();
}

function wordsOf(bytes: Buffer): bigint[] {
  const out: bigint[] = [];
  for (let o = 0; o + 8 <= bytes.length; o += 8) out.push(bytes.readBigUInt64LE(o));
  return out;
}

/** Packs the words of `bytes` as uint32 halves (no BigInt), with some words replaced by `fixed`. */
function packWords(bytes: Buffer, fixed: ReadonlyMap<number, readonly [number, number]>): Buffer {
  const n = bytes.length / 8;
  const his = new Uint32Array(n);
  const los = new Uint32Array(n);
  let size = 0;
  for (let i = 0; i < n; i++) {
    const f = fixed.get(i);
    his[i] = f ? f[0] : bytes.readUInt32LE(8 * i + 4);
    los[i] = f ? f[1] : bytes.readUInt32LE(8 * i);
    size += varintSize64(his[i], los[i]);
  }
  const out = Buffer.allocUnsafe(size);
  let pos = 0;
  for (let i = 0; i < n; i++) pos = writeVarint64(out, pos, his[i], los[i]);
  return out;
}

/** uint32 halves of a uint64. */
function halves(v: bigint): readonly [number, number] {
  return [Number(v >> 32n), Number(v & 0xffffffffn)];
}

function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/**
 * The i-th `ProofStark.values` word as uint32 halves. Every 16th word sits just below 2^64 (the first
 * is 2^64−1 exactly) and every 16th+1 is tiny, so every varint length shows up in a proof.
 */
export function proofStarkValueHalves(i: number): [hi: number, lo: number] {
  switch (i % 16) {
    case 0:
      return [0xffffffff, (0xffffffff - ((i >>> 4) & 0xff)) >>> 0];
    case 1:
      return [0, i & 0x7f];
    default:
      return [mix32(2 * i + 1), mix32(2 * i + 2)];
  }
}

export function proofStarkValueAt(i: number): bigint {
  const [hi, lo] = proofStarkValueHalves(i);
  return (BigInt(hi) << 32n) | BigInt(lo);
}

/** Expected `ProofStark.values` of a sim proof with `k` values, as the decimal strings proto-loader yields. */
export function expectedProofStarkValues(k: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < k; i++) out.push(proofStarkValueAt(i).toString());
  return out;
}

const packedCache = new Map<number, Buffer>();

/** Packed body of the first `k` proof words; built once per size and shared by every sim worker. */
export function packedProofStarkValues(k: number): Buffer {
  let b = packedCache.get(k);
  if (!b) {
    b = packUint64From(k, proofStarkValueHalves);
    if (packedCache.size >= 8) packedCache.delete(packedCache.keys().next().value as number);
    packedCache.set(k, b);
  }
  return b;
}

/** The 4 challenge words of rank `rank` in job `jobId`; word 0 is 2^64−1−rank (2^64−1 for rank 0). */
export function simChallenges(jobId: string, rank: number): bigint[] {
  const w = wordsOf(hashWordBytes(`challenge:${jobId}:${rank}`, 4));
  w[0] = U64_MAX - BigInt(rank);
  return w;
}

export function encodedSimChallenges(jobId: string, rank: number): Buffer {
  return encodeChallenges(rank, 0, simChallenges(jobId, rank));
}

const PUBLICS_COUNT = 64;
const PUBLICS_FIXED = new Map([
  [0, halves(U64_MAX)],
  [1, halves(0n)],
]);
const PROOF_VALUES_COUNT = 8;
const PROOF_VALUES_FIXED = new Map([[7, halves(U64_MAX - 1n)]]);

/** Where each per-job value sits in the job's derived bytes (one SHAKE256 call per job feeds them all). */
const PUBLICS_AT = 0;
const PROOF_VALUES_AT = PUBLICS_AT + 8 * PUBLICS_COUNT;
const STEPS_AT = PROOF_VALUES_AT + 8 * PROOF_VALUES_COUNT;
const INSTANCES_AT = STEPS_AT + 8;
const FINAL_PROOF_SEED_AT = INSTANCES_AT + 8;
const JOB_BYTES = FINAL_PROOF_SEED_AT + 32;

const jobBytes: (jobId: string) => Buffer = memo((jobId) => createHash('shake256', { outputLength: JOB_BYTES }).update(`job:${jobId}`).digest());

const publicsBytes = (jobId: string): Buffer => jobBytes(jobId).subarray(PUBLICS_AT, PROOF_VALUES_AT);
const proofValuesBytes = (jobId: string): Buffer => jobBytes(jobId).subarray(PROOF_VALUES_AT, STEPS_AT);

function withFixed(words: bigint[], fixed: ReadonlyMap<number, readonly [number, number]>): bigint[] {
  for (const [i, [hi, lo]] of fixed) words[i] = (BigInt(hi) << 32n) | BigInt(lo);
  return words;
}

/** 64 publics, identical for every worker of the job; the first is 2^64−1, the second 0. */
export function simPublics(jobId: string): bigint[] {
  return withFixed(wordsOf(publicsBytes(jobId)), PUBLICS_FIXED);
}

/** 8 witness proof values, identical for every worker of the job. */
export function simWitnessProofValues(jobId: string): bigint[] {
  return withFixed(wordsOf(proofValuesBytes(jobId)), PROOF_VALUES_FIXED);
}

/** Per-job values every worker of the job computes alike: memoised so a 1 000-worker fleet hashes once. */
function memo<T>(fn: (jobId: string) => T): (jobId: string) => T {
  const cache = new Map<string, T>();
  return (jobId) => {
    let v = cache.get(jobId);
    if (v === undefined) {
      v = fn(jobId);
      if (cache.size >= 64) cache.delete(cache.keys().next().value as string);
      cache.set(jobId, v);
    }
    return v;
  };
}

export const packedSimPublics: (jobId: string) => Buffer = memo((jobId) => packWords(publicsBytes(jobId), PUBLICS_FIXED));

export const packedSimWitnessProofValues: (jobId: string) => Buffer = memo((jobId) => packWords(proofValuesBytes(jobId), PROOF_VALUES_FIXED));

/** Program VK: sha256 of the setup identity, 32 bytes (4 little-endian u64 words). */
export function simVk(hashId: string, withHints: boolean): Buffer {
  return sha256('vk', hashId, withHints ? 'hints' : 'plain');
}

/** A VK that differs from `simVk` and from every other worker's wrong VK. */
export function simWrongVk(hashId: string, withHints: boolean, workerId: string): Buffer {
  return sha256('wrong-vk', hashId, withHints ? 'hints' : 'plain', workerId);
}

function fill(seed: Buffer, size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  for (let o = 0; o < size; o += seed.length) seed.copy(out, o, 0, Math.min(seed.length, size - o));
  return out;
}

/** Final aggregated proof bytes of a job. */
export function simFinalProof(jobId: string, size: number): Buffer {
  return fill(jobBytes(jobId).subarray(FINAL_PROOF_SEED_AT, JOB_BYTES), size);
}

/** Wrapped proof bytes for a wrap input. */
export function simWrapProof(input: Buffer, proofDest: number, size: number): Buffer {
  const seed = createHash('sha256').update(input).update(String(proofDest)).digest();
  return fill(seed, size);
}

/** Executed steps reported for a job (identical for every worker of the job). */
export const simExecutedSteps: (jobId: string) => bigint = memo((jobId) => 1_000_000n + (jobBytes(jobId).readBigUInt64LE(STEPS_AT) % 1_000_000_000n));

/** Instances reported for a job (identical for every worker of the job). */
export const simInstances: (jobId: string) => bigint = memo((jobId) => 1n + (jobBytes(jobId).readBigUInt64LE(INSTANCES_AT) % 1000n));
