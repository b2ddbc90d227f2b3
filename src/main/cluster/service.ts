/**
 * The worker-facing side of the main thread: the `WorkerStream` handler (handshake and edge
 * validation), the worker links, coordinator heartbeats, and the effects that write to workers.
 */
import * as grpc from '@grpc/grpc-js';
import type { ServiceDefinition } from '@grpc/proto-loader';
import { CLUSTER_API_SERVICE, CLUSTER_VIEW_PROTO, serviceDefinition } from '../../shared/proto';
import type { AggregateTask, LinkId, SetupRef } from '../../shared/scheduler/types';
import type { SchedulerEvent } from '../../shared/scheduler/events';
import type { EffectOf } from '../../shared/scheduler/effects';
import type { Logger } from '../../shared/logging';
import type { BlobStore } from '../data/blob-store';
import type { BytesKind, OutboundMessage } from '../data/outbound';
import { EgressBudget, WorkerLink } from './worker-link';
import { certificateIdentities, certificateMismatchMessage } from './cert-identity';
import { http2StreamOf, resetAfterStatus } from './stream-reset';
import { classifyWorkerMessage, inspectHandshakeBytes, payloadName, readHandshake, type WorkerMessageView } from './worker-inbound';
import { decodeWorkerMessage } from './worker-decode';
import {
  contributionTaskEncoder,
  encodeAggregateTask,
  encodeWrapTask,
  proveTaskEncoder,
  type ContributionShared,
} from './task-encoding';

/** What the cluster side needs to know about a job's data to build its tasks. */
export interface TaskDataSource {
  contributionData(jobId: string): Omit<ContributionShared, 'jobId' | 'executionOnly' | 'dataId'> | undefined;
}

/** ELF bytes of programs with a pending or completed setup. */
export interface ElfSource {
  elfBytes(hashId: string): Buffer | undefined;
}

export interface ClusterMetrics {
  workerMessage(type: string): void;
  ignoredWorkerMessage(reason: string): void;
  bytesSent(kind: BytesKind, n: number): void;
  workerRegistered(): void;
  workerDisconnected(): void;
  messageRefused(kind: BytesKind, bytes: number, limit: number): void;
  limitHit(limit: 'worker_id' | 'compute_units' | 'unregistered_streams' | 'handshake_timeout'): void;
}

export interface ClusterServiceOptions {
  maxWorkerQueueBytes: number;
  maxEgressBytes: number;
  /** What the worker port sends at most (its grpc-js send limit; docs/operations.md, Limits). */
  maxSendBytes: number;
  /** Streams open and not registered yet, at most (docs/operations.md, Limits). */
  maxUnregisteredStreams: number;
  heartbeatIntervalMs: number;
  post(event: SchedulerEvent): void;
  blobs: BlobStore;
  elves: ElfSource;
  taskData: TaskDataSource;
  metrics: ClusterMetrics;
  logger: Logger;
  /**
   * A worker may register or reconnect only under an id its client certificate names (docs/security.md,
   * Binding worker ids). Needs mutual TLS on the worker port.
   */
  bindWorkerIdToCert?: boolean;
}

type CoordinatorMessageObject = Record<string, unknown>;

/** Serializer that passes pre-encoded bytes through, so one encoding serves many streams. */
function passThroughService(): { service: ServiceDefinition; encode: (m: CoordinatorMessageObject) => Buffer } {
  const base = serviceDefinition(CLUSTER_VIEW_PROTO, CLUSTER_API_SERVICE);
  const method = base.WorkerStream;
  const encode = (m: CoordinatorMessageObject): Buffer => method.responseSerialize(m);
  const service: ServiceDefinition = {
    WorkerStream: {
      ...method,
      responseSerialize: (value: object) => (Buffer.isBuffer(value) ? value : encode(value as CoordinatorMessageObject)),
      // Heartbeat acks are most of the inbound traffic of a large fleet; they take the shortest path.
      // The strict decoder never throws: grpc-js would end the stream itself, without the reset an
      // upstream worker needs to notice (docs/protocol.md, Ending a worker stream).
      requestDeserialize: (buf: Buffer) => decodeHeartbeatAck(buf) ?? decodeInbound(buf),
    },
  };
  return { service, encode };

  /** A handshake's worker id is judged on its raw bytes too (docs/protocol.md). */
  function decodeInbound(buf: Buffer): WorkerMessageView {
    const msg = decodeWorkerMessage(buf);
    if (msg.payload === 'register' || msg.payload === 'reconnect') msg.worker_id_bytes = inspectHandshakeBytes(buf);
    return msg;
  }
}

