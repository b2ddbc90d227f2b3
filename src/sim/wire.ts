/**
 * Minimal protobuf codec for the opaque parts of the relay view (`Challenges`, `ProofList`, packed
 * uint64 arrays). Hand-written so proofs with millions of values are built straight into a Buffer
 * from two uint32 halves per value: no BigInt, no decimal strings, no per-value objects.
 */

import { varintSize64, writeVarint64 } from '../shared/protobuf-wire';

export { varintSize64, writeVarint64 };

const WT_VARINT = 0;
const WT_I64 = 1;
const WT_LEN = 2;
const WT_I32 = 5;

export function splitU64(v: bigint): [hi: number, lo: number] {
  if (v < 0n || v > 0xffffffffffffffffn) throw new RangeError(`not a uint64: ${v}`);
  return [Number(v >> 32n), Number(v & 0xffffffffn)];
}

export function encodeVarint(v: bigint | number): Buffer {
  const [hi, lo] = splitU64(BigInt(v));
  const out = Buffer.allocUnsafe(varintSize64(hi, lo));
  writeVarint64(out, 0, hi, lo);
  return out;
}

/** Packed encoding (body only, no tag/length) of uint64 values. */
export function packUint64(values: readonly bigint[]): Buffer {
  const halves = values.map(splitU64);
  let size = 0;
  for (const [hi, lo] of halves) size += varintSize64(hi, lo);
  const out = Buffer.allocUnsafe(size);
  let pos = 0;
  for (const [hi, lo] of halves) pos = writeVarint64(out, pos, hi, lo);
  return out;
}

/** Packed encoding of `count` values produced as uint32 halves by `valueAt`. */
export function packUint64From(count: number, valueAt: (i: number) => readonly [number, number]): Buffer {
  let size = 0;
  for (let i = 0; i < count; i++) {
    const [hi, lo] = valueAt(i);
    size += varintSize64(hi, lo);
  }
  const out = Buffer.allocUnsafe(size);
  let pos = 0;
  for (let i = 0; i < count; i++) {
    const [hi, lo] = valueAt(i);
    pos = writeVarint64(out, pos, hi, lo);
  }
  return out;
}

function tag(field: number, wireType: number): Buffer {
  return encodeVarint((field << 3) | wireType);
}

function lenField(field: number, body: Buffer): Buffer[] {
  return [tag(field, WT_LEN), encodeVarint(body.length), body];
}

function varintField(field: number, v: bigint | number): Buffer[] {
  // proto3 implicit presence: the default value is not written.
  if (BigInt(v) === 0n) return [];
  return [tag(field, WT_VARINT), encodeVarint(v)];
}

/** One encoded `Challenges{worker_index, airgroup_id, challenge}` (canonical, packed). */
export function encodeChallenges(workerIndex: number, airgroupId: number, challenge: readonly bigint[]): Buffer {
  const parts = [...varintField(1, workerIndex), ...varintField(2, airgroupId)];
  if (challenge.length > 0) parts.push(...lenField(3, packUint64(challenge)));
  return Buffer.concat(parts);
}

export interface ProofStarkParts {
  workerIdx: number;
  airgroupId: number;
  /** Packed uint64 body of `values` (see `packUint64From`). */
  packedValues: Buffer;
}

/** One encoded `ProofList`; the packed value bodies are copied once, into the result. */
export function encodeProofList(proofs: readonly ProofStarkParts[]): Buffer {
  const parts: Buffer[] = [];
  for (const p of proofs) {
    const head = [...varintField(1, p.workerIdx), ...varintField(2, p.airgroupId)];
    const valuesHead = p.packedValues.length > 0 ? [tag(3, WT_LEN), encodeVarint(p.packedValues.length)] : [];
    let bodyLen = p.packedValues.length;
    for (const b of head) bodyLen += b.length;
    for (const b of valuesHead) bodyLen += b.length;
    parts.push(tag(1, WT_LEN), encodeVarint(bodyLen), ...head, ...valuesHead);
    if (p.packedValues.length > 0) parts.push(p.packedValues);
  }
  return Buffer.concat(parts);
}

// ---------------------------------------------------------------- decoding

export class WireError extends Error {
  override name = 'WireError';
}

