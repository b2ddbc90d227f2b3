/** What the client API's handlers share: the service's dependencies and its job-side state. */
import type { ClientSizeLimits } from '../../shared/wire-limits';
import type { ApiServiceDeps } from './deps';
import type { ProgramRegistry } from './programs';
import type { CallRecorder } from './calls';
import type { JobRegistry } from './job-registry';
import type { SchedulerRequests } from './scheduler-requests';

export interface ApiContext {
  readonly deps: ApiServiceDeps;
  /** `[backend] mode = "mock"`: no relays, and setups hold no program bytes. */
  readonly mock: boolean;
  readonly programs: ProgramRegistry;
  readonly jobs: JobRegistry;
  readonly scheduler: SchedulerRequests;
  readonly calls: CallRecorder;
  /** What a client may submit so that every message built from it reaches workers (docs/operations.md, Limits). */
  readonly limits: ClientSizeLimits;
  /** The service is closing: no new jobs, and held calls answer at once. */
  closed(): boolean;
}
