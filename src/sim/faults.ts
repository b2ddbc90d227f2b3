/** Injected faults: which one a task of a phase takes, and the connection-level part of it. */
import type { WorkerConnection } from './connection';
import type { SimFault, SimPhase } from './options';
import type { WorkerRuntime } from './worker-runtime';

/** The text of a fault's `error` or `workerError` (its own message, else a default naming the phase). */
export function faultMessage(f: SimFault, phase: SimPhase, what: 'failure' | 'worker error'): string {
  return f.message ?? `simulated ${phase} ${what}`;
}

export class FaultBook {
  /** Tasks each phase's fault has applied to since it was set. */
  private readonly uses = new Map<SimPhase, number>();

  /** @param kill ends the worker process and starts a new one after the given delay (`SimWorker.kill`). */
  constructor(
    private readonly rt: WorkerRuntime,
    private readonly connection: WorkerConnection,
    private readonly kill: (restartAfterMs: number) => void,
  ) {}

  /** Adds or replaces the fault of a phase (its use counter restarts). */
  inject(phase: SimPhase, fault: SimFault): void {
    this.rt.options.faults[phase] = fault;
    this.uses.delete(phase);
  }

  clear(): void {
    this.rt.options.faults = {};
    this.uses.clear();
  }

  /** The fault a task of `phase` for `jobId` takes now, if any (counting it as used). */
  take(phase: SimPhase, jobId: string): SimFault | undefined {
    const f = this.rt.options.faults[phase];
    if (!f) return undefined;
    if (f.jobId !== undefined && f.jobId !== jobId) return undefined;
    const used = this.uses.get(phase) ?? 0;
    const times = f.times ?? (f.action ? 1 : Infinity);
    if (used >= times) return undefined;
    this.uses.set(phase, used + 1);
    return f;
  }

  /**
   * Schedules the connection-level part of a fault `atMs` after task receipt. A silenced task never
   * completes: its timer finds the worker silent and leaves it running (see `compute` / `block`).
   */
  applyToConnection(f: SimFault | undefined): void {
    if (!f?.action) return;
    const { rt, connection } = this;
    const fire = (): void => {
      switch (f.action) {
        case 'disconnect':
          rt.logLine('fault: disconnect');
          connection.drop(f.reconnectAfterMs ?? 0);
          return;
        case 'silence':
          rt.logLine('fault: silence');
          connection.silence();
          if (f.durationMs !== undefined) rt.later(f.durationMs, () => connection.unsilence());
          return;
        case 'kill':
          rt.logLine('fault: kill');
          this.kill(f.reconnectAfterMs ?? 0);
          return;
        case 'slowReader':
          rt.logLine('fault: slow reader');
          connection.pauseReading();
          if (f.durationMs !== undefined) rt.later(f.durationMs, () => connection.resumeReading());
          return;
        default:
          return;
      }
    };
    if (f.atMs && f.atMs > 0) rt.later(f.atMs, fire);
    else fire();
  }
}
