/**
 * The guest-program registry (docs/decisions.md, Data plane).
 *
 * Programs are identified by the BLAKE3-256 of their exact ELF bytes, hashed on a piscina pool so a
 * large upload never stalls the main thread (up to 1 MiB inline, where the native hasher makes that
 * cheaper than the hop). ELFs live in the cache dir as `<hash_id>.elf` (temp file + rename, so a
 * crash never leaves a truncated program behind), which makes registration idempotent across
 * restarts. ELF bytes are held in memory only for programs with a pending or completed setup,
 * because those are the ones workers are sent. Completed setups are recorded in the cache dir and
 * handed back by `init()` so the scheduler can re-send them to reconnecting workers after a restart.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Piscina } from 'piscina';
import { loadBlake3 } from '../../shared/blake3';
import type { Logger } from '../../shared/logging';
import type { HashTask, HashTaskResult } from '../../threads/hash-task';

export const HASH_ID_PATTERN = /^[0-9a-f]{64}$/;
const SETUPS_FILE = 'setups.json';
const SETUPS_FORMAT_VERSION = 1;
/** How long an idle hashing thread lingers; registrations come in bursts (setup scripts). */
const HASH_POOL_IDLE_MS = 30_000;
/** Below this the native hash (~2.4 GB/s) takes under half a millisecond: cheaper than a thread hop. */
const INLINE_HASH_MAX_BYTES = 1024 * 1024;

/** A completed setup, as recorded in the cache dir. */
export interface RecordedSetup {
  hashId: string;
  withHints: boolean;
  programName: string;
  vkHex: string;
}

export interface ProgramRegistryOptions {
  /**
   * The checked cache directory (directories.ts); undefined in mock mode: the registry is in memory
   * only and nothing is written (docs/decisions.md, Mock backend).
   */
  cacheDir: string | undefined;
  logger: Logger;
  /** Called once per program this process stored for the first time. */
  onNewProgram(): void;
}

interface SetupsFile {
  version: number;
  setups: { hash_id: string; with_hints: boolean; program_name: string; vk: string }[];
}

export class ProgramRegistry {
  private readonly known = new Set<string>();
  /** ELF bytes of programs workers may be sent (pending or completed setups). */
  private readonly elves = new Map<string, Buffer>();
  /** Pending setup jobs holding a program's bytes in memory. */
  private readonly holds = new Map<string, number>();
  /** Programs with at least one completed setup: their bytes stay in memory. */
  private readonly setUp = new Set<string>();
  private readonly setups = new Map<string, RecordedSetup>();
  /** Concurrent registrations of the same bytes share one write. */
  private readonly writing = new Map<string, Promise<boolean>>();
  private setupsWrite: Promise<void> = Promise.resolve();
  private pool: Piscina<HashTask, HashTaskResult> | undefined;

  constructor(private readonly opts: ProgramRegistryOptions) {}

  private get persist(): boolean {
    return this.opts.cacheDir !== undefined;
  }

  /** Every caller checks `persist` first: getting here without a directory is a bug. */
  private get dir(): string {
    const dir = this.opts.cacheDir;
    if (dir === undefined) throw new Error('program registry: no cache dir in memory-only mode');
    return dir;
  }

  /** Indexes the cache dir and returns the recorded setups whose ELF is still there (bytes loaded). */
  async init(): Promise<RecordedSetup[]> {
    if (!this.persist) return [];
    const dir = this.dir;
    // The directory was created and proven writable before startup (directories.ts): a failure
    // here is a cache dir that changed since, and stops the start like any other startup error.
    for (const name of await fs.promises.readdir(dir)) {
      const m = /^([0-9a-f]{64})\.elf$/.exec(name);
      if (m) this.known.add(m[1]);
    }
    const restored: RecordedSetup[] = [];
    for (const s of await this.readSetups()) {
      if (!this.known.has(s.hashId)) {
        this.opts.logger.warn({ hash_id: s.hashId }, 'recorded setup skipped: its ELF is no longer in the cache dir');
        continue;
      }
      try {
        if (!this.elves.has(s.hashId)) this.elves.set(s.hashId, await fs.promises.readFile(this.elfPath(s.hashId)));
      } catch (err) {
        this.opts.logger.warn({ hash_id: s.hashId, err: (err as Error).message }, 'recorded setup skipped: ELF unreadable');
        continue;
      }
      this.setUp.add(s.hashId);
      this.setups.set(setupKey(s.hashId, s.withHints), s);
      restored.push(s);
    }
    this.opts.logger.info(
      { cache_dir: dir, programs: this.known.size, setups: restored.length },
      `program cache: ${this.known.size} program(s), ${restored.length} recorded setup(s)`,
    );
    return restored;
  }

