/**
 * Response headers go out as soon as a streaming call starts (docs/protocol.md, "Response headers").
 * tonic's request timeout covers only the wait for response headers and sends no `grpc-timeout`, so
 * a push to a queued `grpc://` job whose headers waited for the end of the push was cancelled by the
 * SDK, and the input reached the workers truncated. The client here is raw HTTP/2 and gives up as
 * tonic does; the job stays queued well past its limit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster } from '../helpers/cluster';
import {
  grpcStatusOf,
  headersWithin,
  rudeCall,
  rudeSession,
  type RudeStream,
} from '../helpers/rude-peers';
import { CLIENT_API_PROTO, CLIENT_API_SERVICE, serviceDefinition } from '../../src/shared/proto';
import { inline, pushStream, submit, wait, waitTerminal } from './helpers';
import { grpcFrame } from '../helpers/rude-peers';

const API = serviceDefinition(CLIENT_API_PROTO, CLIENT_API_SERVICE);
/** The client's header timeout; the job stays queued for several times this. */
const HEADERS_LIMIT_MS = 1_000;

const CTRL_START = Buffer.alloc(8);
const CTRL_END = (() => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(1n << 32n);
  return b;
})();

test('PushJobInput, PushJobHintsInput and WatchJob send headers at once, while their job is still queued', { timeout: 60_000 }, async (t) => {
  const c = await startCluster(1, { tag: 'headers', setups: [true], sim: { contributionDelayMs: 20 } });
  t.after(() => c.close());
  const hashId = c.hashId;
  const hints = { stream_uri: 'grpc://hints' };
  // Job A holds the only worker until its hints end arrives.
  const holder = await submit(c.client, { prove: { hash_id: hashId, input: inline(Buffer.alloc(64, 1)), hints, proof_dest: 1 } });
  const queued = await submit(c.client, { prove: { hash_id: hashId, input: { stream_uri: 'grpc://push' }, hints, proof_dest: 1 } });
  assert.equal((await wait(c.client, queued, 1)).job_status.status, 'queued');

  const session = await rudeSession(Number(c.tc.apiAddress.split(':')[1]));
  t.after(() => session.destroy());
  const input = Buffer.alloc(4096, 7);
  const push: RudeStream = rudeCall(session.session, API.PushJobInput.path, API.PushJobInput.requestSerialize({ job_id: queued, chunk: { data: input } }));
  const hintsPush: RudeStream = rudeCall(
    session.session,
    API.PushJobHintsInput.path,
    API.PushJobHintsInput.requestSerialize({ job_id: queued, chunk: { data: CTRL_START } }),
  );
  const watchCall: RudeStream = rudeCall(session.session, API.WatchJob.path, API.WatchJob.requestSerialize({ job_id: queued }));
  watchCall.stream.end();

  for (const [name, call] of [['PushJobInput', push], ['PushJobHintsInput', hintsPush], ['WatchJob', watchCall]] as const) {
    const h = await headersWithin(call, HEADERS_LIMIT_MS);
    assert.equal(h[':status'], 200, name);
    assert.equal(h['grpc-status'], undefined, `${name}: headers, not a trailers-only answer`);
  }
  // Still queued after every client would have given up on its headers.
  assert.equal((await wait(c.client, queued, 1)).job_status.status, 'queued');

  // Release the holder: the queued job starts, and the pushes carry on over the same calls.
  const release = Buffer.concat([CTRL_START, CTRL_END]);
  await pushStream(c.client, 'PushJobHintsInput', [{ job_id: holder, chunk: { data: release } }], { deadlineMs: 20_000 }).result;
  assert.equal((await waitTerminal(c.client, holder)).job_status.status, 'completed');
  push.stream.end();
  hintsPush.stream.end(grpcFrame(API.PushJobHintsInput.requestSerialize({ job_id: queued, chunk: { data: CTRL_END } })));
  assert.equal((await grpcStatusOf(push)).code, 0);
  assert.equal((await grpcStatusOf(hintsPush)).code, 0);
  const r = await waitTerminal(c.client, queued);
  assert.equal(r.job_status.status, 'completed', JSON.stringify(r.job_status));
  // Every byte pushed while the job was queued reached the worker.
  assert.equal(c.fleet.workers[0].streamCounters(queued)?.inputBytes, input.length);
});
