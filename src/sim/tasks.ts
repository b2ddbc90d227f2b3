/** How a sim worker runs what the coordinator asks of it: setups, tasks of each type, and cancellations. */
import { TASK_TYPE_NAMES, TaskType, type AggParamsIn, type ContributionParamsIn, type ExecuteTaskIn, type SetupProgramIn } from './messages';
import { simWrongVk } from './data';
import type { WorkerConnection } from './connection';
import { faultMessage, type FaultBook } from './faults';
import type { JobCtx, JobSlot, Phase, Running } from './job-context';
import { challengeProblem, inspectAggTask } from './relay-checks';
import type { Replies } from './replies';
import type { JobStreams } from './streams';
import { aggregateResult, contributionResult, executionResult, proveResult, setupAck, wrapResult } from './task-results';
import { appendBounded, hostNow } from './worker-log';
import type { WorkerRuntime } from './worker-runtime';
import type { AggTaskRecord } from './worker-types';

/**
 * Not a valid `Challenges` nor `ProofList`: field 1 as a varint, then a field of wire type 7. A real
 * worker's decoder refuses the whole message carrying it.
 */
export const GARBLED_RELAY = Buffer.from([0x08, 0x01, 0x1f, 0x00]);

const PHASE_OF_TASK: Record<number, Phase> = {
  [TaskType.PARTIAL_CONTRIBUTION]: 'contribution',
  [TaskType.PROVE]: 'prove',
  [TaskType.AGGREGATE]: 'aggregate',
  [TaskType.EXECUTION]: 'execute',
  [TaskType.WRAP]: 'wrap',
};

const DELAY_OF_PHASE = {
  contribution: 'contributionDelayMs',
  prove: 'proveDelayMs',
  aggregate: 'aggregateDelayMs',
  execute: 'executeDelayMs',
  wrap: 'wrapDelayMs',
} as const satisfies Record<Phase, string>;

/** The key of a program set up with or without hints. */
const setupKey = (hashId: string, withHints: boolean): string => `${hashId}:${withHints ? 1 : 0}`;

export class TaskRunner {
  /** Programs set up successfully (`hash_id:0|1`). */
  readonly setups = new Set<string>();
  /** Every AGGREGATE task received, in order. */
  readonly aggTasks: AggTaskRecord[] = [];

  constructor(
    private readonly rt: WorkerRuntime,
    private readonly slot: JobSlot,
    private readonly connection: WorkerConnection,
    private readonly replies: Replies,
    private readonly faults: FaultBook,
    private readonly streams: JobStreams,
  ) {
    for (const s of rt.options.preSetup) this.setups.add(setupKey(s.hashId, s.withHints));
  }

  /** A new process: only the programs of `preSetup` are set up (the rest were in the dead process's memory). */
  forgetSetups(): void {
    this.setups.clear();
    for (const s of this.rt.options.preSetup) this.setups.add(setupKey(s.hashId, s.withHints));
  }

  onSetup(sp: SetupProgramIn): void {
    const { rt } = this;
    rt.stats.setupsReceived++;
    const f = this.faults.take('setup', sp.job_id);
    const delay = f?.delayMs ?? rt.options.setupDelayMs;
    rt.logLine(`setup ${sp.program_name || sp.hash_id.slice(0, 12)} hints=${sp.with_hints} job ${sp.job_id}`);
    this.faults.applyToConnection(f);
    this.connection.block(delay, () => {
      const ack = setupAck(sp, rt.options.workerId);
      if (f?.action === 'error') {
        ack.success = false;
        ack.error_message = faultMessage(f, 'setup', 'failure');
        ack.vk = Buffer.alloc(0);
      } else if (rt.options.setupPrograms && !rt.options.setupPrograms.includes(sp.hash_id)) {
        ack.success = false;
        ack.error_message = `program ${sp.hash_id} is not supported by this worker`;
        ack.vk = Buffer.alloc(0);
      } else if (f?.action === 'workerError') {
        this.replies.workerError(sp.job_id, faultMessage(f, 'setup', 'worker error'));
        return;
      } else if (f?.action === 'wrongVk') {
        ack.vk = simWrongVk(sp.hash_id, sp.with_hints, rt.options.workerId);
      }
      if (ack.success) this.setups.add(setupKey(sp.hash_id, sp.with_hints));
      rt.stats.setupAcks++;
      rt.logLine(`setup ack job ${sp.job_id}: ${ack.success ? `ok vk ${ack.vk.toString('hex').slice(0, 16)}…` : `FAILED (${ack.error_message})`}`);
      this.connection.send({ setup_program_ack: ack });
    });
  }

