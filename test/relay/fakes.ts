/**
 * Shared fakes for the relay tests: the real WorkerLink over a fake grpc-js call as each target (so
 * the link's queueing and backpressure are under test too), the production encoder, a public-proto
 * decoder.
 */
import type { ServiceDefinition } from '@grpc/proto-loader';
import { CLUSTER_API_PROTO, CLUSTER_API_SERVICE, CLUSTER_VIEW_PROTO, loadProto, serviceDefinition } from '../../src/shared/proto';
import { JobRelay, type RelayKind } from '../../src/main/data/relays';
import type { BytesKind } from '../../src/main/data/outbound';
import type { WorkerLink } from '../../src/main/cluster/worker-link';
import { fakeLink, type FakeCall } from '../helpers/fake-call';

/**
 * One target of a relay: a real WorkerLink whose `max_worker_queue_bytes` is 1, so it has room only
 * while nothing it wrote is still outstanding (any relay message fills it), over a FakeCall. By
 * default the peer reads: each write completes on a later turn, as with grpc-js.
 */
export class TestLink {
  readonly link: WorkerLink;
  readonly call: FakeCall;
  /** Kind and size of every relay write the link saw completed (its `bytesSent` accounting). */
  readonly counted: Array<{ kind: BytesKind; bytes: number }> = [];
  /** Writes that only fill the link (`stall`), not relay messages. */
  private readonly plugs = new Set<Buffer>();

  constructor(id: number) {
    const { link, call } = fakeLink(id, {
      maxQueueBytes: 1,
      held: false,
      counters: {
        bytesSent: (kind, bytes) => {
          if (kind !== 'other') this.counted.push({ kind, bytes });
        },
      },
    });
    this.link = link;
    this.call = call;
  }

  /** The relay messages written to the stream, in order. */
  get buffers(): Buffer[] {
    return this.call.writes.filter((b) => !this.plugs.has(b));
  }

  decoded(): DecodedMessage[] {
    return this.buffers.map(decode);
  }

  /** The peer stops reading and the link is full (a write is outstanding), so it has no room. */
  stall(): void {
    this.call.held = true;
    if (this.link.hasRoom()) {
      const plug = Buffer.alloc(1);
      this.plugs.add(plug);
      this.link.sendBuffer(plug, 'other');
    }
  }

  /** The peer takes what is outstanding, then stops reading again: room for one more message. */
  takeOne(): void {
    this.call.held = true;
    this.call.complete();
  }

  /** The peer reads again: what is outstanding completes, and so does every later write. */
  resume(): void {
    this.call.held = false;
    this.call.complete();
  }

  /** The stream is gone (what the cluster service does when a worker's stream closes). */
  close(): void {
    this.link.markClosed();
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
  targets: Map<number, TestLink>;
  failures: string[];
}

export function makeRelay(kind: RelayKind, linkIds: number[] = [1, 2], jobId = 'job-1'): RelayHarness {
  const targets = new Map<number, TestLink>();
  for (const id of linkIds) targets.set(id, new TestLink(id));
  const failures: string[] = [];
  const relay = new JobRelay({
    jobId,
    kind,
    encode,
    target: (id) => targets.get(id)?.link,
    onFailure: (reason) => failures.push(reason),
  });
  return { relay, targets, failures };
}

/** The target of `id` (which must exist). */
export function target(h: { targets: Map<number, TestLink> }, id: number): TestLink {
  const t = h.targets.get(id);
  if (!t) throw new Error(`no target ${id}`);
  return t;
}

/** Runs what is already queued: every pending promise callback, and the immediates queued before it (writes completing). */
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
