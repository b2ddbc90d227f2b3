/**
 * A fake coordinator worker port on raw `node:http2`, for tests of how a worker reacts to the way a
 * stream ends. grpc-js's server always ends a call with trailers and nothing else; here the test
 * chooses: trailers with any status and the stream left half-open, RST_STREAM with any code (after
 * the status or instead of it), a dead connection, a trailers-only refusal, or raw bytes that break
 * the framing. It also counts the PING frames clients send. Messages are the PUBLIC proto's, as in
 * `fake-cluster-server.ts`, and framed by code of its own, not the sim's.
 */
import { EventEmitter } from 'node:events';
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { CLUSTER_API_PROTO, CLUSTER_API_SERVICE, serviceDefinition } from '../../src/shared/proto';
import { hostNow, type HandshakeDecision, type PubCoordinatorMessage, type PubWorkerMessage } from './fake-cluster-server';

const WORKER_STREAM = serviceDefinition(CLUSTER_API_PROTO, CLUSTER_API_SERVICE).WorkerStream;
const H2 = http2.constants;

export interface RawReceived {
  at: number;
  workerId: string;
  stream: RawWorkerStream;
  msg: PubWorkerMessage;
}

export interface RawPortOptions {
  /** The handshake answer; null leaves it unanswered (default: accept, no directive). */
  decide?: (first: PubWorkerMessage, port: RawWorkerPort) => HandshakeDecision | null;
  /** Answer every call trailers-only with this status instead of serving it (the call itself fails). */
  refuse?: { code: number; details: string };
}

function frame(message: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}

export class RawWorkerStream {
  readonly messages: RawReceived[] = [];
  readonly openedAt = hostNow();
  readonly headers: http2.IncomingHttpHeaders;
  first: PubWorkerMessage | undefined;
  workerId = '';
  /** When the trailers went out (0: not yet). */
  statusSentAt = 0;
  /** The HTTP/2 stream closed: resolves with its RST_STREAM code (from either side). */
  readonly closed: Promise<number>;
  isClosed = false;
  private pending: Buffer = Buffer.alloc(0);

  constructor(
    readonly stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
    private readonly onMessage: (s: RawWorkerStream, msg: PubWorkerMessage) => void,
  ) {
    this.headers = headers;
    this.closed = new Promise((resolve) =>
      stream.once('close', () => {
        this.isClosed = true;
        resolve(stream.rstCode ?? -1);
      }),
    );
    stream.on('error', () => undefined);
    stream.on('data', (chunk: Buffer) => this.read(chunk));
  }

  get session(): http2.Http2Session | undefined {
    return this.stream.session;
  }

  send(msg: PubCoordinatorMessage): void {
    this.writeRaw(frame(WORKER_STREAM.responseSerialize(msg)));
  }

  writeRaw(bytes: Buffer): void {
    if (!this.isClosed && !this.stream.writableEnded) this.stream.write(bytes);
  }

  /** Trailers with this status and nothing else: the request side stays open (what grpc-js's server does). */
  endWithStatus(code = 0, details = ''): Promise<void> {
    if (this.stream.writableEnded) return Promise.resolve();
    return new Promise((resolve) => {
      this.stream.once('wantTrailers', () => {
        this.stream.sendTrailers({ 'grpc-status': String(code), 'grpc-message': encodeURIComponent(details) });
        this.statusSentAt = hostNow();
        resolve();
      });
      this.stream.end();
    });
  }

  /** RST_STREAM with `code` (NO_ERROR by default: "stop sending", as RFC 9113 §8.1 has a server say it). */
  reset(code: number = H2.NGHTTP2_NO_ERROR): void {
    if (!this.isClosed) this.stream.close(code);
  }

  /** Drops the whole connection, as a crash or a network failure would. */
  destroyConnection(): void {
    this.stream.session?.destroy();
  }

  private read(chunk: Buffer): void {
    let buf = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    while (buf.length >= 5) {
      const len = buf.readUInt32BE(1);
      if (buf.length < 5 + len) break;
      this.onMessage(this, WORKER_STREAM.requestDeserialize(buf.subarray(5, 5 + len)) as PubWorkerMessage);
      buf = buf.subarray(5 + len);
    }
    this.pending = buf;
  }
}

export class RawWorkerPort extends EventEmitter<{ message: [RawReceived]; stream: [RawWorkerStream] }> {
  readonly server: http2.Http2Server;
  readonly streams: RawWorkerStream[] = [];
  readonly received: RawReceived[] = [];
  /** PING frames (not acknowledgements) received from clients, over every connection. */
  pings = 0;
  readonly sessions: http2.ServerHttp2Session[] = [];
  port = 0;

