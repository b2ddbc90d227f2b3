/** Options of a simulated worker and their defaults. */

export type SimPhase = 'setup' | 'contribution' | 'prove' | 'aggregate' | 'execute' | 'wrap';

export const SIM_PHASES: readonly SimPhase[] = ['setup', 'contribution', 'prove', 'aggregate', 'execute', 'wrap'];

/**
 * What an injected fault does when a task of its phase arrives:
 * - `error`: answer `success=false` with `message` (and `worker_in_recovery` if asked; then the worker
 *   runs recovery and sends `recovery_complete`). For `setup`: a failed `setup_program_ack`.
 * - `workerError`: send a `WorkerError{job_id, message}` instead of a response.
 * - `disconnect`: cancel the stream and drop the connection mid-task; the computation carries on and
 *   its result is delivered on the next stream (like the real worker's process-wide queue).
 * - `silence`: stop heartbeats, never answer, ignore every inbound message (and do not reconnect)
 *   for `durationMs`, forever by default.
 * - `slowReader`: stop reading the stream (the call is paused, so HTTP/2 flow control pushes back on
 *   the coordinator) for `durationMs`, forever by default; the task itself completes normally.
 * - `wrongVk`: (setup only) ack success with a VK that differs from every other worker's.
 * - `kill`: the worker process dies: the connection goes at once and everything the process held
 *   (the job context and its computation, queued messages, programs set up, pending recovery) is
 *   lost; a new process starts after `reconnectAfterMs` and registers afresh (`register`, not
 *   `reconnect`), so the coordinator must send its setups again.
 * - `garbleRelay`: (contribution and prove only) answer success, but with a relayed part that is not
 *   valid protobuf: a challenges entry, or the proof list (`GARBLED_RELAY`).
 */
export type SimFaultAction = 'error' | 'workerError' | 'disconnect' | 'silence' | 'slowReader' | 'wrongVk' | 'garbleRelay' | 'kill';

export interface SimFault {
  /** Omit to only override the delay. */
  action?: SimFaultAction;
  /** Replaces the phase delay (the task's duration). */
  delayMs?: number;
  /** `disconnect` / `silence` / `slowReader` / `kill`: fire this long after the task arrived (default 0: at once). */
  atMs?: number;
  /** Error text for `error` / `workerError`. */
  message?: string;
  /** `error` only: set `worker_in_recovery` and run recovery afterwards. */
  workerInRecovery?: boolean;
  /** How many tasks of the phase it applies to (default 1; `Infinity` for all). */
  times?: number;
  /** Only tasks of this job. */
  jobId?: string;
  /** `disconnect`: wait this long before reconnecting; `kill`: before the new process starts (default 0). */
  reconnectAfterMs?: number;
  /** `silence` / `slowReader`: how long it lasts (default: until `stop()` or an explicit resume). */
  durationMs?: number;
}

export type SimFaults = Partial<Record<SimPhase, SimFault>>;

export interface SetupKey {
  hashId: string;
  withHints: boolean;
}

/**
 * How the sim speaks HTTP/2 to the coordinator:
 * - `grpc-js` (default): a grpc-js client call. Any end of the response stream is a disconnect.
 * - `upstream`: raw `node:http2` behaving like upstream's tonic/hyper worker (`worker_node.rs`): a
 *   response that ends with status OK and no RST_STREAM leaves the request side open, and the worker
 *   goes on heartbeating into it until a send fails (stream reset or connection gone). grpc-js
 *   cannot tell those two apart, and a coordinator that leaves a stream half-open only shows its bug
 *   against this mode.
 */
export type SimWire = 'grpc-js' | 'upstream';

export const SIM_WIRES: readonly SimWire[] = ['grpc-js', 'upstream'];

/**
 * TLS to the worker port (docs/security.md). Upstream's worker speaks plaintext only; with TLS on it
 * runs behind a TLS-terminating sidecar, which this stands for.
 */
export interface SimTls {
  /** PEM CA bundle the coordinator's certificate must chain to; default: the system roots. */
  ca?: Buffer;
  /** PEM client certificate (chain) and its key, for mutual TLS; both or neither. */
  cert?: Buffer;
  key?: Buffer;
  /** The name the coordinator's certificate is checked against; default: the host of `coordinator`. */
  serverName?: string;
}

