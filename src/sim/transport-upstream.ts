/**
 * The `upstream` wire: one `WorkerStream` call on raw `node:http2`, shaped like upstream's worker
 * (`distributed/crates/worker/src/worker_node.rs`, tonic 0.14 over hyper 1 / h2 0.4):
 *
 * - a fresh HTTP/2 connection per attempt (`Channel::connect` each time), TCP_NODELAY, no PINGs of its
 *   own (no keepalive, no adaptive window), hyper's receive windows (2 MiB stream, 5 MiB connection);
 * - the request body is an unbounded queue the worker never closes while it runs;
 * - the response is read until it ends: an error status, a reset or a lost connection while it is
 *   open ends the call (the loop's `Err` arm breaks and the worker reconnects at once), but status OK
 *   with no RST_STREAM only stops that arm from matching. The worker carries on, heartbeating into
 *   the half-open stream, until hyper drops the request body (the stream is reset or the connection
 *   dies) and the next send fails: that is `write() === false`, and the worker's only cue.
 * - no response headers, or a trailers-only error, is the `worker_stream` call itself failing: the
 *   worker sleeps `reconnect_interval_seconds` before the next attempt.
 */
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { WorkerMessageOut } from './messages';
import { workerStreamMethod } from './channel';
import { GrpcMessageReader, grpcPrefix } from './grpc-frames';
import type { SimWorkerOptions } from './options';
import type { OpenWorkerStream, StreamEnd, StreamHandlers, WorkerStream } from './transport';

/** hyper's client defaults (`DEFAULT_STREAM_WINDOW`, `DEFAULT_CONN_WINDOW`); tonic leaves them alone. */
export const UPSTREAM_STREAM_WINDOW_BYTES = 2 * 1024 * 1024;
export const UPSTREAM_CONNECTION_WINDOW_BYTES = 5 * 1024 * 1024;
/** The tonic release upstream's Cargo.lock pins, as its client announces itself. */
const USER_AGENT = 'tonic/0.14.6';

const Code = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;
const H2 = http2.constants;

export function upstreamWire(o: SimWorkerOptions): OpenWorkerStream {
  return (handlers) => new UpstreamStream(o, handlers);
}

interface Status {
  code: number;
  details: string;
}

function statusOf(headers: http2.IncomingHttpHeaders): Status | undefined {
  const raw = headers['grpc-status'];
  if (raw === undefined) return undefined;
  const message = headers['grpc-message'];
  let details = typeof message === 'string' ? message : '';
  try {
    details = decodeURIComponent(details);
  } catch {
    // Not percent-encoded after all: keep it as sent.
  }
  const code = Number(raw);
  return { code: Number.isInteger(code) ? code : Code.UNKNOWN, details };
}

/** tonic's `Status::from_h2_error`. */
function codeOfReset(rst: number | undefined): number {
  switch (rst) {
    case H2.NGHTTP2_REFUSED_STREAM:
      return Code.UNAVAILABLE;
    case H2.NGHTTP2_CANCEL:
      return Code.CANCELLED;
    case H2.NGHTTP2_ENHANCE_YOUR_CALM:
      return Code.RESOURCE_EXHAUSTED;
    case H2.NGHTTP2_INADEQUATE_SECURITY:
      return Code.PERMISSION_DENIED;
    case undefined:
      return Code.UNKNOWN;
    default:
      return rst <= H2.NGHTTP2_CONNECT_ERROR ? Code.INTERNAL : Code.UNKNOWN;
  }
}

/** tonic's status for a response that is not HTTP 200. */
function codeOfHttpStatus(status: number): number {
  switch (status) {
    case 400:
      return Code.INTERNAL;
    case 401:
      return Code.UNAUTHENTICATED;
    case 403:
      return Code.PERMISSION_DENIED;
    case 404:
      return Code.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return Code.UNAVAILABLE;
    default:
      return Code.UNKNOWN;
  }
}

function splitHostPort(address: string): { host: string; port: number } {
  const at = address.lastIndexOf(':');
  const host = address.slice(0, at).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(address.slice(at + 1)) };
}

class UpstreamStream implements WorkerStream {
  private readonly session: http2.ClientHttp2Session;
  private readonly stream: http2.ClientHttp2Stream;
  private readonly reader: GrpcMessageReader;
  private headers = false;
  private status: Status | undefined;
  /** The response side is over and its outcome handled. */
  private responseOver = false;
  /** Nothing more is reported (ended, or closed by the worker). */
  private done = false;
  private released = false;
  private lastError = '';

