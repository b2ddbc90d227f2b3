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
  INTERNAL: { code: 3001, grpc: GrpcCode.INTERNAL },
  UNAUTHENTICATED: { code: 4001, grpc: GrpcCode.UNAUTHENTICATED },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** A client-facing error as plain data: safe to post between threads. */
export interface ApiErrorData {
  code: ErrorCode;
  message: string;
}

/** Message texts, kept in one place so they stay identical to upstream's. */
export const apiErrors = {
  jobNotFound: (jobId: string): ApiErrorData => ({ code: 'JOB_NOT_FOUND', message: `Job not found: ${jobId}` }),
  programNotFound: (hashId: string): ApiErrorData => ({
    code: 'PROGRAM_NOT_FOUND',
    message: `Program not found: ${hashId}`,
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
  clusterUnavailable: (reason: string): ApiErrorData => ({
    code: 'CLUSTER_UNAVAILABLE',
    message: `Cluster unavailable: ${reason}`,
  }),
  noWorkersConnected: (): ApiErrorData => apiErrors.clusterUnavailable('no workers connected'),
  setupNotDone: (): ApiErrorData =>
    apiErrors.clusterUnavailable('workers connected but setup not done; call setup() first'),
  queueFull: (n: number): ApiErrorData => ({ code: 'QUEUE_FULL', message: `Queue full (${n} jobs)` }),
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
