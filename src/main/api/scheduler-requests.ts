/** Submits and cancels posted to the scheduler, each matched to its reply and bounded in time. */
import { apiErrors, type ApiErrorData } from '../../shared/errors';
import type { JobSpec } from '../../shared/scheduler/types';
import type { SchedulerEvent } from '../../shared/scheduler/events';
import type { SchedulerEffect } from '../../shared/scheduler/effects';

/** A scheduler that does not answer a submit or cancel within this is broken; the client gets INTERNAL. */
const SCHEDULER_REPLY_TIMEOUT_MS = 30_000;

export type SubmitOutcome = { ok: true } | { ok: false; error: ApiErrorData };
export type CancelOutcome = { found: boolean; cancelled: boolean };

export class SchedulerRequests {
  private nextRequestId = 1;
  private readonly pendingSubmits = new Map<number, (o: SubmitOutcome) => void>();
  private readonly pendingCancels = new Map<number, (o: CancelOutcome) => void>();

  constructor(private readonly post: (event: SchedulerEvent) => void) {}

  submit(jobId: string, spec: JobSpec): Promise<SubmitOutcome> {
    return this.request(this.pendingSubmits, (requestId) => ({ type: 'submitJob', requestId, jobId, spec }), 'submit');
  }

  cancel(jobId: string): Promise<CancelOutcome> {
    return this.request(this.pendingCancels, (requestId) => ({ type: 'cancelJob', requestId, jobId }), 'cancel');
  }

  /** Cancels a job whose submit went unanswered; nobody waits for the reply. */
  cancelUnanswered(jobId: string): void {
    this.post({ type: 'cancelJob', requestId: this.nextRequestId++, jobId });
  }

  answerSubmit(effect: Extract<SchedulerEffect, { type: 'submitResult' }>): void {
    const resolve = this.pendingSubmits.get(effect.requestId);
    this.pendingSubmits.delete(effect.requestId);
    resolve?.(effect.ok ? { ok: true } : { ok: false, error: { code: effect.code, message: effect.message } });
  }

  answerCancel(effect: Extract<SchedulerEffect, { type: 'cancelResult' }>): void {
    const resolve = this.pendingCancels.get(effect.requestId);
    this.pendingCancels.delete(effect.requestId);
    resolve?.({ found: effect.found, cancelled: effect.cancelled });
  }

  /** Shutdown: pending submits are refused, pending cancels report that nothing was cancelled. */
  close(): void {
    for (const resolve of this.pendingSubmits.values()) resolve({ ok: false, error: apiErrors.shuttingDown() });
    this.pendingSubmits.clear();
    for (const resolve of this.pendingCancels.values()) resolve({ found: true, cancelled: false });
    this.pendingCancels.clear();
  }

  private request<T>(pending: Map<number, (o: T) => void>, build: (requestId: number) => SchedulerEvent, what: string): Promise<T> {
    const requestId = this.nextRequestId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(requestId);
        reject(new Error(`the scheduler did not answer a ${what} within ${SCHEDULER_REPLY_TIMEOUT_MS} ms`));
      }, SCHEDULER_REPLY_TIMEOUT_MS);
      pending.set(requestId, (o) => {
        clearTimeout(timer);
        resolve(o);
      });
      this.post(build(requestId));
    });
  }
}
