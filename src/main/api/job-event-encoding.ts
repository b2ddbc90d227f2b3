/**
 * Hand-rolled encoding of the small `JobEvent`s (queued, started, progress, cancelled): a job id and
 * a timestamp. Every prove job sends four or five of them; proto-loader's `fromObject` + `encode`
 * built two message objects and a Long per event. Completed and failed events carry nested results
 * and keep the generated encoder. Zero-valued scalars are omitted, as proto3 encoders do; any decoder
 * reads the same message (test/api/job-event-encoding.test.ts decodes the output with the proto).
 */
import { varintSize, writeVarint } from '../../shared/protobuf-wire';
import type { JobEventWire } from './job-mirror';
import type { TimestampWire } from './results';

/** JobEvent oneof members (client-api proto). */
const EVENT_QUEUED = 1;
const EVENT_STARTED = 2;
const EVENT_PROGRESS = 3;
const EVENT_CANCELLED = 6;

/** A non-negative safe integer, or 0 (what a varint here can carry without sign extension). */
function unsigned(n: number): number {
  return Number.isSafeInteger(n) && n > 0 ? n : 0;
}

function timestampLength(t: TimestampWire): number {
  const s = unsigned(t.seconds);
  const ns = unsigned(t.nanos);
  return (s > 0 ? 1 + varintSize(s) : 0) + (ns > 0 ? 1 + varintSize(ns) : 0);
}

function writeTimestamp(buf: Buffer, pos: number, field: number, t: TimestampWire, len: number): number {
  buf[pos++] = (field << 3) | 2;
  pos = writeVarint(buf, pos, len);
  const s = unsigned(t.seconds);
  const ns = unsigned(t.nanos);
  if (s > 0) {
    buf[pos++] = (1 << 3) | 0;
    pos = writeVarint(buf, pos, s);
  }
  if (ns > 0) {
    buf[pos++] = (2 << 3) | 0;
    pos = writeVarint(buf, pos, ns);
  }
  return pos;
}

function encodeSimple(member: number, jobId: string, timestamp: TimestampWire, timestampField: number, phase?: number): Buffer {
  const idLen = Buffer.byteLength(jobId, 'utf8');
  const tsLen = timestampLength(timestamp);
  const ph = phase === undefined ? 0 : unsigned(phase);
  const innerLen = 1 + varintSize(idLen) + idLen + (ph > 0 ? 1 + varintSize(ph) : 0) + 1 + varintSize(tsLen) + tsLen;
  const buf = Buffer.allocUnsafe(1 + varintSize(innerLen) + innerLen);
  let pos = 0;
  buf[pos++] = (member << 3) | 2;
  pos = writeVarint(buf, pos, innerLen);
  buf[pos++] = (1 << 3) | 2;
  pos = writeVarint(buf, pos, idLen);
  pos += buf.write(jobId, pos, 'utf8');
  if (ph > 0) {
    buf[pos++] = (2 << 3) | 0;
    pos = writeVarint(buf, pos, ph);
  }
  pos = writeTimestamp(buf, pos, timestampField, timestamp, tsLen);
  return pos === buf.length ? buf : buf.subarray(0, pos);
}

/** The encoded event, or undefined for the kinds left to the generated encoder. */
export function encodeSmallJobEvent(event: JobEventWire): Buffer | undefined {
  if ('queued' in event) return encodeSimple(EVENT_QUEUED, event.queued.job_id, event.queued.timestamp, 2);
  if ('started' in event) return encodeSimple(EVENT_STARTED, event.started.job_id, event.started.timestamp, 2);
  if ('progress' in event) return encodeSimple(EVENT_PROGRESS, event.progress.job_id, event.progress.timestamp, 3, event.progress.phase);
  if ('cancelled' in event) return encodeSimple(EVENT_CANCELLED, event.cancelled.job_id, event.cancelled.timestamp, 2);
  return undefined;
}
