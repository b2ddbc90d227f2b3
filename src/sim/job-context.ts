/** The one job a sim worker holds at a time (as the real worker does) and the computation running for it. */
import type { ExecuteTaskIn } from './messages';
import type { SimPhase } from './options';
import type { JobContextInfo } from './worker-types';

/** Phases that run as tasks inside a job context (setup does not). */
export type Phase = Exclude<SimPhase, 'setup'>;

export interface Running {
  phase: Phase;
  /** Stops the pending computation; undefined once it has fired. */
  cancel: (() => void) | undefined;
  /** Timer elapsed but waiting on something (hints END). */
  waiting: boolean;
  finish: () => void;
}

export interface JobCtx {
  jobId: string;
  rank: number;
  totalWorkers: number;
  hashId: string;
  hintsStream: boolean;
  running: Running | null;
  /** AGGREGATE tasks that arrived while another computation ran. */
  aggQueue: ExecuteTaskIn[];
}

export class JobSlot {
  current: JobCtx | null = null;

  /** Takes up a job in place of whatever was held (`drop` that first to stop its computation). */
  hold(jobId: string, rank: number, totalWorkers: number, hashId: string, hintsStream: boolean): JobCtx {
    this.current = { jobId, rank, totalWorkers, hashId, hintsStream, running: null, aggQueue: [] };
    return this.current;
  }

  /** The held job if it is `jobId`. */
  holding(jobId: string): JobCtx | undefined {
    return this.current?.jobId === jobId ? this.current : undefined;
  }

  /** Drops the job context; returns whether a computation was running (so recovery is due). */
  drop(): boolean {
    const c = this.current;
    if (!c) return false;
    this.current = null;
    const wasRunning = c.running !== null || c.aggQueue.length > 0;
    c.running?.cancel?.();
    c.running = null;
    c.aggQueue.length = 0;
    return wasRunning;
  }

  info(): JobContextInfo | null {
    const c = this.current;
    return c ? { jobId: c.jobId, rank: c.rank, totalWorkers: c.totalWorkers, hashId: c.hashId, running: c.running?.phase ?? null } : null;
  }
}
