/** PushJobInput / PushJobHintsInput: client streams feeding a job's input or hints relay, one chunk at a time. */
import * as grpc from '@grpc/grpc-js';
import { ApiFailure } from './grpc-errors';
import type { JobRecord } from './job-mirror';
import { RelayError, type JobRelay } from '../data/relays';
import type { ApiContext } from './context';
import type { PushKind, PushMsg } from './messages';
import { checkPushTarget, invalid, parseJobId } from './validation';

export function handlePush(ctx: ApiContext, kind: PushKind, call: grpc.ServerReadableStream<PushMsg, object>, callback: grpc.sendUnaryData<object>): void {
  const method = kind === 'input' ? 'PushJobInput' : 'PushJobHintsInput';
  // tonic's request timeout covers only the wait for response headers: a push to a queued job is
  // held until the job starts, so the headers cannot wait for the end of the push.
  call.sendMetadata(new grpc.Metadata());
  const done = ctx.calls.track(method);
  let rec: JobRecord | undefined;
  let relay: JobRelay | undefined;
  let finished = false;
  let chunks = 0;
  let bytes = 0;

  /** Ends the stream's hold on the job once; false when it had ended already. */
  const finish = (): boolean => {
    if (finished) return false;
    finished = true;
    if (rec) rec.pushOpen[kind] = false;
    // However the stream ends (a client error mid-stream included), its data ends with it.
    relay?.end();
    return true;
  };
  const fail = (err: unknown): void => {
    if (!finish()) return;
    const se = ctx.calls.errorOf(method, err);
    done(se.code);
    // The call stays paused: whatever the client still sends is dropped with the call.
    callback(se);
  };
  const succeed = (): void => {
    if (!finish()) return;
    if (rec && relay) void ctx.jobs.pushEnded(rec, kind);
    if (rec) ctx.deps.logger.debug({ job_id: rec.id, kind, chunks, bytes }, `${method} stream ended`);
    done(grpc.status.OK);
    callback(null, {});
  };
  const abandon = (): void => {
    if (finish()) done(grpc.status.CANCELLED);
  };

  const first = (msg: PushMsg): void => {
    const jobId = parseJobId(msg.job_id);
    if (!msg.chunk) throw invalid('chunk must be set');
    const r = ctx.jobs.find(jobId);
    checkPushTarget(r, kind, method, ctx.mock);
    r.pushOpen[kind] = true;
    rec = r;
    relay = kind === 'input' ? r.relays.input : r.relays.hints;
  };

  const handle = async (msg: PushMsg): Promise<void> => {
    if (!rec) first(msg);
    else if (!msg.chunk) throw invalid('chunk must be set');
    const data = msg.chunk?.data ?? Buffer.alloc(0);
    chunks++;
    bytes += data.length;
    const r = rec as JobRecord;
    // Mock mode and finished jobs: accepted and dropped.
    if (!relay || r.terminal || data.length === 0) return;
    // A copy on disk (durable store) lets another attempt replay the stream; the disk paces the push too.
    const spooled = ctx.jobs.spool(r, kind, data);
    try {
      await relay.push(data);
    } catch (err) {
      if (r.terminal) return;
      if (err instanceof RelayError) throw invalid(err.reason);
      throw err;
    }
    await spooled;
  };

  call.on('data', (msg: PushMsg) => {
    if (finished) return;
    call.pause();
    handle(msg).then(
      () => {
        if (!finished) call.resume();
      },
      (err: unknown) => fail(err),
    );
  });
  call.on('end', () => {
    if (finished) return;
    if (!rec) fail(invalid(`${method} stream must not be empty`));
    else succeed();
  });
  call.on('error', (err: Error) => {
    if (finished) return;
    if (!rec) fail(new ApiFailure({ code: 'INTERNAL', message: `stream read error: ${err.message}` }));
    else abandon();
  });
  call.on('cancelled', abandon);
}
