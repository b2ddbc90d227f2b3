/**
 * Seeded, bounded fuzzing of both gRPC ports of an in-process coordinator over real sockets: every
 * client API RPC and every WorkerMessage kind, with random valid and mutated protobufs (see
 * test/helpers/proto-fuzz.ts). Meanwhile a canary client keeps running prove jobs on a sim fleet.
 *
 * Invariants checked: every call ends with a status before its deadline (no hang), the process keeps
 * serving, rejected job requests and program registrations change no state (the job and program
 * counts grow exactly by the calls that returned OK), and every canary job completes.
 */
import * as grpc from '@grpc/grpc-js';
import type * as protobuf from 'protobufjs';
import { SimFleet } from '../../src/sim/fleet';
import { CLIENT_API_PROTO, CLUSTER_API_PROTO } from '../../src/shared/proto';
import { startTestCoordinator, apiClient, unary } from '../helpers/coordinator';
import { FAST_SIM } from '../helpers/cluster';
import { fakeElf, inline, register, sample, scrape, submit, waitTerminal } from '../api/helpers';
import { Rng, generate, loadRoot } from '../helpers/proto-fuzz';

export interface FuzzOptions {
  /** Inputs per client RPC; worker sessions scale with it. */
  iterations: number;
  seed: number;
  /** Calls in flight at once. */
  concurrency?: number;
  /**
   * Also send ids of 70,000 characters. Off by default: the client API echoes a rejected id into the
   * status message, and a trailer that large makes the client drop the connection without a status
   * (the call hangs) until request validation bounds id lengths.
   */
  hugeIds?: boolean;
}

export interface FuzzReport {
  /** RPC or worker message kind → outcome (status name, or how a worker stream ended) → count. */
  counts: Record<string, Record<string, number>>;
  canaryCompleted: number;
  /** Every broken invariant, in words; empty when all held. */
  violations: string[];
}

const CALL_DEADLINE_MS = 10_000;
const API = 'zisk.coordinator.v1.ZiskCoordinatorApi';
const CLUSTER = 'zisk.distributed.api.v1.ZiskDistributedApi';
const STATUS_NAMES = Object.fromEntries(Object.entries(grpc.status).map(([k, v]) => [v, k])) as Record<number, string>;

const identity = (b: Buffer): Buffer => b;

interface Tally {
  counts: Record<string, Record<string, number>>;
  violations: string[];
}

function count(t: Tally, what: string, outcome: string): void {
  const row = (t.counts[what] ??= {});
  row[outcome] = (row[outcome] ?? 0) + 1;
}

/** Runs `tasks` with at most `n` in flight. */
async function pool(n: number, tasks: (() => Promise<void>)[]): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < tasks.length) await tasks[next++]();
    }),
  );
}

/** Ends with the call's status, or a violation when none arrives before the deadline. */
function statusOf(call: NodeJS.EventEmitter): Promise<grpc.StatusObject> {
  return new Promise((resolve) => {
    call.on('status', resolve);
    call.on('error', () => undefined);
    call.on('data', () => undefined);
  });
}

async function apiCall(client: grpc.Client, rpc: protobuf.Method, requests: Buffer[]): Promise<{ code: number; details: string; response?: Buffer }> {
  const path = `/${API}/${rpc.name}`;
  const deadline = Date.now() + CALL_DEADLINE_MS;
  if (!rpc.requestStream && !rpc.responseStream) {
    let response: Buffer | undefined;
    const call = client.makeUnaryRequest(path, identity, identity, requests[0], { deadline }, (_err, value) => (response = value));
    const s = await statusOf(call);
    return { code: s.code, details: s.details, ...(response ? { response } : {}) };
  }
  if (rpc.responseStream) {
    const call = client.makeServerStreamRequest(path, identity, identity, requests[0], new grpc.Metadata(), { deadline });
    const s = statusOf(call);
    // A watch on a live job streams until its end; the first event or the status is enough here.
    call.once('data', () => call.cancel());
    const { code, details } = await s;
    return { code, details };
  }
  const call = client.makeClientStreamRequest(path, identity, identity, new grpc.Metadata(), { deadline }, () => undefined);
  const s = statusOf(call);
  for (const r of requests) call.write(r);
  call.end();
  const { code, details } = await s;
  return { code, details };
}

