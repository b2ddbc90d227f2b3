/**
 * Deterministic payloads of the simulated worker. Everything a sim worker sends is a pure function
 * of (job id, rank, hash id, sizes), so tests, the coordinator's consistency checks and every other
 * sim worker can recompute the expected bytes independently.
 */
import { createHash } from 'node:crypto';
import { encodeChallenges, packUint64, packUint64From } from './wire';

export const U64_MAX = 0xffffffffffffffffn;

function sha256(...parts: string[]): Buffer {
  const h = createHash('sha256');
  for (const p of parts) h.update(p).update('\0');
  return h.digest();
}

/** `count` uint64 words from a sha256 chain of `seed`. */
function hashWords(seed: string, count: number): bigint[] {
  const out: bigint[] = [];
  for (let block = 0; out.length < count; block++) {
    const d = sha256(seed, String(block));
    for (let o = 0; o + 8 <= d.length && out.length < count; o += 8) out.push(d.readBigUInt64LE(o));
  }
  return out;
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
  const w = hashWords(`challenge:${jobId}:${rank}`, 4);
  w[0] = U64_MAX - BigInt(rank);
  return w;
}

export function encodedSimChallenges(jobId: string, rank: number): Buffer {
  return encodeChallenges(rank, 0, simChallenges(jobId, rank));
}

/** 64 publics, identical for every worker of the job; the first is 2^64−1, the second 0. */
export function simPublics(jobId: string): bigint[] {
  const w = hashWords(`publics:${jobId}`, 64);
  w[0] = U64_MAX;
  w[1] = 0n;
  return w;
}

/** 8 witness proof values, identical for every worker of the job. */
export function simWitnessProofValues(jobId: string): bigint[] {
  const w = hashWords(`proof_values:${jobId}`, 8);
  w[7] = U64_MAX - 1n;
  return w;
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

export const packedSimPublics: (jobId: string) => Buffer = memo((jobId) => packUint64(simPublics(jobId)));

export const packedSimWitnessProofValues: (jobId: string) => Buffer = memo((jobId) => packUint64(simWitnessProofValues(jobId)));

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
  return fill(sha256('final-proof', jobId), size);
}

/** Wrapped proof bytes for a wrap input. */
export function simWrapProof(input: Buffer, proofDest: number, size: number): Buffer {
  const seed = createHash('sha256').update(input).update(String(proofDest)).digest();
  return fill(seed, size);
}

/** Executed steps reported for a job (identical for every worker of the job). */
export const simExecutedSteps: (jobId: string) => bigint = memo((jobId) => 1_000_000n + (hashWords(`steps:${jobId}`, 1)[0] % 1_000_000_000n));

/** Instances reported for a job (identical for every worker of the job). */
export const simInstances: (jobId: string) => bigint = memo((jobId) => 1n + (hashWords(`instances:${jobId}`, 1)[0] % 1000n));
