/**
 * The request-validation errors and refusals of docs/decisions.md (Errors, Queue), each over real
 * gRPC: status code, exact message text, and the decoded ApiError detail.
 */
import { describe, it, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { startTestCoordinator, type TestCoordinator } from '../helpers/coordinator';
import { startCluster } from '../helpers/cluster';
import { apiErrorOf } from '../../src/main/api/grpc-errors';
import {
  API_NAMES,
  apiClient,
  assertError,
  callError,
  fakeElf,
  inline,
  pushError,
  pushStream,
  randomJobId,
  register,
  sample,
  scrape,
  submit,
  unary,
  wait,
  waitTerminal,
  type CallError,
} from './helpers';

const INVALID = grpc.status.INVALID_ARGUMENT;
const VALID_PROOF_ID = '0e9ba1a4-9d1f-5c43-8c1e-3a0c6a54b8f1';

function assertInvalid(e: CallError, message: string): void {
  assertError(e, INVALID, message, 1006);
  assert.equal(e.apiError?.name, API_NAMES[1006]);
}

describe('client API validation (real mode, no workers)', () => {
  let tc: TestCoordinator;
  let client: grpc.Client;
  let hashId: string;
  let inputsDir: string;
  const unregistered = 'cd'.repeat(32);

  before(async () => {
    inputsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'zisk-inputs-'));
    fs.writeFileSync(path.join(inputsDir, 'in.bin'), Buffer.alloc(16));
    tc = await startTestCoordinator({ coordinator: { inputs_dir: inputsDir } });
    client = apiClient(tc.apiAddress);
    hashId = await register(client, fakeElf('validation'));
  });
  after(async () => {
    client.close();
    await tc.stop();
    fs.rmSync(inputsDir, { recursive: true, force: true });
  });

  const jobRequest = (jobKind: object | undefined): Promise<CallError> =>
    callError(client, 'JobRequest', jobKind === undefined ? {} : { job_kind: jobKind });

  it('RegisterGuestProgram: empty zisk_elf', async () => {
    assertInvalid(await callError(client, 'RegisterGuestProgram', {}), 'zisk_elf must not be empty');
    assertInvalid(await callError(client, 'RegisterGuestProgram', { zisk_elf: Buffer.alloc(0) }), 'zisk_elf must not be empty');
  });

  it('JobRequest: shape', async () => {
    assertInvalid(await jobRequest(undefined), 'job_kind must be set');
    assertInvalid(await jobRequest({}), 'job_kind.kind must be set');
    assertInvalid(await jobRequest({ prove: { hash_id: hashId } }), 'input must be set');
    assertInvalid(await jobRequest({ execute: { hash_id: hashId } }), 'input must be set');
    assertInvalid(await jobRequest({ prove: { hash_id: hashId, input: {} } }), 'input.kind must be set');
    assertInvalid(await jobRequest({ execute: { hash_id: hashId, input: inline(), hints: {} } }), 'input.kind must be set');
    // shape comes before the hash_id format
    assertInvalid(await jobRequest({ prove: { hash_id: 'nope' } }), 'input must be set');
  });

  it('JobRequest: hash_id format for setup, prove and execute (wrap is exempt)', async () => {
    for (const bad of ['', 'abc', hashId.toUpperCase(), `${hashId}0`, '../../etc/passwd']) {
      assertInvalid(await jobRequest({ setup: { hash_id: bad } }), `invalid hash_id: ${bad}`);
      assertInvalid(await jobRequest({ prove: { hash_id: bad, input: inline() } }), `invalid hash_id: ${bad}`);
      assertInvalid(await jobRequest({ execute: { hash_id: bad, input: inline() } }), `invalid hash_id: ${bad}`);
    }
    // hash_id before the input kinds
    assertInvalid(await jobRequest({ prove: { hash_id: 'x', input: { stream_uri: 'quic://h:1' } } }), 'invalid hash_id: x');
  });

  it('JobRequest: input and hints kinds', async () => {
    const quic = 'quic:// streams are not supported; use grpc:// (PushJobInput)';
    assertInvalid(await jobRequest({ prove: { hash_id: hashId, input: { stream_uri: 'quic://127.0.0.1:9' } } }), quic);
    assertInvalid(await jobRequest({ execute: { hash_id: hashId, input: inline(), hints: { stream_uri: 'quic://x:1' } } }), quic);
    for (const uri of ['/tmp/in.bin', 'http://example.com/x', 'in.bin', '']) {
      const e = await jobRequest({ prove: { hash_id: hashId, input: { stream_uri: uri } } });
      assert.equal(e.code, INVALID, uri);
      assert.equal(e.apiError?.code, 1006);
    }
    const outside = await jobRequest({ prove: { hash_id: hashId, input: { stream_uri: 'file:///etc/passwd' } } });
    assert.equal(outside.code, INVALID);
    assert.match(outside.details, /outside \[coordinator\] inputs_dir/);
    const escape = await jobRequest({ prove: { hash_id: hashId, input: { stream_uri: `file://${inputsDir}/../x` } } });
    assert.equal(escape.code, INVALID);
  });

  it('JobRequest: wrap checks, in order', async () => {
    const wrap = (w: object): Promise<CallError> => jobRequest({ wrap: w });
    assertInvalid(await wrap({ proof_dest: 3 }), 'wrap.proof must be set');
    assertInvalid(
      await wrap({ proof: { proof_id: 'xyz', proof_kind: 1 }, proof_dest: 3 }),
      "invalid wrap.proof: invalid proof_id: invalid UUID 'xyz': invalid character: expected an optional prefix of `urn:uuid:` followed by [0-9a-fA-F-], found `x` at 1",
    );
    assertInvalid(
      await wrap({ proof: { proof_id: '', proof_kind: 1 }, proof_dest: 3 }),
      "invalid wrap.proof: invalid proof_id: invalid UUID '': invalid length: expected length 32 for simple format, found 0",
    );
    assertInvalid(
      await wrap({ proof: { proof_id: '0e9ba1a4-9d1f-5c43-8c1e-3a0c6a54b8f', proof_kind: 1 }, proof_dest: 3 }),
      "invalid wrap.proof: invalid proof_id: invalid UUID '0e9ba1a4-9d1f-5c43-8c1e-3a0c6a54b8f': invalid group length in group 4: expected 12, found 11",
    );
    assertInvalid(await wrap({ proof: { proof_id: VALID_PROOF_ID, proof_kind: 0 }, proof_dest: 3 }), 'invalid wrap.proof: invalid proof_kind 0');
    assertInvalid(await wrap({ proof: { proof_id: VALID_PROOF_ID, proof_kind: 7 }, proof_dest: 3 }), 'invalid wrap.proof: invalid proof_kind 7');
    assertInvalid(await wrap({ proof: { proof_id: VALID_PROOF_ID, proof_kind: 1 }, proof_dest: 0 }), 'invalid proof_dest');
    assertInvalid(await wrap({ proof: { proof_id: VALID_PROOF_ID, proof_kind: 1 }, proof_dest: 9 }), 'invalid proof_dest');
    const stark = await wrap({ proof: { proof_id: VALID_PROOF_ID, proof_kind: 2 }, proof_dest: 1 });
    assertError(stark, INVALID, 'Invalid proof conversion: StarkMinimal → Stark', 1005);
    assert.equal(stark.apiError?.name, 'INVALID_PROOF_CONVERSION');
    // braced / urn / simple proof ids parse
    for (const id of [`{${VALID_PROOF_ID}}`, `urn:uuid:${VALID_PROOF_ID}`, VALID_PROOF_ID.replace(/-/g, '').toUpperCase()]) {
      const e = await wrap({ proof: { proof_id: id, proof_kind: 1 }, proof_dest: 3 });
      assertError(e, grpc.status.UNAVAILABLE, 'Cluster unavailable: no workers connected', 2001);
    }
  });

  it('JobRequest: unregistered program → NOT_FOUND; then the scheduler answers (no workers)', async () => {
    for (const kind of [{ setup: { hash_id: unregistered } }, { prove: { hash_id: unregistered, input: inline() } }, { execute: { hash_id: unregistered, input: inline() } }]) {
      const e = await jobRequest(kind);
      assertError(e, grpc.status.NOT_FOUND, `Program not found: ${unregistered}`, 1002);
      assert.equal(e.apiError?.name, 'PROGRAM_NOT_FOUND');
    }
    const e = await jobRequest({ prove: { hash_id: hashId, input: inline(Buffer.alloc(64)) } });
    assertError(e, grpc.status.UNAVAILABLE, 'Cluster unavailable: no workers connected', 2001);
    assert.equal(e.apiError?.name, 'CLUSTER_UNAVAILABLE');
    const local = await jobRequest({ execute: { hash_id: hashId, input: { stream_uri: `file://${inputsDir}/in.bin` } } });
    assertError(local, grpc.status.UNAVAILABLE, 'Cluster unavailable: no workers connected', 2001);
  });

  it('Wait / Watch / Cancel: bad and unknown job ids; canonical ids in messages', async () => {
    for (const method of ['WaitJobResult', 'CancelJob']) {
      assertInvalid(await callError(client, method, { job_id: 'not-a-uuid' }), 'invalid UUID: not-a-uuid');
      assertInvalid(await callError(client, method, {}), 'invalid UUID: ');
      for (const form of [randomJobId.toUpperCase(), randomJobId.replace(/-/g, ''), `urn:uuid:${randomJobId}`, `{${randomJobId}}`]) {
        const e = await callError(client, method, { job_id: form });
        assertError(e, grpc.status.NOT_FOUND, `Job not found: ${randomJobId}`, 1001);
        assert.equal(e.apiError?.name, 'JOB_NOT_FOUND');
      }
    }
    const watchErr = async (jobId: string): Promise<CallError> => {
      const fn = (client as unknown as Record<string, (r: object, o: grpc.CallOptions) => grpc.ClientReadableStream<object>>).WatchJob;
      const call = fn.call(client, { job_id: jobId }, { deadline: Date.now() + 5000 });
      return new Promise((resolve) => {
        call.on('data', () => undefined);
        call.on('error', (err: grpc.ServiceError) =>
          resolve({ code: err.code, details: err.details, apiError: undefined, metadata: err.metadata }),
        );
      }).then((e) => {
        const c = e as CallError;
        return { ...c, apiError: apiErrorOf(c.metadata) };
      });
    };
    assertInvalid(await watchErr('zz'), 'invalid UUID: zz');
    assertError(await watchErr(randomJobId.toUpperCase()), grpc.status.NOT_FOUND, `Job not found: ${randomJobId}`, 1001);
  });

  it('PushJobInput / PushJobHintsInput: first-message rules', async () => {
    for (const method of ['PushJobInput', 'PushJobHintsInput'] as const) {
      assertInvalid(await pushError(pushStream(client, method, []).result), `${method} stream must not be empty`);
      assertInvalid(await pushError(pushStream(client, method, [{ job_id: 'bad', chunk: { data: Buffer.alloc(8) } }]).result), 'invalid UUID: bad');
      assertInvalid(await pushError(pushStream(client, method, [{ job_id: randomJobId }]).result), 'chunk must be set');
      assertError(
        await pushError(pushStream(client, method, [{ job_id: randomJobId, chunk: { data: Buffer.alloc(8) } }]).result),
        grpc.status.NOT_FOUND,
        `Job not found: ${randomJobId}`,
        1001,
      );
    }
  });

  it('counts every call with its status code name, refused ones included', async () => {
    const text = await scrape(tc);
    assert.ok(sample(text, 'coordinator_requests_total{method="JobRequest",status="INVALID_ARGUMENT"}') > 10);
    assert.ok(sample(text, 'coordinator_requests_total{method="JobRequest",status="NOT_FOUND"}') >= 3);
    assert.ok(sample(text, 'coordinator_requests_total{method="JobRequest",status="UNAVAILABLE"}') >= 2);
    assert.ok(sample(text, 'coordinator_requests_total{method="RegisterGuestProgram",status="OK"}') >= 1);
    assert.ok(sample(text, 'coordinator_requests_total{method="WatchJob",status="NOT_FOUND"}') >= 1);
    assert.ok(sample(text, 'coordinator_requests_total{method="PushJobHintsInput",status="INVALID_ARGUMENT"}') >= 3);
    assert.ok(sample(text, 'coordinator_request_duration_seconds_count{method="WaitJobResult"}') >= 6);
  });
});


