/**
 * Drives a SchedulerCore directly with a fake clock and a sequential id source, and gives the tests
 * short names for the worker and client sides of the protocol.
 */
import assert from 'node:assert/strict';
import { defaultConfig } from '../../src/shared/config/schema';
import { SchedulerCore, type CoreConfig, type JobSnapshot, type WorkerSnapshot } from '../../src/threads/scheduler-core';
import type { InputSpec, JobFailure, JobSpec, ProofKind, TaskResultSummary, TaskType } from '../../src/shared/scheduler/types';
import type { SchedulerEvent } from '../../src/shared/scheduler/events';
import type { SchedulerEffect } from '../../src/shared/scheduler/effects';

export const HASH = 'a'.repeat(64);
export const HASH2 = 'b'.repeat(64);
export const VK = '0102030405060708';
export const T0 = 1_700_000_000_000;

export const CONTRIBUTION: TaskType = 0;
export const PROVE: TaskType = 1;
export const AGGREGATE: TaskType = 2;
export const EXECUTION: TaskType = 3;
export const WRAP: TaskType = 4;

/**
 * The documented defaults (README, Configuration), so tests read as "the default, except …"; but one
 * attempt per job: most tests pin what a single attempt does (retries have their own).
 */
export const DEFAULTS: CoreConfig = { ...defaultConfig().coordinator, max_job_attempts: 1 };

export type EffectType = SchedulerEffect['type'];
export type EffectOf<T extends EffectType> = Extract<SchedulerEffect, { type: T }>;

export function only<T extends EffectType>(effects: readonly SchedulerEffect[], type: T): EffectOf<T>[] {
  return effects.filter((e): e is EffectOf<T> => e.type === type);
}

export function one<T extends EffectType>(effects: readonly SchedulerEffect[], type: T): EffectOf<T> {
  const found = only(effects, type);
  assert.equal(found.length, 1, `expected exactly one ${type}, got ${found.length}`);
  return found[0];
}

export function none(effects: readonly SchedulerEffect[], type: EffectType): void {
  assert.equal(only(effects, type).length, 0, `expected no ${type}`);
}

/** The job's events, as `kind` or `progress:<phase>`, in order. */
export function eventKinds(effects: readonly SchedulerEffect[], jobId: string): string[] {
  return only(effects, 'jobEvent')
    .filter((e) => e.jobId === jobId)
    .map((e) => (e.event.kind === 'progress' ? `progress:${e.event.phase}` : e.event.kind));
}

export function terminalEvent(effects: readonly SchedulerEffect[], jobId: string): EffectOf<'jobEvent'>['event'] {
  const terminal = only(effects, 'jobEvent').filter(
    (e) =>
      e.jobId === jobId &&
      (e.event.kind === 'completed' || e.event.kind === 'failed' || e.event.kind === 'cancelled'),
  );
  assert.equal(terminal.length, 1, `expected one terminal event for ${jobId}, got ${terminal.length}`);
  return terminal[0].event;
}

export function failureOf(effects: readonly SchedulerEffect[], jobId: string): JobFailure {
  const ev = terminalEvent(effects, jobId);
  if (ev.kind !== 'failed') assert.fail(`job ${jobId} did not fail: ${ev.kind}`);
  return ev.failure;
}

export interface HelloOptions {
  units?: number;
  reconnect?: boolean;
  lastKnownJobId?: string;
}

export interface ResultOptions {
  success?: boolean;
  errorMessage?: string;
  inRecovery?: boolean;
  /** send it on this link instead of the worker's current one */
  linkId?: number;
}

export interface JobOptions {
  hashId?: string;
  hints?: boolean;
  proofKind?: ProofKind;
  deadline?: number;
  input?: InputSpec;
}

export class Harness {
  readonly core: SchedulerCore;
  now = T0;
  /** every effect so far, in order */
  readonly all: SchedulerEffect[] = [];
  /** the last task result sent, so tests can follow its blobs */
  lastResult: TaskResultSummary | undefined;
  /** the test's view of each worker's current link */
  readonly linkOf = new Map<string, number>();
  private readonly workerOfLink = new Map<number, string>();
  private linkSeq = 0;
  private blobSeq = 1000;
  private idSeq = 0;
  private jobSeq = 0;
  private requestSeq = 0;

