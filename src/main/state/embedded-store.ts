/**
 * The embedded job store: LMDB (the `lmdb` package, prebuilt binaries) in `[state] dir`, one record
 * per job keyed by its id, files beside it for bulk bytes.
 *
 * Writes never block the event loop: lmdb-js commits on its own thread, batching every write of an
 * event-loop turn into one transaction. `write()` resolves once that transaction is flushed to disk,
 * so what it acknowledges survives a crash or a power loss.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { open, type RootDatabase } from 'lmdb';
import { StoreError, type JobStore, type StoredJob } from './store';

const DB_FILE = 'jobs.mdb';
const FILES_DIR = 'files';

export class EmbeddedJobStore implements JobStore {
  readonly durable = true;
  readonly filesDir: string;

  private constructor(
    private readonly db: RootDatabase<StoredJob, string>,
    readonly dir: string,
    private readonly onCommitFailed: (reason: string) => never,
  ) {
    this.filesDir = path.join(dir, FILES_DIR);
  }

  /**
   * Opens (or creates) the store in `dir`; a file that is not an LMDB store is a StoreError.
   * `onCommitFailed` must end the process: after a failed commit (a full disk) the LMDB environment
   * is unusable and lmdb-js rejects promises of its own that nobody can handle.
   */
  static open(dir: string, onCommitFailed: (reason: string) => never): EmbeddedJobStore {
    const file = path.join(dir, DB_FILE);
    let db: RootDatabase<StoredJob, string>;
    try {
      fs.mkdirSync(path.join(dir, FILES_DIR), { recursive: false });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new StoreError(dir, `cannot create its files directory: ${(err as Error).message}`);
    }
    const problem = lmdbFileProblem(file);
    if (problem) throw new StoreError(file, `${problem}; not opened (move it away to start with an empty store, or restore a backup)`);
    try {
      db = open<StoredJob, string>({ path: file, overlappingSync: true });
    } catch (err) {
      throw new StoreError(file, `cannot open it: ${(err as Error).message}`);
    }
    return new EmbeddedJobStore(db, dir, onCommitFailed);
  }

  async load(): Promise<StoredJob[]> {
    const file = path.join(this.dir, DB_FILE);
    const jobs: StoredJob[] = [];
    try {
      for (const { key, value } of this.db.getRange()) {
        if (!isStoredJob(value) || value.id !== key) {
          throw new StoreError(file, `record ${String(key)} is not a job record this version can read`);
        }
        jobs.push(value);
      }
    } catch (err) {
      if (err instanceof StoreError) throw err;
      throw new StoreError(file, `cannot read it: ${(err as Error).message}`);
    }
    return jobs;
  }

  async write(puts: readonly StoredJob[], removes: readonly string[]): Promise<void> {
    if (puts.length === 0 && removes.length === 0) return;
    // Issued in one turn, these share one transaction.
    const pending: Promise<unknown>[] = [];
    for (const job of puts) pending.push(this.db.put(job.id, job));
    for (const id of removes) pending.push(this.db.remove(id));
    try {
      await Promise.all(pending);
    } catch (err) {
      this.onCommitFailed(await commitFailure(err));
    }
    await this.db.flushed;
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}

/**
 * Why a transaction failed. lmdb-js rejects each write with a generic error and keeps the cause (a
 * full disk, a file size limit) in a separate promise, `commitError`, which nobody else awaits: left
 * unhandled it would take the process down.
 */
async function commitFailure(err: unknown): Promise<string> {
  const commitError = (err as { commitError?: Promise<unknown> } | undefined)?.commitError;
  if (commitError) {
    try {
      await commitError;
    } catch (cause) {
      return `the transaction failed: ${(cause as Error).message}`;
    }
  }
  return `the transaction failed: ${(err as Error).message}`;
}

/** Where a page's fields and its meta record's fields are (LMDB's on-disk format, 64-bit). */
const META = { flags: 0x12, magic: 0x18, version: 0x1c, pageSize: 0x30, lastPage: 0x90, txnId: 0x98 } as const;
const P_META = 0x08;
const MDB_MAGIC = 0xbeefc0de;

/**
 * Why `file` is not an LMDB store we can open safely, or undefined (also when it does not exist yet:
 * a new store). LMDB maps the file and trusts it: a file that is not LMDB, or is cut short, makes it
 * read past the end or through garbage and the process dies of a signal. Its two meta pages say what
 * the file must be, so they are checked before it is opened.
 */
export function lmdbFileProblem(file: string): string | undefined {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? undefined : `cannot read it: ${(err as Error).message}`;
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (size === 0) return undefined;
    const head = Buffer.alloc(Math.min(size, 2 * 65536));
    fs.readSync(fd, head, 0, head.length, 0);
    const meta = (offset: number): { pageSize: number; lastPage: bigint; txnId: bigint } | undefined => {
      if (offset + 0xa0 > head.length) return undefined;
      if ((head.readUInt16LE(offset + META.flags) & P_META) === 0) return undefined;
      if (head.readUInt32LE(offset + META.magic) !== MDB_MAGIC) return undefined;
      const version = head.readUInt32LE(offset + META.version);
      const pageSize = head.readUInt32LE(offset + META.pageSize);
      if (version < 1 || version > 2 || pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) return undefined;
      return { pageSize, lastPage: head.readBigUInt64LE(offset + META.lastPage), txnId: head.readBigUInt64LE(offset + META.txnId) };
    };
    const first = meta(0);
    const second = first ? meta(first.pageSize) : undefined;
    const current = [first, second].filter((m) => m !== undefined).sort((a, b) => (a.txnId > b.txnId ? -1 : 1))[0];
    if (!current) return 'it is not an LMDB store (no valid meta page)';
    const needed = (current.lastPage + 1n) * BigInt(current.pageSize);
    if (BigInt(size) < needed) return `it is cut short (${size} bytes; its last transaction needs ${needed})`;
    return undefined;
  } finally {
    fs.closeSync(fd);
  }
}

function isStoredJob(v: unknown): v is StoredJob {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Partial<StoredJob>;
  return (
    r.v === 1 &&
    typeof r.id === 'string' &&
    typeof r.kind === 'string' &&
    typeof r.createdAt === 'number' &&
    typeof r.attempt === 'number' &&
    Array.isArray(r.history) &&
    Array.isArray(r.failedAttempts) &&
    typeof r.request === 'object' &&
    typeof r.input === 'object' &&
    typeof r.hints === 'object'
  );
}
