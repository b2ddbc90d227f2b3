/**
 * The worker pool: records in registration order, links, per-state counts and the set of free
 * workers, all kept incrementally so neither the hot path (heartbeat acks) nor the queue walk has to
 * go over the whole pool.
 */
import type { LinkId, WorkerStateName } from '../../shared/scheduler/types';
import type { LinkRec, ProgramKey, WorkerRec } from './model';

export type StateCounts = Record<WorkerStateName, number>;

export function emptyCounts(): StateCounts {
  return { idle: 0, setting_up: 0, ready: 0, computing: 0, disconnected: 0 };
}

/** The one place the coordinator-side worker state is decided (docs/decisions.md, Workers). */
export function deriveState(w: WorkerRec): WorkerStateName {
  if (w.disconnectedAt !== undefined) return 'disconnected';
  if (w.job !== undefined) return 'computing';
  if (w.parked || w.pendingSetups.size > 0) return 'setting_up';
  return w.programs.size > 0 ? 'ready' : 'idle';
}

const NONE: ReadonlySet<WorkerRec> = new Set();

export class WorkerPool {
  /** Map insertion order is registration order; a takeover keeps the entry, so it keeps its place. */
  readonly byId = new Map<string, WorkerRec>();
  readonly links = new Map<LinkId, LinkRec>();
  readonly counts: StateCounts = emptyCounts();
  /**
   * Current records in state Idle or Ready, in no particular order (the queue walk sorts what it
   * picks by `order`): with thousands of workers mostly Computing, planning a job looks at these only.
   */
  readonly free = new Set<WorkerRec>();
  /** The same workers under each program they hold: what a prove or execute job can start on. */
  private readonly freeByProgram = new Map<ProgramKey, Set<WorkerRec>>();
  private nextOrder = 0;

  get liveCount(): number {
    return this.byId.size - this.counts.disconnected;
  }

  create(id: string, capacity: number, now: number): WorkerRec {
    const w: WorkerRec = {
      id,
      order: this.nextOrder++,
      capacity,
      link: undefined,
      generation: 0,
      state: 'idle',
      job: undefined,
      programs: new Map(),
      pendingSetups: new Map(),
      owedSetups: new Map(),
      parked: false,
      cancelPending: new Set(),
      lastSeen: now,
      exempt: false,
      disconnectedAt: undefined,
      livenessTimer: undefined,
      graceTimer: undefined,
      purgeTimer: undefined,
      recoveryTimer: undefined,
      takeovers: [],
    };
    this.byId.set(id, w);
    this.counts.idle++;
    this.free.add(w);
    return w;
  }

  /** Free workers holding `key`, in no particular order. */
  freeHolding(key: ProgramKey): ReadonlySet<WorkerRec> {
    return this.freeByProgram.get(key) ?? NONE;
  }

  /** The only ways a worker's programs change, so the index above follows them. */
  setProgram(w: WorkerRec, key: ProgramKey, vkHex: string): void {
    (w.programs as Map<ProgramKey, string>).set(key, vkHex);
    if (this.free.has(w)) this.index(w, key);
  }

  deleteProgram(w: WorkerRec, key: ProgramKey): void {
    if (this.free.has(w)) this.unindex(w, key);
    (w.programs as Map<ProgramKey, string>).delete(key);
  }

  clearPrograms(w: WorkerRec): void {
    if (this.free.has(w)) for (const key of w.programs.keys()) this.unindex(w, key);
    (w.programs as Map<ProgramKey, string>).clear();
  }

  remove(w: WorkerRec): void {
    if (this.byId.get(w.id) !== w) return;
    this.byId.delete(w.id);
    this.counts[w.state]--;
    this.setFree(w, false);
  }

  /** Recomputes the cached state; returns true when it changed. */
  refresh(w: WorkerRec): boolean {
    const next = deriveState(w);
    if (next === w.state) return false;
    if (this.byId.get(w.id) === w) {
      this.counts[w.state]--;
      this.counts[next]++;
      this.setFree(w, next === 'idle' || next === 'ready');
    }
    w.state = next;
    return true;
  }

  private setFree(w: WorkerRec, free: boolean): void {
    if (free === this.free.has(w)) return;
    if (free) {
      this.free.add(w);
      for (const key of w.programs.keys()) this.index(w, key);
    } else {
      this.free.delete(w);
      for (const key of w.programs.keys()) this.unindex(w, key);
    }
  }

  private index(w: WorkerRec, key: ProgramKey): void {
    let set = this.freeByProgram.get(key);
    if (!set) this.freeByProgram.set(key, (set = new Set()));
    set.add(w);
  }

  private unindex(w: WorkerRec, key: ProgramKey): void {
    const set = this.freeByProgram.get(key);
    if (!set) return;
    set.delete(w);
    if (set.size === 0) this.freeByProgram.delete(key);
  }

  workerOfLink(linkId: LinkId): WorkerRec | undefined {
    return this.links.get(linkId)?.worker;
  }
}