class Reader {
  pos = 0;
  constructor(readonly buf: Buffer) {}

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  private byte(): number {
    if (this.pos >= this.buf.length) throw new WireError('truncated varint');
    return this.buf[this.pos++];
  }

  /** A full uint64 varint, assembled from 32-bit halves so BigInt is touched once per value. */
  varint(): bigint {
    let lo = 0;
    let hi = 0;
    let b = 0;
    for (let i = 0; i < 4; i++) {
      b = this.byte();
      lo |= (b & 0x7f) << (7 * i);
      if ((b & 0x80) === 0) return BigInt(lo >>> 0);
    }
    b = this.byte();
    lo |= (b & 0x7f) << 28;
    hi = (b & 0x7f) >> 4;
    if ((b & 0x80) === 0) return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
    for (let i = 0; i < 5; i++) {
      b = this.byte();
      hi |= (b & 0x7f) << (7 * i + 3);
      if ((b & 0x80) === 0) return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
    }
    throw new WireError('varint too long');
  }

  /** A varint known to fit in 2^53 (tags, lengths, uint32 fields). */
  varintNumber(): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 8; i++) {
      const b = this.byte();
      result += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) return result;
      mul *= 128;
    }
    throw new WireError('varint too long for a number');
  }

  bytes(): Buffer {
    const len = this.varintNumber();
    if (this.pos + len > this.buf.length) throw new WireError('truncated length-delimited field');
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }

  /** A uint32 field: the low 32 bits of a varint of up to 10 bytes. */
  uint32(): number {
    return Number(this.varint() & 0xffffffffn);
  }

  private fixed(n: number): void {
    if (this.pos + n > this.buf.length) throw new WireError('truncated fixed-width field');
    this.pos += n;
  }

  skip(wireType: number): void {
    switch (wireType) {
      case WT_VARINT:
        this.varint();
        return;
      case WT_I64:
        this.fixed(8);
        return;
      case WT_LEN:
        this.bytes();
        return;
      case WT_I32:
        this.fixed(4);
        return;
      default:
        throw new WireError(`unsupported wire type ${wireType}`);
    }
  }
}

/** Decodes a packed uint64 body. */
export function decodePackedUint64(buf: Buffer): bigint[] {
  const r = new Reader(buf);
  const out: bigint[] = [];
  while (!r.done) out.push(r.varint());
  return out;
}

/** Reads a repeated uint64 field occurrence, accepting both the packed and the unpacked form. */
function readRepeatedU64(r: Reader, wireType: number, into: bigint[]): void {
  if (wireType === WT_LEN) into.push(...decodePackedUint64(r.bytes()));
  else if (wireType === WT_VARINT) into.push(r.varint());
  else throw new WireError(`bad wire type ${wireType} for repeated uint64`);
}

export interface DecodedChallenges {
  workerIndex: number;
  airgroupId: number;
  challenge: bigint[];
}

export function decodeChallenges(buf: Buffer): DecodedChallenges {
  const r = new Reader(buf);
  const out: DecodedChallenges = { workerIndex: 0, airgroupId: 0, challenge: [] };
  while (!r.done) {
    const key = r.varintNumber();
    const field = key >>> 3;
    const wt = key & 7;
    if (field === 1) out.workerIndex = known(r, wt, WT_VARINT).uint32();
    else if (field === 2) out.airgroupId = known(r, wt, WT_VARINT).uint32();
    else if (field === 3) readRepeatedU64(r, wt, out.challenge);
    else r.skip(wt);
  }
  return out;
}

/** A known field must come with its wire type: the real worker's decoder (prost) refuses anything else. */
function known(r: Reader, wireType: number, expected: number): Reader {
  if (wireType !== expected) throw new WireError(`wire type ${wireType} where ${expected} is expected`);
  return r;
}

export interface ChallengesScan {
  workerIndex: number;
  airgroupId: number;
  /** Packed body of `challenge` when it arrived as one packed field; undefined otherwise. */
  packed: Buffer | undefined;
  /** `challenge` arrived unpacked or split: decode with `decodeChallenges` to compare. */
  irregular: boolean;
}

