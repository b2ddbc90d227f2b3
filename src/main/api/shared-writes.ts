/**
 * Writing a `FramedMessage` (result-frames.ts) to a grpc-js server call without copying its proof
 * (docs/architecture.md, Data plane: big results).
 *
 * grpc-js frames every outgoing message into a new buffer (`serializeMessage`: a 5-byte prefix plus a
 * copy of the serializer's output) and keeps that copy until the peer has read it all, so each reader
 * of a 100 MiB proof held a 100 MiB copy of its own for as long as its download took. grpc-js has no
 * public way to write bytes that are already framed, so this module replaces `serializeMessage` on one
 * call's internal object (read off the call and checked at run time, as `cluster/stream-reset.ts` does
 * for the HTTP/2 stream): for a `FramedMessage` it writes the head to the call's HTTP/2 stream itself
 * and hands grpc-js the proof buffer to write after it. Node's HTTP/2 stream keeps a reference to a
 * written buffer, never a copy, and sends it as the reader's flow-control window opens; so every
 * reader's stream refers to the one proof the job holds, and a reader that goes away drops only its
 * reference. Anything else goes through the original method.
 *
 * When the call does not have the expected shape (another grpc-js version), nothing is replaced and
 * the method serializers (service.ts) write `FramedMessage.contiguous()`: correct, one copy per reader.
 */
import { FramedMessage } from './result-frames';

/** The parts of grpc-js's BaseServerInterceptingCall used here (private in its typings). */
interface CallInternals {
  serializeMessage: (value: unknown) => Buffer;
  metadataSent: unknown;
  maxSendMessageSize: unknown;
  stream: { write(chunk: Buffer, cb: (err?: Error | null) => void): boolean };
}

const patched = new WeakSet<object>();

function internalsOf(call: object): CallInternals | undefined {
  const inner = (call as { call?: unknown }).call;
  if (typeof inner !== 'object' || inner === null) return undefined;
  const c = inner as Partial<Record<keyof CallInternals, unknown>>;
  const stream = c.stream as { write?: unknown } | undefined;
  const shaped =
    typeof c.serializeMessage === 'function' &&
    typeof c.metadataSent === 'boolean' &&
    typeof c.maxSendMessageSize === 'number' &&
    typeof stream === 'object' &&
    stream !== null &&
    typeof stream.write === 'function';
  return shaped ? (inner as CallInternals) : undefined;
}

const ignore = (): void => undefined;

let warned = false;

/** `shareFramedWrites`, with one warning per process when grpc-js's internals are not as expected. */
export function shareFramedWritesOrWarn(call: object, logger: { warn(obj: object, msg: string): void }): void {
  if (shareFramedWrites(call) || warned) return;
  warned = true;
  logger.warn({}, 'grpc-js internals differ from what the coordinator expects: big results are copied for every reader');
}

/**
 * Lets `call` write `FramedMessage`s without copying their tail. Returns false (and changes nothing)
 * when grpc-js's internals are not what this module knows. The response headers must be sent before
 * the first such message (WatchJob sends them at once; WaitJobResult sends them before answering):
 * the head goes straight to the HTTP/2 stream, which would otherwise send default headers of its own.
 */
export function shareFramedWrites(call: object): boolean {
  const internals = internalsOf(call);
  if (!internals) return false;
  if (patched.has(internals)) return true;
  patched.add(internals);
  const original = internals.serializeMessage;
  internals.serializeMessage = function serializeMessage(this: CallInternals, value: unknown): Buffer {
    if (!(value instanceof FramedMessage)) return original.call(this, value);
    if (value.tail.length === 0) return value.head;
    const max = this.maxSendMessageSize as number;
    if (this.metadataSent !== true || (max !== -1 && value.messageBytes > max)) {
      // grpc-js's own path: it sends the headers, or refuses the oversized message with its usual status.
      return original.call(this, value);
    }
    // grpc-js has checked that the call is live; the tail it writes next follows the head in order.
    // A failed write fails grpc-js's own write of the tail right after, which reports it.
    this.stream.write(value.head, ignore);
    return value.tail;
  };
  return true;
}
