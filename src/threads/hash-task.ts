/**
 * piscina task: BLAKE3-256 of a guest program (ELF), off the main thread (decisions D7).
 *
 * The bytes arrive as a transferred ArrayBuffer and go back the same way, so a 100 MiB ELF is never
 * structured-cloned in either direction and the main thread can still write it to the cache.
 */
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { loadBlake3 } from '../shared/blake3';

export interface HashTask {
  buffer: ArrayBuffer;
  byteOffset: number;
  byteLength: number;
}

export interface HashTaskResult {
  /** lowercase hex, 64 chars */
  hash: string;
  /** the task's buffer, transferred back */
  buffer: ArrayBuffer;
}

export default async function hashTask(task: HashTask): Promise<HashTaskResult> {
  const blake3 = await loadBlake3();
  const result: HashTaskResult = {
    hash: blake3.hex(new Uint8Array(task.buffer, task.byteOffset, task.byteLength)),
    buffer: task.buffer,
  };
  return move({
    [transferableSymbol]: [task.buffer],
    [valueSymbol]: result,
  }) as unknown as HashTaskResult;
}
