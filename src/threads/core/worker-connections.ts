/**
 * Worker connections (docs/decisions.md, Workers; docs/protocol.md, Takeover and Liveness): handshake,
 * register and reconnect with takeover, liveness, the reconnect grace period, recovery parking and
 * purging.
 */
import type { AggregateTask, ReconnectDirective, SetupRef } from '../../shared/scheduler/types';
import type { SchedulerEffect } from '../../shared/scheduler/effects';
import type { Ctx } from './context';
import { isTerminal, type EventOf, type JobRec, type LinkRec, type TimerTask, type WorkerRec } from './model';
import { deliverOwedSetups, dropWorkerFromSetups, replaySetupsFor } from './setup';
import { replayAggregateFor, resumeJobOn } from './tasks';
import { failJob } from './transitions';
import type { TimerEntry } from './timers';

/**
 * A rejected worker reconnects at once; delaying the rejection rate-limits the loop (docs/decisions.md:
 * Reconnect storm).
 */
export const REJECT_DELAY_MS = 1000;
/**
 * Two live processes sharing one worker id take each other over in turn, each takeover failing the
 * job the other was computing. Past this many takeovers of one id within the window, the newer
 * connection is refused instead (docs/protocol.md, "Takeover"), so the pair cannot flap in a loop.
 */
export const TAKEOVER_WINDOW_MS = 60_000;
export const MAX_TAKEOVERS_PER_WINDOW = 3;

export function onLinkOpened(ctx: Ctx, linkId: number): void {
  if (ctx.pool.links.has(linkId)) return;
  const link: LinkRec = { id: linkId, worker: undefined, handshake: undefined };
  const limit = ctx.cfg.handshake_timeout_seconds;
  if (limit > 0) link.handshake = ctx.schedule(ctx.now + limit * 1000, { kind: 'handshake', link });
  ctx.pool.links.set(linkId, link);
}

/** Forgets a worker's current stream (closed, replaced, or given up on). */
function detachLink(ctx: Ctx, w: WorkerRec): void {
  const link = w.link;
  if (!link) return;
  link.worker = undefined;
  ctx.pool.links.delete(link.id);
  w.link = undefined;
  ctx.timers.cancel(w.livenessTimer);
  w.livenessTimer = undefined;
}

function directiveFor(ctx: Ctx, workerId: string, jobId: string): ReconnectDirective {
  const job = ctx.jobs.byId.get(jobId);
  if (!job || job.kind === 'setup' || isTerminal(job) || !job.workers.includes(workerId)) return 'CANCEL_STALE_JOB';
  return 'KEEP_COMPUTING';
}

