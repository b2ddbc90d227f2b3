/**
 * A sim worker's `WorkerStream` call as its event loop sees it: connect, handshake, heartbeats,
 * reconnects, in/out queues. The wire under it (`transport.ts`) decides what counts as the end of a
 * call; everything here is shared by both wires.
 */
import type { CoordinatorMessageIn, WorkerMessageOut } from './messages';
import type { JobSlot } from './job-context';
import type { OpenWorkerStream, StreamEnd, WorkerStream } from './transport';
import type { WorkerRuntime } from './worker-runtime';
import { inboundEntry, outboundEntry } from './worker-log';
import type { DisconnectInfo } from './worker-types';
import { workerStreamMethod } from './channel';
import { unpackAt } from './wire';

const CANCELLED = 1;
const UNAVAILABLE = 14;

interface Conn {
  stream: WorkerStream | undefined;
  headers: boolean;
  /** The response ended OK and the request side is still open (upstream wire): the worker has not noticed. */
  halfOpen: boolean;
  heartbeat: NodeJS.Timeout | undefined;
  headersTimer: NodeJS.Timeout | undefined;
}

export class WorkerConnection {
  private conn: Conn | null = null;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private readingPaused = false;
  /** A handler is "running inside the event loop": inbound waits, heartbeats are missed. */
  private blocked = false;
  private missedHeartbeat = false;
  private readonly inbound: CoordinatorMessageIn[] = [];
  private readonly outbox: WorkerMessageOut[] = [];
  /**
   * The real worker sends whatever its loop produces as soon as the stream is up, before the
   * register response (its loop events outrank coordinator messages); the grpc-js wire keeps the
   * older, kinder order: nothing but heartbeats until accepted.
   */
  private readonly sendsDuringHandshake: boolean;

  /**
   * @param open opens one connection attempt's call on the chosen wire.
   * @param process handles one inbound message, in order, whenever the worker is not blocked.
   */
  constructor(
    private readonly rt: WorkerRuntime,
    private readonly slot: JobSlot,
    private readonly open: OpenWorkerStream,
    private readonly process: (msg: CoordinatorMessageIn) => void,
  ) {
    this.sendsDuringHandshake = rt.options.wire === 'upstream';
  }

  /** A stream is open and the register/reconnect on it has not been accepted yet. */
  get handshaking(): boolean {
    return this.conn !== null && this.rt.state !== 'ready';
  }

  /** The coordinator ended the response OK and never reset the stream; the worker still writes into it. */
  get halfOpen(): boolean {
    return this.conn?.halfOpen === true;
  }

  connect(): void {
    const { rt } = this;
    // Cleared first: a reconnect timer that fires during a silence must not block the reconnect
    // that `unsilence()` schedules.
    this.reconnectTimer = undefined;
    if (rt.stopped || rt.silent) return;
    const o = rt.options;
    const conn: Conn = { stream: undefined, headers: false, halfOpen: false, heartbeat: undefined, headersTimer: undefined };
    this.conn = conn;
    rt.state = 'connecting';
    rt.stats.connects++;
    conn.stream = this.open({
      headers: () => this.onHeaders(conn),
      message: (msg) => this.onData(conn, msg),
      responseEnded: (code, details) => this.onResponseEnded(conn, code, details),
      ended: (end) => this.onEnded(conn, end),
    });
    if (o.headersTimeoutMs > 0) {
      conn.headersTimer = setTimeout(() => {
        if (this.conn === conn && !conn.headers) {
          rt.logLine(`no response headers within ${o.headersTimeoutMs} ms; retrying`);
          rt.stats.connectErrors++;
          this.endConn(conn, { code: UNAVAILABLE, details: 'no response headers', hadHeaders: false, reason: 'headersTimeout', clean: false }, o.reconnectIntervalMs);
        }
      }, o.headersTimeoutMs);
    }
    if (this.readingPaused) conn.stream.pause();
  }

  /** Closes the stream and cancels a pending reconnect, for good. */
  stop(): void {
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    const c = this.conn;
    this.conn = null;
    if (c) this.closeConn(c, true);
  }

  /**
   * Drops the stream on the sim's own initiative and reconnects after `after` ms (null: never).
   * `dropped` cuts the connection as a network failure would; `rejected` leaves it the way the
   * real worker leaves its loop.
   */
  drop(after: number | null, reason: 'dropped' | 'rejected' = 'dropped'): void {
    const c = this.conn;
    if (!c) return;
    const details = reason === 'dropped' ? 'dropped by sim' : 'registration rejected';
    this.endConn(c, { code: CANCELLED, details, clean: true, hadHeaders: c.headers, reason }, after, reason === 'dropped');
  }

