/**
 * The limits of docs/operations.md (Limits), over real sockets: what a client may submit leaves room
 * for every message built from it; a message that cannot be sent fails its job and never a worker's
 * stream; echoed values are cut so errors stay within a client's metadata limit; string fields and
 * worker ids are bounded; watchers are bounded per job and in all.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { CLUSTER_API_PROTO, CLUSTER_API_SERVICE, serviceDefinition } from '../../src/shared/proto';
import { FieldWriter } from '../../src/shared/protobuf-wire';
import {
  MAX_PROGRAM_NAME_BYTES,
  MAX_WORKER_COMPUTE_UNITS,
  MAX_WORKER_ID_BYTES,
  WORKER_MAX_MESSAGE_BYTES,
  clientSizeLimits,
} from '../../src/shared/wire-limits';
import { SimFleet } from '../../src/sim/fleet';
import { simVk } from '../../src/sim/data';
import { startTestCoordinator } from '../helpers/coordinator';
import { FAST_SIM, startCluster } from '../helpers/cluster';
import {
  apiClient,
  assertError,
  blake3Hex,
  callError,
  fakeElf,
  inline,
  randomJobId,
  register,
  sample,
  scrape,
  submit,
  unary,
  waitTerminal,
  watch,
  watchedEvent,
  withCoordinator,
} from './helpers';

const MiB = 1 << 20;
const INVALID = grpc.status.INVALID_ARGUMENT;
const INVALID_ARGUMENT_CODE = 1006;
const limitSeries = (name: string): string => `coordinator_limit_rejections_total{limit="${name}"}`;

test('an ELF of 128 MiB − 64 B is refused at RegisterGuestProgram with the sizes, not cut off at the workers', async () => {
  await withCoordinator({}, async (tc, client) => {
    const limit = clientSizeLimits(WORKER_MAX_MESSAGE_BYTES).elfBytes;
    const size = 128 * MiB - 64;
    const e = await callError(client, 'RegisterGuestProgram', { zisk_elf: Buffer.alloc(size, 7) }, 60_000);
    assertError(
      e,
      INVALID,
      `zisk_elf is ${size} bytes, over the limit of ${limit} bytes (a setup message to workers must fit in ${WORKER_MAX_MESSAGE_BYTES} bytes)`,
      INVALID_ARGUMENT_CODE,
    );
    assert.equal(sample(await scrape(tc), limitSeries('elf_bytes')), 1);
  });
});

test('the largest ELF accepted is set up on a worker with the longest program name, and its stream stays up', async () => {
  const send = MiB;
  const limits = clientSizeLimits(send);
  const c = await startCluster(1, { overrides: { server: { max_message_bytes: send } }, setups: [] });
  try {
    const over = await callError(c.client, 'RegisterGuestProgram', { zisk_elf: fakeElf('over', limits.elfBytes + 1) });
    assert.equal(over.code, INVALID);
    assert.match(over.details, new RegExp(`^zisk_elf is ${limits.elfBytes + 1} bytes, over the limit of ${limits.elfBytes} bytes`));
    const hashId = await register(c.client, fakeElf('max', limits.elfBytes));
    const id = await submit(c.client, { setup: { hash_id: hashId, with_hints: true, program_name: 'p'.repeat(MAX_PROGRAM_NAME_BYTES) } });
    const r = await waitTerminal(c.client, id);
    assert.equal(r.job_status.status, 'completed', JSON.stringify(r.job_status));
    assert.deepEqual((r.result?.setup as { vk: Buffer }).vk, simVk(hashId, true));
    const stats = c.fleet.stats();
    assert.equal(stats.connects, 1, 'the worker never had to reconnect');
    assert.equal(stats.setupsReceived, 1);
  } finally {
    await c.close();
  }
});

test('a setup message too big to send fails its setup job with the sizes; the worker keeps its stream and works on', async () => {
  // An ELF registered under an older, bigger limit: it is in the cache dir with a completed setup.
  const send = MiB;
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'zisk-limits-cache-'));
  const big = fakeElf('registered-before', send);
  const bigHash = await blake3Hex(big);
  fs.writeFileSync(path.join(cacheDir, `${bigHash}.elf`), big);
  fs.writeFileSync(
    path.join(cacheDir, 'setups.json'),
    JSON.stringify({ version: 1, setups: [{ hash_id: bigHash, with_hints: false, program_name: 'big', vk: 'ab'.repeat(32) }] }),
  );
  const tc = await startTestCoordinator({ server: { max_message_bytes: send }, coordinator: { cache_dir: cacheDir } });
  const client = apiClient(tc.apiAddress);
  const fleet = new SimFleet({ coordinator: tc.clusterAddress, workers: 1, ...FAST_SIM }).start();
  try {
    // Registration replays the completed setup: it cannot be sent, the registration goes through.
    await fleet.waitAllRegistered(10_000);
    await tc.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('setup not sent: setup message of'));
    const small = await register(client, fakeElf('small'));
    const ok = await waitTerminal(client, await submit(client, { setup: { hash_id: small, with_hints: false, program_name: 's' } }));
    assert.equal(ok.job_status.status, 'completed', `the worker left SettingUp: ${JSON.stringify(ok.job_status)}`);

    const failed = await waitTerminal(client, await submit(client, { setup: { hash_id: bigHash, with_hints: false, program_name: 'big' } }));
    assert.equal(failed.job_status.status, 'failed');
    assert.match(
      JSON.stringify(failed.job_status),
      new RegExp(`setup message of \\d+ bytes \\(ELF of ${send} bytes\\) is over the worker message limit of ${send} bytes`),
    );
    const stats = fleet.stats();
    assert.equal(stats.connects, 1, 'no stream was cut');
    assert.equal(stats.streamErrors, 0);
    assert.equal(sample(await scrape(tc), 'coordinator_workers_connected'), 1);
    assert.ok(sample(await scrape(tc), limitSeries('worker_message_bytes')) >= 2);
  } finally {
    await fleet.stop();
    client.close();
    await tc.stop();
    fs.rmSync(cacheDir, { recursive: true, force: true });
  }
});

test('inline data and wrap proofs too big for their task messages are refused at JobRequest with the sizes', async () => {
  const send = MiB;
  const limits = clientSizeLimits(send);
  await withCoordinator({ server: { max_message_bytes: send } }, async (tc, client) => {
    const hashId = await register(client, fakeElf('inline'));
    const n = limits.inlineBytes + 1;
    const e = await callError(client, 'JobRequest', {
      job_kind: { execute: { hash_id: hashId, input: inline(Buffer.alloc(n - 8)), hints: inline(Buffer.alloc(8)) } },
    });
    assertError(
      e,
      INVALID,
      `inline input and hints is ${n} bytes, over the limit of ${limits.inlineBytes} bytes (every worker's task message carries them and must fit in ${send} bytes; send big inputs as a grpc:// stream)`,
      INVALID_ARGUMENT_CODE,
    );
    const w = await callError(client, 'JobRequest', {
      job_kind: { wrap: { proof: { proof_id: randomJobId, proof_kind: 1, data: Buffer.alloc(limits.wrapProofBytes + 1) }, proof_dest: 3 } },
    });
    assertError(
      w,
      INVALID,
      `wrap.proof.data is ${limits.wrapProofBytes + 1} bytes, over the limit of ${limits.wrapProofBytes} bytes (the wrap task message to a worker must fit in ${send} bytes)`,
      INVALID_ARGUMENT_CODE,
    );
    const text = await scrape(tc);
    assert.equal(sample(text, limitSeries('inline_bytes')), 1);
    assert.equal(sample(text, limitSeries('wrap_proof_bytes')), 1);
  });
});

test('oversized ids and strings get INVALID_ARGUMENT with the value cut, and the connection keeps working', async () => {
  await withCoordinator({}, async (tc, client) => {
    const id = 'x'.repeat(7000);
    const cut = `${'x'.repeat(128)}…(7000 bytes)`;
    for (const method of ['WaitJobResult', 'CancelJob']) {
      assertError(await callError(client, method, { job_id: id }), INVALID, `invalid UUID: ${cut}`, INVALID_ARGUMENT_CODE);
    }
    const w = watch(client, id);
    const status = await w.done;
    assert.equal(status.code, INVALID);
    assert.equal(status.details, `invalid UUID: ${cut}`);
    // Upstream's exact text for a normal id, on the same connection.
    assertError(await callError(client, 'WaitJobResult', { job_id: randomJobId }), grpc.status.NOT_FOUND, `Job not found: ${randomJobId}`, 1001);

    assertError(
      await callError(client, 'JobRequest', { job_kind: { setup: { hash_id: 'h'.repeat(7000) } } }),
      INVALID,
      `invalid hash_id: ${'h'.repeat(128)}…(7000 bytes)`,
      INVALID_ARGUMENT_CODE,
    );
    const hashId = 'a'.repeat(64);
    assertError(
      await callError(client, 'JobRequest', { job_kind: { setup: { hash_id: hashId, program_name: 'é'.repeat(513) } } }),
      INVALID,
      `program_name is 1026 bytes, over the limit of ${MAX_PROGRAM_NAME_BYTES} bytes`,
      INVALID_ARGUMENT_CODE,
    );
    assertError(
      await callError(client, 'JobRequest', { job_kind: { prove: { hash_id: hashId, input: { stream_uri: `file:///${'u'.repeat(5000)}` } } } }),
      INVALID,
      'input.stream_uri is 5008 bytes, over the limit of 4096 bytes',
      INVALID_ARGUMENT_CODE,
    );
    assertError(
      await callError(client, 'JobRequest', {
        job_kind: { wrap: { proof: { proof_id: 'p'.repeat(7000), proof_kind: 1 }, proof_dest: 3 } },
      }),
      INVALID,
      `invalid wrap.proof: invalid proof_id: invalid UUID '${'p'.repeat(128)}…(7000 bytes)': invalid character: expected an optional prefix of \`urn:uuid:\` followed by [0-9a-fA-F-], found \`p\` at 1`,
      INVALID_ARGUMENT_CODE,
    );
    assertError(
      await callError(client, 'JobRequest', { job_kind: { wrap: { proof: { proof_id: randomJobId, proof_kind: 1, hash_id: 'a'.repeat(65) }, proof_dest: 3 } } }),
      INVALID,
      'wrap.proof.hash_id is 65 bytes, over the limit of 64 bytes',
      INVALID_ARGUMENT_CODE,
    );
    assert.equal(sample(await scrape(tc), limitSeries('request_field')), 3);
  });
});

// ---- worker ids, on the raw wire ----

const responseDecode = serviceDefinition(CLUSTER_API_PROTO, CLUSTER_API_SERVICE).WorkerStream.responseDeserialize;

interface RegisterResponse {
  payload?: string;
  register_response?: { worker_id: string; accepted: boolean; message: string };
}

/** `WorkerMessage{register{worker_id: <raw bytes>, compute_capacity{compute_units}}}`, byte for byte. */
function registerBytes(workerId: Buffer, units: number): Buffer {
  const capacity = new FieldWriter().uint(1, units);
  const body = new FieldWriter().bytes(1, workerId, true).embedded(2, capacity);
  return new FieldWriter().embedded(3, body).finish();
}

