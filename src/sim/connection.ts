/** A sim worker's `WorkerStream` call as its event loop sees it: connect, handshake, heartbeats, reconnects, in/out queues. */
import * as grpc from '@grpc/grpc-js';
import type { CoordinatorMessageIn, WorkerMessageOut } from './messages';
import { simChannelOptions, workerStreamMethod } from './channel';
import type { JobSlot } from './job-context';
import type { WorkerRuntime } from './worker-runtime';
import { inboundEntry, outboundEntry } from './worker-log';
import type { DisconnectInfo } from './worker-types';

interface Conn {
  client: grpc.Client;
  ownsClient: boolean;
  call: grpc.ClientDuplexStream<WorkerMessageOut | Buffer, CoordinatorMessageIn>;
  headers: boolean;
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
   * @param sharedClient a `grpc.Client` to multiplex the stream on (fleet option); by default every
   *   connection attempt opens its own channel, like the Rust worker.
   * @param process handles one inbound message, in order, whenever the worker is not blocked.
   */
  constructor(
    private readonly rt: WorkerRuntime,
    private readonly slot: JobSlot,
    private readonly sharedClient: grpc.Client | undefined,
    private readonly process: (msg: CoordinatorMessageIn) => void,
  ) {}

  /** A stream is open and the register/reconnect on it has not been accepted yet. */
  get handshaking(): boolean {
    return this.conn !== null && this.rt.state !== 'ready';
  }

  connect(): void {
    const { rt } = this;
    if (rt.stopped || rt.silent) return;
    this.reconnectTimer = undefined;
    const o = rt.options;
    const m = workerStreamMethod();
    const ownsClient = !this.sharedClient;
    const client = this.sharedClient ?? new grpc.Client(o.coordinator, grpc.credentials.createInsecure(), simChannelOptions(o));
    const call = client.makeBidiStreamRequest<WorkerMessageOut | Buffer, CoordinatorMessageIn>(m.path, m.serialize, m.deserialize, new grpc.Metadata());
    const conn: Conn = { client, ownsClient, call, headers: false, heartbeat: undefined, headersTimer: undefined };
    this.conn = conn;
    rt.state = 'connecting';
    rt.stats.connects++;
    call.on('metadata', () => this.onHeaders(conn));
    call.on('data', (msg: CoordinatorMessageIn) => this.onData(conn, msg));
    call.on('error', () => {
      // The status event carries the outcome; this listener only keeps the error from being thrown.
    });
    call.on('status', (s: grpc.StatusObject) => this.onStatus(conn, s));
    if (o.headersTimeoutMs > 0) {
      conn.headersTimer = setTimeout(() => {
        if (this.conn === conn && !conn.headers) {
          rt.logLine(`no response headers within ${o.headersTimeoutMs} ms; retrying`);
          rt.stats.connectErrors++;
          this.dropConn(conn, o.reconnectIntervalMs);
        }
      }, o.headersTimeoutMs);
    }
    if (this.readingPaused) call.pause();
  }

  /** Closes the stream and cancels a pending reconnect, for good. */
  stop(): void {
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    const c = this.conn;
    this.conn = null;
    if (c) this.closeConn(c);
  }

  /** Drops the stream on the sim's own initiative and reconnects after `after` ms (null: never). */
  drop(after: number | null): void {
    const c = this.conn;
    if (c) this.dropConn(c, after);
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
    this.conn?.call.pause();
  }

  resumeReading(): void {
    this.readingPaused = false;
    this.conn?.call.resume();
  }

  // ------------------------------------------------------------------ outbound

  /** Writes on the current stream as is, once it has response headers; false when there is none. */
  writeRaw(msg: WorkerMessageOut | Buffer): boolean {
    const c = this.conn;
    if (!c || !c.headers) return false;
    this.write(c, msg);
    return true;
  }

  heartbeat(): void {
    if (this.conn) this.sendHeartbeat(this.conn);
  }

  /**
   * Sends on the current stream once it is registered; otherwise queues, like the real worker's
   * process-wide outbound queue that the next stream drains.
   */
  send(msg: WorkerMessageOut): void {
    if (this.rt.silent || this.rt.stopped) return;
    const c = this.conn;
    if (c && this.rt.state === 'ready') this.write(c, msg);
    else this.outbox.push(msg);
  }

  /** Drains the queue onto the newly registered stream, less the task responses of `droppedJob`. */
  flushOutbox(droppedJob: string | undefined): void {
    const c = this.conn;
    if (!c) return;
    const pending = this.outbox.splice(0);
    for (const m of pending) {
      if (droppedJob !== undefined && m.execute_task_response?.job_id === droppedJob) continue;
      this.write(c, m);
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
      this.write(conn, { reconnect: { worker_id: o.workerId, compute_capacity: capacity, last_known_job_id: held.jobId } });
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

  private onStatus(conn: Conn, s: grpc.StatusObject): void {
    if (this.conn !== conn) return;
    this.conn = null;
    this.closeConn(conn);
    const clean = s.code === grpc.status.OK;
    this.afterDisconnect({ code: s.code, details: s.details, clean, hadHeaders: conn.headers });
    const { stats, options } = this.rt;
    if (!conn.headers) stats.connectErrors++;
    else if (clean) stats.cleanEnds++;
    // Clean end → reconnect at once; connect or RPC error → sleep reconnect_interval (real worker).
    this.scheduleReconnect(clean ? options.cleanReconnectDelayMs : options.reconnectIntervalMs);
  }

  private dropConn(conn: Conn, after: number | null): void {
    if (this.conn !== conn) return;
    this.conn = null;
    this.closeConn(conn);
    this.afterDisconnect({ code: grpc.status.CANCELLED, details: 'dropped by sim', clean: true, hadHeaders: conn.headers });
    if (after !== null) this.scheduleReconnect(after);
  }

  private afterDisconnect(info: DisconnectInfo): void {
    const { rt } = this;
    if (!rt.stopped) rt.state = 'disconnected';
    rt.logLine(`stream ended: code ${info.code}${info.details ? ` (${info.details})` : ''}`);
    rt.events.emit('disconnected', info);
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

  private write(conn: Conn, msg: WorkerMessageOut | Buffer): void {
    const entry = outboundEntry(msg);
    conn.call.write(msg);
    this.rt.stats.messagesSent++;
    this.rt.record(entry);
    this.rt.events.emit('sent', entry, msg);
  }

  private sendHeartbeat(conn: Conn): void {
    if (this.rt.silent || this.conn !== conn) return;
    this.rt.stats.heartbeatsSent++;
    this.write(conn, { heartbeat_ack: { worker_id: this.rt.options.workerId } });
  }
}
