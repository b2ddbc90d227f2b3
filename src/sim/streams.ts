/** Input and hints streams as a sim worker receives them: order checks, counters, digests, and how violations are reported. */
import { createHash, type Hash } from 'node:crypto';
import { StreamType, TaskType, type StreamDataIn } from './messages';
import type { JobSlot } from './job-context';
import type { Replies } from './replies';
import type { WorkerRuntime } from './worker-runtime';
import type { JobStreamCounters } from './worker-types';

interface StreamState extends JobStreamCounters {
  /** Out-of-order DATA payloads by sequence number. */
  buffered: Map<number, Buffer>;
  inputHash?: Hash;
  hintsHash?: Hash;
}

const MAX_TRACKED_JOBS = 256;

export class JobStreams {
  private readonly streams = new Map<string, StreamState>();
  private digests = false;

  constructor(
    private readonly rt: WorkerRuntime,
    private readonly slot: JobSlot,
    private readonly replies: Replies,
  ) {}

  /** Per-job input/hints delivery counters. */
  counters(jobId: string): JobStreamCounters | undefined {
    const s = this.streams.get(jobId);
    if (!s) return undefined;
    const { buffered: _b, inputHash: _i, hintsHash: _h, ...counters } = s;
    return { ...counters, errors: [...counters.errors] };
  }

  /** Record sha256 digests of delivered input/hints bytes (off by default: it costs CPU per byte). */
  enableDigests(on: boolean): void {
    this.digests = on;
  }

  /** Hex sha256 of the input bytes / in-order hints DATA bytes accepted for `jobId` (after `enableDigests`). */
  digest(jobId: string, which: 'input' | 'hints'): string | undefined {
    const s = this.streams.get(jobId);
    const h = which === 'input' ? s?.inputHash : s?.hintsHash;
    return h?.copy().digest('hex');
  }

  /** Starts tracking a job's streams (a contribution or execution task took it up). */
  open(jobId: string): void {
    this.state(jobId);
  }

  hintsEnded(jobId: string): boolean {
    return this.streams.get(jobId)?.hintsEnded === true;
  }

  onInputData(jobId: string, payload: Buffer): void {
    if (!this.slot.holding(jobId)) {
      this.state(jobId).inputRejected++;
      return this.error(jobId, `Input stream data for job ${jobId} but the current job is ${this.currentJob()}`);
    }
    const s = this.state(jobId);
    if (payload.length % 8 !== 0) {
      s.inputRejected++;
      return this.error(jobId, `Input stream chunk of ${payload.length} bytes is not a multiple of 8`);
    }
    s.inputBytes += payload.length;
    s.inputChunks++;
    if (this.digests) (s.inputHash ??= createHash('sha256')).update(payload);
  }

  onStreamData(d: StreamDataIn): void {
    const jobId = d.job_id;
    const ctx = this.slot.holding(jobId);
    if (!ctx) {
      return this.error(jobId, `Hints stream data for job ${jobId} but the current job is ${this.currentJob()}`);
    }
    const s = this.state(jobId);
    const seq = d.payload?.sequence_number ?? 0;
    const bytes = d.payload?.payload ?? Buffer.alloc(0);
    switch (d.stream_type) {
      case StreamType.START:
        if (s.hintsStarted) return this.error(jobId, 'Hints stream START received twice');
        s.hintsStarted = true;
        s.hintsNextSeq = seq + 1;
        return;
      case StreamType.DATA: {
        if (!s.hintsStarted) return this.error(jobId, `Hints DATA (seq ${seq}) before START`);
        if (s.hintsEnded) return this.error(jobId, `Hints DATA (seq ${seq}) after END`);
        if (seq < s.hintsNextSeq || s.buffered.has(seq)) return this.error(jobId, `Duplicate hints DATA seq ${seq}`);
        if (bytes.length % 8 !== 0) return this.error(jobId, `Hints DATA seq ${seq} of ${bytes.length} bytes is not a multiple of 8`);
        if (seq !== s.hintsNextSeq) {
          s.buffered.set(seq, bytes);
          return;
        }
        this.applyHints(s, bytes);
        for (let next = s.buffered.get(s.hintsNextSeq); next; next = s.buffered.get(s.hintsNextSeq)) {
          s.buffered.delete(s.hintsNextSeq);
          this.applyHints(s, next);
        }
        return;
      }
      case StreamType.END:
        if (!s.hintsStarted) return this.error(jobId, `Hints END (seq ${seq}) before START`);
        if (s.hintsEnded) return this.error(jobId, 'Hints END received twice');
        if (s.buffered.size > 0 || seq !== s.hintsNextSeq) {
          return this.error(jobId, `Hints END (seq ${seq}) with gaps: expected seq ${s.hintsNextSeq}, ${s.buffered.size} buffered`);
        }
        s.hintsEnded = true;
        if (ctx.running?.waiting) ctx.running.finish();
        return;
      default:
        return this.error(jobId, `Unknown hints stream type ${d.stream_type}`);
    }
  }

  private currentJob(): string {
    return this.slot.current?.jobId ?? 'none';
  }

  private state(jobId: string): StreamState {
    let s = this.streams.get(jobId);
    if (!s) {
      s = {
        inputBytes: 0,
        inputChunks: 0,
        inputRejected: 0,
        hintsStarted: false,
        hintsEnded: false,
        hintsBytes: 0,
        hintsMessages: 0,
        hintsNextSeq: 0,
        errors: [],
        buffered: new Map(),
      };
      if (this.streams.size >= MAX_TRACKED_JOBS) this.streams.delete(this.streams.keys().next().value as string);
      this.streams.set(jobId, s);
    }
    return s;
  }

  private applyHints(s: StreamState, bytes: Buffer): void {
    s.hintsBytes += bytes.length;
    s.hintsMessages++;
    s.hintsNextSeq++;
    if (this.digests) (s.hintsHash ??= createHash('sha256')).update(bytes);
  }

  /** Reports a violation: as a WorkerError, or (`streamErrorReport: 'taskError'`) as the running task's failure. */
  private error(jobId: string, message: string): void {
    const { rt } = this;
    rt.stats.streamErrors++;
    this.state(jobId).errors.push(message);
    rt.logLine(`stream error job ${jobId}: ${message}`);
    rt.events.emit('streamError', jobId, message);
    const running = this.slot.holding(jobId)?.running;
    if (rt.options.streamErrorReport === 'taskError' && running) {
      const phase = running.phase;
      this.slot.drop();
      const taskType = phase === 'execute' ? TaskType.EXECUTION : TaskType.PARTIAL_CONTRIBUTION;
      this.replies.respond({ job_id: jobId, task_type: taskType }, { success: false, error_message: message, worker_in_recovery: true });
      this.replies.recover(rt.options.recoveryDelayMs);
      return;
    }
    this.replies.workerError(jobId, message);
  }
}
