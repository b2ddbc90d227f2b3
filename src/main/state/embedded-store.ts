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
  ) {
    this.filesDir = path.join(dir, FILES_DIR);
  }

  /** Opens (or creates) the store in `dir`; a file that is not an LMDB store is a StoreError. */
  static open(dir: string): EmbeddedJobStore {
    const file = path.join(dir, DB_FILE);
    let db: RootDatabase<StoredJob, string>;
    try {
      fs.mkdirSync(path.join(dir, FILES_DIR), { recursive: false });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new StoreError(dir, `cannot create its files directory: ${(err as Error).message}`);
    }
    try {
      db = open<StoredJob, string>({ path: file, overlappingSync: true });
    } catch (err) {
      throw new StoreError(file, `cannot open it: ${(err as Error).message}`);
    }
    return new EmbeddedJobStore(db, dir);
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
    await Promise.all(pending);
    await this.db.flushed;
  }

  async close(): Promise<void> {
    await this.db.close();
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
