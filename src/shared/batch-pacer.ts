/**
 * Paces the batches that cross between the main thread and the scheduler thread
 * (docs/architecture.md, Threads and the channel between them).
 *
 * Waking a sleeping thread costs tens of microseconds of CPU on each side, far more than the
 * structured clone of a batch, and under load it happens about once per job in each direction. The
 * pacer lets a batch leave at once when the previous one left at least `minGapMs` ago (light load:
 * no added latency), and otherwise holds it until that gap has passed while later items join it
 * (heavy load: at most one wake-up per gap however many jobs run).
 */
export class BatchPacer {
  private scheduled = false;
  private lastSent = Number.NEGATIVE_INFINITY;
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;

  /**
   * @param send takes whatever accumulated and sends it; called at most once per `minGapMs`.
   * @param sameTurn when the gap has passed: true sends inside `request()`, false at the end of the
   *   current turn of the event loop (so everything posted in one turn leaves as one batch).
   */
  constructor(
    private readonly minGapMs: number,
    private readonly send: () => void,
    private readonly sameTurn: boolean,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Something was added to the pending batch: make sure it leaves. */
  request(): void {
    if (this.scheduled) return;
    const wait = this.lastSent + this.minGapMs - this.now();
    if (wait <= 0 && this.sameTurn) {
      this.run();
      return;
    }
    this.scheduled = true;
    if (wait <= 0) this.immediate = setImmediate(this.run);
    else this.timer = setTimeout(this.run, wait);
  }

  /** Drops a pending send (the channel is closing). */
  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
    this.scheduled = false;
  }

  private run = (): void => {
    this.scheduled = false;
    this.timer = undefined;
    this.immediate = undefined;
    this.lastSent = this.now();
    this.send();
  };
}
