/**
 * Streaming validator of the precompile-hints framing (docs/protocol.md, Hints framing).
 *
 * The relay forwards hint batches untouched; it parses them only to know where `CTRL_START` and
 * `CTRL_END` are (they drive the `stream_data` START/END messages) and to fail a malformed stream
 * with a precise reason instead of letting the job hang (docs/decisions.md, Data plane; and: Relay
 * failures leak). Only header words are read: data words are skipped arithmetically, so a stream of a
 * few huge hints costs almost nothing and a stream of many tiny hints costs two 32-bit reads per hint.
 *
 * Decisions:
 * - `CTRL_CANCEL` (2) and `CTRL_ERROR` (3) are reserved codes. A producer that emits them is telling us
 *   the stream cannot complete, and no worker is defined to act on them, so forwarding them would at
 *   best hang the job until its timeout: they are violations, reported by name.
 * - Control hints carry no data; a control code with a non-zero length is a violation (trusting the
 *   length would make every later header position, and so `CTRL_END` detection, a guess).
 * - Control codes are exactly 0…3. A code with the pass-through bit (bit 31) set is a data hint, even
 *   if its low bits are 0…3.
 * - A hint cut by a batch boundary is carried over: its remaining data words are skipped at the start
 *   of the next batch. A hint bigger than the producer's transport chunk is sent as consecutive chunks
 *   that each repeat the header with the *total* length; so when a batch opens while a hint is still
 *   incomplete and its first word is exactly that hint's header (code and total length), it is taken
 *   as the repeated header and the data count continues after it. A plain carried-over data word equal
 *   to the full header word at exactly a batch start is the one ambiguous case; it is far less likely
 *   than a chunked large hint, so the repeated-header reading wins.
 * - After a violation the validator stays failed: every later call reports the same reason.
 */

export const CTRL_START = 0;
export const CTRL_END = 1;
export const CTRL_CANCEL = 2;
export const CTRL_ERROR = 3;

const CONTROL_NAMES = ['CTRL_START', 'CTRL_END', 'CTRL_CANCEL', 'CTRL_ERROR'] as const;

export class HintsFramingError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'HintsFramingError';
  }
}

export interface HintsBatchInfo {
  /** the batch holds `CTRL_START` (always its first hint) */
  hasStart: boolean;
  /** the batch holds `CTRL_END` (always its last word) */
  hasEnd: boolean;
}

function hex32(n: number): string {
  return n.toString(16).padStart(8, '0');
}

function describeHeader(code: number, length: number): string {
  return `0x${hex32(code)}${hex32(length)} (code 0x${code.toString(16)}, length ${length})`;
}

export class HintsFramingValidator {
  private startSeen = false;
  private endSeen = false;
  /** data words still owed by a hint cut at the end of the previous batch */
  private pendingWords = 0;
  /** header of that hint, to recognise a repeated header (large hint sent in chunks) */
  private pendingCode = 0;
  private pendingLength = 0;
  /** stream offset (bytes) of the next batch, for messages */
  private offset = 0;
  private failure: HintsFramingError | undefined;

  get started(): boolean {
    return this.startSeen;
  }

  get ended(): boolean {
    return this.endSeen;
  }

  /** Bytes accepted so far. */
  get bytesSeen(): number {
    return this.offset;
  }

  get violation(): string | undefined {
    return this.failure?.reason;
  }

  /** Validates one batch; throws `HintsFramingError` on a framing violation. */
  feed(batch: Buffer): HintsBatchInfo {
    if (this.failure) throw this.failure;
    const len = batch.length;
    if (len % 8 !== 0) return this.fail(`batch length ${len} is not a multiple of 8 (at stream offset ${this.offset})`);
    if (len === 0) return { hasStart: false, hasEnd: false };
    if (this.endSeen) return this.fail(`data after CTRL_END: a later batch of ${len} bytes at stream offset ${this.offset}`);

    let hasStart = false;
    let pos = 0;

    if (this.pendingWords > 0) {
      if (batch.readUInt32LE(4) === this.pendingCode && batch.readUInt32LE(0) === this.pendingLength) pos = 8;
      const avail = (len - pos) / 8;
      const skip = this.pendingWords < avail ? this.pendingWords : avail;
      this.pendingWords -= skip;
      pos += skip * 8;
    }

    while (pos < len) {
      const length = batch.readUInt32LE(pos);
      const code = batch.readUInt32LE(pos + 4);
      const at = this.offset + pos;
      pos += 8;

      if (!this.startSeen) {
        if (code !== CTRL_START || length !== 0) {
          return this.fail(`first hint is ${describeHeader(code, length)} not CTRL_START`);
        }
        this.startSeen = true;
        hasStart = true;
        continue;
      }

      if (code <= CTRL_ERROR) {
        const name = CONTROL_NAMES[code];
        if (length !== 0) {
          return this.fail(`control hint ${name} at stream offset ${at} has length ${length}, expected 0`);
        }
        if (code === CTRL_END) {
          this.endSeen = true;
          if (pos < len) {
            return this.fail(`data after CTRL_END: ${len - pos} bytes follow it in the same batch (CTRL_END at stream offset ${at})`);
          }
          this.offset += len;
          return { hasStart, hasEnd: true };
        }
        if (code === CTRL_START) return this.fail(`CTRL_START repeated at stream offset ${at}`);
        if (code === CTRL_CANCEL) {
          return this.fail(`reserved hint CTRL_CANCEL at stream offset ${at}: the producer cancelled the hints stream`);
        }
        return this.fail(`reserved hint CTRL_ERROR at stream offset ${at}: the producer reported an error`);
      }

      // ceil(length / 8) without 32-bit overflow: length can be up to 2^32 - 1.
      const words = Math.floor((length + 7) / 8);
      const avail = (len - pos) / 8;
      if (words <= avail) {
        pos += words * 8;
      } else {
        this.pendingWords = words - avail;
        this.pendingCode = code;
        this.pendingLength = length;
        pos = len;
      }
    }

    this.offset += len;
    return { hasStart, hasEnd: false };
  }

  /** The source ended: throws `HintsFramingError` unless the stream was complete. */
  finish(): void {
    if (this.failure) throw this.failure;
    if (this.endSeen) return;
    let detail: string;
    if (this.offset === 0) detail = 'no hints received';
    else if (this.pendingWords > 0) {
      detail = `after ${this.offset} bytes, inside hint ${describeHeader(this.pendingCode, this.pendingLength)} with ${this.pendingWords} data words missing`;
    } else detail = `after ${this.offset} bytes`;
    this.fail(`stream ended without CTRL_END (${detail})`);
  }

  private fail(reason: string): never {
    this.failure = new HintsFramingError(reason);
    throw this.failure;
  }
}
