/** A message queued for a worker stream, as the data plane hands it to the cluster side. */

export type BytesKind = 'elf' | 'input' | 'hints' | 'task' | 'other';

export interface OutboundMessage {
  /** encoded size, known before encoding (used for budgets) */
  bytes: number;
  kind: BytesKind;
  /** Encodes just in time, so queued large messages hold their source, not a per-worker copy. */
  encode(): Buffer;
  /**
   * Called instead of writing when the encoded message is bigger than the worker port may send
   * (`bytes` > `limit`): the producer fails the job the message belongs to. Writing it would make
   * grpc-js end the worker's whole stream (docs/operations.md, Limits).
   */
  refuse?(bytes: number, limit: number): void;
}