/** Odd ids and strings for request fields named like ids (beyond the generator's own strings). */
const ODD_IDS = [
  '',
  ' ',
  '7a1c6c4e-3b43-4d1b-9a0f-1f2e3d4c5b6a',
  '7A1C6C4E-3B43-4D1B-9A0F-1F2E3D4C5B6A',
  '{7a1c6c4e-3b43-4d1b-9a0f-1f2e3d4c5b6a}',
  '7a1c6c4e3b434d1b9a0f1f2e3d4c5b6a',
  'ab'.repeat(32),
  'AB'.repeat(32),
  'g'.repeat(64),
  '../../etc/passwd',
  'x'.repeat(4_000),
  '\u0000\u0001',
  'é'.repeat(40),
];

/** A request: generated (valid or mutated), or a valid one whose string fields carry odd ids. */
function apiRequest(rng: Rng, type: protobuf.Type, hashId: string, hugeIds: boolean): Buffer {
  const roll = rng.int(10);
  if (roll < 3) {
    // Valid shape with odd ids (and, half the time, the real program's hash so checks go deeper).
    const ids = hugeIds ? [...ODD_IDS, 'x'.repeat(70_000)] : ODD_IDS;
    const obj: Record<string, unknown> = {};
    for (const f of type.fieldsArray) {
      if (f.type === 'string') obj[f.name] = rng.chance(0.3) ? hashId : rng.pick(ids);
    }
    return Buffer.from(type.encode(type.fromObject(obj)).finish());
  }
  if (roll === 3) return rng.bytes(rng.int(64)); // noise
  return generate(rng, type, { mutate: roll < 6 ? 0 : 0.3, depth: 3 });
}

async function fuzzApi(o: Required<FuzzOptions>, address: string, hashId: string, t: Tally): Promise<{ jobsAccepted: number; programsAccepted: Set<string> }> {
  const root = loadRoot(CLIENT_API_PROTO);
  const service = root.lookupService(API);
  const rng = new Rng(o.seed);
  // Its own connection, as a separate client process would have.
  const client = apiClient(address, { 'grpc.use_local_subchannel_pool': 1 });
  const RegisterResponse = root.lookupType('zisk.coordinator.v1.RegisterGuestProgramResponse');
  const JobResponse = root.lookupType('zisk.coordinator.v1.JobResponse');
  let jobsAccepted = 0;
  const programsAccepted = new Set<string>();
  const tasks: (() => Promise<void>)[] = [];
  for (const rpc of service.methodsArray) {
    const type = root.lookupType(rpc.requestType);
    for (let i = 0; i < o.iterations; i++) {
      const requests = Array.from({ length: rpc.requestStream ? 1 + rng.int(3) : 1 }, () => apiRequest(rng, type, hashId, o.hugeIds));
      tasks.push(async () => {
        const started = Date.now();
        const { code, details, response } = await apiCall(client, rpc, requests);
        count(t, rpc.name, 'inputs');
        // Undecodable requests get INTERNAL from grpc-js, as from upstream's tonic; counted apart.
        const undecodable = code === grpc.status.INTERNAL && /^Error deserializing request/.test(details);
        count(t, rpc.name, undecodable ? 'INTERNAL(undecodable)' : (STATUS_NAMES[code] ?? String(code)));
        if (code === grpc.status.DEADLINE_EXCEEDED) {
          t.violations.push(`${rpc.name}: no status within ${Date.now() - started} ms for ${requests.map((r) => r.toString('hex').slice(0, 120)).join(',')}`);
        }
        if ((code === grpc.status.INTERNAL && !undecodable) || code === grpc.status.UNKNOWN || code === grpc.status.UNAVAILABLE) {
          t.violations.push(`${rpc.name}: ${STATUS_NAMES[code]} (${details.slice(0, 200)}) for ${requests.map((r) => r.toString('hex').slice(0, 120)).join(',')}`);
        }
        if (code === grpc.status.OK && rpc.name === 'JobRequest' && response) {
          jobsAccepted++;
          // An accepted fuzzed job may wait for pushed input while it holds the canary's workers.
          const jobId = (JobResponse.toObject(JobResponse.decode(response)) as { job_id?: string }).job_id ?? '';
          await unary(client, 'CancelJob', { job_id: jobId }).catch(() => undefined);
          t.counts[rpc.name].cancelledAfterwards = (t.counts[rpc.name].cancelledAfterwards ?? 0) + 1;
        }
        if (code === grpc.status.OK && rpc.name === 'RegisterGuestProgram' && response) {
          programsAccepted.add(String((RegisterResponse.toObject(RegisterResponse.decode(response)) as { hash_id?: string }).hash_id));
        }
      });
    }
  }
  await pool(o.concurrency, tasks);
  client.close();
  return { jobsAccepted, programsAccepted };
}

