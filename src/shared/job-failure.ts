/** How a job failure reads in logs, webhooks and the `job_cancelled` reason workers get. */
import type { JobFailure } from './scheduler/types';

export function failureText(f: JobFailure): string {
  switch (f.kind) {
    case 'timeout':
      return `timed out${f.phase !== undefined ? ` in phase ${f.phase}` : ''} after ${f.limitSeconds}s`;
    case 'input':
    case 'execution':
      return f.reason;
    case 'internal':
      return `internal error (trace id ${f.traceId}): ${f.reason}`;
  }
}
