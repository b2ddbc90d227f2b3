/** What a sim worker reports to the coordinator about its work: task responses, worker errors, recovery. */
import { TASK_TYPE_NAMES, type ExecuteTaskIn, type ExecuteTaskResponseOut } from './messages';
import type { WorkerConnection } from './connection';
import type { WorkerRuntime } from './worker-runtime';

/** The fields of a task that its response echoes. */
type TaskRef = Pick<ExecuteTaskIn, 'job_id' | 'task_type'>;

function taskName(taskType: number): string | number {
  return TASK_TYPE_NAMES[taskType] ?? taskType;
}

export class Replies {
  constructor(
    private readonly rt: WorkerRuntime,
    private readonly connection: WorkerConnection,
  ) {}

  respond(task: TaskRef, body: Partial<ExecuteTaskResponseOut> & { success: boolean }): void {
    const r: ExecuteTaskResponseOut = {
      job_id: task.job_id,
      worker_id: this.rt.options.workerId,
      task_type: task.task_type,
      ...body,
    };
    if (r.success) this.rt.stats.responsesSent++;
    else this.rt.stats.failuresSent++;
    this.rt.logLine(`result ${taskName(r.task_type)} job ${r.job_id}: ${r.success ? 'ok' : `FAILED (${r.error_message ?? ''})`}`);
    this.connection.send({ execute_task_response: r });
  }

  /** A task refused before it ran (what the real worker answers for a malformed or unexpected task). */
  dispatchFailure(task: TaskRef, message: string): void {
    this.rt.stats.dispatchFailures++;
    this.rt.logLine(`dispatch failure ${taskName(task.task_type)} job ${task.job_id}: ${message}`);
    this.respond(task, { success: false, error_message: message, worker_in_recovery: false });
  }

  workerError(jobId: string, message: string): void {
    this.rt.stats.workerErrorsSent++;
    this.rt.logLine(`WorkerError job ${jobId}: ${message}`);
    this.connection.send({ error: { worker_id: this.rt.options.workerId, job_id: jobId, error_message: message } });
  }

  /** `recovery_complete` after `afterMs` (at once for 0). */
  recover(afterMs: number): void {
    const done = (): void => {
      this.rt.stats.recoveriesSent++;
      this.connection.send({ recovery_complete: { worker_id: this.rt.options.workerId } });
    };
    if (afterMs <= 0) done();
    else this.rt.later(afterMs, done);
  }
}
