/**
 * The attack on `file://` confinement: a directory component under inputs_dir is swapped between a
 * real directory and a symlink to an outside directory while sources are opened. Whatever the
 * interleaving, no byte of the outside file may reach a worker: each open either reads the inside
 * file or fails the job with a clear reason.
 */
import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { startLocalSource } from '../../src/main/data/local-sources';
import { makeRelay, settle, target } from './fakes';

const INSIDE = 0x49; // 'I'
const OUTSIDE = 0x4f; // 'O'
const FILE_BYTES = 64 * 1024;
const OPENS = 400;

let base: string;
let inputs: string;
let outside: string;

before(() => {
  base = fs.mkdtempSync(path.join(os.tmpdir(), 'zc-race-'));
  inputs = path.join(base, 'inputs');
  outside = path.join(base, 'outside');
  fs.mkdirSync(path.join(inputs, 'd'), { recursive: true });
  fs.mkdirSync(outside);
  fs.writeFileSync(path.join(inputs, 'd', 'data.bin'), Buffer.alloc(FILE_BYTES, INSIDE));
  fs.writeFileSync(path.join(outside, 'data.bin'), Buffer.alloc(FILE_BYTES, OUTSIDE));
});

after(() => {
  fs.rmSync(base, { recursive: true, force: true });
});

/** The attacker, on its own thread so it runs truly alongside the opens: d ↔ symlink to outside. */
const SWAPPER = `
const fs = require('node:fs');
const { workerData } = require('node:worker_threads');
const { d, park, outside, flag } = workerData;
const stop = new Int32Array(flag);
let swaps = 0;
while (Atomics.load(stop, 0) === 0) {
  fs.renameSync(d, park);
  fs.symlinkSync(outside, d);
  fs.unlinkSync(d);
  fs.renameSync(park, d);
  swaps++;
}
Atomics.store(stop, 1, swaps);
`;

test('swapping a directory component for a symlink while sources open never streams an outside byte', async () => {
  const flag = new SharedArrayBuffer(8);
  const stop = new Int32Array(flag);
  const swapper = new Worker(SWAPPER, {
    eval: true,
    workerData: { d: path.join(inputs, 'd'), park: path.join(inputs, 'd-parked'), outside, flag },
  });
  const exited = new Promise<void>((resolve, reject) => {
    swapper.once('exit', () => resolve());
    swapper.once('error', reject);
  });
  let read = 0;
  const reasons = new Map<string, number>();
  try {
    for (let i = 0; i < OPENS; i++) {
      const h = makeRelay('input', [1]);
      h.relay.setLinks([1]);
      await startLocalSource(path.join(inputs, 'd', 'data.bin'), 'file', h.relay, new AbortController().signal, { root: inputs });
      await settle();
      const payload = Buffer.concat(target(h, 1).decoded().map((m) => m.input_stream_data?.payload ?? Buffer.alloc(0)));
      assert.equal(payload.indexOf(OUTSIDE), -1, `open ${i}: an outside byte reached the worker`);
      if (h.failures.length > 0) {
        const kind = h.failures[0].replace(/^cannot open \S+: /, '');
        reasons.set(kind, (reasons.get(kind) ?? 0) + 1);
      } else {
        assert.equal(payload.length, FILE_BYTES, `open ${i}: the inside file whole`);
        read++;
      }
    }
  } finally {
    Atomics.store(stop, 0, 1);
    await exited;
  }
  const swaps = Atomics.load(stop, 1);
  assert.ok(swaps > OPENS, `the swapper raced the opens (${swaps} swaps)`);
  // Both outcomes happened, so the opens really met the symlink and the real directory.
  assert.ok(read > 0, `some opens read the inside file (failures: ${JSON.stringify([...reasons])})`);
  assert.ok([...reasons.values()].reduce((a, b) => a + b, 0) > 0, 'some opens met the swapped component and failed');
  for (const reason of reasons.keys()) {
    assert.match(reason, /symbolic link|ENOENT/, 'each failure says why');
  }
});
