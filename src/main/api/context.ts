/** What the client API's handlers share: the service's dependencies and its job-side state. */
import type { Config } from '../../shared/config/types';
import type { Directories } from '../process/directories';
import type { Logger } from '../../shared/logging';
import type { SchedulerEvent } from '../../shared/scheduler/events';
import type { BlobStore } from '../data/blob-store';
import type { CoordinatorMetrics } from '../observability/metrics';
import type { Lifecycle } from '../process/lifecycle';
import type { ProgramRegistry } from './programs';
import type { WorkerLink } from '../cluster/worker-link';
import type { CallRecorder } from './calls';
import type { JobRegistry } from './job-registry';
import type { SchedulerRequests } from './scheduler-requests';

export interface ApiServiceDeps {
  config: Config;
  /** Resolved and checked before anything was bound; not re-resolved from `config`. */
  directories: Directories;
  post(event: SchedulerEvent): void;
  blobs: BlobStore;
  /** Worker links by id, for input/hints relays. */
  link(id: number): WorkerLink | undefined;
  /** Encodes a CoordinatorMessage object once (relays write the same bytes to every worker). */
  encodeWorkerMessage(message: Record<string, unknown>): Buffer;
  metrics: CoordinatorMetrics;
  logger: Logger;
  lifecycle: Lifecycle;
}

export interface ApiContext {
  readonly deps: ApiServiceDeps;
  /** `[backend] mode = "mock"`: no relays, and setups hold no program bytes. */
  readonly mock: boolean;
  readonly programs: ProgramRegistry;
  readonly jobs: JobRegistry;
  readonly scheduler: SchedulerRequests;
  readonly calls: CallRecorder;
  /** The service is closing: no new jobs, and held calls answer at once. */
  closed(): boolean;
}