/**
 * Fast path for `WorkerMessage{heartbeat_ack{worker_id}}` (field 1 holding field 1, nothing else):
 * the same object the full decoder produces, or undefined for anything else (which then takes it).
 */
export function decodeHeartbeatAck(buf: Buffer): WorkerMessageView | undefined {
  if (buf.length < 2 || buf[0] !== 0x0a) return undefined;
  const outer = readLength(buf, 1);
  if (!outer || outer.next + outer.value !== buf.length) return undefined;
  let workerId = '';
  if (outer.value > 0) {
    if (buf[outer.next] !== 0x0a) return undefined;
    const inner = readLength(buf, outer.next + 1);
    if (!inner || inner.next + inner.value !== buf.length) return undefined;
    workerId = buf.toString('utf8', inner.next, inner.next + inner.value);
  }
  return { payload: 'heartbeat_ack', heartbeat_ack: { worker_id: workerId } };
}

/** A varint length at `pos` (at most 4 bytes: messages are far below 2^28 bytes). */
function readLength(buf: Buffer, pos: number): { value: number; next: number } | undefined {
  let value = 0;
  for (let i = 0; i < 4 && pos + i < buf.length; i++) {
    const b = buf[pos + i];
    value += (b & 0x7f) * 2 ** (7 * i);
    if ((b & 0x80) === 0) return { value, next: pos + i + 1 };
  }
  return undefined;
}

const HEARTBEAT_SLICES = 20;
const ALIVE_EVENT_MAX_GAP_MS = 1_000;

const STATUS_BY_NAME = {
  OK: grpc.status.OK,
  UNAVAILABLE: grpc.status.UNAVAILABLE,
  INVALID_ARGUMENT: grpc.status.INVALID_ARGUMENT,
  DEADLINE_EXCEEDED: grpc.status.DEADLINE_EXCEEDED,
} as const;

function timestampNow(): { seconds: number; nanos: number } {
  const ms = Date.now();
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
}

export class ClusterService {
  readonly service: ServiceDefinition;
  private readonly encode: (m: CoordinatorMessageObject) => Buffer;
  private readonly links = new Map<LinkId, WorkerLink>();
  /** Links by heartbeat slice (id modulo HEARTBEAT_SLICES), so a slice tick visits only its own. */
  private readonly heartbeatSlices: Set<WorkerLink>[] = Array.from({ length: HEARTBEAT_SLICES }, () => new Set());
  private readonly egress: EgressBudget;
  private nextLinkId = 1;
  /** Streams whose first message has not arrived yet. */
  private unregistered = 0;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private readonly rejectTimers = new Set<NodeJS.Timeout>();
  private readonly aliveGapMs: number;

  constructor(private readonly opts: ClusterServiceOptions) {
    const { service, encode } = passThroughService();
    this.service = service;
    this.encode = encode;
    this.egress = new EgressBudget(opts.maxEgressBytes);
    // Liveness is at least one heartbeat interval, so half an interval of lag is always safe.
    this.aliveGapMs = Math.min(ALIVE_EVENT_MAX_GAP_MS, opts.heartbeatIntervalMs / 2);
  }

  /** The grpc-js implementation object for `addService`. */
  implementation(): grpc.UntypedServiceImplementation {
    return {
      WorkerStream: (call: grpc.ServerDuplexStream<WorkerMessageView, Buffer>) => this.accept(call),
    };
  }

  /**
   * Heartbeats go out in HEARTBEAT_SLICES slices spread over the interval (a link's slice is its id
   * modulo the slice count): one burst to 10,000 workers, and the burst of acks it triggers, stalled
   * the event loop for over 100 ms.
   */
  startHeartbeats(): void {
    if (this.opts.heartbeatIntervalMs <= 0) return;
    let slot = 0;
    this.heartbeatTimer = setInterval(() => {
      this.sendHeartbeats(slot);
      slot = (slot + 1) % HEARTBEAT_SLICES;
    }, this.opts.heartbeatIntervalMs / HEARTBEAT_SLICES);
    this.heartbeatTimer.unref();
  }

