/** The completion webhook (docs/decisions.md, Webhook) against a local HTTP receiver. */
import { describe, it, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/shared/logging';
import { WebhookNotifier } from '../../src/main/api/webhook';
import { fakeElf, inline, register, submit, unary, waitTerminal, withCoordinator } from './helpers';

interface Received {
  at: number;
  url: string;
  method: string;
  contentType: string | undefined;
  body: Record<string, unknown>;
}

/** A receiver answering each request with the next status of `statuses` (the last one repeats). */
class Receiver {
  readonly requests: Received[] = [];
  private readonly server: http.Server;
  private waiters: (() => void)[] = [];

  constructor(private readonly statuses: (n: number, url: string) => number) {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const url = req.url ?? '';
        this.requests.push({
          at: Date.now(),
          url,
          method: req.method ?? '',
          contentType: req.headers['content-type'],
          body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>,
        });
        const n = this.requests.filter((r) => r.url === url).length;
        res.statusCode = this.statuses(n, url);
        res.end();
        for (const w of this.waiters.splice(0)) w();
      });
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Resolves once `predicate` holds, bounded by `ms`. */
  async until(predicate: () => boolean, ms = 8_000): Promise<void> {
    const end = Date.now() + ms;
    while (!predicate()) {
      if (Date.now() > end) throw new Error(`receiver: condition not met after ${ms} ms (${this.requests.length} requests)`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

describe('webhook', () => {
  let receiver: Receiver;
  let base: string;

  before(async () => {
    // /retry/<id> fails twice, then succeeds; everything else succeeds at once
    receiver = new Receiver((n, url) => (url.startsWith('/retry/') && n <= 2 ? 503 : 200));
    base = await receiver.listen();
  });
  after(async () => {
    await receiver.close();
  });

  it('posts every terminal outcome of prove, execute and wrap jobs (not setup), with upstream fields', async () => {
    const ids = await withCoordinator({ backend: { mode: 'mock' }, coordinator: { webhook_url: `${base}/hook` } }, async (tc, client) => {
      const hashId = await register(client, fakeElf('webhook'));
      const setup = await submit(client, { setup: { hash_id: hashId } });
      const prove = await submit(client, { prove: { hash_id: hashId, input: inline() } });
      const execute = await submit(client, { execute: { hash_id: hashId, input: inline() } });
      const cancelled = await submit(client, { execute: { hash_id: hashId, input: inline() } });
      assert.equal((await unary<{ cancelled: boolean }>(client, 'CancelJob', { job_id: cancelled })).cancelled, true);
      await Promise.all([setup, prove, execute].map((id) => waitTerminal(client, id)));
      await receiver.until(() => receiver.requests.filter((r) => r.url.startsWith('/hook/')).length >= 3);
      return { setup, prove, execute, cancelled, logs: tc.logs };
    });
    // The coordinator has stopped, and stopping waits for the deliveries in flight (or abandons
    // them, with an error line): every POST it was ever going to make has reached the receiver.
    assert.deepEqual(ids.logs.filter((l) => /^webhook /.test(String(l.msg)) && l.level === 'error'), []);
    const { setup, prove, execute, cancelled } = ids;
    const byId = new Map(receiver.requests.filter((r) => r.url.startsWith('/hook/')).map((r) => [r.url.slice('/hook/'.length), r]));
    assert.equal(byId.size, 3, [...byId.keys()].join(','));
    assert.equal(byId.has(setup), false);

    const p = byId.get(prove) as Received;
    assert.equal(p.method, 'POST');
    assert.equal(p.contentType, 'application/json');
    assert.deepEqual(Object.keys(p.body).sort(), ['duration_ms', 'error', 'executed_steps', 'job_id', 'proof_data', 'success', 'timestamp']);
    assert.equal(p.body.job_id, prove);
    assert.equal(p.body.success, true);
    assert.equal(p.body.error, null);
    assert.equal(p.body.executed_steps, 0);
    assert.deepEqual(p.body.proof_data, Array(64).fill(1));
    assert.ok(typeof p.body.duration_ms === 'number' && p.body.duration_ms >= 1900);
    assert.match(String(p.body.timestamp), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

    const e = byId.get(execute) as Received;
    assert.equal(e.body.success, true);
    assert.equal('proof_data' in e.body, false);

    const c = byId.get(cancelled) as Received;
    assert.equal(c.body.success, false);
    assert.equal(c.body.executed_steps, null);
    assert.deepEqual(c.body.error, { code: 'JOB_FAILED', message: 'The job was cancelled.' });
  });

  it('retries with backoff until a 2xx, substituting {$job_id}', async () => {
    await withCoordinator({ backend: { mode: 'mock' }, coordinator: { webhook_url: `${base}/retry/{$job_id}` } }, async (_tc, client) => {
      const hashId = await register(client, fakeElf('webhook-retry'));
      const jobId = await submit(client, { execute: { hash_id: hashId, input: inline() } });
      await waitTerminal(client, jobId);
      await receiver.until(() => receiver.requests.filter((r) => r.url === `/retry/${jobId}`).length >= 3);
      const attempts = receiver.requests.filter((r) => r.url === `/retry/${jobId}`);
      assert.equal(attempts.length, 3);
      assert.ok(attempts[1].at - attempts[0].at >= 45, 'first backoff ≈50 ms');
      assert.ok(attempts[2].at - attempts[1].at >= 95, 'second backoff ≈100 ms');
      assert.deepEqual(attempts[2].body, attempts[0].body);
    });
  });

  it('gives up after the last attempt and logs the final failure; never throws', async () => {
    const failing = new Receiver(() => 500);
    const url = await failing.listen();
    const lines: Record<string, unknown>[] = [];
    const logger = createLogger(
      { level: 'debug', format: 'json' },
      {
        destination: new Writable({
          write(chunk: Buffer, _e, cb) {
            for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
            cb();
          },
        }),
      },
    );
    const n = new WebhookNotifier({ url, logger, maxAttempts: 4, baseDelayMs: 10 });
    n.notify({ jobId: 'job-1', success: false, durationMs: 5, executedSteps: null, at: Date.now(), errorMessage: 'x' });
    // unreachable receiver: connection errors count as failures too
    const dead = new WebhookNotifier({ url: 'http://127.0.0.1:1', logger, maxAttempts: 2, baseDelayMs: 10 });
    dead.notify({ jobId: 'job-2', success: true, durationMs: 5, executedSteps: '1', at: Date.now() });
    await failing.until(() => failing.requests.length >= 4);
    const end = Date.now() + 5_000;
    while (lines.filter((l) => l.level === 'error').length < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    await n.close();
    await dead.close();
    await failing.close();
    assert.equal(failing.requests.length, 4);
    const errors = lines.filter((l) => l.level === 'error');
    assert.ok(errors.some((l) => l.job_id === 'job-1' && /failed after 4 attempts: HTTP 500/.test(String(l.msg))), JSON.stringify(errors));
    assert.ok(errors.some((l) => l.job_id === 'job-2' && /failed after 2 attempts/.test(String(l.msg))), JSON.stringify(errors));
  });
});
