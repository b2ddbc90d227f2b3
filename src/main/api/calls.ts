/** What every client API call shares: its request metric and the mapping of failures to gRPC statuses. */
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../../shared/logging';
import type { CoordinatorMetrics, GrpcStatusName } from '../observability/metrics';
import { ApiFailure, internalFailure, toServiceError } from './grpc-errors';

/** Records a call once with its final status. */
export type CallDone = (status: GrpcStatusName | number) => void;

export class CallRecorder {
  constructor(
    private readonly metrics: CoordinatorMetrics,
    private readonly logger: Logger,
  ) {}

  /** Starts timing a call; the returned function records it once with its final status. */
  track(method: string): CallDone {
    const t0 = performance.now();
    let recorded = false;
    return (status) => {
      if (recorded) return;
      recorded = true;
      this.metrics.recordRequest(method, status, (performance.now() - t0) / 1000);
    };
  }

  /** An ApiFailure as is; anything else becomes INTERNAL with a trace id logged next to the cause. */
  errorOf(method: string, err: unknown): grpc.ServiceError {
    if (err instanceof ApiFailure) {
      if (err.limit) this.metrics.limitHit(err.limit);
      return toServiceError(err.data);
    }
    const { traceId, error } = internalFailure();
    this.logger.error(
      { method, trace_id: traceId, err: err instanceof Error ? err.message : String(err), stack: err instanceof Error ? err.stack : undefined },
      `${method} failed with an internal error (trace id ${traceId})`,
    );
    return toServiceError(error);
  }

  /** A unary handler around `fn`: its result or its failure, recorded either way. */
  unary<Req, Res>(method: string, fn: (req: Req) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
    return (call, callback) => {
      const done = this.track(method);
      fn(call.request).then(
        (res) => {
          done(call.cancelled ? grpc.status.CANCELLED : grpc.status.OK);
          callback(null, res);
        },
        (err: unknown) => {
          const se = this.errorOf(method, err);
          done(se.code);
          callback(se);
        },
      );
    };
  }
}
