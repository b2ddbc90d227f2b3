/**
 * The baseline of every scenario: the raw grpc-js transport doing the equivalent work, with no
 * coordinator logic. It speaks the same two protos with the same message shapes and sizes:
 *
 * - worker port (relay view, so relayed uint64 arrays stay bytes, as in the coordinator): answers
 *   `register` with `accepted`, broadcasts one heartbeat encoding per interval, and runs a prove job as
 *   the bare message pattern — contribution tasks to N free workers; once all N answered (the barrier:
 *   wait for N messages, then write N) the PROVE tasks carrying every challenge; the first prover
 *   aggregates, the others' `ProofList` bytes are relayed to it one step at a time; the final proof
 *   goes to the client. No validation, no timers, no metrics, no scheduler thread, no blob store.
 * - client API (public proto): JobRequest (prove; setup answers at once), WatchJob (the same six
 *   events: queued, started, progress ×3, completed), WaitJobResult, CancelJob, PushJobInput (each
 *   chunk cut at 4 MiB, encoded once, written to every worker of the job with write()/'drain'
 *   backpressure) and RegisterGuestProgram (BLAKE3 with the coordinator's hasher on the main thread, then the file).
 * - an HTTP `/health` listener, so startup binds the same three listeners.
 *
 * Forked with IPC by the bench (`EchoApi`), or `--standalone` (prints one JSON line when serving,
 * exits on SIGTERM) for the startup scenario. Both gRPC servers are built like the coordinator's
 * (`TunedGrpcServer`, src/main/grpc-server.ts); `recvWindowBytes` sets their HTTP/2 receive windows
 * (default: grpc-js's 64 KiB), the way `[server] http2_window_bytes` sets the coordinator's.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { ServiceDefinition } from '@grpc/proto-loader';
import { CLIENT_API_PROTO, CLIENT_API_SERVICE, CLUSTER_API_SERVICE, CLUSTER_VIEW_PROTO, serviceDefinition } from '../../src/shared/proto';
import { loadBlake3 } from '../../src/shared/blake3';
import { LoopStatsSampler, type LoopStats } from '../../src/shared/loop-stats';
import { HTTP2_DEFAULT_WINDOW_BYTES, TunedGrpcServer, type GrpcServerTuning } from '../../src/main/process/grpc-server';
import { serveIpc } from '../lib/ipc';

export interface EchoConfig {
  /** Workers per prove job; 0 = every registered worker. */
  workersPerJob: number;
  heartbeatIntervalMs: number;
  maxMessageBytes: number;
  /** Where registered ELFs are written. */
  cacheDir: string;
  /** Both servers' HTTP/2 receive window (stream and connection); default grpc-js's 64 KiB. */
  recvWindowBytes?: number;
  /**
   * Spread each heartbeat round over the interval in this many slices instead of writing every
   * stream in one burst (an experiment: what a spread broadcast would buy the coordinator).
   */
  heartbeatSlices?: number;
  /** Ports of the two gRPC servers (default 0: the OS picks; a restart passes the first run's). */
  apiPort?: number;
  clusterPort?: number;
}

export type EchoApi = {
  start: { params: EchoConfig; result: { api: number; cluster: number } };
  loopStats: { params: Record<string, never>; result: LoopStats };
  counters: { params: Record<string, never>; result: { links: number; registered: number; jobsCompleted: number; lastHashMs: number } };
};

const INPUT_MESSAGE_BYTES = 4 << 20;

interface Timestamp {
  seconds: string;
  nanos: number;
}

function ts(ms = Date.now()): Timestamp {
  const s = Math.floor(ms / 1000);
  return { seconds: String(s), nanos: Math.round((ms - s * 1000) * 1e6) };
}

// ------------------------------------------------------------------ decoded shapes (relay view / public proto)