  stop(): void {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    for (const t of this.rejectTimers) clearTimeout(t);
    this.rejectTimers.clear();
  }

  link(id: LinkId): WorkerLink | undefined {
    return this.links.get(id);
  }

  get linkCount(): number {
    return this.links.size;
  }

  private accept(call: grpc.ServerDuplexStream<WorkerMessageView, Buffer>): void {
    // The Rust worker waits for response headers before it sends `register` (docs/protocol.md, Response headers).
    call.sendMetadata(new grpc.Metadata());
    if (this.unregistered >= this.opts.maxUnregisteredStreams) {
      // Each one costs a stream and its buffers until its handshake timeout: a flood is turned away.
      this.opts.metrics.limitHit('unregistered_streams');
      // Reset after the status, as every ending of a worker stream (docs/protocol.md, Ending a worker stream).
      const stream = http2StreamOf(call);
      if (stream) resetAfterStatus(stream);
      call.emit('error', {
        code: grpc.status.RESOURCE_EXHAUSTED,
        details: `Too many unregistered worker streams (${this.opts.maxUnregisteredStreams}); try again`,
      });
      return;
    }
    this.unregistered++;
    const link = new WorkerLink(this.nextLinkId++, call, this.opts.maxWorkerQueueBytes, this.egress, this.opts.metrics, this.opts.maxSendBytes);
    this.links.set(link.id, link);
    this.heartbeatSlices[link.id % HEARTBEAT_SLICES].add(link);
    this.opts.post({ type: 'linkOpened', linkId: link.id });
    let handshakeDone = false;
    let closed = false;
    // Read while the call is fresh: the verified certificate of the connection the stream came on.
    const certIds = this.opts.bindWorkerIdToCert ? certificateIdentities(call.getAuthContext()?.sslPeerCertificate) : undefined;
    const handshakeOver = (): void => {
      if (handshakeDone) return;
      handshakeDone = true;
      this.unregistered--;
    };
    const onClosed = (): void => {
      if (closed) return;
      closed = true;
      handshakeOver();
      link.markClosed();
      if (link.registered) this.opts.metrics.workerDisconnected();
      this.links.delete(link.id);
      this.heartbeatSlices[link.id % HEARTBEAT_SLICES].delete(link);
      this.opts.post({ type: 'workerClosed', linkId: link.id });
      if (link.workerId) this.opts.logger.debug({ worker_id: link.workerId, link: link.id }, 'worker stream closed');
    };
    call.on('data', (msg: WorkerMessageView) => {
      if (closed) return;
      if (msg.malformed !== undefined) {
        this.opts.metrics.workerMessage('malformed');
        this.opts.logger.warn({ worker_id: link.workerId, link: link.id, peer: link.peer }, `malformed worker message: ${msg.malformed}`);
        handshakeOver();
        link.end(grpc.status.INVALID_ARGUMENT, `Malformed WorkerMessage: ${msg.malformed}`);
        return;
      }
      const name = payloadName(msg);
      this.opts.metrics.workerMessage(name ?? 'none');
      if (!handshakeDone) {
        handshakeOver();
        this.handshake(link, msg, certIds);
        return;
      }
      if (!link.workerId) return; // rejected at the handshake: the stream is ending
      // Liveness needs a fraction of a heartbeat interval of precision, not every ack: at most one
      // alive event per link per gap crosses to the scheduler (10,000 workers ack every second), and
      // an ack inside the gap allocates nothing.
      if (name === 'heartbeat_ack' && msg.heartbeat_ack?.worker_id === link.workerId) {
        const now = performance.now();
        if (now - link.lastAlivePostedAt < this.aliveGapMs) return;
        link.lastAlivePostedAt = now;
        this.opts.post({ type: 'workerAlive', linkId: link.id });
        return;
      }
      const c = classifyWorkerMessage(msg, link.id, link.workerId, this.opts.blobs);
      if (c.kind === 'event') {
        if (c.event.type === 'workerAlive') link.lastAlivePostedAt = performance.now();
        this.opts.post(c.event);
      }
      else if (c.kind === 'ignore') this.ignored(link, c.reason, c.detail);
      else {
        this.opts.logger.warn({ worker_id: link.workerId, link: link.id }, `protocol error: ${c.message}`);
        link.end(grpc.status.INVALID_ARGUMENT, c.message);
      }
    });
    call.on('end', () => {
      if (!handshakeDone) link.end(grpc.status.ABORTED, 'Connection closed during handshake');
      else link.end(grpc.status.OK, 'OK');
      onClosed();
    });
    call.on('error', (err: Error) => {
      this.opts.logger.debug({ worker_id: link.workerId, link: link.id, err: err.message }, 'worker stream error');
      onClosed();
    });
    call.on('cancelled', onClosed);
    call.on('close', onClosed);
  }

