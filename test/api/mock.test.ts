/**
 * `[backend] mode = "mock"` end to end (docs/decisions.md, Mock backend): the same API on
 * upstream's mock timings, with synthetic results.
 */
import { describe, it, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import type * as grpc from '@grpc/grpc-js';
import { startTestCoordinator, type TestCoordinator } from '../helpers/coordinator';
import {
  apiClient,
  fakeElf,
  inline,
  pushError,
  pushStream,
  register,
  submit,
  unary,
  wait,
  waitTerminal,
  watch,
  watchedEvent,
} from './helpers';

describe('mock backend end to end', () => {
  let tc: TestCoordinator;
  let client: grpc.Client;
  let hashId: string;

  before(async () => {
    tc = await startTestCoordinator({ backend: { mode: 'mock' } });
    client = apiClient(tc.apiAddress);
    hashId = await register(client, fakeElf('mock'));
  });
  after(async () => {
    client.close();
    await tc.stop();
  });

  it('runs a prove job on upstream timings: queued, running(CONTRIBUTIONS), running(PROVE), completed', async () => {
    const t0 = Date.now();
    const jobId = await submit(client, { prove: { hash_id: hashId, input: inline(Buffer.alloc(16, 1)), proof_dest: 3 } });
    assert.match(jobId, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const w = watch(client, jobId);
    const first = await wait(client, jobId, 0); // present 0 → held 1 s at most; the job is still running
    assert.equal(first.job_status.status, 'running');
    assert.equal(first.job_status.running?.phase, 2);
    assert.equal(first.result, undefined);
    const done = await waitTerminal(client, jobId);
    const elapsed = Date.now() - t0;
    assert.ok(elapsed >= 2000 && elapsed < 3500, `completed after ${elapsed} ms (upstream ≈2.1 s)`);
    assert.equal(done.job_status.status, 'completed');
    assert.equal(done.result?.kind, 'prove');
    const prove = done.result?.prove as { proof: Record<string, unknown>; stats: Record<string, unknown> };
    assert.equal(prove.proof.hash_id, hashId);
    assert.equal(prove.proof.proof_kind, 3);
    assert.deepEqual(prove.proof.data, Buffer.alloc(64, 1));
    assert.deepEqual(prove.proof.verification_key, Buffer.alloc(32, 0));
    assert.equal(prove.stats.steps, '0');
    // identical on every read
    const again = await wait(client, jobId);
    assert.deepEqual(again, done);

    const status = await w.done;
    assert.equal(status.code, 0);
    assert.deepEqual(
      w.events.map((e) => e.event + (e.progress ? `(${(e.progress as { phase: number }).phase})` : '')),
      ['queued', 'started', 'progress(1)', 'progress(2)', 'completed'],
    );
    const completed = w.events[4].completed as { result: unknown; job_id: string };
    assert.equal(completed.job_id, jobId);
    assert.deepEqual(completed.result, done.result);
  });

  it('runs setup, execute and wrap jobs (running without phase for setup and wrap)', async () => {
    const setup = await submit(client, { setup: { hash_id: hashId, with_hints: false, program_name: 'p' } });
    const execute = await submit(client, { execute: { hash_id: hashId, input: inline() } });
    const wrap = await submit(client, {
      wrap: {
        proof: { proof_id: '0e9ba1a4-9d1f-5c43-8c1e-3a0c6a54b8f1', proof_kind: 1, data: Buffer.from('proof'), hash_id: hashId },
        proof_dest: 2,
      },
    });
    // Each job has started (the execute job has also entered CONTRIBUTIONS).
    await Promise.all([
      watchedEvent(watch(client, setup), 'started'),
      watchedEvent(watch(client, execute), 'progress'),
      watchedEvent(watch(client, wrap), 'started'),
    ]);
    const [s, e, w] = await Promise.all([wait(client, setup, 1), wait(client, execute, 1), wait(client, wrap, 1)]);
    assert.deepEqual([s.job_status.status, s.job_status.running?.phase], ['running', undefined]);
    assert.deepEqual([e.job_status.status, e.job_status.running?.phase], ['running', 1]);
    assert.deepEqual([w.job_status.status, w.job_status.running?.phase], ['running', undefined]);
    const [sr, er, wr] = await Promise.all([waitTerminal(client, setup), waitTerminal(client, execute), waitTerminal(client, wrap)]);
    assert.equal(sr.result?.kind, 'setup');
    assert.equal(er.result?.kind, 'execute');
    assert.deepEqual((er.result?.execute as { public_outputs: Buffer }).public_outputs, Buffer.alloc(0));
    assert.equal(wr.result?.kind, 'wrap');
    const wp = (wr.result?.wrap as { proof: Record<string, unknown> }).proof;
    assert.deepEqual(wp.data, Buffer.from('proof'));
    assert.equal(wp.proof_kind, 2);
    assert.equal(wp.hash_id, hashId);
  });

  it('accepts and discards pushed chunks for grpc:// jobs, refuses terminal ones', async () => {
    const jobId = await submit(client, { prove: { hash_id: hashId, input: { stream_uri: 'grpc://push' } } });
    const ok = pushStream(client, 'PushJobInput', [
      { job_id: jobId, chunk: { data: Buffer.alloc(8) } },
      { job_id: jobId, chunk: { data: Buffer.alloc(16) } },
    ]);
    assert.deepEqual(await ok.result, {});
    assert.equal((await unary<{ cancelled: boolean }>(client, 'CancelJob', { job_id: jobId })).cancelled, true);
    const e = await pushError(pushStream(client, 'PushJobInput', [{ job_id: jobId, chunk: { data: Buffer.alloc(8) } }]).result);
    assert.equal(e.code, 3);
    assert.equal(e.details, `Invalid job state: job ${jobId} is already terminal (current: Cancelled)`);
    assert.equal(e.apiError?.code, 1004);
  });

  it('accepts PushJobInput and PushJobHintsInput for an inline-input job, as upstream\'s mock does', async () => {
    const jobId = await submit(client, { prove: { hash_id: hashId, input: inline(Buffer.alloc(16, 1)), proof_dest: 1 } });
    const input = pushStream(client, 'PushJobInput', [{ job_id: jobId, chunk: { data: Buffer.alloc(8) } }]);
    assert.deepEqual(await input.result, {});
    const hints = pushStream(client, 'PushJobHintsInput', [{ job_id: jobId, chunk: { data: Buffer.alloc(8) } }]);
    assert.deepEqual(await hints.result, {});
  });
});
