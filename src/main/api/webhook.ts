/**
 * Job-completion webhook (`[coordinator] webhook_url`; docs/decisions.md, Webhook):
 * a JSON POST for every terminal outcome of prove, execute and wrap jobs, with upstream's body and
 * retry policy. Deliveries run in the background; nothing ever waits for them.
 */
import type { Logger } from '../../shared/logging';

export interface WebhookOptions {
  url: string;
  logger: Logger;
  maxAttempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  requestTimeoutMs?: number;
}

export interface WebhookNotice {
  jobId: string;
  success: boolean;
  durationMs: number;
  /** decimal uint64; null on failure */
  executedSteps: string | null;
  at: number;
  /** present on failure (and cancellation) */
  errorMessage?: string;
  proofData?: Buffer;
}

export const WEBHOOK_DEFAULTS = {
  maxAttempts: 10,
  baseDelayMs: 50,
  maxDelayMs: 2_000,
  requestTimeoutMs: 60_000,
} as const;

/** upstream's failure text; the reason itself stays in the coordinator's logs */
export const WEBHOOK_FAILURE_MESSAGE = 'The job has failed during execution.';
export const WEBHOOK_CANCELLED_MESSAGE = 'The job was cancelled.';

/** `{$job_id}` is replaced when present, otherwise `/<job_id>` is appended. */
export function webhookUrlFor(template: string, jobId: string): string {
  if (template.includes('{$job_id}')) return template.split('{$job_id}').join(jobId);
  return `${template.replace(/\/+$/, '')}/${jobId}`;
}

/**
 * The JSON body. `executed_steps` is written as a JSON number from its decimal text, so a u64 above
 * 2^53 is not rounded on the way out (serde reads it exactly).
 */
export function webhookBody(n: WebhookNotice): string {
  const steps = n.executedSteps !== null && /^\d+$/.test(n.executedSteps) ? n.executedSteps : 'null';
  const fields = [
    `"job_id":${JSON.stringify(n.jobId)}`,
    `"success":${n.success}`,
    `"duration_ms":${Math.max(0, Math.round(n.durationMs))}`,
    `"executed_steps":${steps}`,
    `"timestamp":${JSON.stringify(new Date(n.at).toISOString())}`,
    `"error":${n.errorMessage === undefined ? 'null' : JSON.stringify({ code: 'JOB_FAILED', message: n.errorMessage })}`,
  ];
  if (n.proofData) fields.push(`"proof_data":[${n.proofData.join(',')}]`);
  return `{${fields.join(',')}}`;
}

export class WebhookNotifier {
  private readonly maxAttempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly requestTimeoutMs: number;
  private readonly stop = new AbortController();
  private readonly inFlight = new Set<Promise<void>>();

  constructor(private readonly opts: WebhookOptions) {
    this.maxAttempts = opts.maxAttempts ?? WEBHOOK_DEFAULTS.maxAttempts;
    this.baseDelayMs = opts.baseDelayMs ?? WEBHOOK_DEFAULTS.baseDelayMs;
    this.maxDelayMs = opts.maxDelayMs ?? WEBHOOK_DEFAULTS.maxDelayMs;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? WEBHOOK_DEFAULTS.requestTimeoutMs;
  }

  /** Fire and forget. */
  notify(notice: WebhookNotice): void {
    if (this.stop.signal.aborted) return;
    const p = this.deliver(notice).finally(() => this.inFlight.delete(p));
    this.inFlight.add(p);
  }

  /** Deliveries still being attempted. */
  get pending(): number {
    return this.inFlight.size;
  }

  /** Gives in-flight deliveries up to `graceMs`, then abandons them (each logs that). */
  async close(graceMs = 0): Promise<void> {
    if (this.inFlight.size > 0 && graceMs > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled([...this.inFlight]),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs))),
      ]);
      if (timer) clearTimeout(timer);
    }
    this.stop.abort();
    await Promise.allSettled([...this.inFlight]);
  }

  private async deliver(notice: WebhookNotice): Promise<void> {
    const url = webhookUrlFor(this.opts.url, notice.jobId);
    const body = webhookBody(notice);
    let lastError = '';
    for (let attempt = 1; attempt <= this.maxAttempts; attempt++) {
      if (this.stop.signal.aborted) break;
      try {
        const res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
          signal: AbortSignal.any([this.stop.signal, AbortSignal.timeout(this.requestTimeoutMs)]),
        });
        // The body is not used; reading it releases the connection.
        await res.arrayBuffer().catch(() => undefined);
        if (res.ok) {
          this.opts.logger.debug({ job_id: notice.jobId, attempt, status: res.status }, 'webhook delivered');
          return;
        }
        lastError = `HTTP ${res.status}`;
      } catch (err) {
        lastError = describeFetchError(err);
      }
      if (attempt < this.maxAttempts && !this.stop.signal.aborted) {
        const delay = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** (attempt - 1));
        this.opts.logger.debug({ job_id: notice.jobId, attempt, err: lastError, retry_in_ms: delay }, 'webhook attempt failed');
        await sleep(delay, this.stop.signal);
      }
    }
    const abandoned = this.stop.signal.aborted;
    this.opts.logger.error(
      { job_id: notice.jobId, url, err: lastError, abandoned },
      abandoned
        ? `webhook for job ${notice.jobId} abandoned at shutdown (last error: ${lastError || 'none'})`
        : `webhook for job ${notice.jobId} failed after ${this.maxAttempts} attempts: ${lastError}`,
    );
  }
}

function describeFetchError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = (err as Error & { cause?: unknown }).cause;
  if (err.name === 'TimeoutError') return 'request timed out';
  return cause instanceof Error ? `${err.message}: ${cause.message}` : err.message;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
