/**
 * The seam between a sim worker's connection logic (`connection.ts`: handshake, heartbeats, outbox,
 * blocking, faults) and the wire that carries one connection attempt's `WorkerStream` call. Two
 * wires implement it: grpc-js (`transport-grpc-js.ts`) and raw HTTP/2 behaving like upstream's
 * worker (`transport-upstream.ts`); what each reports, and when, is the difference between them.
 */
import type { CoordinatorMessageIn, WorkerMessageOut } from './messages';
import type { DisconnectReason } from './worker-types';

/** How a call ended for good. */
export interface StreamEnd {
  code: number;
  details: string;
  /** Response headers had arrived (else the connect or the call itself failed). */
  hadHeaders: boolean;
  reason: DisconnectReason;
  /** Sleep `reconnectIntervalMs` before the next attempt (else `cleanReconnectDelayMs`). */
  backOff: boolean;
}

/** What the wire reports; never called synchronously from `open` or from a method of the stream. */
export interface StreamHandlers {
  headers(): void;
  message(msg: CoordinatorMessageIn): void;
  /** The response ended with status OK but the request side is still writable: no disconnect (upstream wire). */
  responseEnded(code: number, details: string): void;
  /** The call is over; the worker reconnects. Nothing is reported after this. */
  ended(end: StreamEnd): void;
}

export interface WorkerStream {
  /** Queues a message on the request side; false when the send failed (the stream is gone). */
  write(msg: WorkerMessageOut | Buffer): boolean;
  /** Stops reading (HTTP/2 flow control then pushes back on the coordinator). */
  pause(): void;
  resume(): void;
  /**
   * Closes the call from the worker's side; no handler fires afterwards. `abort`: the connection
   * goes at once, as when the process dies or the network fails; otherwise the call is cancelled
   * and the connection closed gracefully, as when the real worker leaves its loop.
   */
  close(abort: boolean): void;
}

/** Opens one connection attempt's call. */
export type OpenWorkerStream = (handlers: StreamHandlers) => WorkerStream;
