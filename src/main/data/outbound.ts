/** A message queued for a worker stream, as the data plane hands it to the cluster side. */

export type BytesKind = 'elf' | 'input' | 'hints' | 'task' | 'other';

export interface OutboundMessage {
  /** encoded size, known before encoding (used for budgets) */
  bytes: number;
  kind: BytesKind;
  /** Encodes just in time, so queued large messages hold their source, not a per-worker copy. */
  encode(): Buffer;
}