  /**
   * The worker process died: the connection goes at once (as the kernel closes a dead process's
   * sockets) and nothing it had queued, in or out, survives; no reconnect (a new process does that).
   */
  crash(): void {
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.outbox.length = 0;
    this.inbound.length = 0;
    this.blocked = false;
    this.missedHeartbeat = false;
    this.readingPaused = false;
    this.rt.silent = false;
    const c = this.conn;
    if (c) this.endConn(c, { code: CANCELLED, details: 'worker process killed', clean: false, hadHeaders: c.headers, reason: 'killed' }, null, true);
  }

  scheduleReconnect(ms: number): void {
    if (this.rt.stopped || this.rt.silent || this.conn || this.reconnectTimer) return;
    this.reconnectTimer = setTimeout(() => this.connect(), ms);
  }

  /** Goes silent: no heartbeats, no answers, inbound ignored, no reconnect. */
  silence(): void {
    this.rt.silent = true;
  }

  /** Ends a silence (reconnecting if the stream died meanwhile). */
  unsilence(): void {
    const { rt } = this;
    if (!rt.silent) return;
    rt.silent = false;
    if (rt.stopped) return;
    if (!this.conn) this.scheduleReconnect(0);
  }

  /** Stops reading the stream (HTTP/2 flow control then pushes back on the coordinator). */
  pauseReading(): void {
    this.readingPaused = true;
    this.conn?.stream?.pause();
  }

  resumeReading(): void {
    this.readingPaused = false;
    this.conn?.stream?.resume();
  }

  // ------------------------------------------------------------------ outbound

  /** Writes on the current stream as is, once it has response headers; false when there is none or the send failed. */
  writeRaw(msg: WorkerMessageOut | Buffer): boolean {
    const c = this.conn;
    if (!c || !c.headers) return false;
    return this.write(c, msg);
  }

  heartbeat(): void {
    if (this.conn) this.sendHeartbeat(this.conn);
  }

  /**
   * Sends on the current stream once it is registered (upstream wire: once its handshake is sent);
   * otherwise queues, like the real worker's process-wide event queue that the next stream drains.
   */
  send(msg: WorkerMessageOut): void {
    if (this.rt.silent || this.rt.stopped) return;
    const c = this.conn;
    if (c && (this.rt.state === 'ready' || (this.sendsDuringHandshake && c.headers))) this.write(c, msg);
    else this.outbox.push(msg);
  }

  /** Drains the queue onto the current stream, less the task responses of `droppedJob`. */
  flushOutbox(droppedJob: string | undefined): void {
    const c = this.conn;
    if (!c) return;
    const pending = this.outbox.splice(0);
    for (let i = 0; i < pending.length; i++) {
      const m = pending[i];
      if (droppedJob !== undefined && m.execute_task_response?.job_id === droppedJob) continue;
      if (!this.write(c, m)) {
        // Lost with its failed send, as in the real worker; the rest wait for the next stream.
        this.outbox.unshift(...pending.slice(i + 1));
        return;
      }
    }
  }

  // ------------------------------------------------------------------ inbound

  /** Simulates a handler that runs inside the real worker's event loop: nothing else is processed meanwhile. */
  block(ms: number, then: () => void): void {
    this.blocked = true;
    this.rt.later(ms, () => {
      this.blocked = false;
      if (this.rt.silent) return;
      then();
      if (this.missedHeartbeat) {
        this.missedHeartbeat = false;
        this.heartbeat();
      }
      this.drain();
    });
  }

  /** Processes, in order, the messages that queued while the worker was blocked. */
  drain(): void {
    while (!this.blocked && !this.rt.silent && this.inbound.length > 0 && !this.rt.stopped) {
      this.process(this.inbound.shift() as CoordinatorMessageIn);
    }
  }

  // ------------------------------------------------------------------ stream events

  private onHeaders(conn: Conn): void {
    if (this.conn !== conn || conn.headers) return;
    conn.headers = true;
    if (conn.headersTimer) clearTimeout(conn.headersTimer);
    const { rt } = this;
    rt.state = 'handshaking';
    const o = rt.options;
    const capacity = { compute_units: o.computeUnits };
    const held = this.slot.current;
    if (held) {
      rt.stats.reconnectsSent++;
      if (!this.write(conn, { reconnect: { worker_id: o.workerId, compute_capacity: capacity, last_known_job_id: held.jobId } })) return;
    } else if (!this.write(conn, { register: { worker_id: o.workerId, compute_capacity: capacity } })) return;
    if (this.sendsDuringHandshake) {
      this.flushOutbox(undefined);
      if (this.conn !== conn) return;
    }
    // The real worker's first heartbeat goes out before it reads the register response.
    this.sendHeartbeat(conn);
    if (this.conn !== conn) return;
    conn.heartbeat = setInterval(() => {
      if (this.conn !== conn) return;
      if (this.blocked) this.missedHeartbeat = true;
      else this.sendHeartbeat(conn);
    }, o.heartbeatIntervalMs);
  }