  constructor(readonly options: RawPortOptions = {}) {
    super();
    this.server = http2.createServer();
    this.server.on('session', (session) => {
      this.sessions.push(session);
      session.on('ping', () => this.pings++);
      session.on('error', () => undefined);
    });
    this.server.on('stream', (stream, headers) => this.onStream(stream, headers));
  }

  static async start(options: RawPortOptions = {}, port = 0): Promise<RawWorkerPort> {
    const p = new RawWorkerPort(options);
    await new Promise<void>((resolve, reject) => {
      p.server.once('error', reject);
      p.server.listen(port, '127.0.0.1', () => resolve());
    });
    p.port = (p.server.address() as AddressInfo).port;
    return p;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Resolves with the `n`-th stream (1-based) once it has opened. */
  nthStream(n: number, timeoutMs = 3000): Promise<RawWorkerStream> {
    if (this.streams.length >= n) return Promise.resolve(this.streams[n - 1]);
    return new Promise((resolve, reject) => {
      const onStream = (): void => {
        if (this.streams.length < n) return;
        clearTimeout(timer);
        this.off('stream', onStream);
        resolve(this.streams[n - 1]);
      };
      const timer = setTimeout(() => {
        this.off('stream', onStream);
        reject(new Error(`raw port: ${this.streams.length} stream(s), not ${n}, within ${timeoutMs} ms`));
      }, timeoutMs);
      this.on('stream', onStream);
    });
  }

  /** Resolves with the first recorded message (past or future) matching `pred`. */
  waitFor(pred: (r: RawReceived) => boolean, timeoutMs = 3000, what = 'message'): Promise<RawReceived> {
    return this.waitForCount(pred, 1, timeoutMs, what).then((rs) => rs[0]);
  }

  /** Resolves with the first `n` matching messages (past and future). */
  waitForCount(pred: (r: RawReceived) => boolean, n: number, timeoutMs = 3000, what = 'messages'): Promise<RawReceived[]> {
    const got = this.received.filter(pred);
    if (got.length >= n) return Promise.resolve(got.slice(0, n));
    return new Promise((resolve, reject) => {
      const onMsg = (r: RawReceived): void => {
        if (!pred(r)) return;
        got.push(r);
        if (got.length < n) return;
        clearTimeout(timer);
        this.off('message', onMsg);
        resolve(got);
      };
      const timer = setTimeout(() => {
        this.off('message', onMsg);
        reject(new Error(`raw port: got ${got.length}/${n} ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.on('message', onMsg);
    });
  }

  async stop(): Promise<void> {
    for (const s of this.sessions) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    const refuse = this.options.refuse;
    if (refuse) {
      stream.on('error', () => undefined);
      stream.respond(
        { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(refuse.code), 'grpc-message': encodeURIComponent(refuse.details) },
        { endStream: true },
      );
      return;
    }
    // Headers at once, as the coordinator sends them (the worker waits for them before registering).
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    const s = new RawWorkerStream(stream, headers, (from, msg) => this.onMessage(from, msg));
    this.streams.push(s);
    this.emit('stream', s);
  }

  private onMessage(s: RawWorkerStream, msg: PubWorkerMessage): void {
    if (!s.first) {
      s.first = msg;
      s.workerId = msg.register?.worker_id ?? msg.reconnect?.worker_id ?? '';
    }
    const r: RawReceived = { at: hostNow(), workerId: s.workerId, stream: s, msg };
    s.messages.push(r);
    this.received.push(r);
    this.emit('message', r);
    if (s.first === msg) this.handshake(s, msg);
  }

  private handshake(s: RawWorkerStream, first: PubWorkerMessage): void {
    if (!first.register && !first.reconnect) return;
    const d = this.options.decide ? this.options.decide(first, this) : { accepted: true };
    if (d === null) return;
    const resp: Record<string, unknown> = {
      worker_id: s.workerId,
      accepted: d.accepted,
      message: d.message ?? (d.accepted ? 'Registration successful' : 'rejected'),
    };
    if (d.directive !== undefined) resp.directive = { action: d.directive };
    s.send({ register_response: resp });
    // Like the coordinator: a rejection is followed by status OK and nothing else.
    if (!d.accepted) void s.endWithStatus(0);
  }
}
