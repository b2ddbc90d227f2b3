/** WaitJobResult: answers at once for a finished job, else holds the call until the job ends or the hold runs out. */
import * as grpc from '@grpc/grpc-js';
import type { JobRecord } from './job-mirror';
import type { ApiContext } from './context';
import type { WaitMsg, WaitResponse } from './messages';
import { waitHoldMs } from './validation';
import { sharedWaitResponse, type FramedMessage } from './result-frames';
import { shareFramedWritesOrWarn } from './shared-writes';

type WaitCall = grpc.ServerUnaryCall<WaitMsg, WaitResponse | FramedMessage>;

function waitResponse(rec: JobRecord): WaitResponse {
  const res: WaitResponse = { job_id: rec.id, job_status: rec.status() };
  if (rec.state === 'completed' && rec.result) res.result = rec.result.response;
  return res;
}

export class WaitHolds {
  /** Held calls: each entry answers its call now. */
  private readonly held = new Set<() => void>();

  constructor(private readonly ctx: ApiContext) {}

  /**
   * The answer for the job as it is now. A big result is the job's one shared encoding
   * (result-frames.ts), written after the headers so its proof is not copied (shared-writes.ts).
   */
  private respond(call: WaitCall, callback: grpc.sendUnaryData<WaitResponse | FramedMessage>, rec: JobRecord): void {
    const response = waitResponse(rec);
    const shared = sharedWaitResponse(rec, response);
    if (shared) {
      call.sendMetadata(new grpc.Metadata());
      shareFramedWritesOrWarn(call, this.ctx.deps.logger);
    }
    callback(null, shared ?? response);
  }

  handle(call: WaitCall, callback: grpc.sendUnaryData<WaitResponse | FramedMessage>): void {
    const { calls, jobs } = this.ctx;
    const done = calls.track('WaitJobResult');
    let rec: JobRecord;
    try {
      rec = jobs.lookup(call.request.job_id);
    } catch (err) {
      const se = calls.errorOf('WaitJobResult', err);
      done(se.code);
      callback(se);
      return;
    }
    if (rec.terminal || this.ctx.closed()) {
      // A job restored after a restart keeps its proof in a file until asked for.
      jobs.ensureResult(rec).then(
        () => {
          done(grpc.status.OK);
          this.respond(call, callback, rec);
        },
        (err: unknown) => {
          const se = calls.errorOf('WaitJobResult', err);
          done(se.code);
          callback(se);
        },
      );
      return;
    }
    const holdMs = waitHoldMs(call.request, call.getDeadline(), Date.now());
    let finished = false;
    const cleanup = (): void => {
      finished = true;
      clearTimeout(timer);
      rec.waiters.delete(answer);
      this.held.delete(answer);
    };
    const answer = (): void => {
      if (finished) return;
      cleanup();
      done(grpc.status.OK);
      this.respond(call, callback, rec);
    };
    const timer = setTimeout(answer, holdMs);
    rec.waiters.add(answer);
    this.held.add(answer);
    call.on('cancelled', () => {
      if (finished) return;
      cleanup();
      done(grpc.status.CANCELLED);
    });
  }

  /** Shutdown: every held call answers with the job's current status. */
  answerAll(): void {
    for (const answer of [...this.held]) answer();
  }
}
