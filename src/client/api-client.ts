/**
 * A client of the public client API (docs/protocol.md), as any SDK client speaks it: the calls the
 * `zisk-prove-client` command needs, promise-shaped, with the proto's own decoding (uint64 as
 * decimal strings, enums as numbers, oneofs named).
 */
import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { CLIENT_API_PROTO, loadProto } from '../shared/proto';

/** Pushed input goes in chunks this big (the coordinator relays each to the job's workers). */
const PUSH_CHUNK_BYTES = 1 << 20;
/** Results can be as large as the coordinator's own message limit. */
const MAX_MESSAGE_BYTES = 128 << 20;

export type InputKind = { inline: { data: Buffer } } | { stream_uri: string };

export interface ProofMsg {
  proof_id: string;
  hash_id: string;
  verification_key: Buffer;
  proof_kind: number;
  data: Buffer;
  public_inputs: Buffer;
}

export interface ExecutionStatsMsg {
  steps: string;
  duration_nanos: string;
}

export interface JobKindResponseMsg {
  kind?: 'setup' | 'prove' | 'wrap' | 'execute';
  setup?: { vk: Buffer };
  prove?: { proof: ProofMsg; stats?: ExecutionStatsMsg };
  wrap?: { proof: ProofMsg };
  execute?: { stats?: ExecutionStatsMsg; public_outputs: Buffer };
}

export interface JobFailureMsg {
  kind?: 'timeout' | 'input' | 'execution' | 'internal' | 'cancelled';
  timeout?: { phase?: number; limit?: { seconds: string; nanos: number } };
  input?: { reason: string };
  execution?: { reason: string };
  internal?: { trace_id: string };
}

export type JobStatusName = 'queued' | 'running' | 'waiting_for_input' | 'completed' | 'failed' | 'cancelled';

export interface WaitResultMsg {
  job_id: string;
  job_status: { status: JobStatusName; running?: { phase?: number }; failed?: { failure: JobFailureMsg } };
  result?: JobKindResponseMsg;
}

export interface TimestampMsg {
  seconds: string;
  nanos: number;
}

export interface JobEventMsg {
  event: 'queued' | 'started' | 'progress' | 'waiting_for_input' | 'completed' | 'cancelled' | 'failed';
  progress?: { phase: number; timestamp?: TimestampMsg };
  completed?: { result?: JobKindResponseMsg; timestamp?: TimestampMsg };
  failed?: { failure: JobFailureMsg; timestamp?: TimestampMsg };
}

export const TERMINAL: ReadonlySet<JobStatusName> = new Set(['completed', 'failed', 'cancelled']);

type Callback<T> = (err: grpc.ServiceError | null, res: T) => void;
type UnaryMethod = (req: object, opts: grpc.CallOptions, cb: Callback<unknown>) => void;

/** How the client reaches a coordinator that has TLS or a token on (docs/security.md). */
export interface ClientSecurity {
  /** TLS: the CA bundle to trust (PEM), or undefined for the system's roots when `tls` is set. */
  tls?: { ca?: Buffer; serverName?: string };
  /** Sent as `authorization: Bearer <token>` on every call. */
  token?: string;
}

export class CoordinatorApiClient {
  private readonly client: grpc.Client;

  constructor(
    /** host:port of the client API. */
    readonly address: string,
    private readonly requestTimeoutMs: number,
    security: ClientSecurity = {},
  ) {
    const pkg = grpc.loadPackageDefinition(loadProto(CLIENT_API_PROTO)) as unknown as {
      zisk: { coordinator: { v1: { ZiskCoordinatorApi: grpc.ServiceClientConstructor } } };
    };
    let credentials = security.tls ? grpc.credentials.createSsl(security.tls.ca ?? null) : grpc.credentials.createInsecure();
    const token = security.token;
    if (token !== undefined) {
      const bearer = grpc.credentials.createFromMetadataGenerator((_params, callback) => {
        const md = new grpc.Metadata();
        md.set('authorization', `Bearer ${token}`);
        callback(null, md);
      });
      // grpc-js sends call credentials only over TLS; over plaintext the token rides as call metadata below.
      if (security.tls) credentials = grpc.credentials.combineChannelCredentials(credentials, bearer);
    }
    this.client = new pkg.zisk.coordinator.v1.ZiskCoordinatorApi(address, credentials, {
      'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
      'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
      ...(security.tls?.serverName !== undefined ? { 'grpc.ssl_target_name_override': security.tls.serverName } : {}),
      ...(token !== undefined && !security.tls ? { interceptors: [withToken(token)] } : {}),
    });
  }