interface WorkerMsg {
  payload?: string;
  register?: { worker_id?: string };
  reconnect?: { worker_id?: string };
  execute_task_response?: {
    job_id?: string;
    task_type?: number;
    success?: boolean;
    challenges?: { challenges?: Buffer[] };
    proofs?: Buffer;
    final_proof?: { proof_data?: Buffer; executed_steps?: string };
  };
}

interface InputKindMsg {
  kind?: string;
  inline?: { data?: Buffer } | null;
  stream_uri?: string;
}

interface JobRequestMsg {
  job_kind?: { kind?: string; prove?: { hash_id?: string; input?: InputKindMsg | null } | null; setup?: { hash_id?: string } | null } | null;
}

interface PushMsg {
  job_id?: string;
  chunk?: { data?: Buffer } | null;
}

type JobEventWire = Record<string, unknown>;

// ------------------------------------------------------------------ state

class Link {
  workerId = '';
  registered = false;
  closed = false;
  job: Job | undefined;
  rank = 0;
  constructor(
    readonly id: number,
    readonly call: grpc.ServerDuplexStream<WorkerMsg, Buffer>,
  ) {}
}

interface AggStep {
  proofs: Buffer;
  last: boolean;
}

interface Job {
  id: string;
  hashId: string;
  input: Buffer | undefined;
  links: Link[];
  challenges: Buffer[][];
  contributions: number;
  proofs: number;
  aggregator: Link | undefined;
  aggQueue: AggStep[];
  aggBusy: boolean;
  history: JobEventWire[];
  watchers: Set<grpc.ServerWritableStream<unknown, JobEventWire>>;
  waiters: Set<() => void>;
  state: 'queued' | 'running' | 'completed' | 'cancelled';
  result: Record<string, unknown> | undefined;
  createdAt: number;
  startedAt: number;
  /** Push chunks that arrived before the job had workers. */
  started: Promise<void>;
  markStarted: () => void;
}

let config: EchoConfig = { workersPerJob: 0, heartbeatIntervalMs: 30_000, maxMessageBytes: 128 << 20, cacheDir: '' };
const links = new Map<number, Link>();
const free: Link[] = [];
const queue: Job[] = [];
const jobs = new Map<string, Job>();
let nextLinkId = 1;
let jobsCompleted = 0;
/** Duration of the last RegisterGuestProgram's BLAKE3 (on this thread). */
let lastHashMs = 0;

const clusterView = serviceDefinition(CLUSTER_VIEW_PROTO, CLUSTER_API_SERVICE);
const workerStream = clusterView.WorkerStream;
const encode = (m: Record<string, unknown>): Buffer => workerStream.responseSerialize(m);

function clusterService(): ServiceDefinition {
  return {
    WorkerStream: {
      ...workerStream,
      responseSerialize: (v: object) => (Buffer.isBuffer(v) ? v : encode(v as Record<string, unknown>)),
    },
  };
}

function registeredCount(): number {
  let n = 0;
  for (const l of links.values()) if (l.registered && !l.closed) n++;
  return n;
}

// ------------------------------------------------------------------ jobs

function emit(job: Job, event: JobEventWire, terminal = false): void {
  job.history.push(event);
  for (const w of job.watchers) {
    w.write(event);
    if (terminal) w.end();
  }
  if (terminal) {
    job.watchers.clear();
    for (const answer of [...job.waiters]) answer();
  }
}

function pump(): void {
  while (queue.length > 0) {
    for (let i = free.length - 1; i >= 0; i--) if (free[i].closed) free.splice(i, 1);
    const want = config.workersPerJob > 0 ? config.workersPerJob : registeredCount();
    if (want === 0 || free.length < want) return;
    const job = queue.shift() as Job;
    startJob(job, free.splice(0, want));
  }
}

