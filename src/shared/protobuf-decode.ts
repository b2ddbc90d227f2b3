/**
 * A strict, table-driven protobuf decoder (docs/protocol.md, Inbound protobuf). It accepts exactly
 * the encodings a conforming parser accepts and rejects the rest with a WireError that says what and
 * where; the values it produces are the objects proto-loader would (our LOADER_OPTIONS: longs as
 * decimal strings, enums as numbers, bytes as Buffers, defaults filled, oneof names set).
 *
 * Fields the coordinator only relays are kept as raw bytes without being decoded into values, but
 * their structure is still walked (see `opaque` and `packedUint64`), so nothing malformed is relayed.
 */
import { WIRE_I32, WIRE_I64, WIRE_LEN, WIRE_VARINT, WireError } from './protobuf-wire';

const WIRE_START_GROUP = 3;
const WIRE_END_GROUP = 4;

/** Nesting limit for messages and groups (the limit upstream's decoder applies too). */
export const MAX_DEPTH = 100;

export type ScalarKind = 'string' | 'bytes' | 'bool' | 'uint32' | 'int32' | 'enum' | 'uint64' | 'float' | 'double';

export type FieldSpec =
  | { readonly name: string; readonly kind: ScalarKind; readonly oneof?: string }
  /** An embedded message, decoded. A repeated occurrence replaces the earlier one (as protobufjs does). */
  | { readonly name: string; readonly kind: 'message'; readonly type: () => MessageSpec; readonly repeated?: boolean; readonly oneof?: string }
  /** An embedded message kept as its raw bytes; its structure is validated against `type`. */
  | { readonly name: string; readonly kind: 'opaque'; readonly type: () => MessageSpec; readonly repeated?: boolean; readonly oneof?: string }
  /**
   * A `repeated uint64`, kept as one packed body (the bytes of its varints, in order), whether it
   * arrived packed, unpacked or split over several occurrences. Varints are checked, not decoded.
   */
  | { readonly name: string; readonly kind: 'packedUint64' };

export interface MessageSpec {
  readonly name: string;
  readonly fields: ReadonlyMap<number, FieldSpec>;
}

/** Builds a message spec; oneof membership comes from each field's `oneof`. */
export function message(name: string, fields: Record<number, FieldSpec>): MessageSpec {
  return { name, fields: new Map(Object.entries(fields).map(([n, f]) => [Number(n), f])) };
}

const EXPECTED_WIRE: Record<FieldSpec['kind'], number> = {
  string: WIRE_LEN,
  bytes: WIRE_LEN,
  bool: WIRE_VARINT,
  uint32: WIRE_VARINT,
  int32: WIRE_VARINT,
  enum: WIRE_VARINT,
  uint64: WIRE_VARINT,
  float: WIRE_I32,
  double: WIRE_I64,
  message: WIRE_LEN,
  opaque: WIRE_LEN,
  packedUint64: WIRE_LEN,
};

const EMPTY = Buffer.alloc(0);

/**
 * Where a relayed field's content failed validation. The message around it is well-formed, so the
 * caller can blame its sender precisely instead of dropping the stream.
 */
export class RelayedContentError extends WireError {
  constructor(
    readonly field: string,
    readonly reason: string,
  ) {
    super(`${field}: ${reason}`);
    this.name = 'RelayedContentError';
  }
}

// The varint last read by `varintAt`, as two uint32 halves (no allocation per varint).
let vLo = 0;
let vHi = 0;

/**
 * Reads a varint at `pos` (not past `end`) into vLo/vHi and returns the position after it. At most
 * 10 bytes, and the 10th may only carry the 64th bit: anything longer or larger is not a uint64.
 */