/**
 * Worker sessions on fresh streams (fuzz workers never ack a setup, so no canary job picks them):
 * a valid register then random messages of one kind, or a random first message. The stream's status
 * says how the coordinator took them; it must come before the deadline.
 */
async function fuzzWorkers(o: Required<FuzzOptions>, address: string, t: Tally): Promise<void> {
  const root = loadRoot(CLUSTER_API_PROTO);
  const WorkerMessage = root.lookupType('zisk.distributed.api.v1.WorkerMessage');
  const kinds = WorkerMessage.oneofs.payload.fieldsArray.map((f) => f.name);
  const rng = new Rng(o.seed ^ 0x5eed);
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const path = `/${CLUSTER}/WorkerStream`;
  const sessions = Math.max(2, Math.ceil(o.iterations / 4));
  const tasks: (() => Promise<void>)[] = [];
  let n = 0;
  for (const kind of [...kinds, 'first message']) {
    for (let s = 0; s < sessions; s++) {
      const workerId = `fuzz-${n++}`;
      const handshake = kind === 'first message';
      const messages = Array.from({ length: handshake ? 1 : 4 }, () =>
        generate(rng, WorkerMessage, { mutate: rng.chance(0.5) ? 0.3 : 0, depth: 4, topMember: handshake ? undefined : kind }),
      );
      tasks.push(async () => {
        const call = client.makeBidiStreamRequest(path, identity, identity, new grpc.Metadata(), { deadline: Date.now() + CALL_DEADLINE_MS });
        const status = statusOf(call);
        if (!handshake) {
          const registered = new Promise<void>((resolve) => call.once('data', () => resolve()));
          call.write(Buffer.from(WorkerMessage.encode(WorkerMessage.fromObject({ register: { worker_id: workerId, compute_capacity: { compute_units: 1 } } })).finish()));
          await Promise.race([registered, status]);
        }
        for (const m of messages) call.write(m);
        call.end();
        const s = await status;
        const outcome = s.code === grpc.status.OK ? 'stream kept (OK at end)' : `ended ${STATUS_NAMES[s.code]}`;
        count(t, `worker ${kind}`, outcome);
        for (let i = 0; i < messages.length; i++) count(t, `worker ${kind}`, 'inputs');
        if (s.code === grpc.status.DEADLINE_EXCEEDED || s.code === grpc.status.INTERNAL || s.code === grpc.status.UNKNOWN) {
          t.violations.push(`worker ${kind}: ${STATUS_NAMES[s.code]} (${s.details}) after ${messages.map((m) => m.toString('hex').slice(0, 120)).join(',')}`);
        }
      });
    }
  }
  await pool(o.concurrency, tasks);
  client.close();
}

