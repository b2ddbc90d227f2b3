import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CLIENT_API_PROTO, CLIENT_API_SERVICE, serviceDefinition } from '../../src/shared/proto';
import { encodeSmallJobEvent } from '../../src/main/api/job-event-encoding';
import type { JobEventWire } from '../../src/main/api/job-mirror';

const watch = serviceDefinition(CLIENT_API_PROTO, CLIENT_API_SERVICE).WatchJob;
const decode = (b: Buffer): unknown => watch.responseDeserialize(b);

const IDS = ['0b6f0e8e-7a0c-4a59-9f5c-2b1f7a3c9d10', '', 'job-ünïcödé-✓', 'x'.repeat(300)];
const TIMES = [
  { seconds: 1_764_236_141, nanos: 7_000_000 },
  { seconds: 0, nanos: 0 },
  { seconds: 1, nanos: 999_999_999 },
  { seconds: 2 ** 40 + 3, nanos: 1 },
  { seconds: 127, nanos: 128 },
];

function events(): JobEventWire[] {
  const out: JobEventWire[] = [];
  for (const job_id of IDS) {
    for (const timestamp of TIMES) {
      out.push({ queued: { job_id, timestamp } }, { started: { job_id, timestamp } }, { cancelled: { job_id, timestamp } });
      for (const phase of [1, 2, 3]) out.push({ progress: { job_id, phase, timestamp } });
    }
  }
  return out;
}

test('hand-encoded small JobEvents decode to exactly what the generated encoder produces', () => {
  const all = events();
  assert.equal(all.length, IDS.length * TIMES.length * 6);
  for (const e of all) {
    const mine = encodeSmallJobEvent(e);
    assert.ok(mine, `encoded ${JSON.stringify(e).slice(0, 80)}`);
    assert.deepEqual(decode(mine), decode(watch.responseSerialize(e)), JSON.stringify(e).slice(0, 120));
  }
});

test('completed and failed events are left to the generated encoder', () => {
  const ts = { seconds: 5, nanos: 6 };
  assert.equal(encodeSmallJobEvent({ failed: { job_id: 'j', failure: { execution: { reason: 'boom' } } as never, timestamp: ts } }), undefined);
  assert.equal(encodeSmallJobEvent({ completed: { job_id: 'j', result: {} as never, timestamp: ts } }), undefined);
});
