/**
 * Seeded generation of protobuf inputs for differential and socket fuzzing, driven by protobufjs
 * reflection of the public protos: valid messages in canonical and non-canonical encodings (unpacked
 * and split repeated fields, fields out of order, non-repeated fields repeated, unknown fields), and
 * mutations of them (truncation, flipped bytes, huge lengths, overlong varints, wire types 6/7,
 * wrong wire types, invalid UTF-8, unknown enum values) applied at any nesting level.
 *
 * Also a reference check of the protobuf encoding rules (`strictCheck`), written independently of
 * the production decoder (reflection and BigInt here, tables and uint32 halves there).
 */
import * as path from 'node:path';
import * as protobuf from 'protobufjs';
import { PROTO_DIR } from '../../src/shared/proto';
import { seededRandom } from './seeded-random';

export const TO_OBJECT: protobuf.IConversionOptions = {
  longs: String,
  enums: Number,
  bytes: Buffer,
  defaults: true,
  arrays: true,
  oneofs: true,
};

export function loadRoot(...files: string[]): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => (target.startsWith('google/protobuf/') ? target : path.join(PROTO_DIR, target));
  root.loadSync(files, { keepCase: true });
  root.resolveAll();
  return root;
}

/** Seeded random choices for the fuzzers (test/helpers/seeded-random.ts). */
export class Rng {
  readonly next: () => number;
  constructor(seed: number) {
    this.next = seededRandom(seed);
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

// ------------------------------------------------------------------ encoding helpers

export function varint(v: bigint): Buffer {
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return Buffer.from(out);
}

function key(field: number, wire: number): Buffer {
  return varint(BigInt(field) * 8n + BigInt(wire));
}

const VARINT_TYPES = new Set(['uint32', 'int32', 'uint64', 'int64', 'sint32', 'sint64', 'bool', 'enum']);
const I32_TYPES = new Set(['float', 'fixed32', 'sfixed32']);
const I64_TYPES = new Set(['double', 'fixed64', 'sfixed64']);

function wireOf(f: protobuf.Field): number {
  if (f.resolvedType instanceof protobuf.Enum) return 0;
  if (VARINT_TYPES.has(f.type)) return 0;
  if (I32_TYPES.has(f.type)) return 5;
  if (I64_TYPES.has(f.type)) return 1;
  return 2;
}

const STRINGS = ['', 'w1', 'worker-ü-✓', 'x'.repeat(300), '\u0000', '0123456789abcdef'.repeat(4), ' \t\n', '🦀'];

function randomScalar(rng: Rng, f: protobuf.Field): Buffer {
  if (f.resolvedType instanceof protobuf.Enum) {
    const known = Object.values(f.resolvedType.values);
    // Unknown enum values are valid protobuf and must decode as their number.
    return varint(rng.chance(0.8) ? BigInt(rng.pick(known)) : BigInt(rng.int(1000)));
  }
  switch (f.type) {
    case 'bool':
      return varint(rng.chance(0.5) ? 1n : 0n);
    case 'uint32':
      return varint(BigInt(rng.chance(0.5) ? rng.int(128) : rng.int(2 ** 32)));
    case 'int32': {
      const v = rng.chance(0.5) ? rng.int(100) : rng.int(2 ** 32) - 2 ** 31;
      return varint(BigInt.asUintN(64, BigInt(v)));
    }
    case 'int64':
      return varint(BigInt.asUintN(64, rng.pick([0n, 1n, -1n, 1_700_000_000n, -(2n ** 63n), 2n ** 63n - 1n])));
    case 'uint64':
      return varint(rng.pick([0n, 1n, 127n, 128n, 2n ** 53n + 1n, 2n ** 64n - 1n, BigInt(rng.int(2 ** 32)) * BigInt(rng.int(2 ** 32))]));
    case 'float': {
      const b = Buffer.alloc(4);
      b.writeFloatLE(rng.pick([0, 1.5, -2, 1e30, Infinity]));
      return b;
    }
    case 'double': {
      const b = Buffer.alloc(8);
      b.writeDoubleLE(rng.pick([0, 1.25, -1e300, Date.now() / 1000]));
      return b;
    }
    case 'string': {
      const s = Buffer.from(rng.pick(STRINGS), 'utf8');
      return Buffer.concat([varint(BigInt(s.length)), s]);
    }
    case 'bytes': {
      const b = rng.bytes(rng.pick([0, 1, 7, 64]));
      return Buffer.concat([varint(BigInt(b.length)), b]);
    }
    default:
      throw new Error(`no generator for ${f.type}`);
  }
}

export interface GenOptions {
  /** Probability that a message's encoding is mutated after it is built (applied at every level). */
  mutate: number;
  /** Depth budget for nested messages. */
  depth: number;
  /** Force this member of the top-level oneof (e.g. one WorkerMessage kind). */
  topMember?: string;
}

/**
 * A random encoding of `type`. Valid unless a mutation fires; fields may come in any order, repeat,
 * arrive unpacked or split, and be interleaved with unknown fields.
 */
export function generate(rng: Rng, type: protobuf.Type, o: GenOptions, top = true): Buffer {
  const records: Buffer[] = [];
  const oneofDone = new Set<string>();
  for (const f of type.fieldsArray) {
    if (top && o.topMember !== undefined && f.partOf?.name === 'payload' && f.name !== o.topMember) continue;
    const forced = top && o.topMember === f.name;
    if (!forced && !rng.chance(f.partOf ? 0.35 : 0.75)) continue;
    if (f.partOf && !f.partOf.name.startsWith('_')) {
      // Mostly one member per oneof, as encoders write; sometimes two (a decoder must still agree).
      if (oneofDone.has(f.partOf.name) && !rng.chance(0.1)) continue;
      oneofDone.add(f.partOf.name);
    }
    const wire = wireOf(f);
    const occurrences = f.repeated ? rng.int(4) : rng.chance(0.1) ? 2 : 1;
    for (let i = 0; i < occurrences; i++) {
      if (f.resolvedType instanceof protobuf.Type) {
        const body = o.depth > 0 ? generate(rng, f.resolvedType, { ...o, depth: o.depth - 1, topMember: undefined }, false) : Buffer.alloc(0);
        records.push(Buffer.concat([key(f.id, 2), varint(BigInt(body.length)), body]));
      } else if (f.repeated && wire !== 2 && rng.chance(0.6)) {
        // Packed (possibly one of several chunks).
        const values: Buffer[] = [];
        for (let n = rng.int(6); n > 0; n--) values.push(randomScalar(rng, f));
        const body = Buffer.concat(values);
        records.push(Buffer.concat([key(f.id, 2), varint(BigInt(body.length)), body]));
      } else {
        records.push(Buffer.concat([key(f.id, wire), randomScalar(rng, f)]));
      }
    }
  }
  for (let n = rng.chance(0.2) ? rng.int(3) + 1 : 0; n > 0; n--) records.push(unknownField(rng, type));
  // Out of order: a conforming decoder does not care (except for which repeat wins, kept by the shuffle's order).
  if (rng.chance(0.3)) shuffle(rng, records);
  let buf: Buffer = Buffer.concat(records);
  if (rng.chance(o.mutate)) buf = mutate(rng, buf);
  return buf;
}

function shuffle<T>(rng: Rng, xs: T[]): void {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [xs[i], xs[j]] = [xs[j], xs[i]];
  }
}

function unknownField(rng: Rng, type: protobuf.Type): Buffer {
  let id = 15 + rng.int(2000);
  while (type.fieldsById[id]) id++;
  switch (rng.int(5)) {
    case 0:
      return Buffer.concat([key(id, 0), varint(BigInt(rng.int(2 ** 31)))]);
    case 1:
      return Buffer.concat([key(id, 1), rng.bytes(8)]);
    case 2:
      return Buffer.concat([key(id, 5), rng.bytes(4)]);
    case 3: {
      const b = rng.bytes(rng.int(20));
      return Buffer.concat([key(id, 2), varint(BigInt(b.length)), b]);
    }
    default:
      // A group: deprecated, but a conforming parser skips it.
      return Buffer.concat([key(id, 3), key(id + 1, 0), varint(5n), key(id, 4)]);
  }
}

export const MUTATIONS = [
  'truncate',
  'flip',
  'hugeLength',
  'overlongVarint',
  'wireType6or7',
  'wrongWireType',
  'invalidUtf8',
  'tenthByteOverflow',
  'fieldZero',
  'unmatchedEndGroup',
] as const;

/** One mutation of an encoded message body. */
export function mutate(rng: Rng, buf: Buffer): Buffer {
  const m = rng.pick(MUTATIONS);
  const at = rng.int(buf.length + 1);
  const ins = (b: Buffer): Buffer => Buffer.concat([buf.subarray(0, at), b, buf.subarray(at)]);
  const field = 1 + rng.int(12);
  switch (m) {
    case 'truncate':
      return buf.length > 0 ? buf.subarray(0, rng.int(buf.length)) : Buffer.from([0x0a]);
    case 'flip': {
      if (buf.length === 0) return Buffer.from([rng.int(256)]);
      const out = Buffer.from(buf);
      out[rng.int(out.length)] ^= 1 << rng.int(8);
      return out;
    }
    case 'hugeLength':
      // A field declaring about 268 MB, with three bytes present.
      return Buffer.concat([buf, key(field, 2), Buffer.from([0x80, 0x80, 0x80, 0x80, 0x01, 0x61, 0x62, 0x63])]);
    case 'overlongVarint':
      return ins(Buffer.concat([key(field, 0), Buffer.alloc(10, 0x80), Buffer.from([0x01])]));
    case 'wireType6or7':
      return ins(Buffer.concat([key(field, rng.chance(0.5) ? 6 : 7), Buffer.from([0x01, 0x02])]));
    case 'wrongWireType':
      return ins(Buffer.concat([key(field, rng.pick([0, 1, 2, 5])), Buffer.alloc(8, 0x01)]));
    case 'invalidUtf8':
      return ins(Buffer.concat([key(field, 2), Buffer.from([0x03, 0xff, 0xc3, 0x28])]));
    case 'tenthByteOverflow':
      return ins(Buffer.concat([key(field, 0), Buffer.alloc(9, 0xff), Buffer.from([0x02])]));
    case 'fieldZero':
      return ins(Buffer.from([0x00, 0x01]));
    case 'unmatchedEndGroup':
      return ins(Buffer.concat([key(field, 3), key(field + 1, 4)]));
  }
}

// ------------------------------------------------------------------ reference rules

class Cursor {
  constructor(
    readonly buf: Buffer,
    public pos: number,
    readonly end: number,
  ) {}
  varint(): bigint {
    let v = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new Error('truncated varint');
      const b = this.buf[this.pos++];
      v |= BigInt(b & 0x7f) << BigInt(7 * i);
      if (b < 0x80) {
        if (v >= 2n ** 64n) throw new Error('varint beyond 64 bits');
        return v;
      }
    }
    throw new Error('varint longer than 10 bytes');
  }
  take(n: bigint): number {
    if (n > BigInt(this.end - this.pos)) throw new Error('field runs past its message');
    const start = this.pos;
    this.pos += Number(n);
    return start;
  }
}