function startJob(job: Job, selected: Link[]): void {
  job.state = 'running';
  job.startedAt = Date.now();
  job.links = selected;
  job.challenges = selected.map(() => []);
  const n = selected.length;
  emit(job, { started: { job_id: job.id, timestamp: ts() } });
  selected.forEach((link, rank) => {
    link.job = job;
    link.rank = rank;
    const params: Record<string, unknown> = {
      data_id: job.id,
      hash_id: job.hashId,
      rank_id: rank,
      total_workers: n,
      worker_allocation: [rank],
      job_compute_units: n,
    };
    if (job.input) params.input_data = job.input;
    link.call.write(encode({ execute_task: { worker_id: link.workerId, job_id: job.id, task_type: 0, contribution_params: params } }));
  });
  emit(job, { progress: { job_id: job.id, phase: 1, timestamp: ts() } });
  job.markStarted();
}

function releaseLink(link: Link): void {
  link.job = undefined;
  if (!link.closed) free.push(link);
}

function onTaskResponse(link: Link, r: NonNullable<WorkerMsg['execute_task_response']>): void {
  const job = link.job;
  if (!job || job.id !== r.job_id || job.state !== 'running' || !r.success) return;
  switch (r.task_type) {
    case 0: {
      job.challenges[link.rank] = r.challenges?.challenges ?? [];
      if (++job.contributions < job.links.length) return;
      // The barrier: every contribution is in; write the PROVE task to every worker.
      emit(job, { progress: { job_id: job.id, phase: 2, timestamp: ts() } });
      const all = job.challenges.flat();
      for (const l of job.links) {
        l.call.write(encode({ execute_task: { worker_id: l.workerId, job_id: job.id, task_type: 1, prove_params: { challenges: all } } }));
      }
      return;
    }
    case 1: {
      job.proofs++;
      const last = job.proofs === job.links.length;
      if (!job.aggregator) {
        job.aggregator = link;
        emit(job, { progress: { job_id: job.id, phase: 3, timestamp: ts() } });
        job.aggQueue.push({ proofs: Buffer.alloc(0), last });
      } else {
        job.aggQueue.push({ proofs: r.proofs ?? Buffer.alloc(0), last });
        releaseLink(link);
      }
      sendAggregate(job);
      pump();
      return;
    }
    case 2: {
      job.aggBusy = false;
      const data = r.final_proof?.proof_data ?? Buffer.alloc(0);
      if (data.length === 0) {
        sendAggregate(job);
        return;
      }
      complete(job, data, r.final_proof?.executed_steps ?? '0');
      return;
    }
  }
}

function sendAggregate(job: Job): void {
  const agg = job.aggregator;
  if (!agg || job.aggBusy) return;
  const step = job.aggQueue.shift();
  if (!step) return;
  job.aggBusy = true;
  agg.call.write(
    encode({
      execute_task: {
        worker_id: agg.workerId,
        job_id: job.id,
        task_type: 2,
        agg_params: { agg_proofs: step.proofs, last_proof: step.last, final_proof: step.last, proof_type: 0 },
      },
    }),
  );
}

function complete(job: Job, proof: Buffer, steps: string): void {
  job.state = 'completed';
  jobsCompleted++;
  const now = Date.now();
  job.result = {
    prove: {
      proof: {
        proof_id: randomUUID(),
        hash_id: job.hashId,
        verification_key: Buffer.alloc(32, 1),
        proof_kind: 1,
        data: proof,
        public_inputs: Buffer.alloc(544),
        started_at: ts(job.startedAt),
        completed_at: ts(now),
      },
      stats: {
        steps,
        duration_nanos: String((now - job.startedAt) * 1_000_000),
        cost_per_type: { main: '0', opcode: '0', memory: '0', precompile: '0', tables: '0', other: '0' },
      },
    },
  };
  for (const l of job.links) if (l.job === job) releaseLink(l);
  emit(job, { completed: { job_id: job.id, result: job.result, timestamp: ts(now) } }, true);
  // Keep a bounded table, like a retention limit.
  if (jobs.size > 20_000) {
    for (const id of jobs.keys()) {
      jobs.delete(id);
      if (jobs.size <= 10_000) break;
    }
  }
  pump();
}

