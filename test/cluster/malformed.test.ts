/**
 * Malformed worker traffic over a real WorkerStream: every case gets a clear status or
 * `accepted=false` (or is ignored and counted) — never a crash, never a hang.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { CLUSTER_API_PROTO, loadProto } from '../../src/shared/proto';
import { startTestCoordinator, apiClient, type TestCoordinator } from '../helpers/coordinator';
import { SimFleet } from '../../src/sim/fleet';
import { fakeElf, inline, register, submit, waitTerminal, scrape, sample, sleep } from '../api/helpers';

interface RawMessage {
  payload?: string;
  register_response?: { accepted: boolean; message: string; worker_id: string };
  [k: string]: unknown;
}

interface RawWorker {
  messages: RawMessage[];
  write(m: object): void;
  end(): void;
  status: Promise<grpc.StatusObject>;
  next(pred: (m: RawMessage) => boolean, ms?: number): Promise<RawMessage>;
  cancel(): void;
}

function rawWorker(address: string): RawWorker {
  const pkg = grpc.loadPackageDefinition(loadProto(CLUSTER_API_PROTO)) as unknown as {
    zisk: { distributed: { api: { v1: { ZiskDistributedApi: grpc.ServiceClientConstructor } } } };
  };
  const Client = pkg.zisk.distributed.api.v1.ZiskDistributedApi;
  const client = new Client(address, grpc.credentials.createInsecure());
  const call = (client as unknown as { WorkerStream: () => grpc.ClientDuplexStream<object, RawMessage> }).WorkerStream();
  const messages: RawMessage[] = [];
  const waiters: { pred: (m: RawMessage) => boolean; resolve: (m: RawMessage) => void }[] = [];
  call.on('data', (m: RawMessage) => {
    messages.push(m);
    for (let i = waiters.length - 1; i >= 0; i--) if (waiters[i].pred(m)) waiters.splice(i, 1)[0].resolve(m);
  });
  call.on('error', () => undefined);
  const status = new Promise<grpc.StatusObject>((resolve) =>
    call.on('status', (s: grpc.StatusObject) => {
      resolve(s);
      client.close();
    }),
  );
  return {
    messages,
    write: (m) => call.write(m),
    end: () => call.end(),
    status,
    cancel: () => call.cancel(),
    next(pred, ms = 5_000) {
      const seen = messages.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('message not received')), ms);
        waiters.push({ pred, resolve: (m) => (clearTimeout(t), resolve(m)) });
      });
    },
  };
}

const isResponse = (m: RawMessage): boolean => m.payload === 'register_response';

async function withCoordinator(fn: (tc: TestCoordinator) => Promise<void>, overrides = {}): Promise<void> {
  const tc = await startTestCoordinator({ coordinator: { handshake_timeout_seconds: 1, ...overrides } });
  try {
    await fn(tc);
  } finally {
    await tc.stop();
  }
}

test('a first message that is not register/reconnect ends the stream with INVALID_ARGUMENT', async () => {
  await withCoordinator(async (tc) => {
    const w = rawWorker(tc.clusterAddress);
    w.write({ heartbeat_ack: { worker_id: 'x' } });
    const s = await w.status;
    assert.equal(s.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(s.details, 'First message must be registration or reconnection');
  });
});

test('an empty first message ends the stream with INVALID_ARGUMENT', async () => {
  await withCoordinator(async (tc) => {
    const w = rawWorker(tc.clusterAddress);
    w.write({});
    assert.equal((await w.status).code, grpc.status.INVALID_ARGUMENT);
  });
});

for (const [name, request, text] of [
  ['missing compute_capacity', { worker_id: 'w1' }, /compute_capacity must be set/],
  ['zero compute units', { worker_id: 'w1', compute_capacity: { compute_units: 0 } }, /at least 1/],
  ['empty worker_id', { worker_id: '', compute_capacity: { compute_units: 1 } }, /worker_id must not be empty/],
] as const) {
  test(`register with ${name} gets accepted=false with a clear message, then the stream ends`, async () => {
    await withCoordinator(async (tc) => {
      const w = rawWorker(tc.clusterAddress);
      w.write({ register: request });
      const r = await w.next(isResponse);
      assert.equal(r.register_response?.accepted, false);
      assert.match(r.register_response?.message ?? '', text);
      assert.equal((await w.status).code, grpc.status.OK);
    });
  });
}

test('no registration within the handshake timeout ends the stream with DEADLINE_EXCEEDED', async () => {
  await withCoordinator(async (tc) => {
    const w = rawWorker(tc.clusterAddress);
    const s = await w.status;
    assert.equal(s.code, grpc.status.DEADLINE_EXCEEDED);
    assert.equal(s.details, 'Handshake timeout: no registration within 1s');
  });
});

test('a second register on the same stream ends it with INVALID_ARGUMENT; a wrong worker_id or empty payload is ignored and counted', async () => {
  await withCoordinator(async (tc) => {
    const w = rawWorker(tc.clusterAddress);
    w.write({ register: { worker_id: 'w1', compute_capacity: { compute_units: 2 } } });
    const r = await w.next(isResponse);
    assert.equal(r.register_response?.accepted, true);
    w.write({ heartbeat_ack: { worker_id: 'someone-else' } });
    w.write({});
    w.write({ register: { worker_id: 'w1', compute_capacity: { compute_units: 2 } } });
    const s = await w.status;
    assert.equal(s.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(s.details, 'Already registered on this stream');
    // A stream's messages are handled in order: the status proves the two before it were counted.
    const text = await scrape(tc);
    assert.equal(sample(text, 'coordinator_ignored_worker_messages_total{reason="worker_id_mismatch"}'), 1);
    assert.equal(sample(text, 'coordinator_ignored_worker_messages_total{reason="missing_payload"}'), 1);
  });
});

test('a stream closed during the handshake leaves nothing behind: no link on either side, no timer', async () => {
  await withCoordinator(async (tc) => {
    const before = await tc.running.diagnostics();
    const w = rawWorker(tc.clusterAddress);
    // The stream is open on both sides, with its handshake timer running.
    await until(async () => (await tc.running.diagnostics()).scheduler?.links === 1);
    const open = await tc.running.diagnostics();
    assert.equal(open.workerLinks, 1);
    assert.equal(open.scheduler?.timers, (before.scheduler?.timers ?? 0) + 1, 'the handshake timer');
    w.end();
    const s = await w.status;
    assert.ok(s.code === grpc.status.ABORTED || s.code === grpc.status.OK || s.code === grpc.status.CANCELLED);
    await until(async () => {
      const d = await tc.running.diagnostics();
      return d.workerLinks === 0 && d.scheduler?.links === 0;
    });
    assert.deepEqual(await tc.running.diagnostics(), before);
  });
});

/** Waits (polling the coordinator's own tables) until `pred` holds. */
async function until(pred: () => Promise<boolean>, limitMs = 5_000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error('condition not reached');
    await sleep(5);
  }
}