describe('push state rules (real mode)', () => {
  it('refuses pushes for jobs whose input or hints are not grpc://', async () => {
    const c = await startCluster(1, { tag: 'push-rules', sim: { contributionDelayMs: 60_000 } });
    try {
      const jobId = await submit(c.client, { prove: { hash_id: c.hashId, input: inline(Buffer.alloc(8)), proof_dest: 1 } });
      const e = await pushError(pushStream(c.client, 'PushJobInput', [{ job_id: jobId, chunk: { data: Buffer.alloc(8) } }]).result);
      assertError(e, INVALID, `Invalid job state: job ${jobId} uses Inline input — cannot push input via gRPC`, 1004);
      const h = await pushError(pushStream(c.client, 'PushJobHintsInput', [{ job_id: jobId, chunk: { data: Buffer.alloc(8) } }]).result);
      assertError(h, INVALID, `Invalid job state: job ${jobId} has no hints — cannot push hints via gRPC`, 1004);
      await unary(c.client, 'CancelJob', { job_id: jobId });
    } finally {
      await c.close();
    }
  });
});

describe('push state rules and the drain (mock mode)', () => {
  let tc: TestCoordinator;
  let client: grpc.Client;
  let hashId: string;

  before(async () => {
    tc = await startTestCoordinator({ backend: { mode: 'mock' }, server: { shutdown_timeout_seconds: 5 } });
    client = apiClient(tc.apiAddress);
    hashId = await register(client, fakeElf('drain'));
  });
  after(async () => {
    client.close();
    await tc.stop();
  });

  it('refuses input pushes only for stream-URI jobs, as upstream\'s mock does', async () => {
    const inputsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'zisk-mock-inputs-'));
    const mock = await startTestCoordinator({ backend: { mode: 'mock' }, coordinator: { inputs_dir: inputsDir } });
    const c = apiClient(mock.apiAddress);
    try {
      const h = await register(c, fakeElf('mock-uri'));
      const jobId = await submit(c, { prove: { hash_id: h, input: { stream_uri: `file://${inputsDir}/in.bin` } } });
      const e = await pushError(pushStream(c, 'PushJobInput', [{ job_id: jobId, chunk: { data: Buffer.alloc(8) } }]).result);
      assertError(e, INVALID, `Invalid job state: job ${jobId} uses StreamUri input — cannot push input via gRPC`, 1004);
    } finally {
      c.close();
      await mock.stop();
      fs.rmSync(inputsDir, { recursive: true, force: true });
    }
  });

  it('while draining: new jobs refused (after format and program checks), everything else served', async () => {
    const jobId = await submit(client, { execute: { hash_id: hashId, input: inline() } });
    tc.running.shutdown('test');
    await tc.waitForLog((l) => String(l.msg).startsWith('received test: draining'));
    assertError(
      await callError(client, 'JobRequest', { job_kind: { prove: { hash_id: hashId, input: inline() } } }),
      grpc.status.UNAVAILABLE,
      'Coordinator is shutting down',
      2003,
    );
    assertError(
      await callError(client, 'JobRequest', { job_kind: { prove: { hash_id: 'cd'.repeat(32), input: inline() } } }),
      grpc.status.NOT_FOUND,
      `Program not found: ${'cd'.repeat(32)}`,
      1002,
    );
    assertInvalid(await callError(client, 'JobRequest', { job_kind: {} }), 'job_kind.kind must be set');
    const w = await wait(client, jobId, 1);
    assert.equal(w.job_id, jobId);
    const done = await waitTerminal(client, jobId);
    assert.equal(done.job_status.status, 'completed');
  });
});
