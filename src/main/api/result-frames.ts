/**
 * A completed job's answer — WaitJobResult's response and WatchJob's `completed` event — encoded once
 * per job and shared by every reader, without copying the proof (docs/architecture.md, Data plane: big results).
 *
 * The generated encoder would copy the proof into every reader's message, and grpc-js copies each
 * message once more to frame it: 20 readers of a 100 MiB proof were 4 GiB of copies made on the main
 * thread. Here the message is laid out with the proof as its last field at every level (protobuf
 * parsers accept fields in any order), so it is a small `head` — the gRPC length prefix and every
 * other field — followed by the proof buffer the job already holds. `shared-writes.ts` writes the two
 * parts to each reader's HTTP/2 stream as they are.
 */
import { randomBytes } from 'node:crypto';
import { CLIENT_API_PROTO, CLIENT_API_SERVICE, serviceDefinition } from '../../shared/proto';
import { readVarint, varint, WIRE_I32, WIRE_I64, WIRE_LEN, WIRE_VARINT } from '../../shared/protobuf-wire';
import type { JobEventWire, JobRecord } from './job-mirror';
import type { JobKindResponseWire } from './results';
import type { WaitResponse } from './messages';

/** Proofs smaller than this keep the generated encoder: their copies cost less than a second path. */
export const SHARED_RESULT_MIN_BYTES = 64 * 1024;

/** The gRPC message prefix: a compression flag and the message length (big-endian uint32). */
const GRPC_PREFIX_BYTES = 5;

/** A gRPC message as two parts: `head` (length prefix + all fields but the proof) and `tail` (the proof). */
export class FramedMessage {
  constructor(
    readonly head: Buffer,
    readonly tail: Buffer,
  ) {}

  /** The protobuf message's length (without the gRPC prefix). */
  get messageBytes(): number {
    return this.head.length - GRPC_PREFIX_BYTES + this.tail.length;
  }

  /** The protobuf message in one buffer: a copy of the proof, for writers that cannot take two parts. */
  contiguous(): Buffer {
    return Buffer.concat([this.head.subarray(GRPC_PREFIX_BYTES), this.tail], this.messageBytes);
  }
}

/**
 * Stands in for the proof while the rest is encoded, then found again in the output. 32 random bytes:
 * that they occur by chance in a job's other fields is not a real possibility, and a second occurrence
 * is checked anyway (the message is then encoded whole).
 */
const MARKER = randomBytes(32);

/** The proof bytes of a prove or wrap result (undefined for setup and execute). */
export function proofDataOf(response: JobKindResponseWire): Buffer | undefined {
  if ('prove' in response) return response.prove.proof.data;
  if ('wrap' in response) return response.wrap.proof.data;
  return undefined;
}

/** A copy of `response` (the objects on the path to the proof, not the buffers) with other proof bytes. */
function withProofData(response: JobKindResponseWire, data: Buffer): JobKindResponseWire {
  if ('prove' in response) return { prove: { ...response.prove, proof: { ...response.prove.proof, data } } };
  if ('wrap' in response) return { wrap: { ...response.wrap, proof: { ...response.wrap.proof, data } } };
  return response;
}

interface Laid {
  /** Every byte of the message but the proof, in order. */
  parts: Buffer[];
  /** The message's length, proof included. */
  length: number;
}

/**
 * Re-lays `enc[start, end)` — a message that contains the marker at `at`, as the content of a bytes
 * field — with the field on the marker's path moved last at every level and the marker replaced by
 * `bulkBytes` bytes. Undefined if the bytes are not what the encoder should have produced.
 */
