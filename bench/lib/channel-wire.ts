/**
 * Shared by the `channel` scenario and its peer thread: the transports compared and a one-slot
 * mailbox in a SharedArrayBuffer (word 0: sequence number, word 1: byte length, bytes from 8).
 */
export type ChannelMode = 'port-objects' | 'port-json' | 'sab-nudge' | 'sab-waitasync';

export interface PeerData {
  mode: ChannelMode;
  /** What the peer answers every batch with. */
  reply: unknown;
  toPeer: SharedArrayBuffer;
  toMain: SharedArrayBuffer;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function mailboxWrite(sab: SharedArrayBuffer, text: string): void {
  const words = new Int32Array(sab);
  const written = encoder.encodeInto(text, new Uint8Array(sab, 8)).written;
  Atomics.store(words, 1, written);
  Atomics.add(words, 0, 1);
}

export function mailboxRead(sab: SharedArrayBuffer): string {
  const length = Atomics.load(new Int32Array(sab), 1);
  // TextDecoder refuses views of shared memory: copy out first.
  return decoder.decode(new Uint8Array(sab, 8, length).slice());
}
