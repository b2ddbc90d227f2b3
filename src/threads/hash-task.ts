/**
 * piscina task: BLAKE3-256 of a guest program (ELF), off the main thread (docs/architecture.md, Threads
 * and the channel between them).
 *
 * The bytes arrive as a transferred ArrayBuffer and go back the same way, so a 100 MiB ELF is never
 * structured-cloned in either direction and the main thread can still write it to the cache.
 */
import * as os from 'node:os';
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { loadBlake3 } from '../shared/blake3';

/**
 * Hashing is background work: on a machine short of cores it must yield to the main thread's I/O
 * rather than delay heartbeats. On Linux the nice value is per thread, so this lowers only this one.
 */
export const HASH_THREAD_NICENESS = 10;
let priorityLowered = false;

function lowerThreadPriority(): void {
  priorityLowered = true;
  try {
    os.setPriority(0, Math.max(os.getPriority(0), HASH_THREAD_NICENESS));
  } catch {
    // Not permitted or not supported here: hashing simply runs at the process's priority.
  }
}

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
  // On the first task, not at import: only a pool thread runs tasks.
  if (!priorityLowered) lowerThreadPriority();
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
