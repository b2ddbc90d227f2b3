/**
 * Keeps an eye on the free space of the filesystem under the state directory (docs/operations.md,
 * Jobs and restarts: what survives what). LMDB cannot be trusted after a write fails for lack of
 * room (its environment turns unusable and the process has to stop), so the coordinator stops taking
 * new work while the disk still has `[state] min_free_bytes` left: jobs already accepted finish,
 * their few small records fit in the margin.
 */
import * as fs from 'node:fs';
import type { Logger } from '../../shared/logging';

const CHECK_INTERVAL_MS = 1_000;

export class DiskSpaceWatch {
  private freeBytes: number | undefined;
  private low = false;
  private readonly timer: NodeJS.Timeout;
  private checking = false;

  constructor(
    readonly dir: string,
    readonly minFreeBytes: number,
    private readonly logger: Logger,
    private readonly onReading: (freeBytes: number) => void,
  ) {
    this.apply(fs.statfsSync(dir));
    this.timer = setInterval(() => void this.check(), CHECK_INTERVAL_MS);
    this.timer.unref();
  }

  /** Why new work cannot be taken now, or undefined while the disk has room. */
  get shortage(): string | undefined {
    if (!this.low || this.freeBytes === undefined) return undefined;
    return `only ${mib(this.freeBytes)} free on the filesystem of ${this.dir} ([state] min_free_bytes = ${mib(this.minFreeBytes)})`;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async check(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    try {
      this.apply(await fs.promises.statfs(this.dir));
    } catch (err) {
      this.logger.warn({ dir: this.dir, err: (err as Error).message }, `cannot read the free space of ${this.dir}: ${(err as Error).message}`);
    } finally {
      this.checking = false;
    }
  }

  private apply(stats: fs.StatsFs): void {
    const free = stats.bavail * stats.bsize;
    this.freeBytes = free;
    this.onReading(free);
    const low = this.minFreeBytes > 0 && free < this.minFreeBytes;
    if (low === this.low) return;
    this.low = low;
    const fields = { dir: this.dir, free_bytes: free, min_free_bytes: this.minFreeBytes };
    if (low) this.logger.error(fields, `state store disk nearly full: ${this.shortage}; new jobs are refused until there is room`);
    else this.logger.info(fields, `state store disk has room again (${mib(free)} free): new jobs are accepted`);
  }
}

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(0)} MiB`;
}
