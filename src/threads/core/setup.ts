/**
 * Program setup (docs/decisions.md, Setup jobs): setup jobs, per-worker program sets, setups owed to
 * computing workers, and the replay of completed setups to every (re)registering worker.
 */
import type { SetupRef } from '../../shared/scheduler/types';
import type { Ctx } from './context';
import { setJobTimer } from './deadlines';
import { programKey, programKeyOfRef, type EventOf, type JobRec, type ProgramKey, type WorkerRec } from './model';
import { beginSetup, completeJob, failJob } from './transitions';

function refOf(job: JobRec): SetupRef {
  if (job.spec.kind !== 'setup') throw new Error(`job ${job.id} is not a setup job`);
  const { hashId, withHints, programName } = job.spec;
  return { setupJobId: job.id, hashId, withHints, programName };
}

function keyOf(job: JobRec): ProgramKey {
  const ref = refOf(job);
  return programKey(ref.hashId, ref.withHints);
}

/** The worker is sent this job's SetupProgram; the job now waits for its ack. */
function addTarget(job: JobRec, w: WorkerRec, ref: SetupRef): void {
  w.pendingSetups.set(ref.setupJobId, ref);
  const st = job.setup;
  if (st && !st.targets.has(w.id)) {
    st.targets.set(w.id, 'pending');
    st.pending++;
    job.workers.push(w.id);
  }
}

function everyLiveWorkerHolds(ctx: Ctx, key: ProgramKey): boolean {
  for (const w of ctx.pool.byId.values()) {
    if (w.state !== 'disconnected' && !w.programs.has(key)) return false;
  }
  return true;
}

/** True when some live worker has the program, is setting it up, or is owed it. */
export function anyLiveWorkerCanRun(ctx: Ctx, key: ProgramKey): boolean {
  for (const w of ctx.pool.byId.values()) {
    if (w.state === 'disconnected') continue;
    if (w.programs.has(key)) return true;
    for (const ref of w.pendingSetups.values()) if (programKeyOfRef(ref) === key) return true;
    for (const ref of w.owedSetups.values()) if (programKeyOfRef(ref) === key) return true;
  }
  return false;
}

export function startSetupJob(ctx: Ctx, job: JobRec): void {
  const ref = refOf(job);
  const key = keyOf(job);
  beginSetup(ctx, job);
  const setup = job.setup as NonNullable<JobRec['setup']>;
  const known = ctx.registry.get(key);
  if (known && everyLiveWorkerHolds(ctx, key)) {
    // idempotent, as the docs promise: nothing to send
    ctx.log('info', `setup job ${job.id}: every connected worker holds the program's setup already`, { job_id: job.id, hash_id: ref.hashId });
    completeJob(ctx, job, { kind: 'setup', vkHex: known.vkHex });
    return;
  }
  ctx.activeSetups.set(job.id, job);
  const linkIds: number[] = [];
  for (const w of ctx.pool.byId.values()) {
    if (w.state === 'disconnected') continue;
    if (w.job || !w.link) {
      w.owedSetups.set(job.id, ref);
      setup.owed.add(w.id);
    } else {
      addTarget(job, w, ref);
      linkIds.push(w.link.id);
      ctx.sync(w);
    }
  }
  if (linkIds.length > 0) ctx.emit({ type: 'sendSetup', setup: ref, linkIds });
  setJobTimer(ctx, job);
  ctx.log('info', `setup job ${job.id} started on ${linkIds.length} worker(s)${setup.owed.size > 0 ? `, ${setup.owed.size} more when they finish their jobs` : ''}`, {
    job_id: job.id,
    hash_id: ref.hashId,
    with_hints: ref.withHints,
    targets: linkIds.length,
    deferred: setup.owed.size,
  });
}

/**
 * A worker that stopped computing gets the setups it missed meanwhile (docs/decisions.md: Setup clobbers
 * computing workers).
 */
export function deliverOwedSetups(ctx: Ctx, w: WorkerRec): void {
  if (!w.link || w.owedSetups.size === 0) return;
  const linkId = w.link.id;
  for (const ref of w.owedSetups.values()) {
    const job = ctx.activeSetups.get(ref.setupJobId);
    if (job?.setup) {
      job.setup.owed.delete(w.id);
      addTarget(job, w, ref);
    } else {
      w.pendingSetups.set(ref.setupJobId, ref);
    }
    ctx.emit({ type: 'sendSetup', setup: ref, linkIds: [linkId] });
  }
  w.owedSetups.clear();
}

/**
 * A new connection proves its setups again: every completed setup is replayed (fresh ids) and every
 * setup job still running is sent with its own id, the worker joining its targets. Returns them in
 * send order: completed ones in completion order, then the running ones.
 */
export function replaySetupsFor(ctx: Ctx, w: WorkerRec): SetupRef[] {
  for (const ref of w.owedSetups.values()) ctx.activeSetups.get(ref.setupJobId)?.setup?.owed.delete(w.id);
  w.owedSetups.clear();
  w.pendingSetups.clear();
  ctx.pool.clearPrograms(w);

  const running = new Map<ProgramKey, JobRec[]>();
  for (const job of ctx.activeSetups.values()) {
    const key = keyOf(job);
    const list = running.get(key);
    if (list) list.push(job);
    else running.set(key, [job]);
  }
  const refs: SetupRef[] = [];
  const sendJob = (job: JobRec): void => {
    const ref = refOf(job);
    addTarget(job, w, ref);
    refs.push(ref);
  };
  for (const [key, reg] of ctx.registry) {
    const jobs = running.get(key);
    if (jobs) {
      jobs.forEach(sendJob);
      running.delete(key);
      continue;
    }
    const ref: SetupRef = {
      setupJobId: ctx.deps.newId(),
      hashId: reg.hashId,
      withHints: reg.withHints,
      programName: reg.programName,
    };
    w.pendingSetups.set(ref.setupJobId, ref);
    refs.push(ref);
  }
  for (const jobs of running.values()) jobs.forEach(sendJob);
  return refs;
}