function skip(c: Cursor, field: bigint, wire: number, depth: number): void {
  if (wire === 0) c.varint();
  else if (wire === 1) c.take(8n);
  else if (wire === 5) c.take(4n);
  else if (wire === 2) c.take(c.varint());
  else if (wire === 3) {
    if (depth > 100) throw new Error('too deep');
    for (;;) {
      const k = c.varint();
      if (k >= 2n ** 32n) throw new Error('tag beyond 32 bits');
      if (k >> 3n === 0n) throw new Error('field 0');
      if (Number(k & 7n) === 4) {
        if (k >> 3n !== field) throw new Error('mismatched end group');
        return;
      }
      skip(c, k >> 3n, Number(k & 7n), depth + 1);
    }
  } else throw new Error(`wire type ${wire}`);
}

/**
 * The protobuf encoding rules a conforming parser enforces (and protobufjs, lenient, partly does not):
 * tags of at most 32 bits with a field number above 0; wire types 0, 1, 2, 5 and matched groups;
 * varints of at most 10 bytes within 64 bits; every length inside its message; a known field with its
 * type's wire type (a repeated scalar also packed, every packed element whole).
 */
export function strictCheck(type: protobuf.Type, buf: Buffer, start = 0, end = buf.length, depth = 0): void {
  if (depth > 100) throw new Error('too deep');
  const c = new Cursor(buf, start, end);
  while (c.pos < c.end) {
    const k = c.varint();
    if (k >= 2n ** 32n) throw new Error('tag beyond 32 bits');
    const id = k >> 3n;
    const wire = Number(k & 7n);
    if (id === 0n) throw new Error('field 0');
    const f = type.fieldsById[Number(id)];
    if (!f) {
      skip(c, id, wire, depth);
      continue;
    }
    const expected = wireOf(f);
    if (f.repeated && expected !== 2 && wire === 2) {
      const len = c.varint();
      const s = c.take(len);
      const inner = new Cursor(buf, s, s + Number(len));
      while (inner.pos < inner.end) skip(inner, id, expected, depth);
      continue;
    }
    if (wire !== expected) throw new Error(`wire type ${wire} for ${f.name}`);
    if (f.resolvedType instanceof protobuf.Type) {
      const len = c.varint();
      const s = c.take(len);
      strictCheck(f.resolvedType, buf, s, s + Number(len), depth + 1);
    } else skip(c, id, wire, depth);
  }
}

/** The packed body of a repeated uint64 as decimal strings (protobufjs's `longs: String`). */
export function unpackUint64(body: Buffer): string[] {
  const c = new Cursor(body, 0, body.length);
  const out: string[] = [];
  while (c.pos < c.end) out.push(c.varint().toString());
  return out;
}
