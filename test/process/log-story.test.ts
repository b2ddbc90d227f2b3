/**
 * The info log tells a job's story (docs/operations.md, Logs): one line per step, each with the job's
 * id in its text and in `job_id`, phases by name, durations, the attempt, and a failure's worker and
 * reason. Read from the real binary's JSON log.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { SimFleet } from '../../src/sim/fleet';
import { freePort, spawnCoordinator, stopCoordinator, tempDir, type LogLine } from '../helpers/spawn-coordinator';
import { apiClient, fakeElf, inline, register, submit, unary, waitTerminal } from '../api/helpers';

const story = (lines: LogLine[], jobId: string): string[] =>
  lines.filter((l) => l.job_id === jobId && (l.level === 'info' || l.level === 'warn' || l.level === 'error')).map((l) => String(l.msg));

test('a job in a few info lines: submitted, queued, started, each phase with its duration, completed; failures name the worker; a cancel is one line', { timeout: 60_000 }, async (t) => {
  const dir = tempDir('zisk-logstory-');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const [api, cluster] = [await freePort(), await freePort()];
  const c = await spawnCoordinator({
    args: ['--api-port', String(api), '--cluster-port', String(cluster), '--metrics-port', String(await freePort())],
    env: { ZISK_COORDINATOR_SERVER_HOST: '127.0.0.1', ZISK_COORDINATOR_METRICS_HOST: '127.0.0.1', ZISK_COORDINATOR_STATE_DIR: `${dir}/state` },
  });
  t.after(() => stopCoordinator(c));
  const fleet = new SimFleet({ coordinator: `127.0.0.1:${cluster}`, workers: 1, wire: 'upstream', setupDelayMs: 5, contributionDelayMs: 300, proveDelayMs: 20, aggregateDelayMs: 20 }).start();
  t.after(() => fleet.stop());
  const client = apiClient(`127.0.0.1:${api}`);
  t.after(() => client.close());
  await fleet.waitAllRegistered(10_000);
  const hashId = await register(client, fakeElf('log-story'));
  const setup = await submit(client, { setup: { hash_id: hashId, with_hints: false, program_name: 'story' } });
  await waitTerminal(client, setup);

  // Two jobs on one worker: the second waits in the queue.
  const first = await submit(client, { prove: { hash_id: hashId, input: inline(Buffer.alloc(64, 1)), proof_dest: 1 } });
  const second = await submit(client, { prove: { hash_id: hashId, input: inline(Buffer.alloc(32, 2)), proof_dest: 1 } });
  assert.equal((await waitTerminal(client, first)).job_status.status, 'completed');
  assert.equal((await waitTerminal(client, second)).job_status.status, 'completed');
  await c.waitForLine((l) => l.job_id === second && /completed in/.test(String(l.msg)));

  const id = second.replace(/-/g, '\\-');
  const expected = [
    new RegExp(`^prove job ${id} submitted for program ${hashId.slice(0, 12)}…, input 32 bytes inline$`),
    new RegExp(`^prove job ${id} queued at position 1 of 1 \\(0 worker\\(s\\) free\\)$`),
    new RegExp(`^prove job ${id} started on 1 worker\\(s\\) after \\d+ ms in the queue$`),
    new RegExp(`^prove job ${id}: contributions done in \\d+ ms$`),
    new RegExp(`^prove job ${id}: prove done in \\d+ ms$`),
    new RegExp(`^prove job ${id}: aggregate done in \\d+ ms$`),
    new RegExp(`^prove job ${id} completed in \\d+ ms$`),
  ];
  const lines = story(c.lines, second);
  assert.equal(lines.length, expected.length, lines.join('\n'));
  lines.forEach((l, i) => assert.match(l, expected[i]));
  const done = c.lines.find((l) => l.job_id === second && /completed in/.test(String(l.msg)));
  assert.equal(done?.attempt, 1);
  assert.equal(typeof done?.duration_ms, 'number');
  // Phases are names wherever a line carries one.
  for (const l of c.lines) if (l.phase !== undefined) assert.ok(['contributions', 'prove', 'aggregate'].includes(String(l.phase)), JSON.stringify(l));
  const registered = c.lines.find((l) => l.worker_id === fleet.workers[0].id && /registered/.test(String(l.msg)));
  assert.match(String(registered?.msg), /^worker \S+ registered from 127\.0\.0\.1:\d+ with 10 compute unit\(s\)$/);

  // A worker's error: the failure line names the worker and the reason, and the phase by name.
  fleet.workers[0].inject('prove', { action: 'error', message: 'out of GPU memory' });
  const failing = await submit(client, { prove: { hash_id: hashId, input: inline(Buffer.alloc(8)), proof_dest: 1 } });
  assert.equal((await waitTerminal(client, failing)).job_status.status, 'failed');
  const failed = await c.waitForLine((l) => l.job_id === failing && l.level === 'error');
  assert.match(String(failed.msg), new RegExp(`^prove job ${failing.replace(/-/g, '\\-')} failed after \\d+ ms: .*worker ${fleet.workers[0].id}.*out of GPU memory`));

  // A cancel is logged once.
  fleet.workers[0].inject('contribution', { delayMs: 30_000 });
  const cancelled = await submit(client, { prove: { hash_id: hashId, input: inline(Buffer.alloc(8)), proof_dest: 1 } });
  await c.waitForLine((l) => l.job_id === cancelled && /started/.test(String(l.msg)));
  await unary(client, 'CancelJob', { job_id: cancelled });
  assert.equal((await waitTerminal(client, cancelled)).job_status.status, 'cancelled');
  // A later job's first line proves the cancel's lines are all out.
  const probe = await submit(client, { prove: { hash_id: hashId, input: inline(Buffer.alloc(8)), proof_dest: 1 } });
  await c.waitForLine((l) => l.job_id === probe && /submitted/.test(String(l.msg)));
  assert.equal(story(c.lines, cancelled).filter((m) => /cancel/i.test(m)).length, 1, story(c.lines, cancelled).join('\n'));
});