  onTask(t: ExecuteTaskIn): void {
    const receivedAt = Date.now();
    const phase = PHASE_OF_TASK[t.task_type];
    this.rt.events.emit('task', t);
    this.rt.logLine(`task ${TASK_TYPE_NAMES[t.task_type] ?? t.task_type} job ${t.job_id}`);
    if (!phase) {
      this.replies.dispatchFailure(t, `Unknown task type ${t.task_type}`);
      return;
    }
    this.rt.stats.tasksReceived[phase]++;
    const refuse = (message: string): void => this.replies.dispatchFailure(t, message);
    switch (phase) {
      case 'contribution':
      case 'execute': {
        const p = phase === 'contribution' ? t.contribution_params : t.execution_params;
        if (!p) return refuse(`Missing ${phase === 'contribution' ? 'contribution_params' : 'execution_params'} for ${TASK_TYPE_NAMES[t.task_type]}`);
        return this.startContribution(t, phase, p, receivedAt);
      }
      case 'prove':
        if (!t.prove_params) return refuse('Missing prove_params for PROVE');
        return this.startProve(t, t.prove_params.challenges);
      case 'aggregate':
        if (!t.agg_params) return refuse('Missing agg_params for AGGREGATE');
        if (t.agg_params.agg_proofs === undefined) return refuse('Missing agg_proofs in AggParams');
        return this.startAggregate(t, t.agg_params);
      case 'wrap':
        if (!t.wrap_params) return refuse('Missing wrap_params for WRAP');
        return this.runWrap(t, t.wrap_params);
    }
  }

  onJobCancelled(jobId: string, reason: string): void {
    const { rt } = this;
    rt.stats.cancelsReceived++;
    rt.logLine(`job ${jobId} cancelled: ${reason}`);
    this.connection.send({ job_cancelled_ack: { worker_id: rt.options.workerId, job_id: jobId } });
    if (!this.slot.holding(jobId)) return;
    // Computing → recovery, then recovery_complete; holding the context idle → recovery_complete at once.
    const wasRunning = this.slot.drop();
    this.replies.recover(wasRunning ? rt.options.recoveryDelayMs : 0);
  }

  // ------------------------------------------------------------------ computations

  /**
   * Runs a background computation for the current context. When the delay ends, a fault (error /
   * workerError) replaces the result; otherwise `complete` sends it.
   */
  private compute(ctx: JobCtx, task: ExecuteTaskIn, phase: Phase, complete: (garble: boolean) => void): void {
    const f = this.faults.take(phase, task.job_id);
    const delay = f?.delayMs ?? this.rt.options[DELAY_OF_PHASE[phase]];
    const run: Running = {
      phase,
      cancel: undefined,
      waiting: false,
      finish: () => {
        if (ctx.running !== run) return;
        ctx.running = null;
        if (f?.action === 'error') {
          const inRecovery = f.workerInRecovery === true;
          this.replies.respond(task, { success: false, error_message: faultMessage(f, phase, 'failure'), worker_in_recovery: inRecovery });
          if (inRecovery) {
            if (this.slot.current === ctx) this.slot.drop();
            this.replies.recover(this.rt.options.recoveryDelayMs);
          }
        } else if (f?.action === 'workerError') {
          this.replies.workerError(task.job_id, faultMessage(f, phase, 'worker error'));
        } else {
          complete(f?.action === 'garbleRelay');
        }
        this.nextAggregate(ctx);
      },
    };
    ctx.running = run;
    this.faults.applyToConnection(f);
    const elapsed = (): void => {
      run.cancel = undefined;
      if (this.rt.silent) return; // a hung worker: the computation never ends
      if (this.mustWaitForHints(ctx, phase)) run.waiting = true;
      else run.finish();
    };
    // An instant task answers on the next turn: setTimeout(0) waits for the timers phase (≥ 1 ms),
    // which would put ~1 ms per phase into every latency the bench measures.
    if (delay > 0) {
      const t = setTimeout(elapsed, delay);
      run.cancel = () => clearTimeout(t);
    } else {
      const t = setImmediate(elapsed);
      run.cancel = () => clearImmediate(t);
    }
  }

  private mustWaitForHints(ctx: JobCtx, phase: Phase): boolean {
    if (!this.rt.options.waitForHintsEnd || !ctx.hintsStream) return false;
    if (phase !== 'contribution' && phase !== 'execute') return false;
    return !this.streams.hintsEnded(ctx.jobId);
  }

  /** The held context of a PROVE / AGGREGATE task's job; refuses the task when there is none. */
  private contextFor(t: ExecuteTaskIn): JobCtx | undefined {
    const ctx = this.slot.holding(t.job_id);
    if (!ctx) this.replies.dispatchFailure(t, `No job context for ${t.job_id} (current: ${this.slot.current?.jobId ?? 'none'})`);
    return ctx;
  }

