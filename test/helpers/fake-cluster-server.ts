/**
 * A minimal fake coordinator for sim tests: a grpc-js server on 127.0.0.1:0 serving `WorkerStream`
 * with the PUBLIC proto (so everything a sim worker writes is checked by the real schema, uint64 as
 * decimal strings), sending response headers at once like our coordinator must (docs/protocol.md,
 * Response headers). It records every inbound message with a host-clock timestamp and leaves all protocol decisions to the test, except
 * the handshake answer, which follows `decide` (default: accept, no directive).
 */
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import { CLUSTER_API_PROTO, CLUSTER_API_SERVICE, serviceDefinition } from '../../src/shared/proto';

/** A `WorkerMessage` as the public proto decodes it (only what the tests read is typed). */
export interface PubWorkerMessage {
  payload?: string;
  heartbeat_ack?: { worker_id: string };
  error?: { worker_id: string; job_id: string; error_message: string };
  register?: { worker_id: string; compute_capacity: { compute_units: number } | null };
  reconnect?: { worker_id: string; compute_capacity: { compute_units: number } | null; last_known_job_id?: string };
  execute_task_response?: PubTaskResponse;
  job_cancelled_ack?: { worker_id: string; job_id: string };
  setup_program_ack?: { job_id: string; worker_id: string; hash_id: string; success: boolean; error_message: string; vk: Buffer };
  recovery_complete?: { worker_id: string };
}

export interface PubChallenges {
  worker_index: number;
  airgroup_id: number;
  challenge: string[];
}

export interface PubProofStark {
  worker_idx: number;
  airgroup_id: string;
  values: string[];
}

export interface PubWitnessInfo {
  publics: string[];
  proof_values: string[];
  total_instances: string;
}

export interface PubTaskResponse {
  job_id: string;
  worker_id: string;
  task_type: number;
  success: boolean;
  error_message: string;
  worker_in_recovery: boolean;
  result_data?: string;
  execution?: { instances: string; executed_steps: string; zisk_execution_time: { task_received_time: number } | null; witness_info?: PubWitnessInfo };
  challenges?: { challenges: PubChallenges[]; witness_info: PubWitnessInfo | null; zisk_execution_time: { task_received_time: number } | null };
  proofs?: { proofs: PubProofStark[] };
  final_proof?: { proof_data: Buffer; executed_steps: string; instances: string };
  wrap_result?: { proof_data: Buffer };
}

/** A `CoordinatorMessage` to encode with the public proto (exactly one member). */
export type PubCoordinatorMessage = Partial<
  Record<
    | 'heartbeat'
    | 'shutdown'
    | 'register_response'
    | 'execute_task'
    | 'job_cancelled'
    | 'stream_data'
    | 'setup_program'
    | 'input_stream_data',
    object
  >
>;

export interface Received {
  at: number;
  workerId: string;
  conn: FakeConn;
  msg: PubWorkerMessage;
}

export interface HandshakeDecision {
  accepted: boolean;
  message?: string;
  directive?: number;
  setup_program?: object;
}

export interface FakeServerOptions {
  decide?: (first: PubWorkerMessage, server: FakeClusterServer) => HandshakeDecision;
  /** Messages written right after an accepted register_response. */
  afterAccept?: (conn: FakeConn) => PubCoordinatorMessage[];
  /** Delay the response headers (default: sent at once); to check the worker waits for them. */
  headersDelayMs?: number;
}

type Call = grpc.ServerDuplexStream<PubWorkerMessage, PubCoordinatorMessage>;

export class FakeConn {
  readonly messages: Received[] = [];
  closed = false;
  endedByPeer = false;
  workerId = '';
  first: PubWorkerMessage | undefined;
  headersSentAt = 0;

  constructor(readonly call: Call) {}

  send(msg: PubCoordinatorMessage): void {
    if (!this.closed) this.call.write(msg);
  }

  /**
   * Ends the stream with status OK and nothing else, as grpc-js's server does (no RST_STREAM): a
   * disconnect for a sim on the grpc-js wire, a half-open stream it keeps writing into on the upstream
   * wire. Tests that need a reset use `raw-worker-port.ts`.
   */
  end(): void {
    if (this.closed) return;
    this.closed = true;
    this.call.end();
  }

  /** Ends the stream with an error status. */
  fail(code: grpc.status, details: string): void {
    if (this.closed) return;
    this.closed = true;
    this.call.emit('error', { code, details });
  }
}

export const hostNow = (): number => performance.timeOrigin + performance.now();

export class FakeClusterServer extends EventEmitter<{ message: [Received]; connection: [FakeConn] }> {
  readonly server = new grpc.Server({
    'grpc.max_send_message_length': 128 * 1024 * 1024,
    'grpc.max_receive_message_length': 128 * 1024 * 1024,
  });
  readonly connections: FakeConn[] = [];
  readonly received: Received[] = [];
  port = 0;
  /** Handshakes in arrival order: the first message of every stream. */
  readonly handshakes: Array<{ at: number; msg: PubWorkerMessage }> = [];

