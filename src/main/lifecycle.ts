/**
 * The process lifecycle as an explicit state: starting → serving → draining → stopped.
 * Transitions only move forward; listeners see each one once.
 */
export type LifecycleState = 'starting' | 'serving' | 'draining' | 'stopped';

const ORDER: readonly LifecycleState[] = ['starting', 'serving', 'draining', 'stopped'];

export class Lifecycle {
  private current: LifecycleState = 'starting';
  private readonly listeners: ((state: LifecycleState) => void)[] = [];

  get state(): LifecycleState {
    return this.current;
  }

  /** New JobRequests are refused from the moment the drain starts. */
  get acceptingJobs(): boolean {
    return this.current === 'serving';
  }

  get healthy(): boolean {
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
}
