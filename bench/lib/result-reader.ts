/**
 * A reader of a job's result that holds none of it: WatchJob or WaitJobResult over bare node:http2
 * (one connection per reader, an SDK client's windows), hashing the response body as it arrives. Many
 * of them can read a 100 MiB proof at once without the bench's own memory getting in the way, and
 * equal digests prove every reader got the same bytes.
 */
import { createHash } from 'node:crypto';
import http2 from 'node:http2';
import { API_PATH, jobIdRequest } from './api';

const { HTTP2_HEADER_METHOD, HTTP2_HEADER_PATH, HTTP2_HEADER_CONTENT_TYPE, HTTP2_HEADER_TE } = http2.constants;

/** hyper/tonic's client defaults (what the Rust SDK advertises): 2 MiB per stream, 5 MiB per connection. */
const STREAM_WINDOW = 2 << 20;
const CONNECTION_WINDOW = 5 << 20;

export type ReadMethod = 'WatchJob' | 'WaitJobResult';

export interface ReadOutcome {
  /** grpc-status (13 when the stream closed without one). */
  status: number;
  /** Response body bytes (every length-prefixed message, prefixes included). */
  bytes: number;
  /** sha256 of the response body. */
  digest: string;
  /** Size of the last message (the completed event / the response), from its length prefix. */
  lastMessageBytes: number;
  ms: number;
}

function frame(message: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  message.copy(out, 5);
  return out;
}

/** Reads `method` for `jobId` to its end on a connection of its own. */
export function readResult(address: string, method: ReadMethod, jobId: string, deadlineMs = 300_000): Promise<ReadOutcome> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const session = http2.connect(`http://${address}`, { settings: { initialWindowSize: STREAM_WINDOW } });
    session.on('error', () => undefined); // the stream reports it
    session.on('connect', () => session.setLocalWindowSize(CONNECTION_WINDOW));
    const hash = createHash('sha256');
    let bytes = 0;
    let status: number | undefined;
    // Message boundaries, tracked without keeping the body: offset of the next length prefix.
    let nextPrefixAt = 0;
    let prefix = Buffer.alloc(0);
    let lastMessageBytes = 0;
    const stream = session.request({
      [HTTP2_HEADER_METHOD]: 'POST',
      [HTTP2_HEADER_PATH]: `${API_PATH}/${method}`,
      [HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
      [HTTP2_HEADER_TE]: 'trailers',
      'grpc-timeout': `${deadlineMs}m`,
    });
    const statusOf = (h: http2.IncomingHttpHeaders): void => {
      if (h['grpc-status'] !== undefined) status ??= Number(h['grpc-status']);
    };
    stream.on('response', statusOf);
    stream.on('trailers', statusOf);
    stream.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      let at = 0;
      while (at < chunk.length) {
        const chunkPos = bytes + at;
        if (chunkPos < nextPrefixAt) {
          at += Math.min(chunk.length - at, nextPrefixAt - chunkPos);
          continue;
        }
        const take = Math.min(5 - prefix.length, chunk.length - at);
        prefix = Buffer.concat([prefix, chunk.subarray(at, at + take)]);
        at += take;
        if (prefix.length === 5) {
          lastMessageBytes = prefix.readUInt32BE(1);
          nextPrefixAt = bytes + at + lastMessageBytes;
          prefix = Buffer.alloc(0);
        }
      }
      bytes += chunk.length;
    });
    stream.on('error', () => undefined);
    stream.on('close', () => {
      session.close();
      resolve({ status: status ?? 13, bytes, digest: hash.digest('hex'), lastMessageBytes, ms: performance.now() - t0 });
    });
    stream.end(frame(jobIdRequest(jobId)));
  });
}
