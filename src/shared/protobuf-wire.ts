/**
 * The protobuf wire format, written by hand where the generated encoders cost too much: task
 * messages that share one big part across many workers, the small WatchJob events, error details.
 * One module for every such writer and reader, so varints and tags are done one way. The generated
 * decoders stay the reference: each user's tests decode its output with the public protos.
 */

export const WIRE_VARINT = 0;
export const WIRE_I64 = 1;
export const WIRE_LEN = 2;
export const WIRE_I32 = 5;

/** Bytes the varint of a non-negative safe integer takes. */
export function varintSize(n: number): number {
  let len = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
}

/** Writes the varint of a non-negative safe integer at `pos`; returns the position after it. */
export function writeVarint(buf: Buffer, pos: number, n: number): number {
  while (n >= 128) {
    buf[pos++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[pos++] = n;
  return pos;
}

/**
 * One-byte varints (0–127: every tag and most lengths and counts) as shared buffers. They are only
 * ever read (a writer's `finish` copies them), so one instance each serves every message.
 */
const ONE_BYTE_VARINTS: readonly Buffer[] = Array.from({ length: 128 }, (_, i) => Buffer.from([i]));

/** The varint of a non-negative safe integer, as a buffer (shared for values below 128). */
export function varint(value: number): Buffer {
  if (value >= 0 && value < 128 && Number.isInteger(value)) return ONE_BYTE_VARINTS[value];
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`varint out of range: ${value}`);
  const out = Buffer.allocUnsafe(varintSize(value));
  writeVarint(out, 0, value);
  return out;
}

/** Bytes needed for the varint of the uint64 `hi:lo` (both uint32), without BigInt. */
export function varintSize64(hi: number, lo: number): number {
  if (hi === 0) {
    if (lo < 0x80) return 1;
    if (lo < 0x4000) return 2;
    if (lo < 0x200000) return 3;
    if (lo < 0x10000000) return 4;
    return 5;
  }
  // 32 low bits plus the significant bits of hi, 7 per byte.
  const bits = 64 - Math.clz32(hi);
  return Math.ceil(bits / 7);
}

/** Writes the uint64 `hi:lo` as a varint at `pos`; returns the position after it. */
export function writeVarint64(buf: Buffer, pos: number, hi: number, lo: number): number {
  while (hi !== 0) {
    buf[pos++] = (lo & 0x7f) | 0x80;
    lo = ((lo >>> 7) | (hi << 25)) >>> 0;
    hi >>>= 7;
  }
  while (lo > 0x7f) {
    buf[pos++] = (lo & 0x7f) | 0x80;
    lo >>>= 7;
  }
  buf[pos++] = lo;
  return pos;
}

export class WireError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WireError';
  }
}

/**
 * Reads a varint at `pos` as a JS number. Throws on a truncated varint, on one longer than the
 * 10 bytes protobuf allows, and on a value beyond 2^53 (no length or count here can be that big).
 */
export function readVarint(buf: Buffer, pos: number): { value: number; next: number } {
  let value = 0;
  for (let i = 0; i < 10; i++) {
    if (pos + i >= buf.length) throw new WireError('truncated varint');
    const b = buf[pos + i];
    value += (b & 0x7f) * 2 ** (7 * i);
    if ((b & 0x80) === 0) {
      if (!Number.isSafeInteger(value)) throw new WireError('varint beyond 2^53');
      return { value, next: pos + i + 1 };
    }
  }
  throw new WireError('varint longer than 10 bytes');
}

/**
 * Collects encoded fields as buffer parts; big parts are referenced, not copied, until `finish`.
 * Zero scalars and empty strings/bytes are omitted as proto3 does, unless `always` asks for explicit
 * presence (oneof members, `optional` fields).
 */
export class FieldWriter {
  readonly parts: Buffer[] = [];
  private length = 0;

  get byteLength(): number {
    return this.length;
  }

  private push(buf: Buffer): this {
    this.parts.push(buf);
    this.length += buf.length;
    return this;
  }

  tag(field: number, wire: number): this {
    return this.push(varint((field << 3) | wire));
  }

  uint(field: number, value: number): this {
    if (value !== 0) this.tag(field, WIRE_VARINT).push(varint(value));
    return this;
  }

  bool(field: number, value: boolean): this {
    if (value) this.tag(field, WIRE_VARINT).push(varint(1));
    return this;
  }

  string(field: number, value: string | undefined, always = false): this {
    if (value === undefined || (value === '' && !always)) return this;
    return this.bytes(field, Buffer.from(value, 'utf8'), true);
  }

  bytes(field: number, value: Buffer | undefined, always = false): this {
    if (value === undefined || (value.length === 0 && !always)) return this;
    this.tag(field, WIRE_LEN).push(varint(value.length));
    if (value.length > 0) this.push(value);
    return this;
  }

  /** A length-delimited field whose body is another writer's fields (shared, not copied). */
  embedded(field: number, body: FieldWriter): this {
    return this.tag(field, WIRE_LEN).push(varint(body.byteLength)).append(body);
  }

  /** Appends fields already encoded by another writer (its parts are shared, not copied). */
  append(other: FieldWriter): this {
    for (const part of other.parts) this.push(part);
    return this;
  }

  packedUint(field: number, values: readonly number[]): this {
    if (values.length === 0) return this;
    return this.bytes(field, Buffer.concat(values.map(varint)));
  }

  finish(): Buffer {
    return Buffer.concat(this.parts, this.length);
  }
}
