/**
 * The one registry of coded errors (docs/decisions.md, Errors). Each code fixes its gRPC status and the
 * exact message text upstream clients see; `ApiError{code, name, message}` travels in
 * `grpc-status-details-bin`. Errors cross the thread boundary as `{ code, message }` data, never as
 * Error objects (custom fields do not survive structured cloning).
 */

/**
 * gRPC status codes (grpc/doc/statuscodes.md). Spelled out rather than imported from grpc-js so the
 * scheduler thread, which builds these errors, does not load the whole gRPC stack.
 */
export const GrpcCode = {
  OK: 0,
  INVALID_ARGUMENT: 3,
  NOT_FOUND: 5,
  RESOURCE_EXHAUSTED: 8,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;
export type GrpcCode = (typeof GrpcCode)[keyof typeof GrpcCode];

export const ERROR_CODES = {
  JOB_NOT_FOUND: { code: 1001, grpc: GrpcCode.NOT_FOUND },
  PROGRAM_NOT_FOUND: { code: 1002, grpc: GrpcCode.NOT_FOUND },
  PROGRAM_NOT_SETUP: { code: 1003, grpc: GrpcCode.NOT_FOUND },
  INVALID_JOB_STATE: { code: 1004, grpc: GrpcCode.INVALID_ARGUMENT },
  INVALID_PROOF_CONVERSION: { code: 1005, grpc: GrpcCode.INVALID_ARGUMENT },
  INVALID_ARGUMENT: { code: 1006, grpc: GrpcCode.INVALID_ARGUMENT },
  CLUSTER_UNAVAILABLE: { code: 2001, grpc: GrpcCode.UNAVAILABLE },
  QUEUE_FULL: { code: 2002, grpc: GrpcCode.RESOURCE_EXHAUSTED },
  SHUTTING_DOWN: { code: 2003, grpc: GrpcCode.UNAVAILABLE },
  STATE_STORE_UNAVAILABLE: { code: 2004, grpc: GrpcCode.UNAVAILABLE },
  TOO_MANY_WATCHERS: { code: 2005, grpc: GrpcCode.RESOURCE_EXHAUSTED },
  INTERNAL: { code: 3001, grpc: GrpcCode.INTERNAL },
  UNAUTHENTICATED: { code: 4001, grpc: GrpcCode.UNAUTHENTICATED },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** A client-facing error as plain data: safe to post between threads. */
export interface ApiErrorData {
  code: ErrorCode;
  message: string;
}

/**
 * A value echoed into an error text or a log line, cut to a readable length (twice a hash id, so a
 * near miss is still shown whole): a client or worker
 * controls it, and a 7 KB id in an error would exceed the client's metadata limit.
 */
export function shown(value: string, maxChars = 128): string {
  if (value.length <= maxChars) return value;
  // Never cut a surrogate pair in half.
  const end = /[\uD800-\uDBFF]/.test(value[maxChars - 1]) ? maxChars - 1 : maxChars;
  return `${value.slice(0, end)}…(${Buffer.byteLength(value, 'utf8')} bytes)`;
}

/** Message texts, kept in one place so they stay identical to upstream's. */
export const apiErrors = {
  jobNotFound: (jobId: string): ApiErrorData => ({ code: 'JOB_NOT_FOUND', message: `Job not found: ${shown(jobId)}` }),
  programNotFound: (hashId: string): ApiErrorData => ({
    code: 'PROGRAM_NOT_FOUND',
    message: `Program not found: ${shown(hashId)}`,
  }),
  invalidJobState: (reason: string): ApiErrorData => ({
    code: 'INVALID_JOB_STATE',
    message: `Invalid job state: ${reason}`,
  }),
  invalidProofConversion: (from: string, to: string): ApiErrorData => ({
    code: 'INVALID_PROOF_CONVERSION',
    message: `Invalid proof conversion: ${from} → ${to}`,
  }),
  invalidArgument: (message: string): ApiErrorData => ({ code: 'INVALID_ARGUMENT', message }),
  /** A string field over its bound (docs/operations.md, Limits). */
  fieldTooLong: (field: string, bytes: number, limit: number): ApiErrorData => ({
    code: 'INVALID_ARGUMENT',
    message: `${field} is ${bytes} bytes, over the limit of ${limit} bytes`,
  }),
  /** Data that would not fit in the messages built from it for workers (docs/operations.md, Limits). */
  tooLarge: (what: string, bytes: number, limit: number, advice: string): ApiErrorData => ({
    code: 'INVALID_ARGUMENT',
    message: `${what} is ${bytes} bytes, over the limit of ${limit} bytes (${advice})`,
  }),
  clusterUnavailable: (reason: string): ApiErrorData => ({
    code: 'CLUSTER_UNAVAILABLE',
    message: `Cluster unavailable: ${reason}`,
  }),
  noWorkersConnected: (): ApiErrorData => apiErrors.clusterUnavailable('no workers connected'),
  setupNotDone: (): ApiErrorData =>
    apiErrors.clusterUnavailable('workers connected but setup not done; call setup() first'),
  queueFull: (n: number): ApiErrorData => ({ code: 'QUEUE_FULL', message: `Queue full (${n} jobs)` }),
  /** A WatchJob past `max_watchers_per_job` (`job` set) or `max_watchers` (docs/operations.md, Limits). */
  tooManyWatchers: (limit: number, job?: string): ApiErrorData => ({
    code: 'TOO_MANY_WATCHERS',
    message:
      job !== undefined
        ? `Too many watchers: job ${shown(job)} already has ${limit} WatchJob streams (max_watchers_per_job)`
        : `Too many watchers: ${limit} WatchJob streams are open (max_watchers)`,
  }),
  shuttingDown: (): ApiErrorData => ({ code: 'SHUTTING_DOWN', message: 'Coordinator is shutting down' }),
  /** The job could not be made durable (a full disk, a failing one): it was not accepted. */
  stateStoreUnavailable: (reason: string): ApiErrorData => ({
    code: 'STATE_STORE_UNAVAILABLE',
    message: `State store unavailable, the job was not accepted: ${reason}`,
  }),
  /** A client API call without the configured bearer token (docs/security.md); upstream has no such check. */
  unauthenticated: (reason: 'missing bearer token' | 'invalid bearer token'): ApiErrorData => ({
    code: 'UNAUTHENTICATED',
    message: `Unauthenticated: ${reason}`,
  }),
  /** The client sees only the fixed text; the trace id links it to the log line with the cause. */
  internal: (traceId: string): ApiErrorData => ({
    code: 'INTERNAL',
    message: `An internal error occurred (trace id ${traceId})`,
  }),
} as const;

/** The gRPC status message for an error: INTERNAL keeps upstream's fixed text (docs/decisions.md, Errors). */
export function grpcMessageOf(err: ApiErrorData): string {
  return err.code === 'INTERNAL' ? 'An internal error occurred' : err.message;
}

export function grpcStatusOf(code: ErrorCode): GrpcCode {
  return ERROR_CODES[code].grpc;
}

export function numericCodeOf(code: ErrorCode): number {
  return ERROR_CODES[code].code;
}