  /** `certIds`: with bind_worker_id_to_cert, the ids the stream's client certificate vouches for. */
  private handshake(link: WorkerLink, msg: WorkerMessageView, certIds: readonly string[] | undefined): void {
    const outcome = readHandshake(msg);
    if (outcome.kind === 'protocolError') {
      this.opts.logger.warn({ link: link.id }, `worker handshake refused: ${outcome.message}`);
      link.end(grpc.status.INVALID_ARGUMENT, outcome.message);
      return;
    }
    const hello = outcome.hello;
    if (!hello.ok) {
      if (hello.limit) this.opts.metrics.limitHit(hello.limit);
      this.opts.logger.warn({ worker_id: hello.workerId, link: link.id }, hello.message);
      this.rejectLater(link, hello.workerId, hello.message, 1000);
      return;
    }
    if (certIds && !certIds.includes(hello.workerId)) {
      // Refused like any other registration (accepted=false after the usual delay): the worker logs the
      // message and retries, and the id it tried to claim is left untouched (docs/protocol.md, Transport security).
      const message = certificateMismatchMessage(hello.workerId, certIds);
      this.opts.logger.warn({ worker_id: hello.workerId, link: link.id, peer: link.peer, certificate_ids: certIds }, message);
      this.rejectLater(link, hello.workerId, message, 1000);
      return;
    }
    link.workerId = hello.workerId;
    this.opts.post({
      type: 'workerHello',
      linkId: link.id,
      workerId: hello.workerId,
      computeUnits: hello.computeUnits,
      reconnect: hello.reconnect,
      ...(hello.lastKnownJobId !== undefined ? { lastKnownJobId: hello.lastKnownJobId } : {}),
      peer: link.peer,
    });
  }

  private ignored(link: WorkerLink, reason: string, detail: string): void {
    this.opts.metrics.ignoredWorkerMessage(reason);
    this.opts.logger.debug({ worker_id: link.workerId, link: link.id, reason }, `ignored worker message: ${detail}`);
  }

  /**
   * Rejections are delayed so a worker's immediate-reconnect loop cannot spin us (docs/decisions.md:
   * Reconnect storm).
   */
  private rejectLater(link: WorkerLink, workerId: string, message: string, delayMs: number): void {
    link.workerId = undefined;
    link.rejecting = true;
    const timer = setTimeout(() => {
      this.rejectTimers.delete(timer);
      link.sendBuffer(this.encode({ register_response: { worker_id: workerId, accepted: false, message } }), 'other');
      link.end(grpc.status.OK, 'OK');
    }, delayMs);
    this.rejectTimers.add(timer);
  }

  private sendHeartbeats(slot: number): void {
    let buf: Buffer | undefined;
    for (const link of this.heartbeatSlices[slot]) {
      if (!link.registered) continue;
      buf ??= this.encode({ heartbeat: { timestamp: timestampNow() } });
      link.sendBuffer(buf, 'other');
    }
  }

  private setupMessage(setup: SetupRef): OutboundMessage | undefined {
    const elf = this.opts.elves.elfBytes(setup.hashId);
    if (!elf) {
      this.opts.logger.error({ hash_id: setup.hashId }, 'ELF of a set-up program is not available; setup not sent');
      return undefined;
    }
    const encoded = this.encode({
      setup_program: {
        job_id: setup.setupJobId,
        elf_bytes: elf,
        hash_id: setup.hashId,
        with_hints: setup.withHints,
        program_name: setup.programName,
      },
    });
    return { bytes: encoded.length, kind: 'elf', encode: () => encoded };
  }