function cancel(job: Job): void {
  if (job.state === 'completed' || job.state === 'cancelled') return;
  const qi = queue.indexOf(job);
  if (qi >= 0) queue.splice(qi, 1);
  job.state = 'cancelled';
  const buf = encode({ job_cancelled: { job_id: job.id, reason: 'cancelled by client' } });
  for (const l of job.links) {
    if (l.job !== job) continue;
    l.call.write(buf);
    releaseLink(l);
  }
  emit(job, { cancelled: { job_id: job.id, timestamp: ts() } }, true);
  pump();
}

// ------------------------------------------------------------------ worker port

function acceptWorker(call: grpc.ServerDuplexStream<WorkerMsg, Buffer>): void {
  call.sendMetadata(new grpc.Metadata());
  const link = new Link(nextLinkId++, call);
  links.set(link.id, link);
  const closed = (): void => {
    if (link.closed) return;
    link.closed = true;
    links.delete(link.id);
    if (link.job) cancel(link.job);
  };
  call.on('data', (msg: WorkerMsg) => {
    if (!link.registered) {
      const hello = msg.register ?? msg.reconnect;
      link.workerId = hello?.worker_id ?? '';
      link.registered = true;
      call.write(encode({ register_response: { worker_id: link.workerId, accepted: true, message: 'ok', registered_at: ts() } }));
      free.push(link);
      pump();
      return;
    }
    if (msg.payload === 'execute_task_response' && msg.execute_task_response) onTaskResponse(link, msg.execute_task_response);
  });
  call.on('end', () => {
    call.end();
    closed();
  });
  call.on('error', closed);
  call.on('cancelled', closed);
  call.on('close', closed);
}

function broadcastHeartbeat(): void {
  let buf: Buffer | undefined;
  const targets: Link[] = [];
  for (const l of links.values()) if (l.registered && !l.closed) targets.push(l);
  const slices = Math.max(1, config.heartbeatSlices ?? 1);
  const per = Math.ceil(targets.length / slices);
  const gap = config.heartbeatIntervalMs / slices;
  for (let i = 0; i < slices; i++) {
    const slice = targets.slice(i * per, (i + 1) * per);
    if (slice.length === 0) break;
    const send = (): void => {
      buf ??= encode({ heartbeat: { timestamp: ts() } });
      for (const l of slice) if (!l.closed) l.call.write(buf);
    };
    if (i === 0) send();
    else setTimeout(send, i * gap).unref();
  }
}

// ------------------------------------------------------------------ client API

type Callback<T> = grpc.sendUnaryData<T>;

function jobRequest(call: grpc.ServerUnaryCall<JobRequestMsg, object>, cb: Callback<object>): void {
  const jk = call.request.job_kind;
  const id = randomUUID();
  let resolveStarted!: () => void;
  const started = new Promise<void>((r) => (resolveStarted = r));
  const job: Job = {
    id,
    hashId: '',
    input: undefined,
    links: [],
    challenges: [],
    contributions: 0,
    proofs: 0,
    aggregator: undefined,
    aggQueue: [],
    aggBusy: false,
    history: [],
    watchers: new Set(),
    waiters: new Set(),
    state: 'queued',
    result: undefined,
    createdAt: Date.now(),
    startedAt: 0,
    started,
    markStarted: resolveStarted,
  };
  jobs.set(id, job);
  emit(job, { queued: { job_id: id, timestamp: ts() } });
  if (jk?.kind === 'setup') {
    // The sims connected to the baseline hold the program already (preSetup).
    job.state = 'completed';
    job.result = { setup: { vk: Buffer.alloc(32, 1) } };
    emit(job, { completed: { job_id: id, result: job.result, timestamp: ts() } }, true);
    cb(null, { job_id: id });
    return;
  }
  const p = jk?.prove ?? {};
  job.hashId = p.hash_id ?? '';
  if (p.input?.kind === 'inline') job.input = p.input.inline?.data ?? Buffer.alloc(0);
  queue.push(job);
  cb(null, { job_id: id });
  pump();
}

