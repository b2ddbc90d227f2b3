/**
 * Client-facing errors as grpc-js statuses (docs/decisions.md, Errors): the upstream status code and
 * message text, plus a `google.rpc.Status` in the `grpc-status-details-bin` trailer whose single detail
 * is an `Any` holding `zisk.coordinator.v1.ApiError{code, name, message}`.
 *
 * The three messages are tiny and fixed (proto/google/rpc/status.proto, google/protobuf/any.proto and
 * ApiError in zisk_coordinator_api.proto), and proto-loader hands out descriptors, not encoders, so
 * they are written field by field here; test/api/errors.test.ts decodes the result with protobufjs
 * loaded from those same .proto files.
 */
import * as grpc from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import { FieldWriter, WIRE_I32, WIRE_I64, WIRE_LEN, WIRE_VARINT, readVarint } from '../../shared/protobuf-wire';
import { apiErrors, grpcMessageOf, grpcStatusOf, numericCodeOf, shown, type ApiErrorData } from '../../shared/errors';
import type { LimitName } from '../observability/metrics';

export const STATUS_DETAILS_KEY = 'grpc-status-details-bin';
export const API_ERROR_TYPE_URL = 'type.googleapis.com/zisk.coordinator.v1.ApiError';

/** An error a handler throws to answer with a coded status. */
export class ApiFailure extends Error {
  /** Set when the request was refused at one of the limits (counted in `coordinator_limit_rejections_total`). */
  readonly limit: LimitName | undefined;

  constructor(readonly data: ApiErrorData, limit?: LimitName) {
    super(data.message);
    this.name = 'ApiFailure';
    this.limit = limit;
  }
}

/**
 * The longest error text sent. Every echoed value is already cut (`shown`); this is the backstop, so
 * an error can never exceed a client's metadata limit and break its connection's other calls.
 */
export const MAX_ERROR_MESSAGE_CHARS = 2048;

function capped(text: string): string {
  return text.length <= MAX_ERROR_MESSAGE_CHARS ? text : shown(text, MAX_ERROR_MESSAGE_CHARS);
}

/** The error object grpc-js sends as the call's final status. */
export type ServiceErrorObject = grpc.ServiceError;

/** Builds the grpc-js error for a coded API error, details trailer included. */
export function toServiceError(full: ApiErrorData): ServiceErrorObject {
  const err = { code: full.code, message: capped(full.message) };
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

function apiErrorFields(err: ApiErrorData): FieldWriter {
  return new FieldWriter().uint(1, numericCodeOf(err.code)).string(2, err.code).string(3, err.message);
}

export function encodeApiError(err: ApiErrorData): Buffer {
  return apiErrorFields(err).finish();
}

/** `google.rpc.Status{code, message, details: [Any{type_url, value: ApiError}]}` */
function encodeStatus(code: number, message: string, err: ApiErrorData): Buffer {
  const any = new FieldWriter().string(1, API_ERROR_TYPE_URL).embedded(2, apiErrorFields(err));
  return new FieldWriter().uint(1, code).string(2, message).embedded(3, any).finish();
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
  const next = (): number => {
    const r = readVarint(buf, pos);
    pos = r.next;
    return r.value;
  };
  while (pos < buf.length) {
    const key = next();
    const field = Math.floor(key / 8);
    const wire = key & 7;
    if (wire === WIRE_VARINT) yield { field, wire, int: next() };
    else if (wire === WIRE_LEN) {
      const len = next();
      if (pos + len > buf.length) throw new Error('truncated field');
      yield { field, wire, bytes: buf.subarray(pos, pos + len) };
      pos += len;
    } else if (wire === WIRE_I64) pos += 8;
    else if (wire === WIRE_I32) pos += 4;
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
