/**
 * One simulated `zisk-worker`: speaks the real cluster protocol (cluster-protocol.md §1–§3, every [W]
 * note) over one `WorkerStream` call, with fake compute whose results are deterministic
 * (`src/sim/data.ts`). Written against the INTERNAL relay view so proofs and challenges are produced
 * and checked as packed bytes, never as per-value strings.
 *
 * This class is the worker's public face and its message dispatch; the parts live beside it:
 * `connection.ts` (stream, handshake, heartbeats, queues), `tasks.ts` (setups, tasks, cancels),
 * `streams.ts` (input/hints), `faults.ts`, `replies.ts`, `job-context.ts`. The wire under the
 * connection is grpc-js by default; `wire: 'upstream'` swaps in raw HTTP/2 that ends streams and
 * reconnects exactly when upstream's worker does (`transport-upstream.ts`).
 */
import { EventEmitter } from 'node:events';
import type * as grpc from '@grpc/grpc-js';
import { ReconnectionAction, type CoordinatorMessageIn, type RegisterResponseIn, type WorkerMessageOut } from './messages';
import { resolveWorkerOptions, type SimFault, type SimPhase, type SimWorkerInit, type SimWorkerOptions } from './options';
import { WorkerConnection } from './connection';
import { grpcJsWire } from './transport-grpc-js';
import { upstreamWire } from './transport-upstream';
import { FaultBook } from './faults';
import { JobSlot } from './job-context';
import { Replies } from './replies';
import { JobStreams } from './streams';
import { TaskRunner } from './tasks';
import type { LogEntry } from './worker-log';
import { WorkerRuntime } from './worker-runtime';
import {
  emptyWorkerStats,
  type AggTaskRecord,
  type JobContextInfo,
  type JobStreamCounters,
  type SimWorkerEvents,
  type SimWorkerState,
  type SimWorkerStats,
} from './worker-types';

export { simChannelOptions, simCredentials, workerStreamMethod } from './channel';
export { hostNow, type LogEntry } from './worker-log';
export {
  emptyWorkerStats,
  type AggTaskRecord,
  type DisconnectInfo,
  type DisconnectReason,
  type JobContextInfo,
  type JobStreamCounters,
  type ResponseEndInfo,
  type SimWorkerEvents,
  type SimWorkerState,
  type SimWorkerStats,
} from './worker-types';

export class SimWorker extends EventEmitter<SimWorkerEvents> {
  readonly options: SimWorkerOptions;
  readonly stats: SimWorkerStats = emptyWorkerStats();
  /** Received and sent messages, newest last (keeps at least the last `maxLogEntries`). */
  readonly log: LogEntry[] = [];
  /** Every AGGREGATE task received, in order. */
  readonly aggTasks: AggTaskRecord[];
  /** Programs set up successfully (`hash_id:0|1`). */
  readonly setups: Set<string>;

  private readonly rt: WorkerRuntime;
  private readonly slot = new JobSlot();
  private readonly connection: WorkerConnection;
  private readonly replies: Replies;
  private readonly faults: FaultBook;
  private readonly streams: JobStreams;
  private readonly tasks: TaskRunner;

  /**
   * @param sharedClient a `grpc.Client` to multiplex this worker's stream on (fleet option, grpc-js
   *   wire only); by default every connection attempt opens its own connection, like the Rust worker.
   */
  constructor(init: SimWorkerInit, sharedClient?: grpc.Client) {
    super();
    this.options = resolveWorkerOptions(init);
    if (sharedClient && this.options.wire === 'upstream') throw new RangeError('a shared channel needs the grpc-js wire');
    this.rt = new WorkerRuntime(this.options, this.stats, this.log, this);
    const open = this.options.wire === 'upstream' ? upstreamWire(this.options) : grpcJsWire(this.options, sharedClient);
    this.connection = new WorkerConnection(this.rt, this.slot, open, (msg) => this.process(msg));
    this.replies = new Replies(this.rt, this.connection);
    this.faults = new FaultBook(this.rt, this.connection, (ms) => this.kill(ms));
    this.streams = new JobStreams(this.rt, this.slot, this.replies);
    this.tasks = new TaskRunner(this.rt, this.slot, this.connection, this.replies, this.faults, this.streams);
    this.aggTasks = this.tasks.aggTasks;
    this.setups = this.tasks.setups;
    // Holding a job from the start makes the first connection a `reconnect` naming it.
    if (this.options.lastKnownJobId) this.slot.hold(this.options.lastKnownJobId, 0, 1, '', false);
  }

  get id(): string {
    return this.options.workerId;
  }

  get state(): SimWorkerState {
    return this.rt.state;
  }

  /** The last register/reconnect on the current stream was accepted. */
  get registered(): boolean {
    return this.rt.state === 'ready';
  }

  /** Accepted at least once since `start()`. */
  get hasRegistered(): boolean {
    return this.stats.registrations > 0;
  }

  /**
   * The coordinator ended the response stream OK without resetting it (upstream wire), and the worker,
   * like the real one, still believes it is connected and heartbeats into it.
   */
  get halfOpen(): boolean {
    return this.connection.halfOpen;
  }

  get isSilent(): boolean {
    return this.rt.silent;
  }

  get jobContext(): JobContextInfo | null {
    return this.slot.info();
  }

  /** Per-job input/hints delivery counters. */
  streamCounters(jobId: string): JobStreamCounters | undefined {
    return this.streams.counters(jobId);
  }

  /** Record sha256 digests of delivered input/hints bytes (off by default: it costs CPU per byte). */
  enableStreamDigests(on = true): void {
    this.streams.enableDigests(on);
  }

  /** Hex sha256 of the input bytes / in-order hints DATA bytes accepted for `jobId` (after `enableStreamDigests`). */
  streamDigest(jobId: string, which: 'input' | 'hints'): string | undefined {
    return this.streams.digest(jobId, which);
  }