  constructor(
    private readonly o: SimWorkerOptions,
    private readonly h: StreamHandlers,
  ) {
    this.reader = new GrpcMessageReader(o.maxMessageBytes);
    const { host, port } = splitHostPort(o.coordinator);
    // TLS stands for the sidecar a real worker needs for it (docs/security.md): same HTTP/2 behaviour.
    const t = o.tls;
    const session = http2.connect(`${t ? 'https' : 'http'}://${o.coordinator}`, {
      settings: { enablePush: false, initialWindowSize: UPSTREAM_STREAM_WINDOW_BYTES },
      createConnection: () =>
        t
          ? tls
              .connect({
                host,
                port,
                ALPNProtocols: ['h2'],
                ...(t.serverName !== undefined ? { servername: t.serverName } : net.isIP(host) ? {} : { servername: host }),
                ...(t.ca ? { ca: t.ca } : {}),
                ...(t.cert && t.key ? { cert: t.cert, key: t.key } : {}),
              })
              .setNoDelay(true)
          : net.connect({ host, port, noDelay: true }),
    });
    this.session = session;
    session.on('error', (err: Error) => (this.lastError = err.message));
    session.once('connect', () => session.setLocalWindowSize(UPSTREAM_CONNECTION_WINDOW_BYTES));
    session.on('close', () => this.onClose());
    const stream = session.request(
      {
        [H2.HTTP2_HEADER_METHOD]: 'POST',
        [H2.HTTP2_HEADER_PATH]: workerStreamMethod().path,
        [H2.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
        [H2.HTTP2_HEADER_TE]: 'trailers',
        [H2.HTTP2_HEADER_USER_AGENT]: USER_AGENT,
      },
      { endStream: false },
    );
    this.stream = stream;
    stream.on('response', (headers) => this.onResponse(headers));
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.on('trailers', (trailers) => (this.status ??= statusOf(trailers)));
    // Node ends the readable side of an aborted stream too; with no status seen, that is the abort.
    stream.on('end', () => (this.status === undefined && stream.destroyed ? this.onClose() : this.onResponseEnd()));
    stream.on('error', (err: Error) => (this.lastError = err.message));
    stream.on('close', () => this.onClose());
  }

  write(msg: WorkerMessageOut | Buffer): boolean {
    const s = this.stream;
    // The only way the real worker learns that an OK-ended stream was reset: its send fails.
    if (this.released || s.closed || s.destroyed || this.session.destroyed) return false;
    const body = workerStreamMethod().serialize(msg);
    if (body.length > this.o.maxMessageBytes) {
      // tonic's encoder fails the request body; hyper then resets the stream from our side.
      this.lastError = `Error, encoded message length too large: found ${body.length} bytes, the limit is: ${this.o.maxMessageBytes} bytes`;
      s.close(H2.NGHTTP2_CANCEL);
      return true;
    }
    s.write(grpcPrefix(body.length));
    s.write(body);
    return true;
  }

  pause(): void {
    this.stream.pause();
  }

  resume(): void {
    this.stream.resume();
  }

  close(abort: boolean): void {
    if (this.released) return;
    this.released = true;
    this.done = true;
    if (abort || this.session.connecting) {
      this.session.destroy();
      return;
    }
    // Leaving the loop drops the response stream (RST_STREAM CANCEL), then the channel (GOAWAY,
    // close); closing the session first would let Node drop the queued RST_STREAM.
    if (this.stream.closed) this.session.close();
    else this.stream.close(H2.NGHTTP2_CANCEL, () => this.session.close());
  }

  private finish(end: StreamEnd): void {
    if (this.done) return;
    this.done = true;
    this.h.ended(end);
  }

  private onResponse(headers: http2.IncomingHttpHeaders): void {
    if (this.done) return;
    const trailersOnly = statusOf(headers);
    if (trailersOnly && trailersOnly.code !== Code.OK) {
      // `worker_stream(...).await` itself is an Err: the worker sleeps before trying again.
      this.finish({ ...trailersOnly, hadHeaders: false, reason: 'connectFailed', backOff: true });
      return;
    }
    const http = Number(headers[H2.HTTP2_HEADER_STATUS]);
    if (http !== 200) {
      this.finish({ code: codeOfHttpStatus(http), details: `HTTP status ${http}`, hadHeaders: false, reason: 'connectFailed', backOff: true });
      return;
    }
    this.status = trailersOnly;
    this.headers = true;
    this.h.headers();
  }

  private onData(chunk: Buffer): void {
    if (this.done) return;
    const deserialize = workerStreamMethod().deserialize;
    const err = this.reader.push(chunk, (buf) => {
      if (this.done) return;
      let msg;
      try {
        msg = deserialize(buf);
      } catch (e) {
        const details = `failed to decode CoordinatorMessage: ${e instanceof Error ? e.message : String(e)}`;
        this.finish({ code: Code.INTERNAL, details, hadHeaders: true, reason: 'streamError', backOff: false });
        return;
      }
      this.h.message(msg);
    });
    if (err) this.finish({ ...err, hadHeaders: true, reason: 'streamError', backOff: false });
  }

  /** The response side ended (trailers seen, or END_STREAM without them). */
  private onResponseEnd(): void {
    if (this.done || this.responseOver) return;
    this.responseOver = true;
    if (!this.headers) {
      const details = this.lastError || 'response ended before its headers';
      this.finish({ code: Code.UNAVAILABLE, details, hadHeaders: false, reason: 'connectFailed', backOff: true });
      return;
    }
    const st = this.status ?? { code: Code.INTERNAL, details: 'protocol error: the response ended without a grpc-status' };
    if (st.code === Code.OK) this.h.responseEnded(st.code, st.details);
    else this.finish({ ...st, hadHeaders: true, reason: 'status', backOff: false });
  }

  /** The HTTP/2 stream (or the whole connection) is gone. */
  private onClose(): void {
    if (this.done || this.responseOver) return;
    // h2 hands over trailers that arrived before a reset, so a reset right after the status still
    // counts as that status (Node drops the pending 'end' when the stream is destroyed).
    if (this.status !== undefined && this.headers) {
      this.onResponseEnd();
      return;
    }
    if (!this.headers) {
      const details = this.lastError || 'connection closed before response headers';
      this.finish({ code: Code.UNAVAILABLE, details, hadHeaders: false, reason: 'connectFailed', backOff: true });
      return;
    }
    const rst = this.stream.rstCode;
    const lost = this.session.destroyed;
    const details = this.lastError || (lost ? 'connection lost' : `stream reset by the coordinator (HTTP/2 error code ${rst})`);
    this.finish({ code: lost ? Code.UNAVAILABLE : codeOfReset(rst), details, hadHeaders: true, reason: 'streamError', backOff: false });
  }
}