const RawWorkerClient = (): grpc.ServiceClientConstructor =>
  grpc.makeGenericClientConstructor(
    {
      WorkerStream: {
        path: `/${CLUSTER_API_SERVICE}/WorkerStream`,
        requestStream: true,
        responseStream: true,
        requestSerialize: (b: Buffer) => b,
        requestDeserialize: (b: Buffer) => b,
        responseSerialize: (b: Buffer) => b,
        responseDeserialize: (b: Buffer) => responseDecode(b) as RegisterResponse,
      },
    },
    'RawWorker',
  );

/** A worker that writes raw WorkerMessage bytes (a string field can then hold any bytes at all). */
async function rawRegister(address: string, message: Buffer): Promise<RegisterResponse> {
  const Client = RawWorkerClient();
  const client = new Client(address, grpc.credentials.createInsecure());
  try {
    const call = (client as unknown as { WorkerStream: () => grpc.ClientDuplexStream<Buffer, RegisterResponse> }).WorkerStream();
    call.on('error', () => undefined);
    const first = new Promise<RegisterResponse>((resolve, reject) => {
      call.once('data', resolve);
      call.once('status', (s: grpc.StatusObject) => reject(new Error(`stream ended before a response: ${s.code} ${s.details}`)));
    });
    call.write(message);
    const r = await first;
    call.end();
    return r;
  } finally {
    client.close();
  }
}

