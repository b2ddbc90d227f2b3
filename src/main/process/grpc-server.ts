/**
 * A grpc-js server with the two things grpc-js 1.14 has no option for, reached through the one
 * hook it leaves on the instance (`createHttp2Server`, called once per bound address):
 *
 * - **HTTP/2 receive windows** (docs/protocol.md, "Flow control"): grpc-js keeps Node's 64 KiB,
 *   which caps every upload at 64 KiB per round trip. The stream window goes out in the server's
 *   SETTINGS; the connection window is raised on each session as it opens.
 * - **Every session, tracked**: grpc-js only tracks sessions for `forceShutdown` when channelz is on
 *   (we turn it off), so a forced shutdown left every peer's connection open and the process alive
 *   until the peer hung up. `close()` destroys them all itself.
 *
 * - **TLS without ALPN is HTTP/2**: Node's HTTP/2 server drops a TLS client that negotiated no ALPN
 *   protocol. TCP-level TLS tunnels (stunnel and the like) negotiate none, and they are how upstream's
 *   plaintext-only worker and SDK reach a TLS port (docs/security.md, Sidecars), so such a connection
 *   is taken as HTTP/2 with prior knowledge, as the same peer is on a plaintext port.
 * - **A listen backlog for a reconnect storm**: grpc-js calls `listen(address, cb)` with no backlog,
 *   so Node's 511 applies. When a restart drops every worker at once, upstream's workers all retry
 *   after the same fixed sleep: thousands of handshakes land together, a full accept queue drops
 *   them (ListenOverflows), and each dropped worker loses a second or more to SYN retransmission.
 *   `LISTEN_BACKLOG` asks for more; the kernel caps it at `net.core.somaxconn` (docs/operations.md,
 *   Sizing).
 * - **Refused TLS handshakes, reported**: grpc-js swallows them; `onTlsClientError` gets each with
 *   the socket, whose `authorizationError` says why a client certificate was refused (Node drops
 *   such a peer without an error of its own).
 *
 * The hook is checked when the server is built: if grpc-js changes its shape, startup fails loudly
 * instead of silently serving with 64 KiB windows and an exit that hangs.
 */
import * as http2 from 'node:http2';
import type * as net from 'node:net';
import type * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';

/**
 * Listen backlog asked for on both gRPC ports; the kernel uses min(this, net.core.somaxconn), so the
 * operator's knob is that sysctl (4096 by default since Linux 5.4).
 */
export const LISTEN_BACKLOG = 65535;

/** HTTP/2's initial window (RFC 9113 §6.9.2), which Node and grpc-js keep unless told otherwise. */
export const HTTP2_DEFAULT_WINDOW_BYTES = 65535;

export interface GrpcServerTuning {
  /** Receive window advertised per stream and per connection. */
  windowBytes: number;
  maxMessageBytes: number;
  /** What this server sends at most (defaults to maxMessageBytes). */
  maxSendMessageBytes?: number;
  /** Keepalive ping interval; 0 = no pings. */
  keepaliveTimeMs: number;
  keepaliveTimeoutMs: number;
}

export interface GrpcServerHooks {
  /** Run on every call before its handler (the API's bearer token); none = no per-call cost. */
  interceptors?: grpc.ServerInterceptor[];
  /** A TLS handshake that failed (secure listeners only). */
  onTlsClientError?: (err: Error, socket: tls.TLSSocket) => void;
}

/** The parts of grpc-js's Server instance the hook relies on (private in its typings). */
interface ServerInternals {
  createHttp2Server?: (credentials: grpc.ServerCredentials) => http2.Http2Server;
  commonServerOptions?: http2.ServerOptions;
}

export function grpcServerOptions(t: GrpcServerTuning, interceptors?: grpc.ServerInterceptor[]): grpc.ServerOptions {
  return {
    ...(interceptors && interceptors.length > 0 ? { interceptors } : {}),
    'grpc.max_receive_message_length': t.maxMessageBytes,
    'grpc.max_send_message_length': t.maxSendMessageBytes ?? t.maxMessageBytes,
    // grpc-js's default keepalive time is "never": leaving the options out is how pings are turned off.
    ...(t.keepaliveTimeMs > 0
      ? {
          'grpc.keepalive_time_ms': t.keepaliveTimeMs,
          'grpc.keepalive_timeout_ms': t.keepaliveTimeoutMs,
          'grpc.keepalive_permit_without_calls': 1,
        }
      : {}),
    // Nothing serves channelz here, and its per-call trackers and per-message timestamps cost CPU
    // on every heartbeat of every worker.
    'grpc.enable_channelz': 0,
  };
}

