/** gRPC's length-prefixed message framing, for the sim's raw HTTP/2 wire. */

/** The 5-byte prefix of one uncompressed message (written apart from the body, which is not copied). */
export function grpcPrefix(length: number): Buffer {
  const out = Buffer.allocUnsafe(5);
  out[0] = 0;
  out.writeUInt32BE(length, 1);
  return out;
}

/** A framing violation: the stream cannot be read any further. */
export interface FrameError {
  /** gRPC status code tonic gives it. */
  code: number;
  details: string;
}

const OUT_OF_RANGE = 11;
const INTERNAL = 13;

/**
 * Splits a response body into messages across DATA chunk boundaries. The size limit is checked on
 * the prefix, before any of the body is buffered, as tonic's decoder does: a peer announcing more
 * than the limit is refused at once, not after it has sent it all.
 */
export class GrpcMessageReader {
  private readonly chunks: Buffer[] = [];
  private buffered = 0;
  /** Body length of the message being read; -1 while waiting for a prefix. */
  private need = -1;
  private failed = false;

  constructor(private readonly maxMessageBytes: number) {}

  /** Feeds a chunk; `onMessage` gets every complete message in order. Returns the first violation, if any. */
  push(chunk: Buffer, onMessage: (message: Buffer) => void): FrameError | undefined {
    if (this.failed) return undefined;
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    for (;;) {
      if (this.need < 0) {
        if (this.buffered < 5) return undefined;
        const prefix = this.take(5);
        const len = prefix.readUInt32BE(1);
        if (prefix[0] !== 0) {
          this.failed = true;
          return { code: INTERNAL, details: 'protocol error: received message with compressed-flag but no grpc-encoding was specified' };
        }
        if (len > this.maxMessageBytes) {
          this.failed = true;
          return {
            code: OUT_OF_RANGE,
            details: `Error, decoded message length too large: found ${len} bytes, the limit is: ${this.maxMessageBytes} bytes`,
          };
        }
        this.need = len;
      }
      if (this.buffered < this.need) return undefined;
      const message = this.take(this.need);
      this.need = -1;
      onMessage(message);
    }
  }

  /** Takes `n` buffered bytes (copying only when they span chunks: a 128 MiB message is joined once). */
  private take(n: number): Buffer {
    this.buffered -= n;
    const first = this.chunks[0];
    if (n === 0) return Buffer.alloc(0);
    if (first.length > n) {
      this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    if (first.length === n) {
      this.chunks.shift();
      return first;
    }
    const out = Buffer.allocUnsafe(n);
    let at = 0;
    let used = 0;
    while (at < n) {
      const c = this.chunks[used];
      const want = n - at;
      if (c.length <= want) {
        c.copy(out, at);
        at += c.length;
        used++;
      } else {
        c.copy(out, at, 0, want);
        this.chunks[used] = c.subarray(want);
        at += want;
      }
    }
    this.chunks.splice(0, used);
    return out;
  }
}
