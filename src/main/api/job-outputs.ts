/** What a finished job leaves outside the coordinator: its webhook notice and its proof file. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Logger } from '../../shared/logging';
import type { EpochMs } from '../../shared/scheduler/types';
import type { JobRecord } from './job-mirror';
import { WEBHOOK_CANCELLED_MESSAGE, WEBHOOK_FAILURE_MESSAGE, type WebhookNotice } from './webhook';

/** The metrics' outcome label of a terminal job. */
export function outcomeOf(rec: JobRecord): 'success' | 'cancelled' | 'failure' {
  return rec.state === 'completed' ? 'success' : rec.state === 'cancelled' ? 'cancelled' : 'failure';
}

/** The webhook notice of a terminal job that ended at `at`. */
export function webhookNotice(rec: JobRecord, at: EpochMs): WebhookNotice {
  const success = rec.state === 'completed';
  return {
    jobId: rec.id,
    success,
    durationMs: at - (rec.startedAt ?? rec.createdAt),
    executedSteps: success ? (rec.result?.executedSteps ?? '0') : null,
    at,
    ...(success ? {} : { errorMessage: rec.state === 'cancelled' ? WEBHOOK_CANCELLED_MESSAGE : WEBHOOK_FAILURE_MESSAGE }),
    ...(success && rec.result?.proofData ? { proofData: rec.result.proofData } : {}),
  };
}

/** `[coordinator] proofs_dir`: `proof_<job_id>.bin`, written to a temp file and renamed, in the background. */
export function saveProof(dir: string, jobId: string, data: Buffer, logger: Logger): void {
  const final = path.join(dir, `proof_${jobId}.bin`);
  const tmp = path.join(dir, `.proof_${jobId}.${randomBytes(4).toString('hex')}.tmp`);
  (async () => {
    await fs.promises.mkdir(dir, { recursive: true });
    try {
      await fs.promises.writeFile(tmp, data, { flag: 'wx' });
      await fs.promises.rename(tmp, final);
    } catch (err) {
      await fs.promises.rm(tmp, { force: true }).catch(() => undefined);
      throw err;
    }
  })().then(
    () => logger.debug({ job_id: jobId, path: final, bytes: data.length }, 'proof saved'),
    (err: Error) => logger.error({ job_id: jobId, path: final, err: err.message }, `could not save the proof of job ${jobId}`),
  );
}