function watchJob(call: grpc.ServerWritableStream<{ job_id?: string }, JobEventWire>): void {
  const job = jobs.get(call.request.job_id ?? '');
  if (!job) {
    call.emit('error', { code: grpc.status.NOT_FOUND, details: 'job not found' });
    return;
  }
  for (const e of job.history) call.write(e);
  if (job.state === 'completed' || job.state === 'cancelled') {
    call.end();
    return;
  }
  job.watchers.add(call);
  call.on('cancelled', () => job.watchers.delete(call));
}

function waitJobResult(call: grpc.ServerUnaryCall<{ job_id?: string; timeout_seconds?: number }, object>, cb: Callback<object>): void {
  const job = jobs.get(call.request.job_id ?? '');
  if (!job) {
    cb({ code: grpc.status.NOT_FOUND, details: 'job not found' });
    return;
  }
  const answer = (): void => {
    clearTimeout(timer);
    job.waiters.delete(answer);
    const status = job.state === 'completed' ? { completed: {} } : job.state === 'cancelled' ? { cancelled: {} } : { running: {} };
    cb(null, { job_id: job.id, job_status: status, ...(job.result ? { result: job.result } : {}) });
  };
  const timer = setTimeout(answer, Math.max(1, call.request.timeout_seconds ?? 5) * 1000);
  if (job.state === 'completed' || job.state === 'cancelled') answer();
  else job.waiters.add(answer);
}

function cancelJob(call: grpc.ServerUnaryCall<{ job_id?: string }, object>, cb: Callback<object>): void {
  const job = jobs.get(call.request.job_id ?? '');
  if (!job) {
    cb({ code: grpc.status.NOT_FOUND, details: 'job not found' });
    return;
  }
  const was = job.state;
  cancel(job);
  cb(null, { job_id: job.id, cancelled: was === 'queued' || was === 'running' });
}

/** Writes one encoding to every worker of the job; resolves when every blocked stream drained. */
function relay(job: Job, buf: Buffer): Promise<void> {
  const waits: Promise<void>[] = [];
  for (const l of job.links) {
    if (l.closed || l.job !== job) continue;
    if (!l.call.write(buf)) waits.push(new Promise((resolve) => l.call.once('drain', () => resolve())));
  }
  return waits.length === 0 ? Promise.resolve() : Promise.all(waits).then(() => undefined);
}

function pushJobInput(call: grpc.ServerReadableStream<PushMsg, object>, cb: Callback<object>): void {
  let tail: Promise<void> = Promise.resolve();
  let failed = false;
  call.on('data', (msg: PushMsg) => {
    const job = jobs.get(msg.job_id ?? '');
    const data = msg.chunk?.data ?? Buffer.alloc(0);
    if (!job) {
      failed = true;
      cb({ code: grpc.status.NOT_FOUND, details: 'job not found' });
      return;
    }
    call.pause();
    tail = tail
      .then(() => job.started)
      .then(async () => {
        for (let off = 0; off < data.length; off += INPUT_MESSAGE_BYTES) {
          const payload = data.subarray(off, Math.min(data.length, off + INPUT_MESSAGE_BYTES));
          await relay(job, encode({ input_stream_data: { job_id: job.id, payload } }));
        }
      })
      .then(() => {
        call.resume();
      });
  });
  call.on('end', () => {
    void tail.then(() => {
      if (!failed) cb(null, {});
    });
  });
  call.on('error', () => undefined);
}

function registerProgram(call: grpc.ServerUnaryCall<{ zisk_elf?: Buffer }, object>, cb: Callback<object>): void {
  const elf = call.request.zisk_elf ?? Buffer.alloc(0);
  (async () => {
    const blake3 = await loadBlake3();
    const t0 = performance.now();
    const hashId = blake3.hex(elf);
    lastHashMs = performance.now() - t0;
    await fs.promises.writeFile(path.join(config.cacheDir, `${hashId}.elf`), elf);
    return hashId;
  })().then(
    (hash_id) => cb(null, { hash_id }),
    (err: Error) => cb({ code: grpc.status.INTERNAL, details: err.message }),
  );
}

