/**
 * The bench's client of the public client API (`zisk_coordinator_api.proto`), as an SDK would use it:
 * register, submit, WatchJob until a terminal event, PushJobInput, CancelJob. Works against the
 * coordinator and the echo baseline alike.
 */
import * as grpc from '@grpc/grpc-js';
import { CLIENT_API_PROTO, loadProto } from '../../src/shared/proto';
import { hostNow } from './proc';
import { FieldWriter } from '../../src/shared/protobuf-wire';

type Callback<T> = (err: grpc.ServiceError | null, res: T) => void;

interface RawClient extends grpc.Client {
  RegisterGuestProgram(req: object, opts: grpc.CallOptions, cb: Callback<{ hash_id: string }>): grpc.ClientUnaryCall;
  JobRequest(req: object, opts: grpc.CallOptions, cb: Callback<{ job_id: string }>): grpc.ClientUnaryCall;
  CancelJob(req: object, opts: grpc.CallOptions, cb: Callback<{ job_id: string; cancelled: boolean }>): grpc.ClientUnaryCall;
  WaitJobResult(req: object, opts: grpc.CallOptions, cb: Callback<{ job_id: string; job_status?: { status?: string } }>): grpc.ClientUnaryCall;
  WatchJob(req: object, opts: grpc.CallOptions): grpc.ClientReadableStream<JobEventMsg>;
  PushJobInput(opts: grpc.CallOptions, cb: Callback<object>): grpc.ClientWritableStream<object>;
}

export interface JobEventMsg {
  event?: string;
  completed?: { result?: { prove?: { proof?: { data?: Buffer } } } };
  failed?: { failure?: Record<string, unknown> };
}

export type Terminal = 'completed' | 'failed' | 'cancelled';

export interface WatchOutcome {
  status: Terminal | 'stream-error';
  /** hostNow() when the terminal event was received. */
  at: number;
  events: number;
  /** Size of the proof in a completed prove result. */
  proofBytes: number;
  detail?: string;
}

export type InputSpec = { inline: Buffer } | { streamUri: string };

/** A watch ends once: the first of terminal event, stream error or stream end decides its outcome. */
export function settleOnce<T>(resolve: (value: T) => void): (value: T) => void {
  let settled = false;
  return (value) => {
    if (settled) return;
    settled = true;
    resolve(value);
  };
}

export class ApiClient {
  private readonly clients: RawClient[];
  private next = 0;

  /** `channels` separate HTTP/2 connections, used round-robin. */
  constructor(address: string, channels = 1) {
    const pkg = grpc.loadPackageDefinition(loadProto(CLIENT_API_PROTO)) as unknown as {
      zisk: { coordinator: { v1: { ZiskCoordinatorApi: grpc.ServiceClientConstructor } } };
    };
    const Ctor = pkg.zisk.coordinator.v1.ZiskCoordinatorApi;
    this.clients = [];
    for (let i = 0; i < Math.max(1, channels); i++) {
      this.clients.push(
        new Ctor(address, grpc.credentials.createInsecure(), {
          'grpc.max_receive_message_length': 128 << 20,
          'grpc.max_send_message_length': 128 << 20,
          'grpc.use_local_subchannel_pool': 1,
        }) as unknown as RawClient,
      );
    }
  }

  private pick(): RawClient {
    const c = this.clients[this.next];
    this.next = (this.next + 1) % this.clients.length;
    return c;
  }

  close(): void {
    for (const c of this.clients) c.close();
  }

  registerProgram(elf: Buffer, deadlineMs = 120_000): Promise<string> {
    return new Promise((resolve, reject) =>
      this.pick().RegisterGuestProgram({ zisk_elf: elf }, { deadline: Date.now() + deadlineMs }, (err, res) =>
        err ? reject(err) : resolve(res.hash_id),
      ),
    );
  }

  submit(jobKind: object, deadlineMs = 30_000): Promise<string> {
    return new Promise((resolve, reject) =>
      this.pick().JobRequest({ job_kind: jobKind }, { deadline: Date.now() + deadlineMs }, (err, res) => (err ? reject(err) : resolve(res.job_id))),
    );
  }

  submitProve(hashId: string, input: InputSpec, deadlineMs?: number): Promise<string> {
    const inputKind = 'inline' in input ? { inline: { data: input.inline } } : { stream_uri: input.streamUri };
    return this.submit({ prove: { hash_id: hashId, input: inputKind, proof_dest: 1 } }, deadlineMs);
  }

  submitSetup(hashId: string): Promise<string> {
    return this.submit({ setup: { hash_id: hashId, with_hints: false, program_name: 'bench' } });
  }

