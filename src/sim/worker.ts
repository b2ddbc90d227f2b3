/**
 * One simulated `zisk-worker`: speaks the real cluster protocol (cluster-protocol.md §1–§3, every [W]
 * note) over one `WorkerStream` call, with fake compute whose results are deterministic
 * (`src/sim/data.ts`). Written against the INTERNAL relay view so proofs and challenges are produced
 * and checked as packed bytes, never as per-value strings.
 */
import { EventEmitter } from 'node:events';
import { createHash, type Hash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import { CLUSTER_API_SERVICE, CLUSTER_VIEW_PROTO, serviceDefinition } from '../shared/proto';
import {
  ReconnectionAction,
  StreamType,
  TASK_TYPE_NAMES,
  TaskType,
  workerPayloadKind,
  type AggParamsIn,
  type ContributionParamsIn,
  type CoordinatorMessageIn,
  type ExecuteTaskIn,
  type ExecuteTaskResponseOut,
  type RegisterResponseIn,
  type SetupProgramIn,
  type StreamDataIn,
  type WorkerMessageOut,
  type ZiskExecuteTimeOut,
} from './messages';
import {
  encodedSimChallenges,
  packedProofStarkValues,
  packedSimPublics,
  packedSimWitnessProofValues,
  proofStarkValueAt,
  simExecutedSteps,
  simFinalProof,
  simInstances,
  simVk,
  simWrapProof,
  simWrongVk,
  simChallenges,
} from './data';
import { decodeChallenges, decodePackedUint64, encodeProofList, packUint64, scanChallenges, walkProofList, type ProofStarkParts } from './wire';
import { resolveWorkerOptions, type SimFault, type SimPhase, type SimWorkerInit, type SimWorkerOptions } from './options';

/** Host wall clock in ms with sub-ms resolution, comparable across workers and processes on one host. */
export function hostNow(): number {
  return performance.timeOrigin + performance.now();
}

export interface LogEntry {
  /** `hostNow()` when the message was read from / written to the stream. */
  at: number;
  dir: 'in' | 'out';
  /** `CoordinatorMessage` / `WorkerMessage` payload member name. */
  kind: string;
  jobId?: string;
  taskType?: number;
  success?: boolean;
  /** Payload length for data messages. */
  bytes?: number;
}

export interface AggTaskRecord {
  at: number;
  jobId: string;
  /** Number of `ProofStark` entries in `agg_proofs`. */
  proofCount: number;
  /** `worker_idx` of each of them. */
  sourceWorkers: number[];
  /** Total uint64 values across them. */
  valueCount: number;
  /** Every proof's values equal the sim derivation (i.e. the relay kept them bit-exact). */
  valuesIntact: boolean;
  lastProof: boolean;
  finalProof: boolean;
  proofType: number;
}

export interface JobStreamCounters {
  inputBytes: number;
  inputChunks: number;
  inputRejected: number;
  hintsStarted: boolean;
  hintsEnded: boolean;
  /** DATA bytes applied in sequence order. */
  hintsBytes: number;
  hintsMessages: number;
  /** Next DATA sequence number expected. */
  hintsNextSeq: number;
  errors: string[];
}

export interface SimWorkerStats {
  connects: number;
  connectErrors: number;
  cleanEnds: number;
  registrations: number;
  reconnectsSent: number;
  rejections: number;
  heartbeatsSent: number;
  heartbeatsReceived: number;
  setupsReceived: number;
  setupAcks: number;
  tasksReceived: Record<Exclude<SimPhase, 'setup'>, number>;
  responsesSent: number;
  failuresSent: number;
  dispatchFailures: number;
  workerErrorsSent: number;
  cancelsReceived: number;
  recoveriesSent: number;
  challengeEntriesChecked: number;
  challengeMismatches: number;
  streamErrors: number;
  aggOverlaps: number;
  messagesReceived: number;
  messagesSent: number;
}

/** All counters at zero (a worker's starting point, and the fleet's sum). */
export function emptyWorkerStats(): SimWorkerStats {
  return {
    connects: 0,
    connectErrors: 0,
    cleanEnds: 0,
    registrations: 0,
    reconnectsSent: 0,
    rejections: 0,
    heartbeatsSent: 0,
    heartbeatsReceived: 0,
    setupsReceived: 0,
    setupAcks: 0,
    tasksReceived: { contribution: 0, prove: 0, aggregate: 0, execute: 0, wrap: 0 },
    responsesSent: 0,
    failuresSent: 0,
    dispatchFailures: 0,
    workerErrorsSent: 0,
    cancelsReceived: 0,
    recoveriesSent: 0,
    challengeEntriesChecked: 0,
    challengeMismatches: 0,
    streamErrors: 0,
    aggOverlaps: 0,
    messagesReceived: 0,
    messagesSent: 0,
  };
}

export interface JobContextInfo {
  jobId: string;
  rank: number;
  totalWorkers: number;
  hashId: string;
  /** Phase currently computing, if any. */
  running: SimPhase | null;
}

export type SimWorkerState = 'new' | 'connecting' | 'handshaking' | 'ready' | 'disconnected' | 'stopped';

export interface DisconnectInfo {
  code: number;
  details: string;
  /** Status OK (or dropped by the sim itself). */
  clean: boolean;
  /** Response headers had been received (else: a connect error). */
  hadHeaders: boolean;
}

export interface SimWorkerEvents {
  received: [entry: LogEntry, msg: CoordinatorMessageIn];
  sent: [entry: LogEntry, msg: WorkerMessageOut | Buffer];
  registered: [response: RegisterResponseIn];
  rejected: [response: RegisterResponseIn];
  disconnected: [info: DisconnectInfo];
  task: [task: ExecuteTaskIn];
  streamError: [jobId: string, message: string];
  challengeMismatch: [jobId: string, message: string];
}

type Phase = Exclude<SimPhase, 'setup'>;

interface Running {
  phase: Phase;
  jobId: string;
  timer: NodeJS.Timeout | undefined;
  /** Timer elapsed but waiting on something (hints END). */
  waiting: boolean;
  finish: () => void;
}

interface JobCtx {
  jobId: string;
  rank: number;
  totalWorkers: number;
  hashId: string;
  hintsStream: boolean;
  running: Running | null;
  aggQueue: ExecuteTaskIn[];
}

interface Conn {
  client: grpc.Client;
  ownsClient: boolean;
  call: grpc.ClientDuplexStream<WorkerMessageOut | Buffer, CoordinatorMessageIn>;
  headers: boolean;
  ready: boolean;
  heartbeat: NodeJS.Timeout | undefined;
  headersTimer: NodeJS.Timeout | undefined;
}

interface StreamState extends JobStreamCounters {
  /** Out-of-order DATA payloads by sequence number. */
  buffered: Map<number, Buffer>;
  inputHash?: Hash;
  hintsHash?: Hash;
}

const PHASE_OF_TASK: Record<number, Phase> = {
  [TaskType.PARTIAL_CONTRIBUTION]: 'contribution',
  [TaskType.PROVE]: 'prove',
  [TaskType.AGGREGATE]: 'aggregate',
  [TaskType.EXECUTION]: 'execute',
  [TaskType.WRAP]: 'wrap',
};

const MAX_TRACKED_JOBS = 256;

interface StreamMethod {
  path: string;
  serialize: (msg: WorkerMessageOut | Buffer) => Buffer;
  deserialize: (buf: Buffer) => CoordinatorMessageIn;
}

let streamMethod: StreamMethod | undefined;

/** The `WorkerStream` method of the relay view; a Buffer argument is written as already encoded. */
export function workerStreamMethod(): StreamMethod {
  if (!streamMethod) {
    const m = serviceDefinition(CLUSTER_VIEW_PROTO, CLUSTER_API_SERVICE).WorkerStream;
    const ser = m.requestSerialize;
    const de = m.responseDeserialize;
    streamMethod = {
      path: m.path,
      serialize: (msg) => (Buffer.isBuffer(msg) ? msg : ser(msg)),
      deserialize: (buf) => de(buf) as CoordinatorMessageIn,
    };
  }
  return streamMethod;
}

/** Channel options of a sim worker connection (insecure, 128 MiB both ways, its own TCP connection). */
export function simChannelOptions(o: Pick<SimWorkerOptions, 'maxMessageBytes' | 'reconnectIntervalMs'>): grpc.ClientOptions {
  return {
    'grpc.max_send_message_length': o.maxMessageBytes,
    'grpc.max_receive_message_length': o.maxMessageBytes,
    // Like a real worker: its own HTTP/2 connection, not a multiplexed share of another worker's.
    'grpc.use_local_subchannel_pool': 1,
    'grpc.enable_retries': 0,
    'grpc.initial_reconnect_backoff_ms': Math.max(100, Math.min(1000, o.reconnectIntervalMs)),
    'grpc.max_reconnect_backoff_ms': Math.max(100, o.reconnectIntervalMs),
  };
}

const setupKey = (hashId: string, withHints: boolean): string => `${hashId}:${withHints ? 1 : 0}`;

const expectedChallengeCache = new Map<string, Buffer[]>();

/** Packed challenge bodies of every rank of a job, computed once per process and shared by all workers. */
function expectedPackedChallenges(jobId: string, total: number): Buffer[] {
  let list = expectedChallengeCache.get(jobId);
  if (!list || list.length < total) {
    list = [];
    for (let r = 0; r < total; r++) list.push(packUint64(simChallenges(jobId, r)));
    if (expectedChallengeCache.size >= 16) expectedChallengeCache.delete(expectedChallengeCache.keys().next().value as string);
    expectedChallengeCache.set(jobId, list);
  }
  return list;
}

export class SimWorker extends EventEmitter<SimWorkerEvents> {
  readonly options: SimWorkerOptions;
  readonly stats: SimWorkerStats = emptyWorkerStats();
  /** Received and sent messages, newest last (keeps at least the last `maxLogEntries`). */
  readonly log: LogEntry[] = [];
  /** Every AGGREGATE task received, in order. */
  readonly aggTasks: AggTaskRecord[] = [];
  /** Programs set up successfully (`hash_id:0|1`). */
  readonly setups = new Set<string>();

  private readonly sharedClient: grpc.Client | undefined;
  private conn: Conn | null = null;
  private ctx: JobCtx | null = null;
  private _state: SimWorkerState = 'new';
  private everRegistered = false;
  private blocked = false;
  private missedHeartbeat = false;
  private silent = false;
  private readingPaused = false;
  private readonly inbound: CoordinatorMessageIn[] = [];
  private readonly outbox: WorkerMessageOut[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private reconnectTimer: NodeJS.Timeout | undefined;
  private readonly faultUses = new Map<SimPhase, number>();
  private readonly streams = new Map<string, StreamState>();
  private hashStreams = false;

  /**
   * @param sharedClient a `grpc.Client` to multiplex this worker's stream on (fleet option); by default
   *   every connection attempt opens its own channel, like the Rust worker.
   */
  constructor(init: SimWorkerInit, sharedClient?: grpc.Client) {
    super();
    this.options = resolveWorkerOptions(init);
    this.sharedClient = sharedClient;
    for (const s of this.options.preSetup) this.setups.add(setupKey(s.hashId, s.withHints));
    if (this.options.lastKnownJobId) {
      this.ctx = { jobId: this.options.lastKnownJobId, rank: 0, totalWorkers: 1, hashId: '', hintsStream: false, running: null, aggQueue: [] };
    }
  }

  get id(): string {
    return this.options.workerId;
  }

  get state(): SimWorkerState {
    return this._state;
  }

  /** The last register/reconnect on the current stream was accepted. */
  get registered(): boolean {
    return this._state === 'ready';
  }

  /** Accepted at least once since `start()`. */
  get hasRegistered(): boolean {
    return this.everRegistered;
  }

  get isSilent(): boolean {
    return this.silent;
  }

  get jobContext(): JobContextInfo | null {
    const c = this.ctx;
    return c ? { jobId: c.jobId, rank: c.rank, totalWorkers: c.totalWorkers, hashId: c.hashId, running: c.running?.phase ?? null } : null;
  }

  /** Per-job input/hints delivery counters. */
  streamCounters(jobId: string): JobStreamCounters | undefined {
    const s = this.streams.get(jobId);
    if (!s) return undefined;
    const { buffered: _b, inputHash: _i, hintsHash: _h, ...counters } = s;
    return { ...counters, errors: [...counters.errors] };
  }

  /** Record sha256 digests of delivered input/hints bytes (off by default: it costs CPU per byte). */
  enableStreamDigests(on = true): void {
    this.hashStreams = on;
  }

  /** Hex sha256 of the input bytes / in-order hints DATA bytes accepted for `jobId` (after `enableStreamDigests`). */
  streamDigest(jobId: string, which: 'input' | 'hints'): string | undefined {
    const s = this.streams.get(jobId);
    const h = which === 'input' ? s?.inputHash : s?.hintsHash;
    return h?.copy().digest('hex');
  }

  start(): void {
    if (this._state !== 'new') return;
    this.connect();
  }

  /** Ends the stream and every timer; the worker cannot be restarted. */
  async stop(): Promise<void> {
    if (this._state === 'stopped') return;
    this._state = 'stopped';
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    const c = this.conn;
    this.conn = null;
    if (c) this.closeConn(c);
    if (this.ctx?.running?.timer) clearTimeout(this.ctx.running.timer);
  }

  // ------------------------------------------------------------------ test hooks

  /** Adds or replaces the fault of a phase (its use counter restarts). */
  inject(phase: SimPhase, fault: SimFault): void {
    this.options.faults[phase] = fault;
    this.faultUses.delete(phase);
  }

  clearFaults(): void {
    this.options.faults = {};
    this.faultUses.clear();
  }

  /** Writes a message (or pre-encoded `WorkerMessage` bytes) on the current stream as is. */
  sendRaw(msg: WorkerMessageOut | Buffer): boolean {
    const c = this.conn;
    if (!c || !c.headers) return false;
    this.write(c, msg);
    return true;
  }

  /** Drops the connection now, as a network failure would; reconnects after `reconnectAfterMs`. */
  disconnect(reconnectAfterMs = 0): void {
    const c = this.conn;
    if (c) this.dropConn(c, reconnectAfterMs);
  }

  /** Stops reading the stream (HTTP/2 flow control then pushes back on the coordinator). */
  pauseReading(): void {
    this.readingPaused = true;
    this.conn?.call.pause();
  }

  resumeReading(): void {
    this.readingPaused = false;
    this.conn?.call.resume();
  }

  /** Goes silent: no heartbeats, no answers, inbound ignored, no reconnect. */
  silence(): void {
    this.silent = true;
  }

  /** Ends a silence (reconnecting if the stream died meanwhile). Tasks dropped while silent stay unanswered. */
  unsilence(): void {
    if (!this.silent) return;
    this.silent = false;
    if (this._state === 'stopped') return;
    if (!this.conn) this.scheduleReconnect(0);
  }

  // ------------------------------------------------------------------ connection

  private connect(): void {
    if (this._state === 'stopped' || this.silent) return;
    this.reconnectTimer = undefined;
    const o = this.options;
    const m = workerStreamMethod();
    const ownsClient = !this.sharedClient;
    const client = this.sharedClient ?? new grpc.Client(o.coordinator, grpc.credentials.createInsecure(), simChannelOptions(o));
    const call = client.makeBidiStreamRequest<WorkerMessageOut | Buffer, CoordinatorMessageIn>(m.path, m.serialize, m.deserialize, new grpc.Metadata());
    const conn: Conn = { client, ownsClient, call, headers: false, ready: false, heartbeat: undefined, headersTimer: undefined };
    this.conn = conn;
    this._state = 'connecting';
    this.stats.connects++;
    call.on('metadata', () => this.onHeaders(conn));
    call.on('data', (msg: CoordinatorMessageIn) => this.onData(conn, msg));
    call.on('error', () => {
      // The status event carries the outcome; this listener only keeps the error from being thrown.
    });
    call.on('status', (s: grpc.StatusObject) => this.onStatus(conn, s));
    if (o.headersTimeoutMs > 0) {
      conn.headersTimer = setTimeout(() => {
        if (this.conn === conn && !conn.headers) {
          this.logLine(`no response headers within ${o.headersTimeoutMs} ms; retrying`);
          this.stats.connectErrors++;
          this.dropConn(conn, o.reconnectIntervalMs);
        }
      }, o.headersTimeoutMs);
    }
    if (this.readingPaused) call.pause();
  }

  private onHeaders(conn: Conn): void {
    if (this.conn !== conn || conn.headers) return;
    conn.headers = true;
    if (conn.headersTimer) clearTimeout(conn.headersTimer);
    this._state = 'handshaking';
    const o = this.options;
    const capacity = { compute_units: o.computeUnits };
    if (this.ctx) {
      this.stats.reconnectsSent++;
      this.write(conn, { reconnect: { worker_id: o.workerId, compute_capacity: capacity, last_known_job_id: this.ctx.jobId } });
    } else {
      this.write(conn, { register: { worker_id: o.workerId, compute_capacity: capacity } });
    }
    // The real worker's first heartbeat goes out before it reads the register response.
    this.sendHeartbeat(conn);
    conn.heartbeat = setInterval(() => {
      if (this.conn !== conn) return;
      if (this.blocked) this.missedHeartbeat = true;
      else this.sendHeartbeat(conn);
    }, o.heartbeatIntervalMs);
  }

  private onStatus(conn: Conn, s: grpc.StatusObject): void {
    if (this.conn !== conn) return;
    this.conn = null;
    this.closeConn(conn);
    const clean = s.code === grpc.status.OK;
    this.afterDisconnect({ code: s.code, details: s.details, clean, hadHeaders: conn.headers });
    if (!conn.headers) this.stats.connectErrors++;
    else if (clean) this.stats.cleanEnds++;
    // Clean end → reconnect at once; connect or RPC error → sleep reconnect_interval (real worker).
    this.scheduleReconnect(clean ? this.options.cleanReconnectDelayMs : this.options.reconnectIntervalMs);
  }

  private afterDisconnect(info: DisconnectInfo): void {
    if (this._state !== 'stopped') this._state = 'disconnected';
    this.logLine(`stream ended: code ${info.code}${info.details ? ` (${info.details})` : ''}`);
    this.emit('disconnected', info);
  }

  /** Drops a connection on the sim's own initiative and reconnects after `after` ms (null: never). */
  private dropConn(conn: Conn, after: number | null): void {
    if (this.conn !== conn) return;
    this.conn = null;
    this.closeConn(conn);
    this.afterDisconnect({ code: grpc.status.CANCELLED, details: 'dropped by sim', clean: true, hadHeaders: conn.headers });
    if (after !== null) this.scheduleReconnect(after);
  }

  private closeConn(conn: Conn): void {
    if (conn.heartbeat) clearInterval(conn.heartbeat);
    if (conn.headersTimer) clearTimeout(conn.headersTimer);
    conn.call.removeAllListeners('data');
    conn.call.removeAllListeners('metadata');
    conn.call.cancel();
    if (conn.ownsClient) conn.client.close();
    // Messages queued behind a block belong to the dead stream.
    this.inbound.length = 0;
  }

  private scheduleReconnect(ms: number): void {
    if (this._state === 'stopped' || this.silent || this.conn || this.reconnectTimer) return;
    this.reconnectTimer = setTimeout(() => this.connect(), ms);
  }

  // ------------------------------------------------------------------ outbound

  private write(conn: Conn, msg: WorkerMessageOut | Buffer): void {
    const entry: LogEntry = { at: hostNow(), dir: 'out', kind: 'raw' };
    if (!Buffer.isBuffer(msg)) {
      entry.kind = workerPayloadKind(msg) ?? 'empty';
      const r = msg.execute_task_response;
      if (r) {
        entry.jobId = r.job_id;
        entry.taskType = r.task_type;
        entry.success = r.success;
      } else {
        const jobId = msg.error?.job_id ?? msg.job_cancelled_ack?.job_id ?? msg.setup_program_ack?.job_id;
        if (jobId !== undefined) entry.jobId = jobId;
        if (msg.setup_program_ack) entry.success = msg.setup_program_ack.success;
      }
    }
    conn.call.write(msg);
    this.stats.messagesSent++;
    this.record(entry);
    this.emit('sent', entry, msg);
  }

  private sendHeartbeat(conn: Conn): void {
    if (this.silent || this.conn !== conn) return;
    this.stats.heartbeatsSent++;
    this.write(conn, { heartbeat_ack: { worker_id: this.options.workerId } });
  }

  /**
   * Sends on the current stream once it is registered; otherwise queues, like the real worker's
   * process-wide outbound queue that the next stream drains.
   */
  private send(msg: WorkerMessageOut): void {
    if (this.silent || this._state === 'stopped') return;
    const c = this.conn;
    if (c && c.ready) this.write(c, msg);
    else this.outbox.push(msg);
  }

  private flushOutbox(droppedJob: string | undefined): void {
    const c = this.conn;
    if (!c) return;
    const pending = this.outbox.splice(0);
    for (const m of pending) {
      if (droppedJob !== undefined && m.execute_task_response?.job_id === droppedJob) continue;
      this.write(c, m);
    }
  }

  private respond(task: ExecuteTaskIn, body: Partial<ExecuteTaskResponseOut> & { success: boolean }): void {
    const r: ExecuteTaskResponseOut = {
      job_id: task.job_id,
      worker_id: this.options.workerId,
      task_type: task.task_type,
      ...body,
    };
    if (r.success) this.stats.responsesSent++;
    else this.stats.failuresSent++;
    this.logLine(
      `result ${TASK_TYPE_NAMES[r.task_type] ?? r.task_type} job ${r.job_id}: ${r.success ? 'ok' : `FAILED (${r.error_message ?? ''})`}`,
    );
    this.send({ execute_task_response: r });
  }

  private dispatchFailure(task: ExecuteTaskIn, message: string): void {
    this.stats.dispatchFailures++;
    this.logLine(`dispatch failure ${TASK_TYPE_NAMES[task.task_type] ?? task.task_type} job ${task.job_id}: ${message}`);
    this.respond(task, { success: false, error_message: message, worker_in_recovery: false });
  }

  private sendWorkerError(jobId: string, message: string): void {
    this.stats.workerErrorsSent++;
    this.logLine(`WorkerError job ${jobId}: ${message}`);
    this.send({ error: { worker_id: this.options.workerId, job_id: jobId, error_message: message } });
  }

  private recover(afterMs: number): void {
    const done = (): void => {
      this.stats.recoveriesSent++;
      this.send({ recovery_complete: { worker_id: this.options.workerId } });
    };
    if (afterMs <= 0) done();
    else this.later(afterMs, done);
  }

  // ------------------------------------------------------------------ inbound

  private onData(conn: Conn, msg: CoordinatorMessageIn): void {
    if (this.conn !== conn) return;
    const entry: LogEntry = { at: hostNow(), dir: 'in', kind: msg.payload ?? 'empty' };
    const t = msg.execute_task;
    if (t) {
      entry.jobId = t.job_id;
      entry.taskType = t.task_type;
    } else {
      const jobId = msg.job_cancelled?.job_id ?? msg.stream_data?.job_id ?? msg.input_stream_data?.job_id ?? msg.setup_program?.job_id;
      if (jobId !== undefined) entry.jobId = jobId;
      if (msg.input_stream_data) entry.bytes = msg.input_stream_data.payload.length;
      if (msg.stream_data?.payload) entry.bytes = msg.stream_data.payload.payload.length;
    }
    this.stats.messagesReceived++;
    this.record(entry);
    this.emit('received', entry, msg);
    if (this.silent) return;
    if (this.blocked || this.inbound.length > 0) this.inbound.push(msg);
    else this.process(msg);
  }

  private drainInbound(): void {
    while (!this.blocked && !this.silent && this.inbound.length > 0 && this._state !== 'stopped') {
      this.process(this.inbound.shift() as CoordinatorMessageIn);
    }
  }

  /** Simulates a handler that runs inside the real worker's event loop: nothing else is processed meanwhile. */
  private block(ms: number, then: () => void): void {
    this.blocked = true;
    this.later(ms, () => {
      this.blocked = false;
      if (this.silent) return;
      then();
      if (this.missedHeartbeat) {
        this.missedHeartbeat = false;
        if (this.conn) this.sendHeartbeat(this.conn);
      }
      this.drainInbound();
    });
  }

  private process(msg: CoordinatorMessageIn): void {
    switch (msg.payload) {
      case 'heartbeat':
        this.stats.heartbeatsReceived++;
        if (this.conn) this.sendHeartbeat(this.conn);
        return;
      case 'shutdown':
        this.onShutdown(msg.shutdown?.reason ?? '', msg.shutdown?.grace_period_seconds ?? 0);
        return;
      case 'register_response':
        if (this.conn && !this.conn.ready && msg.register_response) this.onRegisterResponse(this.conn, msg.register_response);
        else this.logLine('unexpected register_response after the handshake; ignored');
        return;
      case 'execute_task':
        if (msg.execute_task) this.onTask(msg.execute_task);
        return;
      case 'job_cancelled':
        if (msg.job_cancelled) this.onJobCancelled(msg.job_cancelled.job_id, msg.job_cancelled.reason);
        return;
      case 'stream_data':
        if (msg.stream_data) this.onStreamData(msg.stream_data);
        return;
      case 'setup_program':
        if (msg.setup_program) this.onSetup(msg.setup_program);
        return;
      case 'input_stream_data':
        if (msg.input_stream_data) this.onInputData(msg.input_stream_data.job_id, msg.input_stream_data.payload);
        return;
      default:
        this.logLine('coordinator message without payload; ignored');
    }
  }

  private onRegisterResponse(conn: Conn, r: RegisterResponseIn): void {
    if (!r.accepted) {
      this.stats.rejections++;
      this.logLine(`registration rejected: ${r.message}`);
      this.emit('rejected', r);
      this.dropConn(conn, this.options.reconnectOnReject ? this.options.rejectedReconnectDelayMs : null);
      return;
    }
    conn.ready = true;
    this._state = 'ready';
    this.everRegistered = true;
    this.stats.registrations++;
    const action = r.directive ? r.directive.action : undefined;
    let dropped: string | undefined;
    if (this.ctx && action !== ReconnectionAction.KEEP_COMPUTING) {
      // CANCEL_STALE_JOB, IDLE, absent or unknown: drop the context; recover if something was running.
      dropped = this.ctx.jobId;
      if (this.dropContext()) this.recover(this.options.recoveryDelayMs);
    }
    this.logLine(
      `registered (${r.message || 'accepted'})${action !== undefined ? ` directive ${action}` : ''}${dropped ? `, dropped job ${dropped}` : ''}`,
    );
    this.emit('registered', r);
    this.flushOutbox(dropped);
    if (r.setup_program) this.onSetup(r.setup_program);
    this.drainInbound();
  }

  private onShutdown(reason: string, graceSeconds: number): void {
    this.block(graceSeconds * 1000, () => {
      if (this.ctx) {
        const jobId = this.ctx.jobId;
        this.dropContext();
        this.sendWorkerError(jobId, `Worker shutdown: ${reason}`);
      }
    });
  }

  // ------------------------------------------------------------------ faults

  private takeFault(phase: SimPhase, jobId: string): SimFault | undefined {
    const f = this.options.faults[phase];
    if (!f) return undefined;
    if (f.jobId !== undefined && f.jobId !== jobId) return undefined;
    const used = this.faultUses.get(phase) ?? 0;
    const times = f.times ?? (f.action ? 1 : Infinity);
    if (used >= times) return undefined;
    this.faultUses.set(phase, used + 1);
    return f;
  }

  /**
   * Schedules the connection-level part of a fault `atMs` after task receipt. A silenced task never
   * completes: its timer finds the worker silent and leaves it running (see `compute` / `block`).
   */
  private applyConnFault(f: SimFault | undefined): void {
    if (!f?.action) return;
    const fire = (): void => {
      switch (f.action) {
        case 'disconnect':
          this.logLine('fault: disconnect');
          if (this.conn) this.dropConn(this.conn, f.reconnectAfterMs ?? 0);
          return;
        case 'silence':
          this.logLine('fault: silence');
          this.silent = true;
          if (f.durationMs !== undefined) this.later(f.durationMs, () => this.unsilence());
          return;
        case 'slowReader':
          this.logLine('fault: slow reader');
          this.pauseReading();
          if (f.durationMs !== undefined) this.later(f.durationMs, () => this.resumeReading());
          return;
        default:
          return;
      }
    };
    if (f.atMs && f.atMs > 0) this.later(f.atMs, fire);
    else fire();
  }

  // ------------------------------------------------------------------ setup

  private onSetup(sp: SetupProgramIn): void {
    this.stats.setupsReceived++;
    const f = this.takeFault('setup', sp.job_id);
    const delay = f?.delayMs ?? this.options.setupDelayMs;
    this.logLine(`setup ${sp.program_name || sp.hash_id.slice(0, 12)} hints=${sp.with_hints} job ${sp.job_id}`);
    this.applyConnFault(f);
    this.block(delay, () => {
      const ack = { job_id: sp.job_id, worker_id: this.options.workerId, hash_id: sp.hash_id, success: true, error_message: '', vk: simVk(sp.hash_id, sp.with_hints) };
      if (f?.action === 'error') {
        ack.success = false;
        ack.error_message = f.message ?? 'simulated setup failure';
        ack.vk = Buffer.alloc(0);
      } else if (f?.action === 'workerError') {
        this.sendWorkerError(sp.job_id, f.message ?? 'simulated setup worker error');
        return;
      } else if (f?.action === 'wrongVk') {
        ack.vk = simWrongVk(sp.hash_id, sp.with_hints, this.options.workerId);
      }
      if (ack.success) this.setups.add(setupKey(sp.hash_id, sp.with_hints));
      this.stats.setupAcks++;
      this.logLine(`setup ack job ${sp.job_id}: ${ack.success ? `ok vk ${ack.vk.toString('hex').slice(0, 16)}…` : `FAILED (${ack.error_message})`}`);
      this.send({ setup_program_ack: ack });
    });
  }

  // ------------------------------------------------------------------ tasks

  private onTask(t: ExecuteTaskIn): void {
    const receivedAt = Date.now();
    const phase = PHASE_OF_TASK[t.task_type];
    this.emit('task', t);
    this.logLine(`task ${TASK_TYPE_NAMES[t.task_type] ?? t.task_type} job ${t.job_id}`);
    if (!phase) {
      this.dispatchFailure(t, `Unknown task type ${t.task_type}`);
      return;
    }
    this.stats.tasksReceived[phase]++;
    switch (phase) {
      case 'contribution':
      case 'execute': {
        const p = phase === 'contribution' ? t.contribution_params : t.execution_params;
        if (!p) return this.dispatchFailure(t, `Missing ${phase === 'contribution' ? 'contribution_params' : 'execution_params'} for ${TASK_TYPE_NAMES[t.task_type]}`);
        return this.startContribution(t, phase, p, receivedAt);
      }
      case 'prove':
        if (!t.prove_params) return this.dispatchFailure(t, 'Missing prove_params for PROVE');
        return this.startProve(t, t.prove_params.challenges);
      case 'aggregate':
        if (!t.agg_params) return this.dispatchFailure(t, 'Missing agg_params for AGGREGATE');
        if (t.agg_params.agg_proofs === undefined) return this.dispatchFailure(t, 'Missing agg_proofs in AggParams');
        return this.startAggregate(t, t.agg_params);
      case 'wrap':
        if (!t.wrap_params) return this.dispatchFailure(t, 'Missing wrap_params for WRAP');
        return this.runWrap(t);
    }
  }

  private phaseDelay(phase: Phase): number {
    const o = this.options;
    switch (phase) {
      case 'contribution':
        return o.contributionDelayMs;
      case 'prove':
        return o.proveDelayMs;
      case 'aggregate':
        return o.aggregateDelayMs;
      case 'execute':
        return o.executeDelayMs;
      case 'wrap':
        return o.wrapDelayMs;
    }
  }

  /**
   * Runs a background computation for the current context. When the delay ends, a fault (error /
   * workerError) replaces the result; otherwise `complete` sends it.
   */
  private compute(ctx: JobCtx, task: ExecuteTaskIn, phase: Phase, complete: () => void): void {
    const f = this.takeFault(phase, task.job_id);
    const delay = f?.delayMs ?? this.phaseDelay(phase);
    const run: Running = {
      phase,
      jobId: task.job_id,
      timer: undefined,
      waiting: false,
      finish: () => {
        if (ctx.running !== run) return;
        ctx.running = null;
        if (f?.action === 'error') {
          const inRecovery = f.workerInRecovery === true;
          this.respond(task, { success: false, error_message: f.message ?? `simulated ${phase} failure`, worker_in_recovery: inRecovery });
          if (inRecovery) {
            if (this.ctx === ctx) this.dropContext();
            this.recover(this.options.recoveryDelayMs);
          }
        } else if (f?.action === 'workerError') {
          this.sendWorkerError(task.job_id, f.message ?? `simulated ${phase} worker error`);
        } else {
          complete();
        }
        this.nextAggregate(ctx);
      },
    };
    ctx.running = run;
    this.applyConnFault(f);
    run.timer = setTimeout(() => {
      run.timer = undefined;
      if (this.silent) return; // a hung worker: the computation never ends
      if (this.mustWaitForHints(ctx, phase)) run.waiting = true;
      else run.finish();
    }, delay);
  }

  private mustWaitForHints(ctx: JobCtx, phase: Phase): boolean {
    if (!this.options.waitForHintsEnd || !ctx.hintsStream) return false;
    if (phase !== 'contribution' && phase !== 'execute') return false;
    return !this.streams.get(ctx.jobId)?.hintsEnded;
  }

  /** Drops the job context; returns whether a computation was running (so recovery is due). */
  private dropContext(): boolean {
    const c = this.ctx;
    if (!c) return false;
    this.ctx = null;
    const wasRunning = c.running !== null || c.aggQueue.length > 0;
    if (c.running?.timer) clearTimeout(c.running.timer);
    c.running = null;
    c.aggQueue.length = 0;
    return wasRunning;
  }

  private startContribution(t: ExecuteTaskIn, phase: 'contribution' | 'execute', p: ContributionParamsIn, receivedAt: number): void {
    const hasHints = p.hints_stream || p.hints_path !== undefined || p.hints_data !== undefined;
    if (this.options.requireSetup && !this.setups.has(setupKey(p.hash_id, hasHints))) {
      return this.dispatchFailure(t, `Program ${p.hash_id} is not set up${hasHints ? ' with hints' : ''}`);
    }
    // One job context at a time: a new contribution/execution task replaces (and cancels) the old one.
    this.dropContext();
    const ctx: JobCtx = {
      jobId: t.job_id,
      rank: p.rank_id,
      totalWorkers: p.total_workers,
      hashId: p.hash_id,
      hintsStream: p.hints_stream,
      running: null,
      aggQueue: [],
    };
    this.ctx = ctx;
    this.streamState(t.job_id);
    const started = hostNow();
    this.compute(ctx, t, phase, () => {
      const elapsed = hostNow() - started;
      const time: ZiskExecuteTimeOut = {
        total_duration: elapsed,
        execution_duration: elapsed * 0.6,
        count_and_plan_duration: elapsed * 0.2,
        count_and_plan_mo_duration: elapsed * 0.1,
        task_received_time: receivedAt,
      };
      const publics = packedSimPublics(t.job_id);
      if (phase === 'execute') {
        this.respond(t, {
          success: true,
          execution: {
            instances: simInstances(t.job_id).toString(),
            executed_steps: simExecutedSteps(t.job_id).toString(),
            zisk_execution_time: time,
            witness_info: { publics },
          },
        });
        return;
      }
      this.respond(t, {
        success: true,
        challenges: {
          challenges: [encodedSimChallenges(t.job_id, ctx.rank)],
          witness_info: {
            witness_time: elapsed * 0.3,
            publics,
            proof_values: packedSimWitnessProofValues(t.job_id),
            summary_info: `sim worker ${this.options.workerId} rank ${ctx.rank}`,
            total_instances: simInstances(t.job_id).toString(),
          },
          zisk_execution_time: time,
        },
      });
    });
  }

  private startProve(t: ExecuteTaskIn, challenges: Buffer[]): void {
    const ctx = this.ctx;
    if (!ctx || ctx.jobId !== t.job_id) {
      return this.dispatchFailure(t, `No job context for ${t.job_id} (current: ${ctx?.jobId ?? 'none'})`);
    }
    if (ctx.running) return this.dispatchFailure(t, `Job ${t.job_id} is still computing ${ctx.running.phase}`);
    const problem = this.checkChallenges(t.job_id, ctx.totalWorkers, challenges);
    if (problem) {
      this.stats.challengeMismatches++;
      this.logLine(`challenge check failed for job ${t.job_id}: ${problem}`);
      this.emit('challengeMismatch', t.job_id, problem);
      if (this.options.verifyChallenges) {
        return this.respond(t, { success: false, error_message: `Challenge check failed: ${problem}`, worker_in_recovery: false });
      }
    }
    this.compute(ctx, t, 'prove', () => {
      const values = packedProofStarkValues(this.options.proofValues);
      const proofs: ProofStarkParts[] = [];
      for (let a = 0; a < this.options.proofsPerTask; a++) proofs.push({ workerIdx: ctx.rank, airgroupId: a, packedValues: values });
      this.respond(t, { success: true, proofs: encodeProofList(proofs) });
      // A non-aggregator keeps the context until its next job or a JobCancelled (real worker).
    });
  }

  /** Verifies the concatenated challenge lists bit-exactly; returns a description of the first problem. */
  private checkChallenges(jobId: string, total: number, list: Buffer[]): string | undefined {
    this.stats.challengeEntriesChecked += list.length;
    if (list.length !== total) return `expected ${total} challenge entries, got ${list.length}`;
    const expected = expectedPackedChallenges(jobId, total);
    const seen = new Set<number>();
    for (const buf of list) {
      let scan;
      try {
        scan = scanChallenges(buf);
      } catch (e) {
        return `undecodable Challenges: ${(e as Error).message}`;
      }
      const idx = scan.workerIndex;
      if (idx >= total) return `challenge worker_index ${idx} out of range (${total} workers)`;
      if (scan.airgroupId !== 0) return `worker ${idx}: airgroup_id ${scan.airgroupId}, expected 0`;
      if (seen.has(idx)) return `duplicate challenges of worker ${idx}`;
      seen.add(idx);
      // Packed bodies compare byte for byte (varints are canonical); anything else is decoded.
      if (scan.packed?.equals(expected[idx])) continue;
      const got = scan.irregular ? decodeChallenges(buf).challenge : scan.packed ? decodePackedUint64(scan.packed) : [];
      const want = simChallenges(jobId, idx);
      if (got.length !== want.length || got.some((v, i) => v !== want[i])) {
        return `worker ${idx}: challenge [${got.join(',')}] != [${want.join(',')}]`;
      }
    }
    return undefined;
  }

  private startAggregate(t: ExecuteTaskIn, p: AggParamsIn): void {
    const rec = this.recordAggTask(t.job_id, p);
    const ctx = this.ctx;
    if (!ctx || ctx.jobId !== t.job_id) {
      return this.dispatchFailure(t, `No job context for ${t.job_id} (current: ${ctx?.jobId ?? 'none'})`);
    }
    if (!rec) return this.dispatchFailure(t, 'Undecodable agg_proofs');
    if (ctx.running) {
      // The prover aggregates one step at a time; a second task while one runs means the coordinator
      // sent two in flight (cluster-protocol §7 C2). Queue it, and count it so tests can catch it.
      this.stats.aggOverlaps++;
      ctx.aggQueue.push(t);
      return;
    }
    this.runAggregate(ctx, t);
  }

  private nextAggregate(ctx: JobCtx): void {
    if (this.ctx !== ctx || ctx.running || ctx.aggQueue.length === 0) return;
    this.runAggregate(ctx, ctx.aggQueue.shift() as ExecuteTaskIn);
  }

  private runAggregate(ctx: JobCtx, t: ExecuteTaskIn): void {
    const p = t.agg_params as AggParamsIn;
    const last = p.last_proof || p.final_proof;
    this.compute(ctx, t, 'aggregate', () => {
      if (!last) {
        this.respond(t, { success: true, final_proof: { proof_data: Buffer.alloc(0) } });
        return;
      }
      this.respond(t, {
        success: true,
        final_proof: {
          proof_data: simFinalProof(t.job_id, this.options.finalProofBytes),
          executed_steps: simExecutedSteps(t.job_id).toString(),
          instances: simInstances(t.job_id).toString(),
        },
      });
      // The aggregator drops its context after the final proof (real worker).
      if (this.ctx === ctx) this.dropContext();
    });
  }

  private recordAggTask(jobId: string, p: AggParamsIn): AggTaskRecord | undefined {
    let views;
    try {
      views = walkProofList(p.agg_proofs ?? Buffer.alloc(0));
    } catch {
      return undefined;
    }
    let intact = true;
    let valueCount = 0;
    for (const v of views) {
      valueCount += v.valueCount;
      if (v.packedValues) {
        if (!v.packedValues.equals(packedProofStarkValues(v.valueCount))) intact = false;
      } else if (v.unpackedValues) {
        if (v.unpackedValues.some((x, i) => x !== proofStarkValueAt(i))) intact = false;
      }
    }
    const rec: AggTaskRecord = {
      at: hostNow(),
      jobId,
      proofCount: views.length,
      sourceWorkers: views.map((v) => v.workerIdx),
      valueCount,
      valuesIntact: intact,
      lastProof: p.last_proof,
      finalProof: p.final_proof,
      proofType: p.proof_type,
    };
    this.aggTasks.push(rec);
    if (this.aggTasks.length > 2 * this.options.maxLogEntries) this.aggTasks.splice(0, this.aggTasks.length - this.options.maxLogEntries);
    return rec;
  }

  private runWrap(t: ExecuteTaskIn): void {
    const w = t.wrap_params as NonNullable<ExecuteTaskIn['wrap_params']>;
    if (w.proof_dest !== 1 && w.proof_dest !== 2) return this.dispatchFailure(t, `Invalid proof_dest ${w.proof_dest}`);
    const f = this.takeFault('wrap', t.job_id);
    this.applyConnFault(f);
    // Wrap runs inside the real worker's event loop: no heartbeats, no message handling meanwhile.
    this.block(f?.delayMs ?? this.options.wrapDelayMs, () => {
      if (f?.action === 'error') {
        this.respond(t, { success: false, error_message: f.message ?? 'simulated wrap failure', worker_in_recovery: false });
      } else if (f?.action === 'workerError') {
        this.sendWorkerError(t.job_id, f.message ?? 'simulated wrap worker error');
      } else {
        this.respond(t, { success: true, wrap_result: { proof_data: simWrapProof(w.proof_data, w.proof_dest, this.options.wrapProofBytes) } });
      }
    });
  }

  // ------------------------------------------------------------------ cancel

  private onJobCancelled(jobId: string, reason: string): void {
    this.stats.cancelsReceived++;
    this.logLine(`job ${jobId} cancelled: ${reason}`);
    this.send({ job_cancelled_ack: { worker_id: this.options.workerId, job_id: jobId } });
    if (this.ctx?.jobId !== jobId) return;
    // Computing → recovery, then recovery_complete; holding the context idle → recovery_complete at once.
    const wasRunning = this.dropContext();
    this.recover(wasRunning ? this.options.recoveryDelayMs : 0);
  }

  // ------------------------------------------------------------------ streams

  private streamState(jobId: string): StreamState {
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

  private streamError(jobId: string, message: string): void {
    this.stats.streamErrors++;
    this.streamState(jobId).errors.push(message);
    this.logLine(`stream error job ${jobId}: ${message}`);
    this.emit('streamError', jobId, message);
    const ctx = this.ctx;
    if (this.options.streamErrorReport === 'taskError' && ctx && ctx.jobId === jobId && ctx.running) {
      const phase = ctx.running.phase;
      this.dropContext();
      const taskType = phase === 'execute' ? TaskType.EXECUTION : TaskType.PARTIAL_CONTRIBUTION;
      this.respond({ worker_id: this.options.workerId, job_id: jobId, task_type: taskType }, { success: false, error_message: message, worker_in_recovery: true });
      this.recover(this.options.recoveryDelayMs);
      return;
    }
    this.sendWorkerError(jobId, message);
  }

  private onInputData(jobId: string, payload: Buffer): void {
    const ctx = this.ctx;
    if (!ctx || ctx.jobId !== jobId) {
      this.streamState(jobId).inputRejected++;
      return this.streamError(jobId, `Input stream data for job ${jobId} but the current job is ${ctx?.jobId ?? 'none'}`);
    }
    const s = this.streamState(jobId);
    if (payload.length % 8 !== 0) {
      s.inputRejected++;
      return this.streamError(jobId, `Input stream chunk of ${payload.length} bytes is not a multiple of 8`);
    }
    s.inputBytes += payload.length;
    s.inputChunks++;
    if (this.hashStreams) (s.inputHash ??= createHash('sha256')).update(payload);
  }

  private onStreamData(d: StreamDataIn): void {
    const jobId = d.job_id;
    const ctx = this.ctx;
    if (!ctx || ctx.jobId !== jobId) {
      return this.streamError(jobId, `Hints stream data for job ${jobId} but the current job is ${ctx?.jobId ?? 'none'}`);
    }
    const s = this.streamState(jobId);
    const seq = d.payload?.sequence_number ?? 0;
    const bytes = d.payload?.payload ?? Buffer.alloc(0);
    switch (d.stream_type) {
      case StreamType.START:
        if (s.hintsStarted) return this.streamError(jobId, 'Hints stream START received twice');
        s.hintsStarted = true;
        s.hintsNextSeq = seq + 1;
        return;
      case StreamType.DATA: {
        if (!s.hintsStarted) return this.streamError(jobId, `Hints DATA (seq ${seq}) before START`);
        if (s.hintsEnded) return this.streamError(jobId, `Hints DATA (seq ${seq}) after END`);
        if (seq < s.hintsNextSeq || s.buffered.has(seq)) return this.streamError(jobId, `Duplicate hints DATA seq ${seq}`);
        if (bytes.length % 8 !== 0) return this.streamError(jobId, `Hints DATA seq ${seq} of ${bytes.length} bytes is not a multiple of 8`);
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
        if (!s.hintsStarted) return this.streamError(jobId, `Hints END (seq ${seq}) before START`);
        if (s.hintsEnded) return this.streamError(jobId, 'Hints END received twice');
        if (s.buffered.size > 0 || seq !== s.hintsNextSeq) {
          return this.streamError(jobId, `Hints END (seq ${seq}) with gaps: expected seq ${s.hintsNextSeq}, ${s.buffered.size} buffered`);
        }
        s.hintsEnded = true;
        if (ctx.running?.waiting) ctx.running.finish();
        return;
      default:
        return this.streamError(jobId, `Unknown hints stream type ${d.stream_type}`);
    }
  }

  private applyHints(s: StreamState, bytes: Buffer): void {
    s.hintsBytes += bytes.length;
    s.hintsMessages++;
    s.hintsNextSeq++;
    if (this.hashStreams) (s.hintsHash ??= createHash('sha256')).update(bytes);
  }

  // ------------------------------------------------------------------ utilities

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (this._state !== 'stopped') fn();
    }, ms);
    this.timers.add(t);
  }

  private record(e: LogEntry): void {
    this.log.push(e);
    if (this.log.length > 2 * this.options.maxLogEntries) this.log.splice(0, this.log.length - this.options.maxLogEntries);
  }

  private logLine(line: string): void {
    this.options.logger?.(`[${this.options.workerId}] ${line}`);
  }
}