  constructor(overrides: Partial<CoreConfig> = {}) {
    this.core = new SchedulerCore({ ...DEFAULTS, ...overrides }, { newId: () => `id-${++this.idSeq}` });
  }

  send(event: SchedulerEvent): SchedulerEffect[] {
    const out = this.core.handle(event, this.now);
    this.record(out);
    return out;
  }

  /** Moves the clock by `ms` and fires what is due. */
  advance(ms: number): SchedulerEffect[] {
    this.now += ms;
    const out = this.core.advance(this.now);
    this.record(out);
    return out;
  }

  /** Moves the clock to the core's next deadline and fires it. */
  advanceToNextDeadline(): SchedulerEffect[] {
    const next = this.core.nextDeadline();
    assert.ok(next !== undefined, 'no pending deadline');
    return this.advance(Math.max(0, next - this.now));
  }

  blob(): number {
    return ++this.blobSeq;
  }

  private record(out: SchedulerEffect[]): void {
    this.all.push(...out);
    for (const e of out) {
      if (e.type === 'acceptWorker') {
        this.linkOf.set(e.workerId, e.linkId);
        this.workerOfLink.set(e.linkId, e.workerId);
      }
    }
  }

  link(workerId: string): number {
    const link = this.linkOf.get(workerId);
    assert.ok(link !== undefined, `worker ${workerId} has no link`);
    return link;
  }

  workerOn(linkId: number): string {
    const w = this.workerOfLink.get(linkId);
    assert.ok(w !== undefined, `no worker on link ${linkId}`);
    return w;
  }

  // ---- worker side ----

  open(): number {
    const linkId = ++this.linkSeq;
    this.send({ type: 'linkOpened', linkId });
    return linkId;
  }

  hello(workerId: string, opts: HelloOptions = {}, linkId = this.open()): SchedulerEffect[] {
    const ev: SchedulerEvent = {
      type: 'workerHello',
      linkId,
      workerId,
      computeUnits: opts.units ?? 10,
      reconnect: opts.reconnect ?? false,
    };
    if (opts.lastKnownJobId !== undefined) ev.lastKnownJobId = opts.lastKnownJobId;
    return this.send(ev);
  }

  /** Registers workers w0…w(n-1) (or the given ids) and acks any setups replayed to them. */
  registerAll(ids: string[] | number, units = 10): string[] {
    const list = typeof ids === 'number' ? Array.from({ length: ids }, (_, i) => `w${i}`) : ids;
    for (const id of list) this.ackSetups(this.hello(id, { units }));
    return list;
  }

  close(workerId: string): SchedulerEffect[] {
    return this.send({ type: 'workerClosed', linkId: this.link(workerId) });
  }

  alive(workerId: string): SchedulerEffect[] {
    return this.send({ type: 'workerAlive', linkId: this.link(workerId) });
  }

  cancelAck(workerId: string, jobId: string): SchedulerEffect[] {
    return this.send({ type: 'jobCancelledAck', linkId: this.link(workerId), jobId });
  }

  /** What a worker does with each `job_cancelled` it is sent: acknowledge it, in order. */
  ackCancels(effects: readonly SchedulerEffect[]): SchedulerEffect[] {
    const out: SchedulerEffect[] = [];
    for (const e of effects) {
      if (e.type !== 'sendJobCancelled') continue;
      for (const linkId of e.linkIds) out.push(...this.send({ type: 'jobCancelledAck', linkId, jobId: e.jobId }));
    }
    return out;
  }

  recoveryComplete(workerId: string): SchedulerEffect[] {
    return this.send({ type: 'recoveryComplete', linkId: this.link(workerId) });
  }