test('worker ids: too long, not UTF-8, or too many compute units is refused with a clear message; nothing unbounded is logged or labelled', async () => {
  await withCoordinator({}, async (tc) => {
    const huge = Buffer.alloc(4 * MiB, 0x61);
    const [long, badA, badB, units, fine] = await Promise.all([
      rawRegister(tc.clusterAddress, registerBytes(huge, 1)),
      rawRegister(tc.clusterAddress, registerBytes(Buffer.from([0x77, 0xff]), 1)),
      rawRegister(tc.clusterAddress, registerBytes(Buffer.from([0x77, 0xfe]), 1)),
      rawRegister(tc.clusterAddress, registerBytes(Buffer.from('w-units'), MAX_WORKER_COMPUTE_UNITS + 1)),
      rawRegister(tc.clusterAddress, registerBytes(Buffer.from('w'.repeat(MAX_WORKER_ID_BYTES)), MAX_WORKER_COMPUTE_UNITS)),
    ]);
    assert.equal(long.register_response?.accepted, false);
    assert.equal(long.register_response?.message, `Registration rejected: worker_id is ${4 * MiB} bytes, over the limit of ${MAX_WORKER_ID_BYTES} bytes`);
    assert.ok((long.register_response?.worker_id.length ?? 0) < 200, 'the refusal does not echo the whole id');
    for (const bad of [badA, badB]) {
      assert.equal(bad.register_response?.accepted, false);
      assert.equal(bad.register_response?.message, 'Registration rejected: worker_id is not valid UTF-8');
    }
    assert.equal(units.register_response?.accepted, false);
    assert.equal(
      units.register_response?.message,
      `Registration rejected: compute_capacity.compute_units is ${MAX_WORKER_COMPUTE_UNITS + 1}, over the limit of ${MAX_WORKER_COMPUTE_UNITS}`,
    );
    assert.equal(fine.register_response?.accepted, true, 'an id at the limit with the most units registers');

    const text = await scrape(tc);
    assert.equal(sample(text, limitSeries('worker_id')), 3);
    assert.equal(sample(text, limitSeries('compute_units')), 1);
    assert.ok(!text.includes('a'.repeat(300)), 'no metric carries the long id');
    for (const line of tc.logs) assert.ok(JSON.stringify(line).length < 4096, `log line of ${JSON.stringify(line).length} chars`);
  });
});

