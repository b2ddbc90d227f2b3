/**
 * The throughput load generator speaks gRPC over bare HTTP/2: it must read the coordinator's answers
 * as a grpc-js client would (job ids, the terminal event, error statuses in trailers and in
 * trailers-only responses), or the bench would count failures as jobs.
 */
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { encodeProveRequest } from '../../bench/lib/api';
import { WireJobClient } from '../../bench/lib/wire-client';
import { startCluster } from '../helpers/cluster';

describe('WireJobClient', () => {
  it('runs prove jobs to completed, and reports refusals and unknown jobs with their gRPC status', async () => {
    const c = await startCluster(2, { tag: 'wire-client' });
    const ok = new WireJobClient(c.tc.apiAddress, 2, encodeProveRequest(c.hashId, Buffer.alloc(8, 7)));
    const unknownProgram = new WireJobClient(c.tc.apiAddress, 1, encodeProveRequest('f'.repeat(64), Buffer.alloc(8, 7)));
    try {
      const ids = await Promise.all([ok.submitProve(), ok.submitProve(), ok.submitProve()]);
      assert.equal(new Set(ids).size, 3);
      for (const id of ids) assert.match(id, /^[0-9a-f-]{36}$/);
      const outcomes = await Promise.all(ids.map((id) => ok.watch(id, 10_000)));
      for (const o of outcomes) {
        assert.equal(o.status, 'completed', JSON.stringify(o));
        assert.ok(o.events >= 2, `queued/started/progress events precede the terminal one: ${o.events}`);
      }

      // A refusal is a trailers-only response: the status and its message must come through.
      await assert.rejects(unknownProgram.submitProve(), /^Error: JobRequest: 5 .*Program not found/);

      const missing = await ok.watch(randomUUID(), 5_000);
      assert.equal(missing.status, 'stream-error');
      assert.match(missing.detail ?? '', /^5 /, JSON.stringify(missing));
    } finally {
      ok.close();
      unknownProgram.close();
      await c.close();
    }
  });
});