export interface SimWorkerOptions {
  /** `host:port` of the coordinator's worker port. */
  coordinator: string;
  /** Connect with TLS (default: plaintext, like the real worker). */
  tls?: SimTls;
  workerId: string;
  /** The transport (default `grpc-js`; see `SimWire`). */
  wire: SimWire;
  /** `compute_capacity.compute_units` (default 10, like the real worker). */
  computeUnits: number;
  /** Unsolicited `heartbeat_ack` cadence (default 30 000, hard-coded in the real worker). */
  heartbeatIntervalMs: number;
  /**
   * Sleep before the next attempt after a failed one (default 5 000, upstream's
   * `reconnect_interval_seconds`). `grpc-js` wire: after a connect error or any error status;
   * `upstream` wire: only when the connect or the `WorkerStream` call itself failed.
   */
  reconnectIntervalMs: number;
  /**
   * Delay before reconnecting after a stream that had been established ended (default 0, like the
   * real worker). `grpc-js` wire: after a status OK; `upstream` wire: after an error status, a reset,
   * a lost connection or a failed send.
   */
  cleanReconnectDelayMs: number;
  /** Reconnect after `accepted=false` (default true: the real worker loops with no back-off). */
  reconnectOnReject: boolean;
  /** Delay before that reconnect (default 0). */
  rejectedReconnectDelayMs: number;
  /**
   * Give up on a stream whose response headers do not arrive in time; 0 = wait forever. Default
   * 30 000 on the `grpc-js` wire, 0 on the `upstream` wire (tonic has no such timeout).
   */
  headersTimeoutMs: number;
  setupDelayMs: number;
  contributionDelayMs: number;
  proveDelayMs: number;
  aggregateDelayMs: number;
  executeDelayMs: number;
  wrapDelayMs: number;
  recoveryDelayMs: number;
  /** Values per `ProofStark` in a Prove result (K, default 1 024). */
  proofValues: number;
  /** `ProofStark` entries per Prove result (default 1). */
  proofsPerTask: number;
  /** Size of the final aggregated proof (default 1 024). */
  finalProofBytes: number;
  /** Size of a wrap result (default 1 024). */
  wrapProofBytes: number;
  /** Refuse contribution/execution tasks for programs not set up (default true, like the real worker). */
  requireSetup: boolean;
  /** Programs considered set up from the start. */
  preSetup: SetupKey[];
  /**
   * Hash ids this worker can set up; a `setup_program` for any other is answered with a failed ack,
   * as a worker that cannot hold that program would (default: any program).
   */
  setupPrograms?: string[];
  /** Start holding a job context, so the first connection is a `reconnect` carrying this id. */
  lastKnownJobId?: string;
  /** Check every challenge of a Prove task against the sim derivation; mismatch → task error (default true). */
  verifyChallenges: boolean;
  /**
   * Send the uint64 arrays of a result's witness info (publics, proof_values) unpacked, one tag per
   * value (default false). Valid proto3 every parser must accept, though prost writes them packed.
   */
  unpackedArrays: boolean;
  /** A contribution/execution with `hints_stream` completes only after the hints END (default true). */
  waitForHintsEnd: boolean;
  /** How an `input_stream_data`/`stream_data` violation is reported: `WorkerError` or a failed task response. */
  streamErrorReport: 'workerError' | 'taskError';
  faults: SimFaults;
  /** Entries kept in `log`: at least the last `maxLogEntries`, at most twice that (default 500). */
  maxLogEntries: number;
  /** gRPC send/receive limit (default 128 MiB, like the real worker); a bigger inbound message is a stream error. */
  maxMessageBytes: number;
  /**
   * HTTP/2 receive window of the connection, per stream and per connection
   * (`grpc-node.flow_control_window`); default grpc-js's 64 KiB. The Rust worker (tonic over hyper)
   * advertises 2 MiB per stream and 5 MiB per connection. Paces every download at window ÷ RTT.
   */
  receiveWindowBytes?: number;
  /** One line per registration/task/error; default: silent. */
  logger?: (line: string) => void;
}

export const SIM_DEFAULTS: Omit<SimWorkerOptions, 'coordinator' | 'workerId'> = {
  wire: 'grpc-js',
  computeUnits: 10,
  heartbeatIntervalMs: 30_000,
  reconnectIntervalMs: 5_000,
  cleanReconnectDelayMs: 0,
  reconnectOnReject: true,
  rejectedReconnectDelayMs: 0,
  headersTimeoutMs: 30_000,
  setupDelayMs: 50,
  contributionDelayMs: 100,
  proveDelayMs: 100,
  aggregateDelayMs: 50,
  executeDelayMs: 100,
  wrapDelayMs: 100,
  recoveryDelayMs: 50,
  proofValues: 1024,
  proofsPerTask: 1,
  finalProofBytes: 1024,
  wrapProofBytes: 1024,
  requireSetup: true,
  preSetup: [],
  verifyChallenges: true,
  unpackedArrays: false,
  waitForHintsEnd: true,
  streamErrorReport: 'workerError',
  faults: {},
  maxLogEntries: 500,
  maxMessageBytes: 128 * 1024 * 1024,
};

export type SimWorkerInit = Partial<SimWorkerOptions> & Pick<SimWorkerOptions, 'coordinator' | 'workerId'>;

function nonNegative(name: string, v: number): void {
  if (!(v >= 0)) throw new RangeError(`sim option ${name} must be >= 0 (got ${v})`);
}

export function resolveWorkerOptions(init: SimWorkerInit): SimWorkerOptions {
  const o: SimWorkerOptions = { ...SIM_DEFAULTS, ...stripUndefined(init), coordinator: init.coordinator, workerId: init.workerId };
  if (!SIM_WIRES.includes(o.wire)) throw new RangeError(`sim option wire must be one of ${SIM_WIRES.join(', ')} (got ${String(o.wire)})`);
  if (o.wire === 'upstream' && init.headersTimeoutMs === undefined) o.headersTimeoutMs = 0;
  for (const k of [
    'computeUnits', 'heartbeatIntervalMs', 'reconnectIntervalMs', 'cleanReconnectDelayMs', 'rejectedReconnectDelayMs',
    'headersTimeoutMs', 'setupDelayMs', 'contributionDelayMs', 'proveDelayMs', 'aggregateDelayMs', 'executeDelayMs',
    'wrapDelayMs', 'recoveryDelayMs', 'proofValues', 'proofsPerTask', 'finalProofBytes', 'wrapProofBytes', 'maxLogEntries',
  ] as const) {
    nonNegative(k, o[k]);
  }
  if (o.heartbeatIntervalMs === 0) throw new RangeError('sim option heartbeatIntervalMs must be > 0');
  if (!o.workerId) throw new RangeError('sim option workerId must not be empty');
  if (o.tls && (o.tls.cert === undefined) !== (o.tls.key === undefined)) throw new RangeError('sim option tls: cert and key go together');
  o.faults = { ...o.faults };
  o.preSetup = [...o.preSetup];
  if (o.setupPrograms) o.setupPrograms = [...o.setupPrograms];
  return o;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
