/**
 * Client-facing errors as grpc-js statuses (decisions D2): the upstream status code and message
 * text, plus a `google.rpc.Status` in the `grpc-status-details-bin` trailer whose single detail is an
 * `Any` holding `zisk.coordinator.v1.ApiError{code, name, message}`.
 *
 * The three messages are tiny and fixed (proto/google/rpc/status.proto, google/protobuf/any.proto and
 * ApiError in zisk_coordinator_api.proto), and proto-loader hands out descriptors, not encoders, so
 * they are written field by field here; test/api/errors.test.ts decodes the result with protobufjs
 * loaded from those same .proto files.
 */
import * as grpc from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import { apiErrors, grpcMessageOf, grpcStatusOf, numericCodeOf, type ApiErrorData } from '../shared/errors';

export const STATUS_DETAILS_KEY = 'grpc-status-details-bin';
export const API_ERROR_TYPE_URL = 'type.googleapis.com/zisk.coordinator.v1.ApiError';

/** An error a handler throws to answer with a coded status. */
export class ApiFailure extends Error {
  constructor(readonly data: ApiErrorData) {
    super(data.message);
    this.name = 'ApiFailure';
  }
}

/** The error object grpc-js sends as the call's final status. */
export type ServiceErrorObject = grpc.ServiceError;

/** Builds the grpc-js error for a coded API error, details trailer included. */
export function toServiceError(err: ApiErrorData): ServiceErrorObject {
  const code = grpcStatusOf(err.code);
  const details = grpcMessageOf(err);
  const metadata = new grpc.Metadata();
  metadata.set(STATUS_DETAILS_KEY, encodeStatus(code, details, err));
  return Object.assign(new Error(details), { code, details, metadata });
}

/**
 * An INTERNAL error: the client sees upstream's fixed text, the trace id travels in the ApiError
 * message, and the caller logs the cause with the same trace id.
 */
export function internalFailure(): { traceId: string; error: ApiErrorData } {
  const traceId = randomUUID();
  return { traceId, error: apiErrors.internal(traceId) };
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

function varint(value: number): Buffer {
  const out: number[] = [];
  let v = value;
  while (v > 0x7f) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return Buffer.from(out);
}

function lenField(field: number, body: Buffer): Buffer {
  return Buffer.concat([varint((field << 3) | 2), varint(body.length), body]);
}

function varintField(field: number, value: number): Buffer {
  return value === 0 ? Buffer.alloc(0) : Buffer.concat([varint(field << 3), varint(value)]);
}

function stringField(field: number, value: string): Buffer {
  return value === '' ? Buffer.alloc(0) : lenField(field, Buffer.from(value, 'utf8'));
}

export function encodeApiError(err: ApiErrorData): Buffer {
  return Buffer.concat([varintField(1, numericCodeOf(err.code)), stringField(2, err.code), stringField(3, err.message)]);
}

function encodeStatus(code: number, message: string, err: ApiErrorData): Buffer {
  const any = Buffer.concat([stringField(1, API_ERROR_TYPE_URL), lenField(2, encodeApiError(err))]);
  return Buffer.concat([varintField(1, code), stringField(2, message), lenField(3, any)]);
}

// ---------------------------------------------------------------------------------------------
// Decoding (clients and tests)
// ---------------------------------------------------------------------------------------------

export interface DecodedApiError {
  code: number;
  name: string;
  message: string;
}

export interface DecodedStatus {
  code: number;
  message: string;
  details: { typeUrl: string; value: Buffer }[];
}

type Field = { field: number; wire: number; int?: number; bytes?: Buffer };

function* fields(buf: Buffer): Generator<Field> {
  let pos = 0;
  const readVarint = (): number => {
    let result = 0;
    let shift = 1;
    for (;;) {
      if (pos >= buf.length) throw new Error('truncated varint');
      const b = buf[pos++];
      result += (b & 0x7f) * shift;
      if ((b & 0x80) === 0) return result;
      shift *= 0x80;
    }
  };
  while (pos < buf.length) {
    const key = readVarint();
    const field = Math.floor(key / 8);
    const wire = key & 7;
    if (wire === 0) yield { field, wire, int: readVarint() };
    else if (wire === 2) {
      const len = readVarint();
      if (pos + len > buf.length) throw new Error('truncated field');
      yield { field, wire, bytes: buf.subarray(pos, pos + len) };
      pos += len;
    } else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else throw new Error(`unsupported wire type ${wire}`);
  }
}

export function decodeStatus(buf: Buffer): DecodedStatus {
  const out: DecodedStatus = { code: 0, message: '', details: [] };
  for (const f of fields(buf)) {
    if (f.field === 1 && f.int !== undefined) out.code = f.int;
    else if (f.field === 2 && f.bytes) out.message = f.bytes.toString('utf8');
    else if (f.field === 3 && f.bytes) {
      const detail = { typeUrl: '', value: Buffer.alloc(0) };
      for (const g of fields(f.bytes)) {
        if (g.field === 1 && g.bytes) detail.typeUrl = g.bytes.toString('utf8');
        else if (g.field === 2 && g.bytes) detail.value = Buffer.from(g.bytes);
      }
      out.details.push(detail);
    }
  }
  return out;
}

export function decodeApiError(buf: Buffer): DecodedApiError {
  const out: DecodedApiError = { code: 0, name: '', message: '' };
  for (const f of fields(buf)) {
    if (f.field === 1 && f.int !== undefined) out.code = f.int;
    else if (f.field === 2 && f.bytes) out.name = f.bytes.toString('utf8');
    else if (f.field === 3 && f.bytes) out.message = f.bytes.toString('utf8');
  }
  return out;
}

/** The ApiError carried by a received status, if any. */
export function apiErrorOf(metadata: grpc.Metadata | undefined): DecodedApiError | undefined {
  const raw = metadata?.get(STATUS_DETAILS_KEY)[0];
  if (!Buffer.isBuffer(raw)) return undefined;
  const detail = decodeStatus(raw).details.find((d) => d.typeUrl === API_ERROR_TYPE_URL);
  return detail ? decodeApiError(detail.value) : undefined;
}
