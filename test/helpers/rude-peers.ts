/**
 * Peers that do not cooperate, built on raw `node:http2` and `node:net` so nothing in them closes
 * politely: an HTTP/2 session that ignores GOAWAY and never hangs up, a worker stream that never
 * half-closes (what a real `zisk-worker` does), and an idle HTTP/1.1 keep-alive socket. They only
 * go away when the coordinator destroys them, or when the test calls `destroy()`.
 */
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { CLUSTER_API_PROTO, CLUSTER_API_SERVICE, serviceDefinition } from '../../src/shared/proto';

export interface RudeSession {
  session: http2.ClientHttp2Session;
  /** Resolves when the coordinator's side closed the connection. */
  closed: Promise<void>;
  goaways: number;
  destroy(): void;
}

/** An HTTP/2 connection that counts GOAWAY frames and otherwise ignores them. */
export function rudeSession(port: number): Promise<RudeSession> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  const rude: RudeSession = {
    session,
    goaways: 0,
    closed: new Promise((resolve) => session.once('close', () => resolve())),
    destroy: () => session.destroy(),
  };
  session.on('goaway', () => rude.goaways++);
  session.on('error', () => undefined);
  return new Promise((resolve, reject) => {
    session.once('connect', () => resolve(rude));
    session.once('error', reject);
  });
}

/** gRPC length-prefixed framing of one message. */
export function grpcFrame(message: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}

export interface RudeStream {
  stream: http2.ClientHttp2Stream;
  /** Response headers arrived. */
  headers: Promise<http2.IncomingHttpHeaders>;
  /** Trailers (the gRPC status), if the server sent them. */
  trailers: Promise<http2.IncomingHttpHeaders>;
  /** The stream closed (server END_STREAM alone does not close it: our side never ends). */
  closed: Promise<{ rstCode: number }>;
  /** Raw response bytes received so far. */
  received: Buffer[];
}

/**
 * A gRPC call on `session` whose request side is never ended by us: it stays open until the server
 * resets the stream or destroys the connection.
 */
export function rudeCall(session: http2.ClientHttp2Session, path: string, firstMessage?: Buffer): RudeStream {
  const stream = session.request(
    { ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' },
    { endStream: false },
  );
  const received: Buffer[] = [];
  stream.on('data', (d: Buffer) => received.push(d));
  stream.on('error', () => undefined);
  const rude: RudeStream = {
    stream,
    received,
    headers: new Promise((resolve) => stream.once('response', (h) => resolve(h))),
    trailers: new Promise((resolve) => stream.once('trailers', (h) => resolve(h))),
    closed: new Promise((resolve) => stream.once('close', () => resolve({ rstCode: stream.rstCode ?? -1 }))),
  };
  if (firstMessage) stream.write(grpcFrame(firstMessage));
  return rude;
}

const WORKER_STREAM = serviceDefinition(CLUSTER_API_PROTO, CLUSTER_API_SERVICE).WorkerStream;

/** Encodes a `WorkerMessage` with the public cluster proto. */
export function encodeWorkerMessage(message: object): Buffer {
  return WORKER_STREAM.requestSerialize(message);
}

/** A worker stream that registers `workerId` and then never half-closes, whatever happens. */
export function rudeWorkerStream(session: http2.ClientHttp2Session, workerId: string, computeUnits = 10): RudeStream {
  return rudeCall(
    session,
    WORKER_STREAM.path,
    encodeWorkerMessage({ register: { worker_id: workerId, compute_capacity: { compute_units: computeUnits } } }),
  );
}

export interface IdleKeepAliveSocket {
  socket: net.Socket;
  /** The first response (status line and headers) arrived. */
  answered: Promise<string>;
  /** The server closed the socket. */
  closed: Promise<void>;
  destroy(): void;
}

/** An HTTP/1.1 client that asks for `/health` once with keep-alive, then sits idle on the socket. */
export function idleKeepAliveSocket(port: number): IdleKeepAliveSocket {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  let text = '';
  const answered = new Promise<string>((resolve) => {
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (text.includes('\r\n\r\n')) resolve(text);
    });
  });
  socket.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n');
  return {
    socket,
    answered,
    closed: new Promise((resolve) => socket.once('close', () => resolve())),
    destroy: () => socket.destroy(),
  };
}

/**
 * What tonic's request timeout does (the SDK sets 300 s, prove-client 3600 s): it covers only the
 * wait for response headers, and sends no `grpc-timeout`. Resolves with the headers, or resets the
 * stream (as tonic cancels the call) and rejects when they do not arrive within `ms`.
 */
export function headersWithin(call: RudeStream, ms: number): Promise<http2.IncomingHttpHeaders> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      call.stream.close(http2.constants.NGHTTP2_CANCEL);
      reject(new Error(`no response headers within ${ms} ms: a tonic client would have cancelled the call`));
    }, ms);
    void call.headers.then((h) => {
      clearTimeout(timer);
      resolve(h);
    });
  });
}

/** The gRPC status in a call's trailers (or in trailers-only response headers). */
export async function grpcStatusOf(call: RudeStream): Promise<{ code: number; message: string }> {
  const h = await Promise.race([call.trailers, call.headers.then((hd) => (hd['grpc-status'] !== undefined ? hd : call.trailers))]);
  return { code: Number(h['grpc-status']), message: decodeURIComponent(String(h['grpc-message'] ?? '')) };
}