/** Reads the scalar fields of an encoded `Challenges` and locates its packed body without decoding it. */
export function scanChallenges(buf: Buffer): ChallengesScan {
  const r = new Reader(buf);
  const out: ChallengesScan = { workerIndex: 0, airgroupId: 0, packed: undefined, irregular: false };
  while (!r.done) {
    const key = r.varintNumber();
    const field = key >>> 3;
    const wt = key & 7;
    if (field === 1) out.workerIndex = known(r, wt, WT_VARINT).uint32();
    else if (field === 2) out.airgroupId = known(r, wt, WT_VARINT).uint32();
    else if (field === 3 && wt === WT_LEN && out.packed === undefined && !out.irregular) out.packed = r.bytes();
    else if (field === 3) {
      out.irregular = true;
      out.packed = undefined;
      r.skip(wt);
    } else r.skip(wt);
  }
  return out;
}

export interface ProofStarkView {
  workerIdx: number;
  airgroupId: bigint;
  /** Packed body of `values` when it arrived as one packed field (the normal case), else undefined. */
  packedValues: Buffer | undefined;
  /** Number of values (packed or unpacked). */
  valueCount: number;
  /** Values decoded only when they arrived unpacked or split across several fields. */
  unpackedValues: bigint[] | undefined;
}

/** Walks an encoded `ProofList` without decoding the packed value bodies. */
export function walkProofList(buf: Buffer): ProofStarkView[] {
  const r = new Reader(buf);
  const out: ProofStarkView[] = [];
  while (!r.done) {
    const key = r.varintNumber();
    const field = key >>> 3;
    const wt = key & 7;
    if (field !== 1) {
      r.skip(wt);
      continue;
    }
    const pr = new Reader(known(r, wt, WT_LEN).bytes());
    const p: ProofStarkView = { workerIdx: 0, airgroupId: 0n, packedValues: undefined, valueCount: 0, unpackedValues: undefined };
    const chunks: Array<Buffer | bigint> = [];
    while (!pr.done) {
      const k = pr.varintNumber();
      const f = k >>> 3;
      const w = k & 7;
      if (f === 1) p.workerIdx = known(pr, w, WT_VARINT).uint32();
      else if (f === 2) p.airgroupId = known(pr, w, WT_VARINT).varint();
      else if (f === 3 && w === WT_LEN) chunks.push(pr.bytes());
      else if (f === 3) chunks.push(known(pr, w, WT_VARINT).varint());
      else pr.skip(w);
    }
    if (chunks.length === 1 && Buffer.isBuffer(chunks[0])) {
      const body = chunks[0];
      if (body.length > 0 && body[body.length - 1] >= 0x80) throw new WireError('truncated varint in a packed body');
      p.packedValues = body;
      p.valueCount = countVarints(chunks[0]);
    } else if (chunks.length > 0) {
      // Unpacked or split across fields (a re-encoding peer): decode the values.
      const values: bigint[] = [];
      for (const c of chunks) {
        if (Buffer.isBuffer(c)) values.push(...decodePackedUint64(c));
        else values.push(c);
      }
      p.unpackedValues = values;
      p.valueCount = values.length;
    }
    out.push(p);
  }
  return out;
}

/** Number of varints in a packed body: every byte without the continuation bit ends one. */
export function countVarints(body: Buffer): number {
  let n = 0;
  for (let i = 0; i < body.length; i++) if ((body[i] & 0x80) === 0) n++;
  return n;
}

/**
 * Rewrites the packed uint64 `fields` of the message found at `path` (field numbers of nested
 * messages, outermost first) into the unpacked form: one tag and varint per value. Anything else is
 * copied as is; a path that is absent leaves the message unchanged.
 */
export function unpackAt(buf: Buffer, path: readonly number[], fields: readonly number[]): Buffer {
  const r = new Reader(buf);
  const parts: Buffer[] = [];
  while (!r.done) {
    const start = r.pos;
    const key = r.varintNumber();
    const field = key >>> 3;
    const wt = key & 7;
    const hit = wt === WT_LEN && (path.length > 0 ? field === path[0] : fields.includes(field));
    if (!hit) {
      r.skip(wt);
      parts.push(buf.subarray(start, r.pos));
      continue;
    }
    const body = r.bytes();
    if (path.length > 0) {
      parts.push(...lenField(field, unpackAt(body, path.slice(1), fields)));
      continue;
    }
    const values = new Reader(body);
    while (!values.done) {
      const at = values.pos;
      values.varint();
      parts.push(tag(field, WT_VARINT), body.subarray(at, values.pos));
    }
  }
  return Buffer.concat(parts);
}
