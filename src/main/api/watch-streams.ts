/** WatchJob: one server stream per watcher, replaying the job's history and then following it. */
import * as grpc from '@grpc/grpc-js';
import { apiErrors } from '../../shared/errors';
import { toServiceError } from './grpc-errors';
import { type JobEventWire, type JobRecord } from './job-mirror';
import { JobWatcher } from './job-watcher';
import { encodeSmallJobEvent } from './job-event-encoding';
import type { ApiContext } from './context';
import type { JobIdMsg } from './messages';
import { sharedCompletedEvent, type FramedMessage } from './result-frames';
import { shareFramedWritesOrWarn } from './shared-writes';

/**
 * The API service's WatchJob serializer passes pre-encoded events (Buffers) through as they are; a big
 * result's `completed` event is the job's one shared encoding (result-frames.ts, shared-writes.ts).
 */
type WatchCall = grpc.ServerWritableStream<JobIdMsg, JobEventWire | Buffer | FramedMessage>;

export class WatchStreams {
  private readonly watchers = new Map<JobWatcher, WatchCall>();
  /** Open watchers per job id (docs/operations.md, Limits). */
  private readonly perJob = new Map<string, number>();

  constructor(private readonly ctx: ApiContext) {}

  handle(call: WatchCall): void {
    const { calls, jobs } = this.ctx;
    // Headers at once, whatever the job's history holds (tonic times out on headers alone).
    call.sendMetadata(new grpc.Metadata());
    const done = calls.track('WatchJob');
    let rec: JobRecord;
    try {
      rec = jobs.lookup(call.request.job_id);
    } catch (err) {
      const se = calls.errorOf('WatchJob', err);
      done(se.code);
      call.emit('error', se);
      return;
    }
    if (this.ctx.closed()) {
      const se = toServiceError(apiErrors.shuttingDown());
      done(se.code);
      call.emit('error', se);
      return;
    }
    const { max_watchers: maxTotal, max_watchers_per_job: maxPerJob } = this.ctx.deps.config.coordinator;
    const onJob = this.perJob.get(rec.id) ?? 0;
    const refusal =
      this.watchers.size >= maxTotal
        ? ({ limit: 'watchers_total', error: apiErrors.tooManyWatchers(maxTotal) } as const)
        : onJob >= maxPerJob
          ? ({ limit: 'watchers_per_job', error: apiErrors.tooManyWatchers(maxPerJob, rec.id) } as const)
          : undefined;
    if (refusal) {
      this.ctx.deps.metrics.limitHit(refusal.limit);
      const se = toServiceError(refusal.error);
      done(se.code);
      call.emit('error', se);
      return;
    }
    this.perJob.set(rec.id, onJob + 1);
    done(grpc.status.OK);
    const watcher: JobWatcher = new JobWatcher(
      {
        write: (event, written) => {
          const shared = sharedCompletedEvent(rec, event);
          if (shared) shareFramedWritesOrWarn(call, this.ctx.deps.logger);
          call.write(shared ?? encodeSmallJobEvent(event) ?? event, () => written());
        },
        end: () => call.end(),
      },
      () => {
        rec.observers.delete(watcher);
        if (this.watchers.delete(watcher)) {
          const left = (this.perJob.get(rec.id) ?? 1) - 1;
          if (left > 0) this.perJob.set(rec.id, left);
          else this.perJob.delete(rec.id);
        }
      },
    );
    this.watchers.set(watcher, call);
    call.on('cancelled', () => watcher.cancel());
    const follow = (): void => {
      if (watcher.done) return;
      for (const e of rec.history) watcher.push(e);
      if (!watcher.done) rec.observers.add(watcher);
    };
    if (rec.state !== 'completed') {
      follow();
      return;
    }
    // A job restored after a restart keeps its proof in a file until asked for.
    jobs.ensureResult(rec).then(follow, (err: unknown) => {
      this.ctx.deps.logger.error({ job_id: rec.id, err: (err as Error).message }, `job ${rec.id}: its proof file cannot be read`);
      watcher.cancel();
      call.emit('error', calls.errorOf('WatchJob', err));
    });
  }

  /** Ends a watcher's stream with status OK, without its terminal event (its job was dropped). */
  end(watcher: JobWatcher): void {
    const call = this.watchers.get(watcher);
    watcher.cancel();
    call?.end();
  }

  /** Shutdown: every open stream fails with `shutting down`. */
  closeAll(): void {
    const shuttingDown = toServiceError(apiErrors.shuttingDown());
    for (const [watcher, call] of [...this.watchers]) {
      watcher.cancel();
      call.emit('error', shuttingDown);
    }
  }
}