function relayout(enc: Buffer, start: number, end: number, at: number, bulkBytes: number): Laid | undefined {
  const parts: Buffer[] = [];
  let length = 0;
  let path: { key: Buffer; inner: Laid } | undefined;
  let pos = start;
  while (pos < end) {
    const fieldStart = pos;
    const key = readVarint(enc, pos);
    pos = key.next;
    switch (key.value & 7) {
      case WIRE_VARINT:
        pos = readVarint(enc, pos).next;
        break;
      case WIRE_I64:
        pos += 8;
        break;
      case WIRE_I32:
        pos += 4;
        break;
      case WIRE_LEN: {
        const len = readVarint(enc, pos);
        const contentEnd = len.next + len.value;
        if (at >= len.next && at < contentEnd) {
          if (path) return undefined;
          const keyBytes = enc.subarray(fieldStart, key.next);
          const inner =
            at === len.next && len.value === MARKER.length
              ? { parts: [], length: bulkBytes }
              : relayout(enc, len.next, contentEnd, at, bulkBytes);
          if (!inner) return undefined;
          path = { key: keyBytes, inner };
          pos = contentEnd;
          continue;
        }
        pos = contentEnd;
        break;
      }
      default:
        return undefined;
    }
    if (pos > end) return undefined;
    parts.push(enc.subarray(fieldStart, pos));
    length += pos - fieldStart;
  }
  if (!path) return undefined;
  const innerLength = varint(path.inner.length);
  parts.push(path.key, innerLength, ...path.inner.parts);
  return { parts, length: length + path.key.length + innerLength.length + path.inner.length };
}

function prefixed(parts: Buffer[], messageBytes: number, headBytes: number): Buffer {
  const head = Buffer.allocUnsafe(GRPC_PREFIX_BYTES + headBytes);
  head[0] = 0;
  head.writeUInt32BE(messageBytes, 1);
  let pos = GRPC_PREFIX_BYTES;
  for (const p of parts) pos += p.copy(head, pos);
  return head;
}

/**
 * Encodes `build(proof)` with `encode`, as a head and the proof itself. Falls back to one contiguous
 * message (head only) if the marker cannot be located exactly once.
 */
export function frameWithProof(encode: (value: object) => Buffer, build: (proof: Buffer) => object, proof: Buffer): FramedMessage {
  const enc = encode(build(MARKER));
  const at = enc.indexOf(MARKER);
  const laid = at >= 0 && enc.indexOf(MARKER, at + 1) < 0 ? safeRelayout(enc, at, proof.length) : undefined;
  if (!laid) {
    const whole = encode(build(proof));
    return new FramedMessage(prefixed([whole], whole.length, whole.length), Buffer.alloc(0));
  }
  return new FramedMessage(prefixed(laid.parts, laid.length, laid.length - proof.length), proof);
}

function safeRelayout(enc: Buffer, at: number, bulkBytes: number): Laid | undefined {
  try {
    return relayout(enc, 0, enc.length, at, bulkBytes);
  } catch {
    return undefined; // a malformed varint: not what the encoder writes
  }
}

const API = serviceDefinition(CLIENT_API_PROTO, CLIENT_API_SERVICE);
const encodeWaitResponse = API.WaitJobResult.responseSerialize as (value: object) => Buffer;
const encodeJobEvent = API.WatchJob.responseSerialize as (value: object) => Buffer;

interface Frames {
  /** The proof they were built with: a restored job's proof is read back later (JobRegistry.ensureResult). */
  proof: Buffer;
  wait?: FramedMessage;
  completed?: FramedMessage;
}

/** Per job, its shared answers; a dropped record takes its entry with it. */
const framesOf = new WeakMap<JobRecord, Frames>();

function framesFor(rec: JobRecord): Frames | undefined {
  const response = rec.state === 'completed' ? rec.result?.response : undefined;
  const proof = response ? proofDataOf(response) : undefined;
  if (!proof || proof.length < SHARED_RESULT_MIN_BYTES) return undefined;
  let frames = framesOf.get(rec);
  if (!frames || frames.proof !== proof) {
    frames = { proof };
    framesOf.set(rec, frames);
  }
  return frames;
}

/** WaitJobResult's response for a completed job with a big proof, built once; undefined otherwise. */
export function sharedWaitResponse(rec: JobRecord, response: WaitResponse): FramedMessage | undefined {
  const frames = framesFor(rec);
  const result = response.result;
  if (!frames || !result) return undefined;
  frames.wait ??= frameWithProof(encodeWaitResponse, (proof) => ({ ...response, result: withProofData(result, proof) }), frames.proof);
  return frames.wait;
}

/** WatchJob's `completed` event for a job with a big proof, built once; undefined otherwise. */
export function sharedCompletedEvent(rec: JobRecord, event: JobEventWire): FramedMessage | undefined {
  if (!('completed' in event)) return undefined;
  const frames = framesFor(rec);
  if (!frames) return undefined;
  const completed = event.completed;
  frames.completed ??= frameWithProof(encodeJobEvent, (proof) => ({ completed: { ...completed, result: withProofData(completed.result, proof) } }), frames.proof);
  return frames.completed;
}
