/**
 * `npm run sim -- --coordinator 127.0.0.1:50051 --workers N …`: runs a simulated worker fleet until
 * SIGINT/SIGTERM, logging one line per registration, task and error. `--upstream-wire` makes every
 * worker end streams and reconnect as upstream's `zisk-worker` does (see `SimWire`).
 */
import * as fs from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { SimFleet, type SimFleetOptions } from './fleet';
import { SIM_DEFAULTS, SIM_PHASES, type SimFault, type SimFaultAction, type SimFaults, type SimPhase, type SimTls } from './options';

const FAULT_ACTIONS: readonly SimFaultAction[] = ['error', 'workerError', 'disconnect', 'silence', 'slowReader', 'wrongVk'];

function int(name: string, min = 0): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}`);
    return n;
  };
}

interface FaultArg {
  worker: string;
  phase: SimPhase;
  fault: SimFault;
}

/** `<worker-id|*>:<phase>:<action>[:times]`, e.g. `sim-3:prove:error` or `*:contribution:disconnect:2`. */
function parseFault(v: string, prev: FaultArg[]): FaultArg[] {
  const [worker, phase, action, times] = v.split(':');
  if (!worker || !SIM_PHASES.includes(phase as SimPhase) || !FAULT_ACTIONS.includes(action as SimFaultAction)) {
    throw new InvalidArgumentError(`expected <worker|*>:<${SIM_PHASES.join('|')}>:<${FAULT_ACTIONS.join('|')}>[:times]`);
  }
  const fault: SimFault = { action: action as SimFaultAction };
  if (times !== undefined) fault.times = times === 'inf' ? Infinity : int('times', 1)(times);
  return [...prev, { worker, phase: phase as SimPhase, fault }];
}

interface CliOptions {
  coordinator: string;
  workers: number;
  prefix: string;
  capacity: number;
  heartbeatMs: number;
  reconnectMs: number;
  setupMs: number;
  contributionMs: number;
  proveMs: number;
  aggregateMs: number;
  executeMs: number;
  wrapMs: number;
  recoveryMs: number;
  proofValues: number;
  proofsPerTask: number;
  finalProofBytes: number;
  wrapProofBytes: number;
  sharedChannel: boolean;
  upstreamWire: boolean;
  fault: FaultArg[];
  statsMs: number;
  quiet: boolean;
  tls: boolean;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsServerName?: string;
}

function readPem(flag: string, file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new InvalidArgumentError(`${flag} ${file}: ${(err as Error).message}`);
  }
}

/**
 * TLS is on with `--tls` or any `--tls-*` option (docs/security.md: real workers need a sidecar for
 * it; the sim speaks it itself). A client certificate needs both `--tls-cert` and `--tls-key`.
 */
export function tlsFromCli(o: Pick<CliOptions, 'tls' | 'tlsCa' | 'tlsCert' | 'tlsKey' | 'tlsServerName'>): SimTls | undefined {
  if (!o.tls && o.tlsCa === undefined && o.tlsCert === undefined && o.tlsKey === undefined && o.tlsServerName === undefined) return undefined;
  if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) throw new InvalidArgumentError('--tls-cert and --tls-key go together');
  return {
    ...(o.tlsCa !== undefined ? { ca: readPem('--tls-ca', o.tlsCa) } : {}),
    ...(o.tlsCert !== undefined && o.tlsKey !== undefined ? { cert: readPem('--tls-cert', o.tlsCert), key: readPem('--tls-key', o.tlsKey) } : {}),
    ...(o.tlsServerName !== undefined ? { serverName: o.tlsServerName } : {}),
  };
}

export function buildProgram(): Command {
  const d = SIM_DEFAULTS;
  return new Command('sim')
    .description('Simulated zisk-worker fleet speaking the real cluster protocol')
    .addOption(new Option('--coordinator <host:port>', 'coordinator worker (cluster) port').env('ZISK_SIM_COORDINATOR').default('127.0.0.1:50051'))
    .option('--workers <n>', 'number of workers', int('--workers', 1), 1)
    .option('--prefix <prefix>', 'worker ids are <prefix>-<i>', 'sim')
    .option('--capacity <units>', 'compute units per worker', int('--capacity'), d.computeUnits)
    .option('--heartbeat-ms <ms>', 'heartbeat_ack cadence', int('--heartbeat-ms', 1), d.heartbeatIntervalMs)
    .option('--reconnect-ms <ms>', 'sleep after a failed connect (grpc-js wire: also after an error status)', int('--reconnect-ms'), d.reconnectIntervalMs)
    .option('--setup-ms <ms>', 'setup duration (blocks the worker loop)', int('--setup-ms'), d.setupDelayMs)
    .option('--contribution-ms <ms>', 'partial contribution duration', int('--contribution-ms'), d.contributionDelayMs)
    .option('--prove-ms <ms>', 'prove duration', int('--prove-ms'), d.proveDelayMs)
    .option('--aggregate-ms <ms>', 'aggregation step duration', int('--aggregate-ms'), d.aggregateDelayMs)
    .option('--execute-ms <ms>', 'execute-only duration', int('--execute-ms'), d.executeDelayMs)
    .option('--wrap-ms <ms>', 'wrap duration (blocks the worker loop)', int('--wrap-ms'), d.wrapDelayMs)
    .option('--recovery-ms <ms>', 'recovery duration before recovery_complete', int('--recovery-ms'), d.recoveryDelayMs)
    .option('--proof-values <k>', 'uint64 values per ProofStark', int('--proof-values'), d.proofValues)
    .option('--proofs-per-task <n>', 'ProofStark entries per Prove result', int('--proofs-per-task', 1), d.proofsPerTask)
    .option('--final-proof-bytes <b>', 'size of the final proof', int('--final-proof-bytes'), d.finalProofBytes)
    .option('--wrap-proof-bytes <b>', 'size of a wrap result', int('--wrap-proof-bytes'), d.wrapProofBytes)
    .option('--shared-channel', 'multiplex all workers over one connection (not with --upstream-wire)', false)
    .option(
      '--upstream-wire',
      "speak HTTP/2 like upstream's zisk-worker: no PINGs, 2/5 MiB receive windows, a stream that ends OK " +
        'without RST_STREAM is kept and heartbeated into until a send fails, then an immediate reconnect; ' +
        'without it, a grpc-js client that reconnects whenever a stream ends',
      false,
    )
    .addOption(
      new Option('--fault <spec>', 'inject a fault: <worker|*>:<phase>:<action>[:times] (repeatable)').argParser(parseFault).default([]),
    )
    .option('--tls', 'connect with TLS, trusting the system roots (implied by every --tls-* option)', false)
    .option('--tls-ca <pem>', "CA bundle the coordinator's certificate must chain to")
    .option('--tls-cert <pem>', 'client certificate for mutual TLS (with --tls-key)')
    .option('--tls-key <pem>', 'key of --tls-cert')
    .option('--tls-server-name <name>', "name the coordinator's certificate is checked against (default: the --coordinator host)")
    .option('--stats-ms <ms>', 'print fleet stats every <ms> (0 = only at exit)', int('--stats-ms'), 0)
    .option('-q, --quiet', 'no per-event lines', false);
}

function faultsFor(workerId: string, faults: FaultArg[]): SimFaults | undefined {
  const out: SimFaults = {};
  let any = false;
  for (const f of faults) {
    if (f.worker === '*' || f.worker === workerId) {
      out[f.phase] = f.fault;
      any = true;
    }
  }
  return any ? out : undefined;
}

function line(text: string): void {
  process.stdout.write(`${new Date().toISOString()} ${text}\n`);
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  program.parse(argv);
  const o = program.opts<CliOptions>();
  const logger = o.quiet ? undefined : line;
  const tls = tlsFromCli(o);
  const fleetOptions: SimFleetOptions = {
    coordinator: o.coordinator,
    ...(tls ? { tls } : {}),
    workers: o.workers,
    prefix: o.prefix,
    computeUnits: o.capacity,
    heartbeatIntervalMs: o.heartbeatMs,
    reconnectIntervalMs: o.reconnectMs,
    setupDelayMs: o.setupMs,
    contributionDelayMs: o.contributionMs,
    proveDelayMs: o.proveMs,
    aggregateDelayMs: o.aggregateMs,
    executeDelayMs: o.executeMs,
    wrapDelayMs: o.wrapMs,
    recoveryDelayMs: o.recoveryMs,
    proofValues: o.proofValues,
    proofsPerTask: o.proofsPerTask,
    finalProofBytes: o.finalProofBytes,
    wrapProofBytes: o.wrapProofBytes,
    sharedChannel: o.sharedChannel,
    wire: o.upstreamWire ? 'upstream' : 'grpc-js',
    logger,
    perWorker: (_i, id) => {
      const faults = faultsFor(id, o.fault);
      return faults ? { faults } : undefined;
    },
  };
  const fleet = new SimFleet(fleetOptions);
  line(
    `sim: ${o.workers} worker(s) ${o.prefix}-* → ${o.coordinator} (capacity ${o.capacity}, K=${o.proofValues}, ${fleetOptions.wire} wire, ` +
      `${tls ? (tls.cert ? 'mutual TLS' : 'TLS') : 'plaintext'})`,
  );
  fleet.start();
  const printStats = (): void => line(`sim stats ${JSON.stringify(fleet.stats())}`);
  const statsTimer = o.statsMs > 0 ? setInterval(printStats, o.statsMs) : undefined;
  fleet
    .waitAllRegistered(24 * 3600 * 1000)
    .then(() => line(`sim: all ${o.workers} worker(s) registered`))
    .catch(() => undefined);

  await new Promise<void>((resolve) => {
    let stopping = false;
    const onSignal = (sig: NodeJS.Signals): void => {
      if (stopping) {
        line(`sim: second ${sig}, exiting now`);
        process.exit(130);
      }
      stopping = true;
      line(`sim: ${sig}, stopping`);
      resolve();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  if (statsTimer) clearInterval(statsTimer);
  await fleet.stop();
  printStats();
}

if (require.main === module) {
  main(process.argv).then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`sim: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