function varintAt(buf: Buffer, pos: number, end: number): number {
  let lo = 0;
  let b: number;
  for (let shift = 0; shift < 28; shift += 7) {
    if (pos >= end) throw new WireError(`truncated varint at byte ${pos}`);
    b = buf[pos++];
    lo |= (b & 0x7f) << shift;
    if (b < 0x80) {
      vLo = lo >>> 0;
      vHi = 0;
      return pos;
    }
  }
  if (pos >= end) throw new WireError(`truncated varint at byte ${pos}`);
  b = buf[pos++];
  lo |= (b & 0x7f) << 28;
  let hi = (b & 0x7f) >>> 4;
  if (b < 0x80) {
    vLo = lo >>> 0;
    vHi = hi;
    return pos;
  }
  for (let shift = 3; shift < 31; shift += 7) {
    if (pos >= end) throw new WireError(`truncated varint at byte ${pos}`);
    b = buf[pos++];
    hi |= (b & 0x7f) << shift;
    if (b < 0x80) {
      vLo = lo >>> 0;
      vHi = hi >>> 0;
      return pos;
    }
  }
  if (pos >= end) throw new WireError(`truncated varint at byte ${pos}`);
  b = buf[pos++];
  if (b > 1) throw new WireError(b >= 0x80 ? `varint longer than 10 bytes at byte ${pos - 10}` : `varint beyond 64 bits at byte ${pos - 10}`);
  vLo = lo >>> 0;
  vHi = (hi | (b << 31)) >>> 0;
  return pos;
}

/**
 * Checks that [pos, end) is a whole sequence of valid varints (a packed body) with the rules of
 * `varintAt`, in one pass over the bytes: proof lists carry millions of values.
 */
export function checkPackedVarints(buf: Buffer, pos: number, end: number): void {
  // Continuation bytes seen in the current varint.
  let run = 0;
  for (let i = pos; i < end; i++) {
    const b = buf[i];
    if (b < 0x80) {
      if (run === 9 && b > 1) throw new WireError(`varint beyond 64 bits at byte ${i - 9}`);
      run = 0;
    } else if (++run === 10) throw new WireError(`varint longer than 10 bytes at byte ${i - 9}`);
  }
  if (run !== 0) throw new WireError(`truncated varint at byte ${end}`);
}

function uint64String(lo: number, hi: number): string {
  if (hi === 0) return String(lo);
  if (hi < 0x200000) return String(hi * 0x100000000 + lo);
  return ((BigInt(hi) << 32n) | BigInt(lo)).toString();
}

/** Reads a length at `pos` and checks it fits before `end`; returns the position after the varint. */
function lengthAt(buf: Buffer, pos: number, end: number): { start: number; stop: number } {
  const at = pos;
  pos = varintAt(buf, pos, end);
  if (vHi !== 0 || vLo > end - pos) {
    throw new WireError(`length ${uint64String(vLo, vHi)} at byte ${at} runs past the end of its message (${end - pos} bytes left)`);
  }
  return { start: pos, stop: pos + vLo };
}

/** Reads a tag; returns the position after it and sets `tagField` / `tagWire`. */
let tagField = 0;
let tagWire = 0;
function tagAt(buf: Buffer, pos: number, end: number): number {
  const at = pos;
  pos = varintAt(buf, pos, end);
  if (vHi !== 0) throw new WireError(`tag beyond 32 bits at byte ${at}`);
  tagField = vLo >>> 3;
  tagWire = vLo & 7;
  if (tagField === 0) throw new WireError(`field number 0 at byte ${at}`);
  return pos;
}