function apiImplementation(): grpc.UntypedServiceImplementation {
  return {
    RegisterGuestProgram: registerProgram,
    JobRequest: jobRequest,
    WaitJobResult: waitJobResult,
    WatchJob: watchJob,
    PushJobInput: pushJobInput,
    PushJobHintsInput: (_call: grpc.ServerReadableStream<PushMsg, object>, cb: Callback<object>) =>
      cb({ code: grpc.status.UNIMPLEMENTED, details: 'not in the baseline' }),
    CancelJob: cancelJob,
  };
}

// ------------------------------------------------------------------ servers

interface Running {
  api: number;
  cluster: number;
  http: number;
  close(): Promise<void>;
}

async function startServers(cfg: EchoConfig): Promise<Running> {
  config = cfg;
  // The coordinator's transport settings (channelz off, the same window mechanism), so the ratio
  // compares logic, not grpc-js options.
  const tuning: GrpcServerTuning = {
    windowBytes: cfg.recvWindowBytes ?? HTTP2_DEFAULT_WINDOW_BYTES,
    maxMessageBytes: cfg.maxMessageBytes,
    keepaliveTimeMs: 30_000,
    keepaliveTimeoutMs: 10_000,
  };
  const cluster = new TunedGrpcServer(tuning);
  cluster.server.addService(clusterService(), { WorkerStream: acceptWorker });
  const api = new TunedGrpcServer(tuning);
  api.server.addService(serviceDefinition(CLIENT_API_PROTO, CLIENT_API_SERVICE), apiImplementation());
  const clusterPort = await cluster.bind(`127.0.0.1:${cfg.clusterPort ?? 0}`, grpc.ServerCredentials.createInsecure());
  const apiPort = await api.bind(`127.0.0.1:${cfg.apiPort ?? 0}`, grpc.ServerCredentials.createInsecure());
  const httpServer = http.createServer((req, res) => {
    res.statusCode = req.url === '/health' ? 200 : 404;
    res.end(req.url === '/health' ? 'OK' : '');
  });
  const httpPort = await new Promise<number>((resolve) =>
    httpServer.listen(0, '127.0.0.1', () => resolve((httpServer.address() as { port: number }).port)),
  );
  const hb = setInterval(broadcastHeartbeat, cfg.heartbeatIntervalMs);
  hb.unref();
  return {
    api: apiPort,
    cluster: clusterPort,
    http: httpPort,
    async close() {
      clearInterval(hb);
      await Promise.all([api.close(0), cluster.close(0)]);
      await new Promise<void>((r) => httpServer.close(() => r()));
    },
  };
}

if (require.main === module) {
  const sampler = new LoopStatsSampler();
  sampler.start();
  if (process.argv.includes('--standalone')) {
    const t0 = performance.now();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zisk-echo-'));
    startServers({ workersPerJob: 0, heartbeatIntervalMs: 30_000, maxMessageBytes: 128 << 20, cacheDir: dir }).then(
      (r) => {
        process.stdout.write(`${JSON.stringify({ msg: 'echo baseline serving', startup_ms: Math.round(performance.now() - t0), ...r })}\n`);
        process.once('SIGTERM', () => {
          void r.close().then(() => {
            fs.rmSync(dir, { recursive: true, force: true });
            process.exit(0);
          });
        });
      },
      (err: Error) => {
        process.stderr.write(`${err.stack ?? err.message}\n`);
        process.exit(1);
      },
    );
  } else {
    serveIpc<EchoApi>({
      start: async (cfg) => {
        const r = await startServers(cfg);
        return { api: r.api, cluster: r.cluster };
      },
      loopStats: () => sampler.sample(),
      counters: () => ({ links: links.size, registered: registeredCount(), jobsCompleted, lastHashMs }),
    });
  }
}