  has(hashId: string): boolean {
    return this.known.has(hashId);
  }

  /**
   * Hashes and stores an ELF; returns its hash_id and whether this call stored it for the first
   * time. The caller's buffer may be detached afterwards (its memory moves to the hashing thread).
   */
  async register(elf: Buffer): Promise<{ hashId: string; created: boolean }> {
    const { hashId, bytes } = await this.hash(elf);
    if (this.known.has(hashId)) return { hashId, created: false };
    let pending = this.writing.get(hashId);
    if (!pending) {
      pending = this.store(hashId, bytes).finally(() => this.writing.delete(hashId));
      this.writing.set(hashId, pending);
      const created = await pending;
      if (created) this.opts.onNewProgram();
      return { hashId, created };
    }
    await pending;
    return { hashId, created: false };
  }

  /**
   * Loads a program's bytes for a setup job and holds them until `releaseElf`. False when the
   * program is not registered or its file can no longer be read.
   */
  async acquireElf(hashId: string): Promise<boolean> {
    if (!this.known.has(hashId)) return false;
    if (!this.elves.has(hashId)) {
      if (!this.persist) return false;
      try {
        const bytes = await fs.promises.readFile(this.elfPath(hashId));
        if (!this.elves.has(hashId)) this.elves.set(hashId, bytes);
      } catch (err) {
        this.opts.logger.error({ hash_id: hashId, err: (err as Error).message }, 'registered ELF unreadable');
        return false;
      }
    }
    this.holds.set(hashId, (this.holds.get(hashId) ?? 0) + 1);
    return true;
  }

  /** A setup of this program completed: workers may be sent it from now on, so its bytes stay. */
  markSetUp(hashId: string): void {
    if (this.elves.has(hashId)) this.setUp.add(hashId);
  }

  /** A setup job that held the bytes ended: keep them only while something still needs them. */
  releaseElf(hashId: string): void {
    const n = (this.holds.get(hashId) ?? 0) - 1;
    if (n > 0) this.holds.set(hashId, n);
    else {
      this.holds.delete(hashId);
      if (!this.setUp.has(hashId)) this.elves.delete(hashId);
    }
  }

  elfBytes(hashId: string): Buffer | undefined {
    return this.elves.get(hashId);
  }

  /** Records a completed setup (latest VK per `(hash_id, with_hints)` wins), atomically on disk. */
  recordSetup(setup: RecordedSetup): Promise<void> {
    this.markSetUp(setup.hashId);
    const key = setupKey(setup.hashId, setup.withHints);
    const prev = this.setups.get(key);
    if (prev && prev.vkHex === setup.vkHex && prev.programName === setup.programName) return this.setupsWrite;
    this.setups.set(key, { ...setup });
    if (!this.persist) return Promise.resolve();
    // Writes are chained so an older snapshot can never overwrite a newer one.
    this.setupsWrite = this.setupsWrite.then(() =>
      this.writeSetups().catch((err: Error) =>
        this.opts.logger.error({ err: err.message, cache_dir: this.dir }, 'could not record completed setups'),
      ),
    );
    return this.setupsWrite;
  }

  async close(): Promise<void> {
    await this.setupsWrite;
    const pool = this.pool;
    this.pool = undefined;
    await pool?.destroy();
  }

  // -------------------------------------------------------------------------------------------

  private elfPath(hashId: string): string {
    return path.join(this.dir, `${hashId}.elf`);
  }

  private async hash(elf: Buffer): Promise<{ hashId: string; bytes: Buffer }> {
    const t0 = performance.now();
    const blake3 = await loadBlake3();
    if (blake3.kind === 'native' && elf.byteLength <= INLINE_HASH_MAX_BYTES) {
      const hashId = blake3.hex(elf);
      this.opts.logger.debug(
        { hash_id: hashId, bytes: elf.byteLength, hasher: blake3.kind, inline: true, ms: Math.round(performance.now() - t0) },
        'guest program hashed',
      );
      return { hashId, bytes: elf };
    }
    this.pool ??= new Piscina<HashTask, HashTaskResult>({
      filename: path.join(__dirname, '../../threads/hash-task.js'),
      minThreads: 0,
      maxThreads: Math.max(1, Math.min(2, os.availableParallelism() - 1)),
      idleTimeout: HASH_POOL_IDLE_MS,
    });
    const { task, moved } = transferable(elf);
    // The worst main-loop delay while the hash runs elsewhere: the evidence that it never blocks I/O.
    const loopDelay = monitorEventLoopDelay({ resolution: 5 });
    loopDelay.enable();
    let result: HashTaskResult;
    try {
      result = await this.pool.run(task, { transferList: [task.buffer] });
    } finally {
      loopDelay.disable();
    }
    this.opts.logger.debug(
      {
        hash_id: result.hash,
        bytes: task.byteLength,
        hasher: blake3.kind,
        moved,
        ms: Math.round(performance.now() - t0),
        main_loop_max_ms: Math.round(loopDelay.max / 1e5) / 10,
      },
      'guest program hashed',
    );
    return { hashId: result.hash, bytes: Buffer.from(result.buffer, task.byteOffset, task.byteLength) };
  }

