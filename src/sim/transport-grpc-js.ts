/**
 * The default wire: a grpc-js client call. grpc-js surfaces one final status per call, so every end
 * of the response stream (OK or not, with or without RST_STREAM) is a disconnect here.
 */
import * as grpc from '@grpc/grpc-js';
import type { CoordinatorMessageIn, WorkerMessageOut } from './messages';
import { simChannelOptions, simCredentials, workerStreamMethod } from './channel';
import type { SimWorkerOptions } from './options';
import type { OpenWorkerStream, StreamHandlers, WorkerStream } from './transport';

/**
 * @param sharedClient a `grpc.Client` to multiplex every call on (fleet option); by default every
 *   connection attempt opens its own channel, like the Rust worker.
 */
export function grpcJsWire(o: SimWorkerOptions, sharedClient: grpc.Client | undefined): OpenWorkerStream {
  return (handlers) => new GrpcJsStream(o, sharedClient, handlers);
}

class GrpcJsStream implements WorkerStream {
  private readonly client: grpc.Client;
  private readonly call: grpc.ClientDuplexStream<WorkerMessageOut | Buffer, CoordinatorMessageIn>;
  private headers = false;
  private closed = false;

  constructor(
    o: SimWorkerOptions,
    private readonly sharedClient: grpc.Client | undefined,
    h: StreamHandlers,
  ) {
    const m = workerStreamMethod();
    this.client = sharedClient ?? new grpc.Client(o.coordinator, simCredentials(o), simChannelOptions(o));
    const call = this.client.makeBidiStreamRequest<WorkerMessageOut | Buffer, CoordinatorMessageIn>(m.path, m.serialize, m.deserialize, new grpc.Metadata());
    this.call = call;
    call.on('metadata', () => {
      if (this.closed || this.headers) return;
      this.headers = true;
      h.headers();
    });
    call.on('data', (msg: CoordinatorMessageIn) => {
      if (!this.closed) h.message(msg);
    });
    call.on('error', () => {
      // The status event carries the outcome; this listener only keeps the error from being thrown.
    });
    call.on('status', (s: grpc.StatusObject) => {
      if (this.closed) return;
      this.closed = true;
      this.release();
      h.ended({
        code: s.code,
        details: s.details,
        hadHeaders: this.headers,
        reason: this.headers ? 'status' : 'connectFailed',
        // A clean end reconnects at once; a connect or RPC error sleeps first.
        backOff: s.code !== grpc.status.OK,
      });
    });
  }

  write(msg: WorkerMessageOut | Buffer): boolean {
    // grpc-js reports a dead call through its status, never through a write.
    this.call.write(msg);
    return true;
  }

  pause(): void {
    this.call.pause();
  }

  resume(): void {
    this.call.resume();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.release();
  }

  private release(): void {
    this.call.removeAllListeners('data');
    this.call.removeAllListeners('metadata');
    this.call.cancel();
    if (!this.sharedClient) this.client.close();
  }
}
