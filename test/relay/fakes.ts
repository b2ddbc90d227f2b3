/** Shared fakes for the relay tests: controllable targets, the production encoder, a public-proto decoder. */
import type { ServiceDefinition } from '@grpc/proto-loader';
import { CLUSTER_API_PROTO, CLUSTER_API_SERVICE, CLUSTER_VIEW_PROTO, loadProto, serviceDefinition } from '../../src/shared/proto';
import { JobRelay, type RelayKind, type RelayTarget } from '../../src/main/data/relays';
import type { OutboundMessage } from '../../src/main/data/outbound';

export class FakeTarget implements RelayTarget {
  room = true;
  closed = false;
  readonly messages: OutboundMessage[] = [];
  readonly buffers: Buffer[] = [];
  /** Room is lost after this many more messages (a queue that fills up); undefined = never. */
  capacity: number | undefined;
  private waiters: Array<() => void> = [];

  send(msg: OutboundMessage): void {
    if (this.closed) return;
    this.messages.push(msg);
    this.buffers.push(msg.encode());
    if (this.capacity !== undefined && --this.capacity <= 0) this.room = false;
  }

  hasRoom(): boolean {
    return this.closed || this.room;
  }

  waitForRoom(): Promise<void> {
    if (this.hasRoom()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  setRoom(room: boolean, capacity?: number): void {
    this.room = room;
    this.capacity = capacity;
    if (room) this.wake();
  }

  close(): void {
    this.closed = true;
    this.wake();
  }

  decoded(): DecodedMessage[] {
    return this.buffers.map(decode);
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

const viewMethod = serviceDefinition(CLUSTER_VIEW_PROTO, CLUSTER_API_SERVICE).WorkerStream;
const publicMethod = (loadProto(CLUSTER_API_PROTO)[CLUSTER_API_SERVICE] as ServiceDefinition).WorkerStream;

/** What the cluster service's `encodeMessage` does. */
export function encode(m: Record<string, unknown>): Buffer {
  return viewMethod.responseSerialize(m);
}

export interface DecodedMessage {
  payload?: string;
  input_stream_data?: { job_id: string; payload: Buffer };
  stream_data?: { job_id: string; stream_type: number; payload?: { sequence_number: number; payload: Buffer } };
}

/** Decodes with the PUBLIC proto, so field numbers are checked against what workers parse. */
export function decode(buf: Buffer): DecodedMessage {
  return publicMethod.responseDeserialize(buf) as DecodedMessage;
}

export interface RelayHarness {
  relay: JobRelay;
  targets: Map<number, FakeTarget>;
  failures: string[];
}

export function makeRelay(kind: RelayKind, linkIds: number[] = [1, 2], jobId = 'job-1'): RelayHarness {
  const targets = new Map<number, FakeTarget>();
  for (const id of linkIds) targets.set(id, new FakeTarget());
  const failures: string[] = [];
  const relay = new JobRelay({
    jobId,
    kind,
    encode,
    target: (id) => targets.get(id),
    onFailure: (reason) => failures.push(reason),
  });
  return { relay, targets, failures };
}

/** Lets pending promise chains and timers of 0 ms run. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Tracks whether a promise has settled, without leaving a rejection unhandled. */
export function track<T>(p: Promise<T>): { done: boolean; error: unknown; promise: Promise<void> } {
  const state = { done: false, error: undefined as unknown, promise: Promise.resolve() };
  state.promise = p.then(
    () => {
      state.done = true;
    },
    (e: unknown) => {
      state.done = true;
      state.error = e;
    },
  );
  return state;
}

// ---- hints stream builders ----

export function header(code: number, length: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(length, 0);
  b.writeUInt32LE(code, 4);
  return b;
}

/** A whole hint: header plus data padded to whole words. */
export function hint(code: number, data: Buffer): Buffer {
  const padded = Buffer.alloc(Math.ceil(data.length / 8) * 8);
  data.copy(padded);
  return Buffer.concat([header(code, data.length), padded]);
}

export const START = header(0, 0);
export const END = header(1, 0);

export function bytes(n: number, seed = 1): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}