export function onHello(ctx: Ctx, ev: EventOf<'workerHello'>): void {
  let link = ctx.pool.links.get(ev.linkId);
  if (!link) {
    link = { id: ev.linkId, worker: undefined, handshake: undefined };
    ctx.pool.links.set(ev.linkId, link);
  }
  if (link.worker) {
    ctx.emit({ type: 'closeWorker', linkId: ev.linkId, status: 'INVALID_ARGUMENT', message: 'Already registered on this stream' });
    return;
  }
  ctx.timers.cancel(link.handshake);
  link.handshake = undefined;

  if (ev.peer !== undefined) link.peer = ev.peer;
  const existing = ctx.pool.byId.get(ev.workerId);
  const live = existing !== undefined && existing.state !== 'disconnected';
  if (existing?.link && refuseFlappingTakeover(ctx, existing, ev, link)) return;
  if (!live && ctx.pool.liveCount >= ctx.cfg.max_total_workers) {
    const message = `Maximum concurrent connections reached: (${ctx.cfg.max_total_workers})`;
    ctx.emit({ type: 'rejectWorker', linkId: ev.linkId, workerId: ev.workerId, message, delayMs: REJECT_DELAY_MS });
    ctx.log('warn', `worker ${ev.workerId} rejected: ${message}`, { worker_id: ev.workerId });
    return;
  }

  // Directive and installation happen in this one step: nothing can run in between (docs/decisions.md:
  // KEEP_COMPUTING copies Disconnected).
  const directive =
    ev.reconnect && ev.lastKnownJobId !== undefined ? directiveFor(ctx, ev.workerId, ev.lastKnownJobId) : undefined;
  const keptJob: JobRec | undefined =
    directive === 'KEEP_COMPUTING' && existing?.job?.id === ev.lastKnownJobId ? existing?.job : undefined;
  if (existing?.job && !keptJob) {
    // The new connection does not carry on this job, so the job has lost a member (docs/decisions.md:
    // Silent takeover).
    const job = existing.job;
    const reason = ev.reconnect
      ? `Worker ${ev.workerId} reconnected without job ${job.id}`
      : `Worker ${ev.workerId} re-registered while computing job ${job.id}`;
    failJob(ctx, job, { kind: 'execution', reason }, { recovering: existing, handled: existing, retry: 'worker_lost' });
  }
  if (existing?.link) {
    ctx.emit({ type: 'closeWorker', linkId: existing.link.id, status: 'OK', message: 'Replaced by a newer connection' });
    detachLink(ctx, existing);
    ctx.log('warn', `worker ${ev.workerId} taken over by a newer connection${peers(existing.link, link)}`, {
      worker_id: ev.workerId,
      peer: link.peer,
    });
  }

  const w = existing ?? ctx.pool.create(ev.workerId, ev.computeUnits, ctx.now);
  if (existing) w.generation++;
  ctx.timers.cancel(w.graceTimer);
  w.graceTimer = undefined;
  ctx.timers.cancel(w.purgeTimer);
  w.purgeTimer = undefined;
  w.disconnectedAt = undefined;
  w.link = link;
  link.worker = w;
  w.capacity = ev.computeUnits;
  w.lastSeen = ctx.now;
  // A cancel sent on the old stream may never have arrived, so its acknowledgement may never come; a
  // reconnect holding that job is told to drop it (CANCEL_STALE_JOB), a new process holds nothing.
  w.cancelPending.clear();
  if (!ev.reconnect && w.parked) {
    // A registering worker holds no job context, so it will never send recovery_complete
    // (docs/decisions.md: Recovery wedges).
    ctx.unpark(w);
    ctx.log('info', `register of worker ${w.id} cleared its pending recovery`, { worker_id: w.id });
  }

  let setups: SetupRef[] = [];
  let replay: AggregateTask | undefined;
  // A KEEP_COMPUTING worker is the same process still on its job: its setups are intact.
  if (keptJob) replay = replayAggregateFor(keptJob, w);
  else setups = replaySetupsFor(ctx, w);
  ctx.sync(w);
  ctx.queueDirty = true;

  const accept: Extract<SchedulerEffect, { type: 'acceptWorker' }> = {
    type: 'acceptWorker',
    linkId: ev.linkId,
    workerId: w.id,
    message: ev.reconnect ? 'Reconnection successful' : 'Registration successful',
    setups,
  };
  if (directive) accept.directive = directive;
  if (replay) accept.replayAggregate = replay;
  ctx.emit(accept);
  if (keptJob) resumeJobOn(ctx, keptJob, w);
  const peer = ctx.pool.links.get(ev.linkId)?.peer;
  ctx.log('info', `worker ${w.id} ${ev.reconnect ? 'reconnected' : 'registered'}${peer ? ` from ${peer}` : ''} with ${w.capacity} compute unit(s)`, {
    worker_id: w.id,
    peer,
    job_id: keptJob?.id,
    capacity: w.capacity,
    directive,
    generation: w.generation,
  });
}

function peers(old: LinkRec | undefined, newer: LinkRec): string {
  if (old?.peer === undefined && newer.peer === undefined) return '';
  return ` (from ${newer.peer ?? 'unknown'}; the replaced one was ${old?.peer ?? 'unknown'})`;
}

/**
 * Counts a takeover of `existing`'s live stream; refuses it (true) once the id has been taken over
 * too often lately, which only two live processes sharing the id do.
 */
function refuseFlappingTakeover(ctx: Ctx, existing: WorkerRec, ev: EventOf<'workerHello'>, link: LinkRec): boolean {
  const since = ctx.now - TAKEOVER_WINDOW_MS;
  while (existing.takeovers.length > 0 && existing.takeovers[0] <= since) existing.takeovers.shift();
  if (existing.takeovers.length < MAX_TAKEOVERS_PER_WINDOW) {
    existing.takeovers.push(ctx.now);
    return false;
  }
  const message =
    `Worker id ${ev.workerId} is already connected and was taken over ${existing.takeovers.length} times in the last ` +
    `${TAKEOVER_WINDOW_MS / 1000}s: two live processes seem to share this id; refusing the newer connection`;
  ctx.emit({ type: 'rejectWorker', linkId: ev.linkId, workerId: ev.workerId, message, delayMs: REJECT_DELAY_MS });
  ctx.log('error', `${message}${peers(existing.link, link)}`, { worker_id: ev.workerId, peer: link.peer });
  return true;
}

export function onWorkerClosed(ctx: Ctx, linkId: number): void {
  const link = ctx.pool.links.get(linkId);
  if (!link) return;
  ctx.pool.links.delete(linkId);
  ctx.timers.cancel(link.handshake);
  const w = link.worker;
  if (!w) return;
  detachLink(ctx, w);
  if (w.job) {
    const grace = ctx.cfg.reconnect_grace_period_ms;
    w.graceTimer = ctx.schedule(ctx.now + grace, { kind: 'grace', worker: w, generation: w.generation });
    ctx.sync(w);
    ctx.log('info', `worker ${w.id} stream closed while computing; waiting ${grace}ms for a reconnect`, {
      worker_id: w.id,
      job_id: w.job.id,
    });
    return;
  }
  markDisconnected(ctx, w);
}