  /**
   * `m` for one link, failing the setup if it cannot be sent: the setup job fails with the sizes,
   * and the worker is told nothing but is no longer waited on (as if its ack had failed), so it
   * leaves SettingUp and stays ineligible for the program.
   */
  private setupFor(m: OutboundMessage, setup: SetupRef, linkId: LinkId): OutboundMessage {
    return {
      ...m,
      refuse: (bytes, limit) => {
        const elf = this.opts.elves.elfBytes(setup.hashId)?.length ?? 0;
        const reason = `setup message of ${bytes} bytes (ELF of ${elf} bytes) is over the worker message limit of ${limit} bytes`;
        this.opts.logger.error({ job_id: setup.setupJobId, hash_id: setup.hashId, link: linkId }, `setup not sent: ${reason}`);
        this.opts.post({ type: 'failJob', jobId: setup.setupJobId, failure: { kind: 'input', reason } });
        this.opts.post({
          type: 'setupAck',
          linkId,
          setupJobId: setup.setupJobId,
          hashId: setup.hashId,
          success: false,
          errorMessage: reason,
          vkHex: '',
        });
      },
    };
  }

  /** The job a task message belongs to fails when the message is too big to send. */
  private failJobOnRefusal(jobId: string, what: string, kind: 'input' | 'execution'): OutboundMessage['refuse'] {
    return (bytes, limit) => {
      const reason = `${what} message of ${bytes} bytes is over the worker message limit of ${limit} bytes`;
      this.opts.logger.error({ job_id: jobId }, `task not sent: ${reason}`);
      this.opts.post({ type: 'failJob', jobId, failure: { kind, reason } });
    };
  }

  private aggregateMessage(task: AggregateTask): OutboundMessage {
    const proofList = task.proofsBlobId !== undefined ? this.opts.blobs.get(task.proofsBlobId) : undefined;
    const buf = encodeAggregateTask({
      jobId: task.jobId,
      workerId: task.workerId,
      proofList,
      last: task.last,
      proofType: task.proofType,
    });
    return { bytes: buf.length, kind: 'task', encode: () => buf, refuse: this.failJobOnRefusal(task.jobId, 'aggregate task', 'execution') };
  }

  acceptWorker(effect: EffectOf<'acceptWorker'>): void {
    const link = this.links.get(effect.linkId);
    if (!link || link.closed) return;
    link.registered = true;
    this.opts.metrics.workerRegistered();
    let first: SetupRef | undefined = effect.setups[0];
    let rest = effect.setups.slice(1);
    const firstElf = first ? this.opts.elves.elfBytes(first.hashId) : undefined;
    const registration = (setup: SetupRef | undefined, elf: Buffer | undefined): Buffer =>
      this.encode({
        register_response: {
          worker_id: effect.workerId,
          accepted: true,
          message: effect.message,
          registered_at: timestampNow(),
          ...(effect.directive ? { directive: { action: effect.directive === 'KEEP_COMPUTING' ? 1 : 2 } } : {}),
          ...(setup && elf
            ? {
                setup_program: {
                  job_id: setup.setupJobId,
                  elf_bytes: elf,
                  hash_id: setup.hashId,
                  with_hints: setup.withHints,
                  program_name: setup.programName,
                },
              }
            : {}),
        },
      });
    let response = registration(first, firstElf);
    if (first && response.length > this.opts.maxSendBytes) {
      // Never the registration itself: the setup goes on its own, where a refusal fails only it.
      response = registration(undefined, undefined);
      rest = effect.setups;
      first = undefined;
    }
    link.sendBuffer(response, first ? 'elf' : 'other');
    if (effect.replayAggregate) link.send(this.aggregateMessage(effect.replayAggregate));
    for (const setup of rest) {
      const m = this.setupMessage(setup);
      if (m) link.send(this.setupFor(m, setup, link.id));
    }
  }

  rejectWorker(effect: EffectOf<'rejectWorker'>): void {
    const link = this.links.get(effect.linkId);
    if (link) this.rejectLater(link, effect.workerId, effect.message, effect.delayMs);
  }