export async function runFuzz(options: FuzzOptions): Promise<FuzzReport> {
  const o: Required<FuzzOptions> = { concurrency: 8, hugeIds: false, ...options };
  const t: Tally = { counts: {}, violations: [] };
  const tc = await startTestCoordinator({ coordinator: { handshake_timeout_seconds: 2 } });
  const client = apiClient(tc.apiAddress);
  const fleet = new SimFleet({ coordinator: tc.clusterAddress, workers: 2, ...FAST_SIM, prefix: 'canary' }).start();
  let canaryCompleted = 0;
  let fuzzing = true;
  try {
    await fleet.waitAllRegistered(10_000);
    const hashId = await register(client, fakeElf('fuzz-canary'));
    const setup = await submit(client, { setup: { hash_id: hashId, with_hints: false, program_name: 'canary' } });
    if ((await waitTerminal(client, setup)).job_status.status !== 'completed') throw new Error('canary setup failed');
    const jobsBefore = (await tc.running.diagnostics()).scheduler?.jobs ?? 0;
    const programsBefore = sample(await scrape(tc), 'coordinator_registered_programs_total');

    let canarySubmitted = 0;
    const canary = (async () => {
      while (fuzzing || canarySubmitted === 0) {
        canarySubmitted++;
        try {
          const id = await submit(client, { prove: { hash_id: hashId, input: inline(Buffer.alloc(64, canarySubmitted & 0xff)), proof_dest: 1 } });
          const r = await waitTerminal(client, id, 30_000);
          if (r.job_status.status === 'completed') canaryCompleted++;
          else t.violations.push(`canary job ${id} ended ${JSON.stringify(r.job_status)}`);
        } catch (e) {
          t.violations.push(`canary: ${(e as Error).message}`);
          return;
        }
      }
    })();
    const fuzz = Promise.all([fuzzApi(o, tc.apiAddress, hashId, t), fuzzWorkers(o, tc.clusterAddress, t)]);
    // The canary's own failure (a rejected submit) must not be left behind as an unhandled rejection.
    const [[api]] = await Promise.all([fuzz.finally(() => (fuzzing = false)), canary]);

    // Still serving, and every job or program accepted was asked for by a call that got OK.
    const after = await submit(client, { prove: { hash_id: hashId, input: inline(Buffer.alloc(64, 7)), proof_dest: 1 } });
    if ((await waitTerminal(client, after)).job_status.status !== 'completed') t.violations.push('the job after fuzzing did not complete');
    else canaryCompleted++;
    const jobsAfter = (await tc.running.diagnostics()).scheduler?.jobs ?? 0;
    const expectedJobs = jobsBefore + canarySubmitted + 1 + api.jobsAccepted;
    if (jobsAfter !== expectedJobs) t.violations.push(`jobs: ${jobsAfter}, expected ${expectedJobs} (${api.jobsAccepted} fuzzed requests accepted)`);
    // Every fuzz stream is gone: only the canary fleet's links remain.
    const linksBy = Date.now() + 5_000;
    let links = (await tc.running.diagnostics()).workerLinks;
    while (links !== fleet.workers.length && Date.now() < linksBy) {
      await new Promise((r) => setTimeout(r, 20));
      links = (await tc.running.diagnostics()).workerLinks;
    }
    if (links !== fleet.workers.length) t.violations.push(`worker links: ${links}, expected the canary's ${fleet.workers.length}`);
    const programsAfter = sample(await scrape(tc), 'coordinator_registered_programs_total');
    const newPrograms = [...api.programsAccepted].length;
    if (programsAfter !== programsBefore + newPrograms) t.violations.push(`programs: ${programsAfter}, expected ${programsBefore + newPrograms}`);
    return { counts: t.counts, canaryCompleted, violations: t.violations };
  } finally {
    fuzzing = false;
    await fleet.stop();
    client.close();
    await tc.stop();
  }
}
