/**
 * The one place where the scheduler's effects are handled on the main thread: a switch over every
 * effect kind with no default, so a new kind added to `SchedulerEffect` and handled nowhere is a
 * compile error (the `never` check below).
 */
import type { Logger } from '../../shared/logging';
import type { SchedulerEffect } from '../../shared/scheduler/effects';
import type { ApiService } from '../api/service';
import type { BlobStore } from '../data/blob-store';
import type { ClusterService } from '../cluster/service';
import type { CoordinatorMetrics } from '../observability/metrics';

export interface EffectTargets {
  blobs: BlobStore;
  metrics: CoordinatorMetrics;
  logger: Logger;
  api: ApiService;
  /** Undefined in mock mode, which has no worker port (and whose backend emits no worker effects). */
  cluster: ClusterService | undefined;
}

/** Applies a batch in order; one effect failing is logged and does not stop the rest. */
export function applyEffects(effects: readonly SchedulerEffect[], to: EffectTargets): void {
  for (const effect of effects) {
    try {
      applyEffect(effect, to);
    } catch (err) {
      to.logger.error({ err, effect: effect.type }, 'failed to apply a scheduler effect');
    }
  }
}

export function applyEffect(effect: SchedulerEffect, to: EffectTargets): void {
  switch (effect.type) {
    // ---- worker streams ----
    case 'acceptWorker':
      return cluster(to, effect.type)?.acceptWorker(effect);
    case 'rejectWorker':
      return cluster(to, effect.type)?.rejectWorker(effect);
    case 'closeWorker':
      return cluster(to, effect.type)?.closeWorker(effect);
    case 'sendSetup':
      return cluster(to, effect.type)?.sendSetup(effect);
    case 'dispatchContributions':
      return cluster(to, effect.type)?.dispatchContributions(effect);
    case 'dispatchProve':
      return cluster(to, effect.type)?.dispatchProve(effect);
    case 'dispatchAggregate':
      return cluster(to, effect.type)?.dispatchAggregate(effect);
    case 'dispatchWrap':
      return cluster(to, effect.type)?.dispatchWrap(effect);
    case 'sendJobCancelled':
      return cluster(to, effect.type)?.sendJobCancelled(effect);
    case 'ignoredMessage':
      return cluster(to, effect.type)?.ignoredMessage(effect);
    // ---- client API ----
    case 'submitResult':
      return to.api.submitResult(effect);
    case 'cancelResult':
      return to.api.cancelResult(effect);
    case 'jobEvent':
      return to.api.jobEvent(effect);
    case 'jobRetried':
      return to.api.jobRetried(effect);
    case 'jobLinks':
      return to.api.jobLinks(effect);
    case 'jobsEvicted':
      return to.api.jobsEvicted(effect);
    case 'setupCompleted':
      return to.api.setupCompleted(effect);
    case 'releaseBlobs':
      return to.blobs.release(effect.blobIds);
    // ---- observability ----
    case 'workerCounts':
      to.metrics.setWorkerStates(effect.counts);
      to.metrics.setQueueDepth(effect.queueDepth);
      return;
    case 'phaseFinished':
      return to.metrics.phaseFinished(effect.phase, effect.seconds);
    case 'workerJobOutcome':
      return to.metrics.workerJob(effect.workerId, effect.outcome, effect.jobKind);
    case 'recoveryTimedOut':
      return to.metrics.recoveryTimedOut();
    case 'log':
      to.logger[effect.level](effect.fields, effect.msg);
      return;
    default:
      return unhandled(effect);
  }
}

function cluster(to: EffectTargets, type: string): ClusterService | undefined {
  if (!to.cluster) to.logger.error({ effect: type }, 'worker effect without a worker port (mock mode)');
  return to.cluster;
}

function unhandled(effect: never): never {
  throw new Error(`unhandled scheduler effect ${JSON.stringify(effect)}`);
}