  /** Follows a job until its terminal event (or the deadline). */
  watch(jobId: string, deadlineMs = 60_000): Promise<WatchOutcome> {
    return new Promise((resolve) => {
      const call = this.pick().WatchJob({ job_id: jobId }, { deadline: Date.now() + deadlineMs });
      let events = 0;
      const finish = settleOnce(resolve);
      call.on('data', (e: JobEventMsg) => {
        events++;
        const kind = e.event;
        if (kind === 'completed' || kind === 'failed' || kind === 'cancelled') {
          const proofBytes = e.completed?.result?.prove?.proof?.data?.length ?? 0;
          finish({
            status: kind,
            at: hostNow(),
            events,
            proofBytes,
            ...(kind === 'failed' ? { detail: JSON.stringify(e.failed?.failure ?? {}) } : {}),
          });
        }
      });
      call.on('error', (err: grpc.ServiceError) => finish({ status: 'stream-error', at: hostNow(), events, proofBytes: 0, detail: err.message }));
      call.on('end', () => finish({ status: 'stream-error', at: hostNow(), events, proofBytes: 0, detail: 'stream ended without a terminal event' }));
    });
  }

  /**
   * WaitJobResult: the job's status (`queued`, `running`, `completed`, …). A job that is not finished
   * is held until the deadline is near (the coordinator answers `deadlineMs` minus its margin).
   */
  waitResult(jobId: string, deadlineMs = 1_000): Promise<string> {
    return new Promise((resolve, reject) =>
      this.pick().WaitJobResult({ job_id: jobId, timeout_seconds: 1 }, { deadline: Date.now() + deadlineMs }, (err, res) =>
        err ? reject(err) : resolve(res.job_status?.status ?? 'unknown'),
      ),
    );
  }

  cancel(jobId: string): Promise<boolean> {
    return new Promise((resolve, reject) =>
      this.pick().CancelJob({ job_id: jobId }, { deadline: Date.now() + 10_000 }, (err, res) => (err ? reject(err) : resolve(res.cancelled))),
    );
  }

  /**
   * PushJobInput: writes `chunks` honouring the stream's backpressure, then half-closes. Resolves with
   * the host time of the first write and of the server's answer.
   */
  pushInput(jobId: string, chunks: readonly Buffer[], deadlineMs = 120_000): Promise<{ firstWriteAt: number; answeredAt: number }> {
    return new Promise((resolve, reject) => {
      let firstWriteAt = 0;
      const call = this.pick().PushJobInput({ deadline: Date.now() + deadlineMs }, (err) =>
        err ? reject(err) : resolve({ firstWriteAt, answeredAt: hostNow() }),
      );
      let i = 0;
      const writeMore = (): void => {
        while (i < chunks.length) {
          if (i === 0) firstWriteAt = hostNow();
          const ok = call.write({ job_id: jobId, chunk: { data: chunks[i++] } });
          if (!ok) {
            call.once('drain', writeMore);
            return;
          }
        }
        call.end();
      };
      writeMore();
    });
  }
}

/** A fake ELF: the coordinator does not check its format. Distinct `tag`s give distinct hash ids. */
export function fakeElf(tag: string, size = 4096): Buffer {
  const b = Buffer.allocUnsafe(size);
  let x = 0x9e3779b9 ^ tag.length;
  for (let i = 0; i < tag.length; i++) x = Math.imul(x ^ tag.charCodeAt(i), 0x01000193) >>> 0;
  // xorshift fill, 4 bytes at a time: fast enough for 100 MiB, and incompressible.
  const words = size >>> 2;
  for (let i = 0; i < words; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b.writeUInt32LE(x >>> 0, i * 4);
  }
  for (let i = words * 4; i < size; i++) b[i] = i & 0xff;
  Buffer.from(`\x7fELF ${tag}`).copy(b);
  return b;
}

// ------------------------------------------------------------------------------------------------
// Byte-level pieces of the job loops' client (wire-client.ts): requests are encoded once and
// responses are read at the byte level (job id, event kind), so the load generator spends as little
// CPU as possible on a 2-core machine where it shares the cores with the system under test.
// ------------------------------------------------------------------------------------------------

export const API_PATH = '/zisk.coordinator.v1.ZiskCoordinatorApi';

/** JobEvent oneof field numbers (zisk_coordinator_api.proto). */
export const EVENT_COMPLETED = 5;
export const EVENT_CANCELLED = 6;
export const EVENT_FAILED = 7;

/** `{ job_id }` as a length-delimited field 1. */
export function jobIdRequest(jobId: string): Buffer {
  return new FieldWriter().string(1, jobId, true).finish();
}

/** An encoded prove JobRequest (public proto): every prove request of a loop is these same bytes. */
export function encodeProveRequest(hashId: string, input: Buffer): Buffer {
  const pkg = loadProto(CLIENT_API_PROTO)['zisk.coordinator.v1.ZiskCoordinatorApi'] as unknown as Record<string, { requestSerialize: (m: object) => Buffer }>;
  return pkg.JobRequest.requestSerialize({ job_kind: { prove: { hash_id: hashId, input: { inline: { data: input } }, proof_dest: 1 } } });
}