/** The worker is gone: setup jobs stop waiting for it. */
export function dropWorkerFromSetups(ctx: Ctx, w: WorkerRec): void {
  const affected: JobRec[] = [];
  for (const id of w.pendingSetups.keys()) {
    const job = ctx.activeSetups.get(id);
    if (job?.setup?.targets.get(w.id) === 'pending') {
      job.setup.targets.delete(w.id);
      job.setup.pending--;
      job.workers = job.workers.filter((x) => x !== w.id);
      affected.push(job);
    }
  }
  for (const id of w.owedSetups.keys()) {
    const job = ctx.activeSetups.get(id);
    if (job?.setup?.owed.delete(w.id)) affected.push(job);
  }
  w.pendingSetups.clear();
  w.owedSetups.clear();
  for (const job of affected) checkSetup(ctx, job);
}

export function onSetupAck(ctx: Ctx, w: WorkerRec, ev: EventOf<'setupAck'>): void {
  const ref = w.pendingSetups.get(ev.setupJobId);
  let key: ProgramKey;
  if (ref) {
    if (ref.hashId !== ev.hashId) {
      ctx.ignore('setup_hash_mismatch', ev.linkId, `ack for ${ev.hashId}, setup ${ev.setupJobId} was ${ref.hashId}`);
      return;
    }
    key = programKeyOfRef(ref);
    w.pendingSetups.delete(ev.setupJobId);
  } else {
    // A late ack (setup job already over, or sent on an earlier connection) still tells us what this
    // worker holds, as long as we know which program the id stood for.
    const job = ctx.jobs.byId.get(ev.setupJobId);
    if (job?.spec.kind !== 'setup' || job.spec.hashId !== ev.hashId) {
      ctx.ignore('unknown_setup', ev.linkId, `setup ack for unknown setup ${ev.setupJobId}`);
      return;
    }
    key = keyOf(job);
  }
  if (ev.success) ctx.pool.setProgram(w, key, ev.vkHex);
  else ctx.pool.deleteProgram(w, key);
  ctx.queueDirty = true;
  ctx.sync(w);
  if (!ev.success) {
    ctx.log('warn', `setup failed on worker ${w.id}: ${ev.errorMessage || '(no detail)'}`, {
      worker_id: w.id,
      job_id: ev.setupJobId,
      hash_id: ev.hashId,
    });
  }
  const job = ctx.activeSetups.get(ev.setupJobId);
  if (job?.setup?.targets.get(w.id) === 'pending') {
    job.setup.targets.set(w.id, { ok: ev.success, vkHex: ev.vkHex });
    job.setup.pending--;
    checkSetup(ctx, job);
  }
}

/** Completes or fails a running setup job once no target is pending (docs/decisions.md, Setup jobs). */
export function checkSetup(ctx: Ctx, job: JobRec): void {
  const st = job.setup;
  if (job.status !== 'running' || !st || job.spec.kind !== 'setup') return;
  if (st.pending > 0) return;
  if (st.targets.size === 0) {
    // only computing workers were there: wait for the first to free
    if (st.owed.size > 0) return;
    failJob(ctx, job, {
      kind: 'execution',
      reason: `job ${job.id}: every target worker disconnected before acknowledging the setup`,
    });
    return;
  }
  let vkHex: string | undefined;
  let dissenter: string | undefined;
  for (const [id, t] of st.targets) {
    if (t === 'pending' || !t.ok) continue;
    if (vkHex === undefined) vkHex = t.vkHex;
    else if (t.vkHex !== vkHex && dissenter === undefined) dissenter = id;
  }
  if (vkHex === undefined) {
    failJob(ctx, job, { kind: 'execution', reason: `job ${job.id}: all workers failed setup, no VK received` });
    return;
  }
  const key = keyOf(job);
  if (dissenter !== undefined) {
    // Workers that disagree cannot all be right: none of them keeps a program with an unsettled VK.
    const settled = ctx.registry.get(key)?.vkHex;
    for (const [id, t] of st.targets) {
      if (t === 'pending' || !t.ok || t.vkHex === settled) continue;
      const w = ctx.pool.byId.get(id);
      if (w && w.programs.get(key) === t.vkHex) {
        ctx.pool.deleteProgram(w, key);
        ctx.sync(w);
      }
    }
    failJob(ctx, job, {
      kind: 'execution',
      reason: `job ${job.id}: worker ${dissenter} returned a different VK than the first worker`,
    });
    return;
  }
  const { hashId, withHints, programName } = job.spec;
  ctx.registry.set(key, { hashId, withHints, programName, vkHex });
  ctx.emit({ type: 'setupCompleted', hashId, withHints, programName, vkHex });
  completeJob(ctx, job, { kind: 'setup', vkHex });
}
