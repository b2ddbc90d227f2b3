/**
 * Resetting a worker stream after its final status (docs/protocol.md, Ending a worker stream). grpc-js
 * ends a server stream with trailers only; upstream's worker notices a dead stream only when a send
 * fails, which needs the HTTP/2 stream reset. grpc-js does not expose the stream, so this module reads
 * it off the call (checked at run time, undefined when grpc-js's shape differs) and resets it once the
 * status is on the wire.
 */
import * as http2 from 'node:http2';

/** The HTTP/2 stream under a server call (private in grpc-js's typings). */
interface CallInternals {
  call?: { stream?: unknown };
}

/**
 * How long an ended stream's queued messages and status may take to go out before the stream is
 * reset anyway: a worker that stopped reading must not keep a replaced stream open forever.
 */
const END_FLUSH_LIMIT_MS = 5_000;

/**
 * The HTTP/2 stream under a grpc-js server call, for the one thing grpc-js does not do: reset a
 * stream after its final status (docs/protocol.md, "Ending a worker stream"). Undefined when the
 * call is not a plain server call on this grpc-js version.
 */
export function http2StreamOf(call: object): http2.ServerHttp2Stream | undefined {
  const stream = (call as CallInternals).call?.stream;
  if (typeof stream !== 'object' || stream === null) return undefined;
  const candidate = stream as Partial<http2.ServerHttp2Stream>;
  return typeof candidate.close === 'function' && typeof candidate.respond === 'function'
    ? (stream as http2.ServerHttp2Stream)
    : undefined;
}

/** How often `resetAfterStatus` looks whether the status has left. */
const RESET_POLL_MS = 10;

/**
 * Resets `stream` once its status (the trailers) is on the wire. Not sooner: nghttp2 sends an
 * RST_STREAM ahead of the stream's queued trailers and then drops them, so the peer would never see
 * the status. Node has no event for "trailers sent", but the stream's local side closes when they go
 * out (END_STREAM), so that is what is awaited, bounded by END_FLUSH_LIMIT_MS (a peer that stopped
 * reading keeps the trailers queued behind flow-controlled data: it gets the reset without them).
 */
export function resetAfterStatus(stream: http2.ServerHttp2Stream): void {
  const deadline = Date.now() + END_FLUSH_LIMIT_MS;
  const check = (): void => {
    if (stream.closed || stream.destroyed) return;
    const sent = stream.state.localClose === 1;
    if (sent || Date.now() >= deadline) {
      stream.close(sent ? http2.constants.NGHTTP2_NO_ERROR : http2.constants.NGHTTP2_CANCEL);
      return;
    }
    setTimeout(check, RESET_POLL_MS).unref();
  };
  // grpc-js submits the status only after its own queue of messages is flushed: poll from now on.
  setTimeout(check, RESET_POLL_MS).unref();
}