  constructor(readonly options: FakeServerOptions = {}) {
    super();
    const def = serviceDefinition(CLUSTER_API_PROTO, CLUSTER_API_SERVICE);
    this.server.addService(def, { WorkerStream: (call: Call) => this.onCall(call) });
  }

  /** Listens on 127.0.0.1:`port` (0 = any free port). */
  static async start(options: FakeServerOptions = {}, port = 0): Promise<FakeClusterServer> {
    const s = new FakeClusterServer(options);
    s.port = await new Promise<number>((resolve, reject) =>
      s.server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
    );
    return s;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Latest open connection of a worker. */
  conn(workerId: string): FakeConn | undefined {
    for (let i = this.connections.length - 1; i >= 0; i--) {
      const c = this.connections[i];
      if (c.workerId === workerId && !c.closed) return c;
    }
    return undefined;
  }

  send(workerId: string, msg: PubCoordinatorMessage): void {
    const c = this.conn(workerId);
    if (!c) throw new Error(`no open stream for ${workerId}`);
    c.send(msg);
  }

  /** Resolves with the first recorded message (past or future) matching `pred`. */
  waitFor(pred: (r: Received) => boolean, timeoutMs = 3000, what = 'message'): Promise<Received> {
    const past = this.received.find(pred);
    if (past) return Promise.resolve(past);
    return new Promise((resolve, reject) => {
      const onMsg = (r: Received): void => {
        if (!pred(r)) return;
        clearTimeout(timer);
        this.off('message', onMsg);
        resolve(r);
      };
      const timer = setTimeout(() => {
        this.off('message', onMsg);
        reject(new Error(`fake server: timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      this.on('message', onMsg);
    });
  }

  /** Resolves with `n` matching messages (past and future). */
  async waitForCount(pred: (r: Received) => boolean, n: number, timeoutMs = 3000, what = 'messages'): Promise<Received[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const got = this.received.filter(pred);
      if (got.length >= n) return got.slice(0, n);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`fake server: got ${got.length}/${n} ${what} within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, Math.min(10, left)));
    }
  }

  async stop(): Promise<void> {
    for (const c of this.connections) c.closed = true;
    this.server.forceShutdown();
  }

  private onCall(call: Call): void {
    const conn = new FakeConn(call);
    // The Rust worker (and the sim) wait for response headers before sending anything (docs/protocol.md, Response headers).
    const sendHeaders = (): void => {
      if (conn.closed) return;
      conn.headersSentAt = hostNow();
      call.sendMetadata(new grpc.Metadata());
    };
    if (this.options.headersDelayMs) setTimeout(sendHeaders, this.options.headersDelayMs);
    else sendHeaders();
    this.connections.push(conn);
    this.emit('connection', conn);
    call.on('data', (msg: PubWorkerMessage) => {
      const r: Received = { at: hostNow(), workerId: conn.workerId, conn, msg };
      if (!conn.first) {
        conn.first = msg;
        conn.workerId = msg.register?.worker_id ?? msg.reconnect?.worker_id ?? '';
        r.workerId = conn.workerId;
        this.handshakes.push({ at: r.at, msg });
        this.record(conn, r);
        this.handshake(conn, msg);
        return;
      }
      this.record(conn, r);
    });
    call.on('end', () => {
      conn.endedByPeer = true;
      if (!conn.closed) {
        conn.closed = true;
        call.end();
      }
    });
    call.on('error', () => {
      conn.closed = true;
    });
    call.on('cancelled', () => {
      conn.closed = true;
    });
  }

  private record(conn: FakeConn, r: Received): void {
    conn.messages.push(r);
    this.received.push(r);
    this.emit('message', r);
  }

  private handshake(conn: FakeConn, first: PubWorkerMessage): void {
    if (!first.register && !first.reconnect) {
      conn.fail(grpc.status.INVALID_ARGUMENT, 'First message must be registration or reconnection');
      return;
    }
    const d = this.options.decide?.(first, this) ?? { accepted: true };
    const resp: Record<string, unknown> = {
      worker_id: conn.workerId,
      accepted: d.accepted,
      message: d.message ?? (d.accepted ? (first.register ? 'Registration successful' : 'Reconnection successful') : 'rejected'),
    };
    if (d.accepted) resp.registered_at = { seconds: String(Math.floor(Date.now() / 1000)), nanos: 0 };
    if (d.directive !== undefined) resp.directive = { action: d.directive };
    if (d.setup_program) resp.setup_program = d.setup_program;
    conn.send({ register_response: resp });
    if (!d.accepted) {
      conn.end();
      return;
    }
    for (const m of this.options.afterAccept?.(conn) ?? []) conn.send(m);
  }
}
