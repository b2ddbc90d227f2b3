import type { BlobId } from '../../shared/scheduler/types';

/**
 * Bulk bytes (inputs, challenges, proofs) held on the main thread while the scheduler refers to
 * them by id (docs/decisions.md, Data plane). The scheduler decides when they are released.
 */
export class BlobStore {
  private readonly blobs = new Map<BlobId, Buffer>();
  private nextId = 1;
  private totalBytes = 0;

  put(data: Buffer): BlobId {
    const id = this.nextId++;
    this.blobs.set(id, data);
    this.totalBytes += data.length;
    return id;
  }

  get(id: BlobId): Buffer | undefined {
    return this.blobs.get(id);
  }

  release(ids: Iterable<BlobId>): void {
    for (const id of ids) {
      const data = this.blobs.get(id);
      if (!data) continue;
      this.totalBytes -= data.length;
      this.blobs.delete(id);
    }
  }

  get bytes(): number {
    return this.totalBytes;
  }

  get count(): number {
    return this.blobs.size;
  }
}