  ackSetup(
    workerId: string,
    setupJobId: string,
    opts: { success?: boolean; vk?: string; hashId?: string } = {},
  ): SchedulerEffect[] {
    const success = opts.success ?? true;
    return this.send({
      type: 'setupAck',
      linkId: this.link(workerId),
      setupJobId,
      hashId: opts.hashId ?? HASH,
      success,
      errorMessage: success ? '' : 'setup failed',
      vkHex: success ? (opts.vk ?? VK) : '',
    });
  }

  /** Acks every setup the given effects sent (acceptWorker setups and sendSetup), successfully. */
  ackSetups(effects: readonly SchedulerEffect[], vk = VK): SchedulerEffect[] {
    const out: SchedulerEffect[] = [];
    for (const e of effects) {
      if (e.type === 'acceptWorker') {
        for (const s of e.setups) out.push(...this.ackSetup(e.workerId, s.setupJobId, { hashId: s.hashId, vk }));
      } else if (e.type === 'sendSetup') {
        for (const linkId of e.linkIds) {
          out.push(...this.ackSetup(this.workerOn(linkId), e.setup.setupJobId, { hashId: e.setup.hashId, vk }));
        }
      }
    }
    return out;
  }

  result(
    workerId: string,
    jobId: string,
    taskType: TaskType,
    result: TaskResultSummary,
    opts: ResultOptions = {},
  ): SchedulerEffect[] {
    this.lastResult = result;
    return this.send({
      type: 'taskResult',
      linkId: opts.linkId ?? this.link(workerId),
      jobId,
      taskType,
      success: opts.success ?? true,
      errorMessage: opts.errorMessage ?? '',
      inRecovery: opts.inRecovery ?? false,
      result,
    });
  }

  /** The challenges blobs of the last result sent (a contribution). */
  lastChallenges(): number[] {
    const r = this.lastResult;
    assert.ok(r?.kind === 'challenges');
    return r.challengesBlobIds;
  }

  fail(workerId: string, jobId: string, taskType: TaskType, opts: ResultOptions = {}): SchedulerEffect[] {
    return this.result(workerId, jobId, taskType, { kind: 'none' }, { errorMessage: 'boom', ...opts, success: false });
  }

  contribute(workerId: string, jobId: string, witnessKey = 'wk', opts: ResultOptions = {}): SchedulerEffect[] {
    return this.result(
      workerId,
      jobId,
      CONTRIBUTION,
      {
        kind: 'challenges',
        challengesBlobIds: [this.blob(), this.blob()],
        witnessKey,
        publicsBlobId: this.blob(),
        totalInstances: '4',
      },
      opts,
    );
  }

  proofs(workerId: string, jobId: string, opts: ResultOptions = {}): SchedulerEffect[] {
    return this.result(workerId, jobId, PROVE, { kind: 'proofs', proofsBlobId: this.blob(), bytes: 100 }, opts);
  }

  aggAck(workerId: string, jobId: string, opts: ResultOptions = {}): SchedulerEffect[] {
    return this.result(
      workerId,
      jobId,
      AGGREGATE,
      { kind: 'finalProof', bytes: 0, executedSteps: '0', instances: '0' },
      opts,
    );
  }

  finalProof(workerId: string, jobId: string, opts: ResultOptions = {}): SchedulerEffect[] {
    return this.result(
      workerId,
      jobId,
      AGGREGATE,
      { kind: 'finalProof', proofBlobId: this.blob(), bytes: 500, executedSteps: '12345', instances: '7' },
      opts,
    );
  }

  executed(workerId: string, jobId: string, steps = '999', opts: ResultOptions = {}): SchedulerEffect[] {
    return this.result(
      workerId,
      jobId,
      EXECUTION,
      { kind: 'execution', executedSteps: steps, instances: '3', publicsBlobId: this.blob() },
      opts,
    );
  }

  wrapped(workerId: string, jobId: string, opts: ResultOptions = {}): SchedulerEffect[] {
    return this.result(workerId, jobId, WRAP, { kind: 'wrap', proofBlobId: this.blob(), bytes: 300 }, opts);
  }

  // ---- client side ----