/** Skips the value of an unknown field; returns the position after it. */
function skipValue(buf: Buffer, pos: number, end: number, field: number, wire: number, depth: number): number {
  switch (wire) {
    case WIRE_VARINT:
      return varintAt(buf, pos, end);
    case WIRE_I64:
      if (end - pos < 8) throw new WireError(`truncated 64-bit field ${field} at byte ${pos}`);
      return pos + 8;
    case WIRE_LEN:
      return lengthAt(buf, pos, end).stop;
    case WIRE_I32:
      if (end - pos < 4) throw new WireError(`truncated 32-bit field ${field} at byte ${pos}`);
      return pos + 4;
    case WIRE_START_GROUP: {
      if (depth >= MAX_DEPTH) throw new WireError(`nesting deeper than ${MAX_DEPTH} at byte ${pos}`);
      for (;;) {
        if (pos >= end) throw new WireError(`group ${field} not closed`);
        const at = pos;
        pos = tagAt(buf, pos, end);
        if (tagWire === WIRE_END_GROUP) {
          if (tagField !== field) throw new WireError(`end of group ${tagField} at byte ${at} closes group ${field}`);
          return pos;
        }
        pos = skipValue(buf, pos, end, tagField, tagWire, depth + 1);
      }
    }
    case WIRE_END_GROUP:
      throw new WireError(`end of group ${field} at byte ${pos} without its start`);
    default:
      throw new WireError(`invalid wire type ${wire} (field ${field}) at byte ${pos}`);
  }
}

type Out = Record<string, unknown>;

/** Collects the parts of a packed array that arrived in several occurrences. */
function addPart(parts: Map<string, Buffer[]> | undefined, name: string, part: Buffer): Map<string, Buffer[]> {
  const map = parts ?? new Map<string, Buffer[]>();
  const list = map.get(name);
  if (list) list.push(part);
  else map.set(name, [part]);
  return map;
}

/** Default values of a message's implicit-presence fields, as proto-loader fills them. */
function defaultsOf(spec: MessageSpec): Out {
  const out: Out = {};
  for (const f of spec.fields.values()) {
    if ('oneof' in f && f.oneof !== undefined) continue;
    switch (f.kind) {
      case 'string':
        out[f.name] = '';
        break;
      case 'bytes':
      case 'packedUint64':
        out[f.name] = EMPTY;
        break;
      case 'bool':
        out[f.name] = false;
        break;
      case 'uint64':
        out[f.name] = '0';
        break;
      case 'message':
      case 'opaque':
        out[f.name] = f.repeated ? [] : null;
        break;
      default:
        out[f.name] = 0;
    }
  }
  return out;
}

interface Ctx {
  /** The first relayed field whose content failed validation (the message is still decoded). */
  relayError?: RelayedContentError;
}

/**
 * Decodes [pos, end) as `spec` into an object (or only validates it, throwing on any fault, when
 * `decode` is false).
 * Throws WireError on any malformed structure outside relayed fields.
 */
