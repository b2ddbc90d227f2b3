/**
 * The lifecycle's reload hooks (what SIGHUP runs, docs/operations.md, Reloading: SIGHUP): in
 * registration order, one reload at a time, a failing hook reported without stopping the next, and
 * nothing once the process has begun closing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Lifecycle } from '../../src/main/process/lifecycle';

test('hooks run in registration order; one that throws is reported and the next still runs', async () => {
  const lc = new Lifecycle();
  const ran: string[] = [];
  const errors: string[] = [];
  lc.onReload('a', () => void ran.push('a'));
  lc.onReload('b', () => {
    throw new Error('b broke');
  });
  lc.onReload('c', async () => {
    await Promise.resolve();
    ran.push('c');
  });
  await lc.reload((hook, err) => errors.push(`${hook}: ${(err as Error).message}`));
  assert.deepEqual(ran, ['a', 'c']);
  assert.deepEqual(errors, ['b: b broke']);
});

test('a reload requested while one runs waits for it: hooks never overlap', async () => {
  const lc = new Lifecycle();
  const events: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let n = 0;
  lc.onReload('slow', async () => {
    const i = ++n;
    events.push(`start ${i}`);
    if (i === 1) await gate;
    events.push(`end ${i}`);
  });
  const first = lc.reload(() => undefined);
  const second = lc.reload(() => undefined);
  await Promise.resolve();
  assert.deepEqual(events, ['start 1']);
  release();
  await Promise.all([first, second]);
  assert.deepEqual(events, ['start 1', 'end 1', 'start 2', 'end 2']);
});

test('no hook runs once closing has begun', async () => {
  const lc = new Lifecycle();
  const ran: string[] = [];
  lc.onReload('log', () => void ran.push('log'));
  await lc.close(() => undefined);
  await lc.reload(() => undefined);
  assert.deepEqual(ran, []);
});