// ---- watchers ----

test('WatchJob streams are bounded per job and in all, with RESOURCE_EXHAUSTED naming the limit', async () => {
  const c = await startCluster(1, {
    coordinator: { max_watchers_per_job: 2, max_watchers: 3 },
    sim: { contributionDelayMs: 60_000, executeDelayMs: 60_000 },
  });
  try {
    const job = (): Promise<string> => submit(c.client, { execute: { hash_id: c.hashId, input: inline(Buffer.alloc(8)) } });
    const a = await job();
    const b = await job();
    const onA = [watch(c.client, a), watch(c.client, a)];
    await Promise.all(onA.map((w) => watchedEvent(w, 'queued')));
    const third = await watch(c.client, a).done;
    assert.equal(third.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(third.details, `Too many watchers: job ${a} already has 2 WatchJob streams (max_watchers_per_job)`);
    assert.equal(third.apiError?.code, 2005);
    const onB = watch(c.client, b);
    await watchedEvent(onB, 'queued');
    const fourth = await watch(c.client, b).done;
    assert.equal(fourth.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(fourth.details, 'Too many watchers: 3 WatchJob streams are open (max_watchers)');
    // A watcher that ends gives its place back.
    await unary(c.client, 'CancelJob', { job_id: b });
    await onB.done;
    const again = watch(c.client, b);
    await watchedEvent(again, 'cancelled');
    const text = await scrape(c.tc);
    assert.equal(sample(text, limitSeries('watchers_per_job')), 1);
    assert.equal(sample(text, limitSeries('watchers_total')), 1);
    await unary(c.client, 'CancelJob', { job_id: a });
    await Promise.all([...onA, again].map((w) => w.done));
  } finally {
    await c.close();
  }
});

test('worker streams that do not register are bounded in number, and each ends at the handshake timeout', async () => {
  await withCoordinator({ coordinator: { max_unregistered_streams: 2, handshake_timeout_seconds: 1 } }, async (tc) => {
    const Client = RawWorkerClient();
    const client = new Client(tc.clusterAddress, grpc.credentials.createInsecure());
    try {
      const open = (): { headers: Promise<unknown>; status: Promise<grpc.StatusObject> } => {
        const call = (client as unknown as { WorkerStream: () => grpc.ClientDuplexStream<Buffer, RegisterResponse> }).WorkerStream();
        call.on('error', () => undefined);
        call.on('data', () => undefined);
        return {
          headers: new Promise((resolve) => call.once('metadata', resolve)),
          status: new Promise((resolve) => call.once('status', resolve)),
        };
      };
      const silent = [open(), open()];
      await Promise.all(silent.map((s) => s.headers));
      const turnedAway = await open().status;
      assert.equal(turnedAway.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.equal(turnedAway.details, 'Too many unregistered worker streams (2); try again');
      for (const s of silent) {
        const st = await s.status;
        assert.equal(st.code, grpc.status.DEADLINE_EXCEEDED);
        assert.equal(st.details, 'Handshake timeout: no registration within 1s');
      }
      const later = await rawRegister(tc.clusterAddress, registerBytes(Buffer.from('w-later'), 1));
      assert.equal(later.register_response?.accepted, true, 'their places were given back');
      const text = await scrape(tc);
      assert.equal(sample(text, limitSeries('unregistered_streams')), 1);
      assert.equal(sample(text, limitSeries('handshake_timeout')), 2);
    } finally {
      client.close();
    }
  });
});