function walk(spec: MessageSpec, buf: Buffer, pos: number, end: number, depth: number, ctx: Ctx, decode: boolean): Out | undefined {
  if (depth > MAX_DEPTH) throw new WireError(`nesting deeper than ${MAX_DEPTH}`);
  const out: Out | undefined = decode ? defaultsOf(spec) : undefined;
  let packed: Map<string, Buffer[]> | undefined;
  let oneofsSeen: Set<string> | undefined;
  while (pos < end) {
    const at = pos;
    pos = tagAt(buf, pos, end);
    const field = tagField;
    const wire = tagWire;
    const f = spec.fields.get(field);
    if (!f) {
      pos = skipValue(buf, pos, end, field, wire, depth);
      continue;
    }
    // A repeated uint64 may also come unpacked: one varint per occurrence.
    if (f.kind === 'packedUint64' && wire === WIRE_VARINT) {
      const start = pos;
      pos = varintAt(buf, pos, end);
      if (out) packed = addPart(packed, f.name, buf.subarray(start, pos));
      continue;
    }
    if (wire !== EXPECTED_WIRE[f.kind]) {
      throw new WireError(`${spec.name}.${f.name} (field ${field}) has wire type ${wire}, expected ${EXPECTED_WIRE[f.kind]}, at byte ${at}`);
    }
    let value: unknown;
    switch (f.kind) {
      case 'string':
      case 'bytes': {
        const { start, stop } = lengthAt(buf, pos, end);
        pos = stop;
        if (out) value = f.kind === 'string' ? buf.toString('utf8', start, stop) : buf.subarray(start, stop);
        break;
      }
      case 'float':
        if (end - pos < 4) throw new WireError(`truncated ${spec.name}.${f.name} at byte ${pos}`);
        if (out) value = buf.readFloatLE(pos);
        pos += 4;
        break;
      case 'double':
        if (end - pos < 8) throw new WireError(`truncated ${spec.name}.${f.name} at byte ${pos}`);
        if (out) value = buf.readDoubleLE(pos);
        pos += 8;
        break;
      case 'message': {
        const { start, stop } = lengthAt(buf, pos, end);
        pos = stop;
        value = walk(f.type(), buf, start, stop, depth + 1, ctx, decode);
        break;
      }
      case 'opaque': {
        const { start, stop } = lengthAt(buf, pos, end);
        pos = stop;
        if (!out) walk(f.type(), buf, start, stop, depth + 1, ctx, false);
        else if (!ctx.relayError) {
          try {
            walk(f.type(), buf, start, stop, depth + 1, ctx, false);
          } catch (e) {
            if (!(e instanceof WireError)) throw e;
            const index = f.repeated && out ? `[${(out[f.name] as Buffer[]).length}]` : '';
            ctx.relayError = new RelayedContentError(`${spec.name}.${f.name}${index}`, `not a valid ${f.type().name}: ${e.message}`);
          }
        }
        if (out) value = buf.subarray(start, stop);
        break;
      }
      case 'packedUint64': {
        const { start, stop } = lengthAt(buf, pos, end);
        pos = stop;
        if (out) {
          try {
            checkPackedVarints(buf, start, stop);
          } catch (e) {
            if (!(e instanceof WireError)) throw e;
            ctx.relayError ??= new RelayedContentError(`${spec.name}.${f.name}`, `not a packed uint64 array: ${e.message}`);
          }
          packed = addPart(packed, f.name, buf.subarray(start, stop));
        } else checkPackedVarints(buf, start, stop);
        continue;
      }
      default: {
        pos = varintAt(buf, pos, end);
        if (!out) break;
        // The low 32 bits, as protobufjs reads every 32-bit varint field.
        if (f.kind === 'uint64') value = uint64String(vLo, vHi);
        else if (f.kind === 'bool') value = vLo !== 0;
        else if (f.kind === 'uint32') value = vLo;
        else value = vLo | 0;
      }
    }
    if (!out) continue;
    if ((f.kind === 'message' || f.kind === 'opaque') && f.repeated) (out[f.name] as unknown[]).push(value);
    else out[f.name] = value;
    if ('oneof' in f && f.oneof !== undefined) (oneofsSeen ??= new Set()).add(f.name);
  }
  if (!out) return undefined;
  if (packed) {
    for (const [name, parts] of packed) out[name] = parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }
  if (oneofsSeen) {
    // Like protobufjs: every member seen stays, and the oneof names the last one in declaration order.
    for (const f of spec.fields.values()) {
      if ('oneof' in f && f.oneof !== undefined && oneofsSeen.has(f.name)) out[f.oneof] = f.name;
    }
  }
  return out;
}

export interface Decoded {
  value: Out;
  /** Set when a relayed field's content is malformed; `value` is complete otherwise. */
  relayError?: RelayedContentError;
}

/** Decodes a whole buffer as `spec`. Throws WireError on malformed structure outside relayed fields. */
export function decodeStrict(spec: MessageSpec, buf: Buffer): Decoded {
  const ctx: Ctx = {};
  const value = walk(spec, buf, 0, buf.length, 0, ctx, true)!;
  return ctx.relayError ? { value, relayError: ctx.relayError } : { value };
}

/** Validates a whole buffer as `spec` without building values. Throws WireError when malformed. */
export function validateStrict(spec: MessageSpec, buf: Buffer): void {
  walk(spec, buf, 0, buf.length, 0, {}, false);
}
