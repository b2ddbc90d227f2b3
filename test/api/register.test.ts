/** RegisterGuestProgram (docs/decisions.md, Data plane): BLAKE3 ids, the ELF cache, restarts. */
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { HASH_THREAD_NICENESS } from '../../src/threads/hash-task';
import { assertError, blake3Hex, callError, fakeElf, register, sample, scrape, withCoordinator } from './helpers';

/** The nice value of every thread of this process, by thread id (Linux). */
function threadNiceValues(): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of fs.readdirSync('/proc/self/task')) {
    const stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    // field 19 (nice), counted after the parenthesised command name
    out.set(Number(tid), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]));
  }
  return out;
}

describe('RegisterGuestProgram', () => {
  it('answers the BLAKE3 of the exact bytes, stores <hash>.elf once, and stays idempotent across a restart', async () => {
    const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'zisk-cache-restart-'));
    try {
      const small = fakeElf('small', 100);
      // big enough to arrive in several HTTP/2 frames (the transferred-buffer path)
      const big = fakeElf('big', 3 << 20);
      const [smallHash, bigHash] = [await blake3Hex(small), await blake3Hex(big)];

      await withCoordinator({ coordinator: { cache_dir: cacheDir } }, async (tc, client) => {
        assert.equal(await register(client, small), smallHash);
        const [a, b] = await Promise.all([register(client, big), register(client, big)]);
        assert.equal(a, bigHash);
        assert.equal(b, bigHash);
        assert.equal(await register(client, small), smallHash);
        assert.deepEqual(fs.readFileSync(path.join(cacheDir, `${smallHash}.elf`)), small);
        assert.deepEqual(fs.readFileSync(path.join(cacheDir, `${bigHash}.elf`)), big);
        assert.deepEqual(fs.readdirSync(cacheDir).filter((n) => n.endsWith('.tmp')), []);
        assert.equal(sample(await scrape(tc), 'coordinator_registered_programs_total'), 2);
        // the multi-frame upload went to the hashing thread without a copy
        const hashed = tc.logs.filter((l) => l.msg === 'guest program hashed' && l.hash_id === bigHash);
        assert.ok(hashed.length >= 1);
        assert.ok(hashed.every((l) => l.moved === true), JSON.stringify(hashed));
        assert.ok(hashed.every((l) => typeof l.main_loop_max_ms === 'number'), JSON.stringify(hashed));
        // the hashing thread runs below the main thread's priority (Linux: nice is per thread)
        if (process.platform === 'linux') {
          const nice = threadNiceValues();
          assert.equal(nice.get(process.pid), 0, 'the main thread keeps its priority');
          assert.ok([...nice.values()].includes(HASH_THREAD_NICENESS), JSON.stringify([...nice]));
        }
        // a small program is hashed inline when the native hasher is there, never copied to a thread
        const smallHashed = tc.logs.filter((l) => l.msg === 'guest program hashed' && l.hash_id === smallHash);
        assert.ok(smallHashed.length >= 1);
        assert.ok(smallHashed.every((l) => (l.hasher === 'native') === (l.inline === true)), JSON.stringify(smallHashed));
      });

      await withCoordinator({ coordinator: { cache_dir: cacheDir } }, async (tc, client) => {
        assert.equal(await register(client, big), bigHash);
        // known from the cache: no new file, not counted again
        assert.equal(sample(await scrape(tc), 'coordinator_registered_programs_total'), 0);
        // and usable at once for jobs (NOT_FOUND would mean the index was lost)
        const e = await callError(client, 'JobRequest', { job_kind: { setup: { hash_id: smallHash } } });
        assertError(e, grpc.status.UNAVAILABLE, 'Cluster unavailable: no workers connected', 2001);
      });
    } finally {
      fs.rmSync(cacheDir, { recursive: true, force: true });
    }
  });

  it('a filesystem failure is INTERNAL with a trace id in the ApiError and in the log', async () => {
    // An unusable cache dir stops the start (test/process/directories.test.ts): this one breaks later.
    await withCoordinator({}, async (tc, client) => {
      fs.rmSync(tc.cacheDir, { recursive: true });
      fs.writeFileSync(tc.cacheDir, 'x');
      const e = await callError(client, 'RegisterGuestProgram', { zisk_elf: fakeElf('x') });
      assert.equal(e.code, grpc.status.INTERNAL);
      assert.equal(e.details, 'An internal error occurred');
      assert.equal(e.apiError?.code, 3001);
      assert.equal(e.apiError?.name, 'INTERNAL');
      const m = /^An internal error occurred \(trace id ([0-9a-f-]{36})\)$/.exec(e.apiError?.message ?? '');
      assert.ok(m, e.apiError?.message);
      const line = tc.logs.find((l) => l.trace_id === m[1]);
      assert.ok(line, 'log line with the trace id');
      assert.match(String(line.err), /ENOTDIR|EEXIST|not a directory/i);
      assert.equal(sample(await scrape(tc), 'coordinator_requests_total{method="RegisterGuestProgram",status="INTERNAL"}'), 1);
    });
  });
});