test('a contribution result without witness_info fails the job at once with a precise reason', async () => {
  await withCoordinator(async (tc) => {
    const client = apiClient(tc.apiAddress);
    const fleet = new SimFleet({ coordinator: tc.clusterAddress, workers: 1, setupDelayMs: 5, contributionDelayMs: 5_000 }).start();
    try {
      await fleet.waitAllRegistered(5_000);
      const hashId = await register(client, fakeElf('malformed'));
      const setup = await submit(client, { setup: { hash_id: hashId, with_hints: false, program_name: 'm' } });
      assert.equal((await waitTerminal(client, setup)).job_status.status, 'completed');
      const jobId = await submit(client, { prove: { hash_id: hashId, input: inline(Buffer.alloc(8)), proof_dest: 1 } });
      const worker = fleet.workers[0];
      await fleet.waitUntil(() => worker.log.some((e) => e.kind === 'execute_task' && e.jobId === jobId), 5_000);
      worker.sendRaw(({
        execute_task_response: {
          job_id: jobId,
          worker_id: worker.id,
          task_type: 0,
          success: true,
          challenges: { challenges: [], zisk_execution_time: { total_duration: 1 } },
        },
      } as unknown) as Parameters<typeof worker.sendRaw>[0]);
      const r = await waitTerminal(client, jobId, 5_000);
      assert.equal(r.job_status.status, 'failed');
      const reason = (r.job_status.failed!.failure.execution as { reason: string }).reason;
      assert.match(reason, /witness_info/);
    } finally {
      await fleet.stop();
      client.close();
    }
  });
});