  submit(spec: JobSpec, jobId = `job-${++this.jobSeq}`): { jobId: string; effects: SchedulerEffect[] } {
    const effects = this.send({ type: 'submitJob', requestId: ++this.requestSeq, jobId, spec });
    return { jobId, effects };
  }

  /** Submits a setup job, acks it from every target and returns its id and all the effects. */
  setup(opts: { hashId?: string; withHints?: boolean; vk?: string } = {}): { jobId: string; effects: SchedulerEffect[] } {
    const { jobId, effects } = this.submit({
      kind: 'setup',
      hashId: opts.hashId ?? HASH,
      withHints: opts.withHints ?? false,
      programName: 'guest',
    });
    const acks = this.ackSetups(effects, opts.vk);
    return { jobId, effects: [...effects, ...acks] };
  }

  proveSpec(opts: JobOptions = {}): JobSpec {
    const spec: JobSpec = {
      kind: 'prove',
      hashId: opts.hashId ?? HASH,
      input: opts.input ?? { kind: 'inline', blobId: this.blob(), bytes: 16 },
      hints: opts.hints ? { kind: 'grpc' } : { kind: 'none' },
      proofKind: opts.proofKind ?? 1,
    };
    if (opts.deadline !== undefined) spec.deadline = opts.deadline;
    return spec;
  }

  prove(opts: JobOptions = {}): { jobId: string; effects: SchedulerEffect[] } {
    return this.submit(this.proveSpec(opts));
  }

  execute(opts: JobOptions = {}): { jobId: string; effects: SchedulerEffect[] } {
    const spec: JobSpec = {
      kind: 'execute',
      hashId: opts.hashId ?? HASH,
      input: opts.input ?? { kind: 'inline', blobId: this.blob(), bytes: 16 },
      hints: opts.hints ? { kind: 'grpc' } : { kind: 'none' },
      proofKind: 1,
    };
    if (opts.deadline !== undefined) spec.deadline = opts.deadline;
    return this.submit(spec);
  }

  wrap(opts: { proofDest?: ProofKind; deadline?: number } = {}): { jobId: string; effects: SchedulerEffect[] } {
    const spec: JobSpec = { kind: 'wrap', proofBlobId: this.blob(), proofDest: opts.proofDest ?? 3 };
    if (opts.deadline !== undefined) spec.deadline = opts.deadline;
    return this.submit(spec);
  }

  cancel(jobId: string): SchedulerEffect[] {
    return this.send({ type: 'cancelJob', requestId: ++this.requestSeq, jobId });
  }

  /**
   * Runs a started prove job to completion: contributions and prove results in rank order, then the
   * aggregator's acks. Returns every effect of the run.
   */
  runProve(jobId: string): SchedulerEffect[] {
    const out: SchedulerEffect[] = [];
    const ranks = this.job(jobId).workers;
    for (const w of ranks) out.push(...this.contribute(w, jobId));
    for (const w of ranks) out.push(...this.proofs(w, jobId));
    const aggregator = ranks[0];
    for (let i = 0; i < ranks.length - 1; i++) out.push(...this.aggAck(aggregator, jobId));
    out.push(...this.finalProof(aggregator, jobId));
    return out;
  }

  /** Registers n workers and completes the default setup on them. */
  cluster(n: number, units = 10): string[] {
    const ids = this.registerAll(n, units);
    this.setup();
    return ids;
  }

  // ---- views ----

  worker(id: string): WorkerSnapshot {
    const w = this.core.snapshot().workers.find((x) => x.id === id);
    assert.ok(w, `no worker ${id}`);
    return w;
  }

  hasWorker(id: string): boolean {
    return this.core.snapshot().workers.some((x) => x.id === id);
  }

  state(id: string): string {
    return this.worker(id).state;
  }

  job(id: string): JobSnapshot {
    const j = this.core.snapshot().jobs.find((x) => x.id === id);
    assert.ok(j, `no job ${id}`);
    return j;
  }

  hasJob(id: string): boolean {
    return this.core.snapshot().jobs.some((x) => x.id === id);
  }
}