/**
 * `server.listen(options, cb)` with `backlog` added, on this one server: grpc-js passes its address
 * as an options object ({ host, port } or { path }) and has no backlog option of its own. Any other
 * call shape is passed through untouched.
 */
function withBacklog(server: http2.Http2Server, backlog: number): void {
  const listen = server.listen;
  const patched = function (this: http2.Http2Server, ...args: unknown[]): http2.Http2Server {
    const [first, ...rest] = args;
    if (typeof first === 'object' && first !== null && !('backlog' in first)) {
      return (listen as (...a: unknown[]) => http2.Http2Server).call(this, { ...(first as net.ListenOptions), backlog }, ...rest);
    }
    return (listen as (...a: unknown[]) => http2.Http2Server).apply(this, args);
  };
  server.listen = patched as typeof server.listen;
}

export class TunedGrpcServer {
  readonly server: grpc.Server;
  private readonly sessions = new Set<http2.ServerHttp2Session>();

  constructor(tuning: GrpcServerTuning, hooks: GrpcServerHooks = {}) {
    this.server = new grpc.Server(grpcServerOptions(tuning, hooks.interceptors));
    const internals = this.server as unknown as ServerInternals;
    const create = internals.createHttp2Server;
    const common = internals.commonServerOptions;
    if (typeof create !== 'function' || typeof common !== 'object' || common === null) {
      throw new Error('unsupported @grpc/grpc-js version: Server.createHttp2Server/commonServerOptions not found');
    }
    common.settings = { ...common.settings, initialWindowSize: tuning.windowBytes };
    internals.createHttp2Server = (credentials) => {
      const h2 = create.call(this.server, credentials);
      withBacklog(h2, LISTEN_BACKLOG);
      h2.on('session', (session: http2.ServerHttp2Session) => this.adopt(session, tuning.windowBytes));
      if (credentials._isSecure()) {
        // Runs before Node's own 'secureConnection' listener, which decides on the protocol.
        h2.prependListener('secureConnection', (socket: tls.TLSSocket) => {
          if (socket.alpnProtocol === false) (socket as { alpnProtocol: string | false }).alpnProtocol = 'h2';
        });
        const onTlsError = hooks.onTlsClientError;
        if (onTlsError) h2.on('tlsClientError', (err: Error, socket: tls.TLSSocket) => onTlsError(err, socket));
      }
      return h2;
    };
  }

  /** Sessions open now (all listeners). */
  get sessionCount(): number {
    return this.sessions.size;
  }

  private adopt(session: http2.ServerHttp2Session, windowBytes: number): void {
    this.sessions.add(session);
    session.once('close', () => this.sessions.delete(session));
    // The connection window starts at 64 KiB whatever SETTINGS say; only a WINDOW_UPDATE raises it.
    if (windowBytes > HTTP2_DEFAULT_WINDOW_BYTES) {
      try {
        session.setLocalWindowSize(windowBytes);
      } catch {
        // The session died before it was set up; nothing to tune.
      }
    }
  }

  bind(address: string, credentials: grpc.ServerCredentials): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.bindAsync(address, credentials, (err, port) => (err ? reject(err) : resolve(port)));
    });
  }

  /**
   * Stops accepting, gives open calls `graceMs` to finish after GOAWAY, then destroys every session,
   * whatever the peers do (a peer that ignores GOAWAY keeps its session open forever otherwise).
   */
  close(graceMs: number): Promise<void> {
    return new Promise((resolve) => {
      let done = false;
      const finish = (): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.server.forceShutdown();
        for (const session of this.sessions) session.destroy();
        this.sessions.clear();
        resolve();
      };
      const timer = setTimeout(finish, graceMs);
      this.server.tryShutdown(finish);
    });
  }
}
