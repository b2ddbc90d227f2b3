/**
 * The bulk bytes of stored jobs, as files under the store's files directory. Records name files
 * relative to it, so the state directory can be moved or restored from a backup as a whole.
 *
 * A file a record names is complete and on disk before the record is written: `writeDurable` writes a
 * temporary file, syncs it, renames it into place and syncs the directory. Every call is async (the
 * libuv pool does the I/O): the main thread's event loop never waits on the disk.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export class JobFiles {
  constructor(
    readonly dir: string,
    /** Why the disk has no room for more copies now (spools give up), or undefined. */
    readonly shortage: () => string | undefined = () => undefined,
  ) {}

  pathOf(name: string): string {
    return path.join(this.dir, name);
  }

  /** Writes `name` so that once this resolves it survives a crash or a power loss. */
  async writeDurable(name: string, data: Buffer): Promise<void> {
    const final = this.pathOf(name);
    const tmp = `${final}.tmp`;
    const fh = await fs.promises.open(tmp, 'w');
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.promises.rename(tmp, final);
    await this.syncDir();
  }

  async read(name: string): Promise<Buffer> {
    return fs.promises.readFile(this.pathOf(name));
  }

  /** Removes files; one that is already gone is fine. */
  async remove(names: readonly string[]): Promise<void> {
    await Promise.all(names.map((n) => fs.promises.rm(this.pathOf(n), { force: true }).catch(() => undefined)));
  }

  /** Starts spooling a stream to `name`, keeping at most `maxBytes` (beyond, the spool is given up). */
  spool(name: string, maxBytes: number): Spool {
    return new Spool(this, name, maxBytes);
  }

  async syncDir(): Promise<void> {
    const dh = await fs.promises.open(this.dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  }
}

/**
 * A pushed stream copied to disk as it arrives, so another attempt (after a lost worker, or after a
 * restart) can be sent the same bytes. Appends are written in order; past the cap the copy is given
 * up and the file removed, and the job's data cannot be replayed.
 */
export class Spool {
  private bytes = 0;
  private handle: Promise<fs.promises.FileHandle> | undefined;
  private tail: Promise<void> = Promise.resolve();
  private givenUp: string | undefined;
  private finished = false;

  constructor(
    private readonly files: JobFiles,
    readonly name: string,
    private readonly maxBytes: number,
  ) {}

  /** Why the spool was given up (over the cap, a write error), or undefined while it holds every byte. */
  get abandoned(): string | undefined {
    return this.givenUp;
  }

  get size(): number {
    return this.bytes;
  }

  /** Queues `chunk`; resolves once it is written (or the spool was given up: never an error). */
  append(chunk: Buffer): Promise<void> {
    if (this.givenUp || chunk.length === 0) return this.tail;
    if (this.finished) {
      // A second push stream appends to the job's data (upstream allows it): the copy no longer
      // holds one whole stream in order with what workers were sent, so it is dropped.
      this.giveUp('more data pushed after the stream had ended');
      return this.tail;
    }
    if (this.bytes + chunk.length > this.maxBytes) {
      this.giveUp(`more than [state] spool_max_bytes (${this.maxBytes})`);
      return this.tail;
    }
    const shortage = this.files.shortage();
    if (shortage) {
      this.giveUp(shortage);
      return this.tail;
    }
    this.bytes += chunk.length;
    this.handle ??= fs.promises.open(this.files.pathOf(this.name), 'w');
    const handle = this.handle;
    this.tail = this.tail.then(async () => {
      if (this.givenUp) return;
      try {
        await (await handle).write(chunk);
      } catch (err) {
        this.giveUp(`write failed: ${(err as Error).message}`);
      }
    });
    return this.tail;
  }

  /**
   * The stream ended: syncs what was written. Resolves with the file's size when the spool holds the
   * whole stream durably, undefined when it was given up.
   */
  async finish(): Promise<number | undefined> {
    this.finished = true;
    await this.tail;
    if (this.givenUp) return undefined;
    try {
      const handle = await (this.handle ??= fs.promises.open(this.files.pathOf(this.name), 'w'));
      await handle.sync();
      await handle.close();
      this.handle = undefined;
      await this.files.syncDir();
      return this.bytes;
    } catch (err) {
      this.giveUp(`sync failed: ${(err as Error).message}`);
      return undefined;
    }
  }

  /** Drops the copy (the job ended, or it cannot be replayed). */
  discard(reason = 'discarded'): void {
    this.giveUp(reason);
  }

  private giveUp(reason: string): void {
    if (this.givenUp) return;
    this.givenUp = reason;
    const handle = this.handle;
    this.handle = undefined;
    this.tail = this.tail.then(async () => {
      try {
        if (handle) await (await handle).close();
      } catch {
        // the file was never opened, or is closed already
      }
      await this.files.remove([this.name]);
    });
  }
}