  private startContribution(t: ExecuteTaskIn, phase: 'contribution' | 'execute', p: ContributionParamsIn, receivedAt: number): void {
    const { options } = this.rt;
    const hasHints = p.hints_stream || p.hints_path !== undefined || p.hints_data !== undefined;
    if (options.requireSetup && !this.setups.has(setupKey(p.hash_id, hasHints))) {
      return this.replies.dispatchFailure(t, `Program ${p.hash_id} is not set up${hasHints ? ' with hints' : ''}`);
    }
    // One job context at a time: a new contribution/execution task replaces (and cancels) the old one.
    this.slot.drop();
    const ctx = this.slot.hold(t.job_id, p.rank_id, p.total_workers, p.hash_id, p.hints_stream);
    this.streams.open(t.job_id);
    const started = hostNow();
    this.compute(ctx, t, phase, (garble) => {
      const elapsed = hostNow() - started;
      const result =
        phase === 'execute'
          ? executionResult(t.job_id, elapsed, receivedAt)
          : contributionResult(t.job_id, ctx.rank, options.workerId, elapsed, receivedAt);
      if (garble && result.challenges) result.challenges.challenges = [GARBLED_RELAY];
      this.replies.respond(t, result);
    });
  }

  private startProve(t: ExecuteTaskIn, challenges: Buffer[]): void {
    const ctx = this.contextFor(t);
    if (!ctx) return;
    if (ctx.running) return this.replies.dispatchFailure(t, `Job ${t.job_id} is still computing ${ctx.running.phase}`);
    const { rt } = this;
    rt.stats.challengeEntriesChecked += challenges.length;
    const problem = challengeProblem(t.job_id, ctx.totalWorkers, challenges);
    if (problem) {
      rt.stats.challengeMismatches++;
      rt.logLine(`challenge check failed for job ${t.job_id}: ${problem}`);
      rt.events.emit('challengeMismatch', t.job_id, problem);
      if (rt.options.verifyChallenges) {
        return this.replies.respond(t, { success: false, error_message: `Challenge check failed: ${problem}`, worker_in_recovery: false });
      }
    }
    // A non-aggregator keeps the context until its next job or a JobCancelled (real worker).
    this.compute(ctx, t, 'prove', (garble) => {
      const result = proveResult(ctx.rank, rt.options.proofValues, rt.options.proofsPerTask);
      this.replies.respond(t, garble ? { ...result, proofs: GARBLED_RELAY } : result);
    });
  }

  private startAggregate(t: ExecuteTaskIn, p: AggParamsIn): void {
    const rec = inspectAggTask(t.job_id, p);
    if (rec) appendBounded(this.aggTasks, rec, this.rt.options.maxLogEntries);
    const ctx = this.contextFor(t);
    if (!ctx) return;
    if (!rec) return this.replies.dispatchFailure(t, 'Undecodable agg_proofs');
    if (ctx.running) {
      // The prover aggregates one step at a time; a second task while one runs means the coordinator
      // sent two in flight (cluster-protocol §7 C2). Queue it, and count it so tests can catch it.
      this.rt.stats.aggOverlaps++;
      ctx.aggQueue.push(t);
      return;
    }
    this.runAggregate(ctx, t);
  }

  private nextAggregate(ctx: JobCtx): void {
    if (this.slot.current !== ctx || ctx.running || ctx.aggQueue.length === 0) return;
    this.runAggregate(ctx, ctx.aggQueue.shift() as ExecuteTaskIn);
  }

  private runAggregate(ctx: JobCtx, t: ExecuteTaskIn): void {
    const p = t.agg_params as AggParamsIn;
    const last = p.last_proof || p.final_proof;
    this.compute(ctx, t, 'aggregate', () => {
      this.replies.respond(t, aggregateResult(t.job_id, last, this.rt.options.finalProofBytes));
      // The aggregator drops its context after the final proof (real worker).
      if (last && this.slot.current === ctx) this.slot.drop();
    });
  }

  private runWrap(t: ExecuteTaskIn, w: NonNullable<ExecuteTaskIn['wrap_params']>): void {
    if (w.proof_dest !== 1 && w.proof_dest !== 2) return this.replies.dispatchFailure(t, `Invalid proof_dest ${w.proof_dest}`);
    const f = this.faults.take('wrap', t.job_id);
    this.faults.applyToConnection(f);
    // Wrap runs inside the real worker's event loop: no heartbeats, no message handling meanwhile.
    this.connection.block(f?.delayMs ?? this.rt.options.wrapDelayMs, () => {
      if (f?.action === 'error') {
        this.replies.respond(t, { success: false, error_message: faultMessage(f, 'wrap', 'failure'), worker_in_recovery: false });
      } else if (f?.action === 'workerError') {
        this.replies.workerError(t.job_id, faultMessage(f, 'wrap', 'worker error'));
      } else {
        this.replies.respond(t, wrapResult(w.proof_data, w.proof_dest, this.rt.options.wrapProofBytes));
      }
    });
  }
}