  closeWorker(effect: EffectOf<'closeWorker'>): void {
    const link = this.links.get(effect.linkId);
    // A rejection is already on its way (delayed); the handshake timer must not pre-empt it.
    if (link && !link.rejecting) {
      if (effect.status === 'DEADLINE_EXCEEDED') this.opts.metrics.limitHit('handshake_timeout');
      link.end(STATUS_BY_NAME[effect.status], effect.message);
    }
  }

  sendSetup(effect: EffectOf<'sendSetup'>): void {
    const m = this.setupMessage(effect.setup);
    if (m) for (const id of effect.linkIds) this.links.get(id)?.send(this.setupFor(m, effect.setup, id));
  }

  dispatchContributions(effect: EffectOf<'dispatchContributions'>): void {
    const data = this.opts.taskData.contributionData(effect.jobId);
    if (!data) {
      this.opts.logger.error({ job_id: effect.jobId }, 'no task data for a dispatched job');
      this.opts.post({
        type: 'failJob',
        jobId: effect.jobId,
        failure: { kind: 'internal', traceId: effect.jobId, reason: 'task data missing at dispatch' },
      });
      return;
    }
    const encodeFor = contributionTaskEncoder({
      ...data,
      jobId: effect.jobId,
      executionOnly: effect.executionOnly,
      dataId: effect.dataId,
    });
    const approx = (data.inputData?.length ?? 0) + (data.hintsData?.length ?? 0) + 256;
    const refuse = this.failJobOnRefusal(effect.jobId, effect.executionOnly ? 'execution task' : 'contribution task', 'input');
    for (const t of effect.targets) {
      const per = {
        workerId: t.workerId,
        rank: t.rank,
        totalWorkers: effect.totalWorkers,
        allocation: t.allocation,
        jobComputeUnits: effect.jobComputeUnits,
      };
      const link = this.links.get(t.linkId);
      if (!link) continue;
      // Encoded just in time: a queued 64 MiB input holds one shared source, not N copies.
      let encoded: Buffer | undefined;
      link.send({
        bytes: approx + t.allocation.length * 5,
        kind: data.inputData ? 'input' : 'task',
        encode: () => (encoded ??= encodeFor(per)),
        refuse,
      });
    }
  }

  dispatchProve(effect: EffectOf<'dispatchProve'>): void {
    const challenges: Buffer[] = [];
    for (const id of effect.challengesBlobIds) {
      const blob = this.opts.blobs.get(id);
      if (blob) challenges.push(blob);
    }
    const encodeFor = proveTaskEncoder(effect.jobId, challenges);
    const refuse = this.failJobOnRefusal(effect.jobId, 'prove task', 'execution');
    for (const t of effect.targets) this.links.get(t.linkId)?.sendBuffer(encodeFor(t.workerId), 'task', refuse);
  }

  dispatchAggregate(effect: EffectOf<'dispatchAggregate'>): void {
    this.links.get(effect.task.linkId)?.send(this.aggregateMessage(effect.task));
  }

  dispatchWrap(effect: EffectOf<'dispatchWrap'>): void {
    const proofData = this.opts.blobs.get(effect.proofBlobId) ?? Buffer.alloc(0);
    const buf = encodeWrapTask({ jobId: effect.jobId, workerId: effect.workerId, proofData, proofDest: effect.proofDest });
    this.links.get(effect.linkId)?.sendBuffer(buf, 'task', this.failJobOnRefusal(effect.jobId, 'wrap task', 'input'));
  }

  sendJobCancelled(effect: EffectOf<'sendJobCancelled'>): void {
    const buf = this.encode({ job_cancelled: { job_id: effect.jobId, reason: effect.reason } });
    for (const id of effect.linkIds) this.links.get(id)?.sendBuffer(buf, 'other');
  }

  ignoredMessage(effect: EffectOf<'ignoredMessage'>): void {
    this.opts.metrics.ignoredWorkerMessage(effect.reason);
    this.opts.logger.debug({ link: effect.linkId, reason: effect.reason }, `ignored worker message: ${effect.detail}`);
  }

  /** Encodes one message once for a fan-out to several links (input/hints relays). */
  encodeMessage(m: CoordinatorMessageObject): Buffer {
    return this.encode(m);
  }
}
