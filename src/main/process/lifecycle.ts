/**
 * The process lifecycle as an explicit state: starting → serving → draining → stopped, and the
 * ordered list of close hooks that takes it down.
 *
 * Transitions only move forward; listeners see each one once. Both readiness signals (gRPC health
 * and HTTP `/health`) are derived from this one state in the same listener call, so they never
 * disagree (docs/operations.md, "Readiness").
 *
 * Close hooks are registered as each part starts and run in reverse order (the last part started is
 * the first stopped), each one bounded by its own grace; a hook that throws is logged and the next
 * one still runs. A startup that fails half-way runs the hooks registered so far, so there is one
 * teardown, not one per failure path.
 *
 * Reload hooks are what SIGHUP re-reads or reopens (docs/operations.md, Reloading: SIGHUP), each part
 * registering its own: they run in registration order, one reload at a time, and one that throws is
 * reported without stopping the others.
 */
export type LifecycleState = 'starting' | 'serving' | 'draining' | 'stopped';

const ORDER: readonly LifecycleState[] = ['starting', 'serving', 'draining', 'stopped'];

export interface CloseHook {
  /** Named in the log line when it fails. */
  name: string;
  run(): Promise<void> | void;
}

export class Lifecycle {
  private current: LifecycleState = 'starting';
  private readonly listeners: ((state: LifecycleState) => void)[] = [];
  private readonly closeHooks: CloseHook[] = [];
  private readonly reloadHooks: CloseHook[] = [];
  private reloading: Promise<void> = Promise.resolve();
  private closing: Promise<void> | undefined;

  get state(): LifecycleState {
    return this.current;
  }

  /** New JobRequests are refused from the moment the drain starts. */
  get acceptingJobs(): boolean {
    return this.current === 'serving';
  }

  /** What both readiness signals report. */
  get ready(): boolean {
    return this.current === 'serving';
  }

  onChange(listener: (state: LifecycleState) => void): void {
    this.listeners.push(listener);
  }

  /** Moves forward to `next`; returns false (and changes nothing) if that would go backwards or stay. */
  advance(next: LifecycleState): boolean {
    if (ORDER.indexOf(next) <= ORDER.indexOf(this.current)) return false;
    this.current = next;
    for (const l of this.listeners) l(next);
    return true;
  }

  /** Registers the teardown of a part that just started. */
  onClose(name: string, run: CloseHook['run']): void {
    this.closeHooks.push({ name, run });
  }

  /** Registers something a reload (SIGHUP) re-reads or reopens. */
  onReload(name: string, run: CloseHook['run']): void {
    this.reloadHooks.push({ name, run });
  }

  /**
   * Runs every reload hook in registration order, after any reload still running (signals can come
   * faster than a hook finishes). Nothing runs once the process has begun closing.
   */
  reload(onError: (hook: string, err: unknown) => void): Promise<void> {
    this.reloading = this.reloading.then(async () => {
      for (const hook of this.reloadHooks) {
        if (this.closing) return;
        try {
          await hook.run();
        } catch (err) {
          onError(hook.name, err);
        }
      }
    });
    return this.reloading;
  }

  /**
   * Runs every close hook once, newest first, then moves to `stopped`. Later calls return the same
   * promise. `onError` hears about hooks that threw.
   */
  close(onError: (hook: string, err: unknown) => void): Promise<void> {
    this.closing ??= (async () => {
      if (this.current === 'starting' || this.current === 'serving') this.advance('draining');
      for (const hook of this.closeHooks.splice(0).reverse()) {
        try {
          await hook.run();
        } catch (err) {
          onError(hook.name, err);
        }
      }
      this.advance('stopped');
    })();
    return this.closing;
  }
}