  start(): void {
    if (this.rt.state !== 'new') return;
    this.connection.connect();
  }

  /** Ends the stream and every timer; the worker cannot be restarted. */
  async stop(): Promise<void> {
    if (this.rt.stopped) return;
    this.rt.state = 'stopped';
    this.rt.clearTimers();
    this.connection.stop();
    this.slot.current?.running?.cancel?.();
  }

  // ------------------------------------------------------------------ test hooks

  /** Adds or replaces the fault of a phase (its use counter restarts). */
  inject(phase: SimPhase, fault: SimFault): void {
    this.faults.inject(phase, fault);
  }

  clearFaults(): void {
    this.faults.clear();
  }

  /** Writes a message (or pre-encoded `WorkerMessage` bytes) on the current stream as is. */
  sendRaw(msg: WorkerMessageOut | Buffer): boolean {
    return this.connection.writeRaw(msg);
  }

  /** Drops the connection now, as a network failure would; reconnects after `reconnectAfterMs`. */
  disconnect(reconnectAfterMs = 0): void {
    this.connection.drop(reconnectAfterMs);
  }

  /**
   * Kills the worker process: the connection goes at once and everything the process held is lost
   * (job context and computation, queued messages, programs set up but `preSetup`, pending recovery,
   * a silence or paused reading and their timers). After `restartAfterMs` (null: never) a new process
   * starts and registers afresh with `register`, as a restarted `zisk-worker` does.
   */
  kill(restartAfterMs: number | null = 0): void {
    if (this.rt.stopped || this.rt.state === 'new') return;
    this.stats.kills++;
    this.rt.logLine('killed');
    this.rt.clearTimers();
    this.slot.drop();
    this.connection.crash();
    this.tasks.forgetSetups();
    if (this.rt.state !== 'stopped') this.rt.state = 'disconnected';
    if (restartAfterMs !== null) this.rt.later(restartAfterMs, () => this.connection.connect());
  }

  /** Stops reading the stream (HTTP/2 flow control then pushes back on the coordinator), for `durationMs` if given. */
  pauseReading(durationMs?: number): void {
    this.connection.pauseReading();
    if (durationMs !== undefined) this.rt.later(durationMs, () => this.connection.resumeReading());
  }

  resumeReading(): void {
    this.connection.resumeReading();
  }

  /** Goes silent: no heartbeats, no answers, inbound ignored, no reconnect; for `durationMs` if given. */
  silence(durationMs?: number): void {
    this.connection.silence();
    if (durationMs !== undefined) this.rt.later(durationMs, () => this.connection.unsilence());
  }

  /** Ends a silence (reconnecting if the stream died meanwhile). Tasks dropped while silent stay unanswered. */
  unsilence(): void {
    this.connection.unsilence();
  }

  // ------------------------------------------------------------------ inbound

  private process(msg: CoordinatorMessageIn): void {
    switch (msg.payload) {
      case 'heartbeat':
        this.stats.heartbeatsReceived++;
        this.connection.heartbeat();
        return;
      case 'shutdown':
        this.onShutdown(msg.shutdown?.reason ?? '', msg.shutdown?.grace_period_seconds ?? 0);
        return;
      case 'register_response':
        if (this.connection.handshaking && msg.register_response) this.onRegisterResponse(msg.register_response);
        else this.rt.logLine('unexpected register_response after the handshake; ignored');
        return;
      case 'execute_task':
        if (msg.execute_task) this.tasks.onTask(msg.execute_task);
        return;
      case 'job_cancelled':
        if (msg.job_cancelled) this.tasks.onJobCancelled(msg.job_cancelled.job_id, msg.job_cancelled.reason);
        return;
      case 'stream_data':
        if (msg.stream_data) this.streams.onStreamData(msg.stream_data);
        return;
      case 'setup_program':
        if (msg.setup_program) this.tasks.onSetup(msg.setup_program);
        return;
      case 'input_stream_data':
        if (msg.input_stream_data) this.streams.onInputData(msg.input_stream_data.job_id, msg.input_stream_data.payload);
        return;
      default:
        this.rt.logLine('coordinator message without payload; ignored');
    }
  }

  private onRegisterResponse(r: RegisterResponseIn): void {
    const { rt, options } = this;
    if (!r.accepted) {
      this.stats.rejections++;
      rt.logLine(`registration rejected: ${r.message}`);
      this.emit('rejected', r);
      this.connection.drop(options.reconnectOnReject ? options.rejectedReconnectDelayMs : null, 'rejected');
      return;
    }
    rt.state = 'ready';
    this.stats.registrations++;
    const action = r.directive ? r.directive.action : undefined;
    let dropped: string | undefined;
    if (this.slot.current && action !== ReconnectionAction.KEEP_COMPUTING) {
      // CANCEL_STALE_JOB, IDLE, absent or unknown: drop the context; recover if something was running.
      dropped = this.slot.current.jobId;
      if (this.slot.drop()) this.replies.recover(options.recoveryDelayMs);
    }
    rt.logLine(
      `registered (${r.message || 'accepted'})${action !== undefined ? ` directive ${action}` : ''}${dropped ? `, dropped job ${dropped}` : ''}`,
    );
    this.emit('registered', r);
    this.connection.flushOutbox(dropped);
    if (r.setup_program) this.tasks.onSetup(r.setup_program);
    this.connection.drain();
  }

  private onShutdown(reason: string, graceSeconds: number): void {
    this.connection.block(graceSeconds * 1000, () => {
      const held = this.slot.current;
      if (held) {
        this.slot.drop();
        this.replies.workerError(held.jobId, `Worker shutdown: ${reason}`);
      }
    });
  }
}