  /** true when this call wrote the file, false when it was already there. */
  private async store(hashId: string, bytes: Buffer): Promise<boolean> {
    if (!this.persist) {
      this.known.add(hashId);
      return true;
    }
    const final = this.elfPath(hashId);
    try {
      await fs.promises.access(final);
      this.known.add(hashId);
      return false;
    } catch {
      // not there yet: write it
    }
    await fs.promises.mkdir(this.dir, { recursive: true });
    const tmp = path.join(this.dir, `.${hashId}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
    try {
      await fs.promises.writeFile(tmp, bytes, { flag: 'wx' });
      await fs.promises.rename(tmp, final);
    } catch (err) {
      await fs.promises.rm(tmp, { force: true }).catch(() => undefined);
      throw err;
    }
    this.known.add(hashId);
    return true;
  }

  private async readSetups(): Promise<RecordedSetup[]> {
    let text: string;
    try {
      text = await fs.promises.readFile(path.join(this.dir, SETUPS_FILE), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.opts.logger.warn({ err: (err as Error).message }, 'recorded setups unreadable; starting without them');
      }
      return [];
    }
    try {
      const parsed = JSON.parse(text) as Partial<SetupsFile>;
      if (!Array.isArray(parsed.setups)) throw new Error('no setups array');
      const out: RecordedSetup[] = [];
      for (const s of parsed.setups) {
        if (
          typeof s?.hash_id !== 'string' ||
          !HASH_ID_PATTERN.test(s.hash_id) ||
          typeof s.with_hints !== 'boolean' ||
          typeof s.program_name !== 'string' ||
          typeof s.vk !== 'string' ||
          !/^(?:[0-9a-f]{2})*$/.test(s.vk)
        ) {
          this.opts.logger.warn({ entry: JSON.stringify(s) }, 'recorded setup entry ignored: malformed');
          continue;
        }
        out.push({ hashId: s.hash_id, withHints: s.with_hints, programName: s.program_name, vkHex: s.vk });
      }
      return out;
    } catch (err) {
      this.opts.logger.warn({ err: (err as Error).message }, `${SETUPS_FILE} is malformed; starting without recorded setups`);
      return [];
    }
  }

  private async writeSetups(): Promise<void> {
    const body: SetupsFile = {
      version: SETUPS_FORMAT_VERSION,
      setups: [...this.setups.values()].map((s) => ({
        hash_id: s.hashId,
        with_hints: s.withHints,
        program_name: s.programName,
        vk: s.vkHex,
      })),
    };
    await fs.promises.mkdir(this.dir, { recursive: true });
    const final = path.join(this.dir, SETUPS_FILE);
    const tmp = `${final}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      await fs.promises.writeFile(tmp, `${JSON.stringify(body, null, 2)}\n`, { flag: 'wx' });
      await fs.promises.rename(tmp, final);
    } catch (err) {
      await fs.promises.rm(tmp, { force: true }).catch(() => undefined);
      throw err;
    }
  }
}

function setupKey(hashId: string, withHints: boolean): string {
  return `${hashId}/${withHints ? 1 : 0}`;
}

/**
 * A task whose buffer can be transferred. A Buffer decoded by grpc-js views a larger receive buffer
 * unless the message spanned several HTTP/2 frames (then grpc-js concatenated it into a buffer of
 * its own, and after decoding nothing else uses it). Only that own-buffer case is moved as is;
 * otherwise the bytes are copied once into a fresh buffer, so no receive buffer shared with other
 * data is ever detached.
 */
function transferable(elf: Buffer): { task: HashTask; moved: boolean } {
  const ab = elf.buffer;
  const ownsBuffer =
    ab instanceof ArrayBuffer && elf.byteLength > Buffer.poolSize && ab.byteLength - elf.byteLength <= 16;
  if (ownsBuffer) return { task: { buffer: ab, byteOffset: elf.byteOffset, byteLength: elf.byteLength }, moved: true };
  const copy = new ArrayBuffer(elf.byteLength);
  new Uint8Array(copy).set(elf);
  return { task: { buffer: copy, byteOffset: 0, byteLength: elf.byteLength }, moved: false };
}