  /** Resolves once connected; rejects with `unreachable` after `timeoutMs`. */
  connect(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) =>
      this.client.waitForReady(Date.now() + timeoutMs, (err) =>
        err ? reject(new Unreachable(`cannot reach the coordinator at ${this.address} within ${timeoutMs / 1000} s`)) : resolve(),
      ),
    );
  }

  async register(elf: Buffer): Promise<string> {
    return (await this.unary<{ hash_id: string }>('RegisterGuestProgram', { zisk_elf: elf })).hash_id;
  }

  async submit(jobKind: object): Promise<string> {
    return (await this.unary<{ job_id: string }>('JobRequest', { job_kind: jobKind })).job_id;
  }

  /** Holds up to `timeoutSeconds` on the server for a terminal state (0 = answer at once). */
  wait(jobId: string, timeoutSeconds: number): Promise<WaitResultMsg> {
    return this.unary<WaitResultMsg>('WaitJobResult', { job_id: jobId, timeout_seconds: timeoutSeconds }, (timeoutSeconds + 30) * 1000);
  }

  /** Waits until the job is terminal, however long that takes. */
  async waitTerminal(jobId: string): Promise<WaitResultMsg> {
    for (;;) {
      const r = await this.wait(jobId, 60);
      if (TERMINAL.has(r.job_status.status)) return r;
    }
  }

  async cancel(jobId: string): Promise<boolean> {
    return (await this.unary<{ cancelled: boolean }>('CancelJob', { job_id: jobId })).cancelled;
  }

  /** Every event of the job, history first, until its terminal one. */
  watch(jobId: string, onEvent: (e: JobEventMsg) => void): Promise<void> {
    return new Promise((resolve, reject) => {
      const stream = (this.client as unknown as { WatchJob(req: object): grpc.ClientReadableStream<JobEventMsg> }).WatchJob({ job_id: jobId });
      stream.on('data', onEvent);
      stream.on('error', reject);
      stream.on('end', () => resolve());
    });
  }

  /** Streams a file as the job's pushed (`grpc://`) input. */
  async pushInput(jobId: string, file: string): Promise<void> {
    let settle!: (err: grpc.ServiceError | null) => void;
    const done = new Promise<void>((resolve, reject) => (settle = (err) => (err ? reject(err) : resolve())));
    const stream = (this.client as unknown as { PushJobInput(cb: Callback<unknown>): grpc.ClientWritableStream<object> }).PushJobInput((err) => settle(err));
    const fh = await fs.promises.open(file, 'r');
    try {
      for (;;) {
        const buf = Buffer.alloc(PUSH_CHUNK_BYTES);
        const { bytesRead } = await fh.read(buf, 0, buf.length, null);
        if (bytesRead === 0) break;
        // The coordinator holds a push to a queued job: wait for room rather than read the whole file.
        if (!stream.write({ job_id: jobId, chunk: { data: buf.subarray(0, bytesRead) } })) {
          await Promise.race([new Promise((r) => stream.once('drain', r)), done]);
        }
      }
    } finally {
      await fh.close();
    }
    stream.end();
    await done;
  }

  close(): void {
    this.client.close();
  }

  private unary<T>(method: string, request: object, deadlineMs = this.requestTimeoutMs): Promise<T> {
    const fn = (this.client as unknown as Record<string, UnaryMethod>)[method];
    return new Promise((resolve, reject) =>
      fn.call(this.client, request, { deadline: Date.now() + deadlineMs }, (err, res) => (err ? reject(err) : resolve(res as T))),
    );
  }
}

/** Adds the token to every call's metadata (the plaintext case: see the constructor). */
function withToken(token: string): grpc.Interceptor {
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set('authorization', `Bearer ${token}`);
        next(metadata, listener);
      },
    });
}

/** The coordinator could not be reached at all (exit 69). */
export class Unreachable extends Error {
  override readonly name = 'Unreachable';
}
