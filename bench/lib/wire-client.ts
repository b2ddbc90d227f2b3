/**
 * The throughput load generator: JobRequest and WatchJob spoken directly over node:http2, the way
 * h2load or ghz drive a gRPC server. The bytes on the wire are the same as a grpc-js client's (same
 * paths, headers, length-prefixed messages, deadlines as `grpc-timeout`), but without grpc-js's
 * per-call machinery, which cost ~0.75 ms of CPU per job here: on two shared cores the client's CPU
 * is the server's ceiling.
 */
import http2 from 'node:http2';
import { hostNow } from './proc';
import { API_PATH, EVENT_CANCELLED, EVENT_COMPLETED, EVENT_FAILED, jobIdRequest, settleOnce, type WatchOutcome } from './api';
import { readVarint } from '../../src/shared/protobuf-wire';

const { HTTP2_HEADER_METHOD, HTTP2_HEADER_PATH, HTTP2_HEADER_CONTENT_TYPE, HTTP2_HEADER_TE } = http2.constants;

/** A length-prefixed gRPC message (uncompressed). */
function frame(message: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  message.copy(out, 5);
  return out;
}

/** Splits a response body into its length-prefixed messages, across DATA chunk boundaries. */
class MessageReader {
  private pending: Buffer = Buffer.alloc(0);

  push(chunk: Buffer, onMessage: (m: Buffer) => void): void {
    let buf = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    while (buf.length >= 5) {
      const len = buf.readUInt32BE(1);
      if (buf.length < 5 + len) break;
      onMessage(buf.subarray(5, 5 + len));
      buf = buf.subarray(5 + len);
    }
    this.pending = buf;
  }
}

interface CallResult {
  status: number;
  message: string;
}

/** grpc-status from trailers, or from the headers of a trailers-only response. */
function statusOf(headers: http2.IncomingHttpHeaders | undefined): CallResult | undefined {
  const raw = headers?.['grpc-status'];
  if (raw === undefined) return undefined;
  const message = headers?.['grpc-message'];
  return { status: Number(raw), message: typeof message === 'string' ? decodeURIComponent(message) : '' };
}

export class WireJobClient {
  private readonly sessions: http2.ClientHttp2Session[] = [];
  private next = 0;
  private readonly proveRequest: Buffer;

  /** `proveRequest`: an encoded JobRequest, sent as is for every job of the loop. */
  constructor(address: string, connections: number, proveRequest: Buffer) {
    for (let i = 0; i < Math.max(1, connections); i++) {
      const session = http2.connect(`http://${address}`);
      session.on('error', () => undefined); // each stream reports its own failure
      this.sessions.push(session);
    }
    this.proveRequest = frame(proveRequest);
  }

  close(): void {
    for (const s of this.sessions) s.close();
  }

  submitProve(deadlineMs = 30_000): Promise<string> {
    return new Promise((resolve, reject) => {
      let response: Buffer | undefined;
      this.call('JobRequest', this.proveRequest, deadlineMs, (m) => (response ??= Buffer.from(m)), (r) => {
        if (r.status !== 0) return reject(new Error(`JobRequest: ${r.status} ${r.message}`));
        if (!response || response[0] !== 0x0a) return reject(new Error('JobResponse without job_id'));
        const { value: len, next: pos } = readVarint(response, 1);
        resolve(response.toString('utf8', pos, pos + len));
      });
    });
  }

  /** WatchJob until the terminal event; reads only each event's oneof field number. */
  watch(jobId: string, deadlineMs = 60_000): Promise<WatchOutcome> {
    return new Promise((resolve) => {
      let events = 0;
      const finish = settleOnce(resolve);
      this.call(
        'WatchJob',
        frame(jobIdRequest(jobId)),
        deadlineMs,
        (e) => {
          events++;
          const field = e.length > 0 ? e[0] >> 3 : 0;
          if (field === EVENT_COMPLETED) finish({ status: 'completed', at: hostNow(), events, proofBytes: 0 });
          else if (field === EVENT_CANCELLED) finish({ status: 'cancelled', at: hostNow(), events, proofBytes: 0 });
          else if (field === EVENT_FAILED) finish({ status: 'failed', at: hostNow(), events, proofBytes: 0, detail: `failed event (${e.length} bytes)` });
        },
        (r) => {
          const detail = r.status === 0 ? 'stream ended without a terminal event' : `${r.status} ${r.message}`;
          finish({ status: 'stream-error', at: hostNow(), events, proofBytes: 0, detail });
        },
      );
    });
  }

  /** One gRPC call: a single framed request, every response message, then the final status once. */
  private call(method: string, framedRequest: Buffer, deadlineMs: number, onMessage: (m: Buffer) => void, onEnd: (r: CallResult) => void): void {
    const session = this.sessions[this.next];
    this.next = (this.next + 1) % this.sessions.length;
    let ended = false;
    const end = (r: CallResult): void => {
      if (ended) return;
      ended = true;
      onEnd(r);
    };
    let stream: http2.ClientHttp2Stream;
    try {
      stream = session.request({
        [HTTP2_HEADER_METHOD]: 'POST',
        [HTTP2_HEADER_PATH]: `${API_PATH}/${method}`,
        [HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
        [HTTP2_HEADER_TE]: 'trailers',
        'grpc-timeout': `${Math.max(1, Math.ceil(deadlineMs))}m`,
      });
    } catch (err) {
      end({ status: 14, message: err instanceof Error ? err.message : String(err) });
      return;
    }
    const reader = new MessageReader();
    let status: CallResult | undefined;
    stream.on('response', (headers) => (status ??= statusOf(headers)));
    stream.on('data', (chunk: Buffer) => reader.push(chunk, onMessage));
    stream.on('trailers', (trailers) => (status ??= statusOf(trailers)));
    stream.on('error', (err: Error) => end({ status: 14, message: err.message }));
    stream.on('close', () => end(status ?? { status: 13, message: `stream closed without a grpc-status (HTTP/2 code ${stream.rstCode})` }));
    stream.end(framedRequest);
  }
}