export function markDisconnected(ctx: Ctx, w: WorkerRec): void {
  detachLink(ctx, w);
  ctx.timers.cancel(w.graceTimer);
  w.graceTimer = undefined;
  w.disconnectedAt = ctx.now;
  ctx.timers.cancel(w.purgeTimer);
  w.purgeTimer = ctx.schedule(ctx.now + ctx.cfg.stale_disconnected_threshold_seconds * 1000, {
    kind: 'purge',
    worker: w,
  });
  dropWorkerFromSetups(ctx, w);
  ctx.sync(w);
  ctx.log('info', `worker ${w.id} disconnected`, { worker_id: w.id });
}

/**
 * The follow-up of a released worker: it picks up owed setups, or, if its stream is already gone,
 * disconnects. A worker that took another job meanwhile (in the same event) is left alone.
 */
export function afterRelease(ctx: Ctx, w: WorkerRec): void {
  if (w.job) return;
  if (w.link) deliverOwedSetups(ctx, w);
  else if (w.disconnectedAt === undefined) markDisconnected(ctx, w);
  ctx.sync(w);
}

export function onRecoveryComplete(ctx: Ctx, w: WorkerRec): void {
  if (!w.parked) return;
  ctx.unpark(w);
  ctx.sync(w);
  ctx.log('info', `worker ${w.id} completed recovery`, { worker_id: w.id });
}

function expireLiveness(ctx: Ctx, w: WorkerRec, link: LinkRec): void {
  ctx.emit({ type: 'closeWorker', linkId: link.id, status: 'UNAVAILABLE', message: 'heartbeat timeout' });
  detachLink(ctx, w);
  ctx.log('warn', `worker ${w.id} missed heartbeats; closing its stream`, { worker_id: w.id, job_id: w.job?.id });
  if (w.job) {
    const reason = `Worker ${w.id} missed heartbeats for job ${w.job.id}`;
    failJob(ctx, w.job, { kind: 'execution', reason }, { handled: w, retry: 'worker_lost' });
  }
  // never back to Ready: a silent worker is presumed dead (docs/decisions.md: Dead worker back to Ready)
  markDisconnected(ctx, w);
}

export function onWorkerTimer(ctx: Ctx, entry: TimerEntry<TimerTask>): void {
  const task = entry.task;
  switch (task.kind) {
    case 'handshake': {
      const link = task.link;
      if (link.handshake !== entry) return;
      link.handshake = undefined;
      if (link.worker || ctx.pool.links.get(link.id) !== link) return;
      ctx.pool.links.delete(link.id);
      const seconds = ctx.cfg.handshake_timeout_seconds;
      ctx.emit({
        type: 'closeWorker',
        linkId: link.id,
        status: 'DEADLINE_EXCEEDED',
        message: `Handshake timeout: no registration within ${seconds}s`,
      });
      ctx.log('warn', `stream ${link.id} sent no registration within ${seconds}s`, { link_id: link.id });
      return;
    }
    case 'liveness': {
      const w = task.worker;
      if (w.livenessTimer !== entry) return;
      w.livenessTimer = undefined;
      if (!w.link || w.exempt) return;
      if (ctx.now - w.lastSeen >= ctx.livenessMs) expireLiveness(ctx, w, w.link);
      else ctx.armLiveness(w);
      return;
    }
    case 'grace': {
      const w = task.worker;
      if (w.graceTimer !== entry) return;
      w.graceTimer = undefined;
      if (w.link || w.generation !== task.generation || w.disconnectedAt !== undefined) return;
      if (w.job) {
        const reason = `Worker ${w.id} connection dropped`;
        failJob(ctx, w.job, { kind: 'execution', reason }, { recovering: w, handled: w, retry: 'worker_lost' });
      }
      markDisconnected(ctx, w);
      return;
    }
    case 'purge': {
      const w = task.worker;
      if (w.purgeTimer !== entry) return;
      w.purgeTimer = undefined;
      if (w.disconnectedAt === undefined) return;
      ctx.unpark(w);
      ctx.pool.remove(w);
      ctx.log('debug', `stale worker ${w.id} removed`, { worker_id: w.id });
      return;
    }
    case 'recovery': {
      const w = task.worker;
      if (w.recoveryTimer !== entry) return;
      w.recoveryTimer = undefined;
      if (!w.parked) return;
      w.parked = false;
      ctx.sync(w);
      const seconds = ctx.cfg.recovery_timeout_seconds;
      ctx.emit({ type: 'recoveryTimedOut', workerId: w.id });
      ctx.log('warn', `worker ${w.id} sent no recovery_complete within ${seconds}s; released`, { worker_id: w.id });
      return;
    }
    default:
      return;
  }
}
