/** What the client API gets from the rest of the process (wired in src/main/process/app.ts). */
import type { Config, Directories } from '../../shared/config/types';
import type { Logger } from '../../shared/logging';
import type { SchedulerEvent } from '../../shared/scheduler/events';
import type { BlobStore } from '../data/blob-store';
import type { RelayTarget } from '../data/relays';
import type { CoordinatorMetrics } from '../observability/metrics';
import type { JobStore } from '../state/store';

export interface ApiServiceDeps {
  config: Config;
  /** Resolved and checked before anything was bound; not re-resolved from `config`. */
  directories: Directories;
  post(event: SchedulerEvent): void;
  blobs: BlobStore;
  /** Worker links by id, for input/hints relays. */
  link(id: number): RelayTarget | undefined;
  /** Encodes a CoordinatorMessage object once (relays write the same bytes to every worker). */
  encodeWorkerMessage(message: Record<string, unknown>): Buffer;
  metrics: CoordinatorMetrics;
  /** Where jobs are recorded (docs/decisions.md, Durable jobs); opened and checked before anything binds. */
  store: JobStore;
  /** Why new jobs cannot be made durable now (the state store's disk is nearly full), or undefined. */
  storeShortage(): string | undefined;
  logger: Logger;
  /** The process lifecycle, as far as the client API needs it: new jobs only while serving. */
  lifecycle: { readonly acceptingJobs: boolean };
}