  private onData(conn: Conn, msg: CoordinatorMessageIn): void {
    if (this.conn !== conn) return;
    const entry = inboundEntry(msg);
    const { rt } = this;
    rt.stats.messagesReceived++;
    rt.record(entry);
    rt.events.emit('received', entry, msg);
    if (rt.silent) return;
    if (this.blocked || this.inbound.length > 0) this.inbound.push(msg);
    else this.process(msg);
  }

  private onResponseEnded(conn: Conn, code: number, details: string): void {
    if (this.conn !== conn || conn.halfOpen) return;
    conn.halfOpen = true;
    const { rt } = this;
    rt.stats.cleanEnds++;
    rt.logLine(`response stream ended with status ${code}; still sending until a send fails`);
    rt.events.emit('responseEnded', { code, details });
  }

  private onEnded(conn: Conn, end: StreamEnd): void {
    if (this.conn !== conn) return;
    const { stats, options } = this.rt;
    const clean = end.code === 0;
    if (!end.hadHeaders) stats.connectErrors++;
    else if (clean) stats.cleanEnds++;
    const { backOff, ...info } = end;
    this.endConn(conn, { ...info, clean }, backOff ? options.reconnectIntervalMs : options.cleanReconnectDelayMs);
  }

  /** Gives up on `conn` (reporting why) and reconnects after `after` ms (null: never). */
  private endConn(conn: Conn, info: DisconnectInfo, after: number | null, abort = false): void {
    if (this.conn !== conn) return;
    this.conn = null;
    this.closeConn(conn, abort);
    const { rt } = this;
    if (!rt.stopped) rt.state = 'disconnected';
    rt.logLine(`stream ended (${info.reason}): code ${info.code}${info.details ? ` (${info.details})` : ''}`);
    rt.events.emit('disconnected', info);
    if (after !== null) this.scheduleReconnect(after);
  }

  private closeConn(conn: Conn, abort: boolean): void {
    if (conn.heartbeat) clearInterval(conn.heartbeat);
    if (conn.headersTimer) clearTimeout(conn.headersTimer);
    conn.stream?.close(abort);
    // Messages queued behind a block belong to the dead stream.
    this.inbound.length = 0;
  }

  /** Writes `msg`; a failed send (upstream wire) ends the stream and reconnects at once, as the real worker's loop does. */
  private write(conn: Conn, msg: WorkerMessageOut | Buffer): boolean {
    const entry = outboundEntry(msg);
    const r = Buffer.isBuffer(msg) ? undefined : msg.execute_task_response;
    const bytes = this.rt.options.unpackedArrays && (r?.challenges || r?.execution) ? unpackWitnessArrays(msg) : msg;
    if (!conn.stream?.write(bytes)) {
      const { rt } = this;
      rt.stats.sendFailures++;
      rt.logLine(`send of ${entry.kind} failed: the stream is gone`);
      this.endConn(conn, { code: UNAVAILABLE, details: `send of ${entry.kind} failed`, clean: false, hadHeaders: conn.headers, reason: 'sendFailed' }, rt.options.cleanReconnectDelayMs);
      return false;
    }
    this.rt.stats.messagesSent++;
    this.rt.record(entry);
    this.rt.events.emit('sent', entry, msg);
    return true;
  }

  private sendHeartbeat(conn: Conn): void {
    if (this.rt.silent || this.conn !== conn) return;
    if (this.write(conn, { heartbeat_ack: { worker_id: this.rt.options.workerId } })) this.rt.stats.heartbeatsSent++;
  }
}

/** WorkerMessage.execute_task_response → .challenges / .execution → .witness_info */
const WITNESS_PATHS = [
  [5, 7, 2],
  [5, 6, 4],
] as const;

/** The message encoded with its witness publics (2) and proof_values (3) unpacked (option `unpackedArrays`). */
function unpackWitnessArrays(msg: WorkerMessageOut | Buffer): Buffer {
  let buf = Buffer.isBuffer(msg) ? msg : workerStreamMethod().serialize(msg);
  for (const path of WITNESS_PATHS) buf = unpackAt(buf, path, [2, 3]);
  return buf;
}
