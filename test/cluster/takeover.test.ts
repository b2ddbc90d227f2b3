/**
 * Takeover on the wire (docs/protocol.md, "Takeover" and "Ending a worker stream"). Upstream's worker
 * only notices a dead stream when a send fails; a stream that ended with trailers but no RST_STREAM
 * stays writable, so a replaced worker heartbeated into it forever and never reconnected. The peers
 * are raw HTTP/2 streams that never half-close, like the real worker's: only an RST closes them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestCoordinator, type TestCoordinator } from '../helpers/coordinator';
import { encodeWorkerMessage, grpcFrame, rudeSession, rudeWorkerStream, type RudeSession, type RudeStream } from '../helpers/rude-peers';
import { MAX_TAKEOVERS_PER_WINDOW } from '../../src/threads/core/worker-connections';

const registered = (tc: TestCoordinator, workerId: string, nth: number): Promise<unknown> => {
  let seen = 0;
  return tc.waitForLog((l) => l.worker_id === workerId && typeof l.msg === 'string' && l.msg.startsWith(`worker ${workerId} registered`) && ++seen === nth);
};

async function openWorker(tc: TestCoordinator, workerId: string): Promise<{ session: RudeSession; stream: RudeStream }> {
  const session = await rudeSession(tc.running.ports.cluster!);
  const stream = rudeWorkerStream(session.session, workerId);
  await stream.headers;
  return { session, stream };
}

test('a taken-over stream gets its status, then an RST_STREAM; its connection stays up', async (t) => {
  const tc = await startTestCoordinator();
  t.after(() => tc.stop());
  const first = await openWorker(tc, 'w1');
  t.after(() => first.session.destroy());
  await registered(tc, 'w1', 1);
  const second = await openWorker(tc, 'w1');
  t.after(() => second.session.destroy());
  await registered(tc, 'w1', 2);

  const trailers = await first.stream.trailers;
  assert.equal(trailers['grpc-status'], '0');
  // Our side never ended: the stream can only close because the coordinator reset it.
  const closed = await first.stream.closed;
  assert.equal(closed.rstCode, 0, 'RST_STREAM(NO_ERROR) after the status');
  assert.equal(first.session.session.destroyed, false, 'the connection itself is left alone');
  assert.equal(second.stream.stream.closed, false, 'the newer stream keeps serving');
  // What upstream's worker then sees: its next send fails (so it reconnects).
  const heartbeat = grpcFrame(encodeWorkerMessage({ heartbeat_ack: { worker_id: 'w1' } }));
  const writeError = await new Promise<Error | null | undefined>((resolve) => first.stream.stream.write(heartbeat, resolve));
  assert.ok(writeError, 'a send on the reset stream fails');
});

test('two live processes sharing one id: past a few takeovers the newer connection is refused, loudly', async (t) => {
  const tc = await startTestCoordinator();
  t.after(() => tc.stop());
  const sessions: RudeSession[] = [];
  t.after(() => sessions.forEach((s) => s.destroy()));
  for (let i = 1; i <= MAX_TAKEOVERS_PER_WINDOW + 1; i++) {
    const w = await openWorker(tc, 'twin');
    sessions.push(w.session);
    await registered(tc, 'twin', i);
  }
  // The next one flaps: refused (accepted=false after the rejection delay), and the holder stays.
  const refused = await openWorker(tc, 'twin');
  sessions.push(refused.session);
  const line = await tc.waitForLog((l) => l.level === 'error' && typeof l.msg === 'string' && l.msg.startsWith('Worker id twin is already connected'));
  assert.match(String(line.msg), /two live processes seem to share this id/);
  assert.ok(line.peer, 'names the peer address');
  const trailers = await refused.stream.trailers;
  assert.equal(trailers['grpc-status'], '0');
  assert.equal((await refused.stream.closed).rstCode, 0, 'the refused stream is reset too, so the process notices');
  assert.equal(tc.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('worker twin registered')).length, MAX_TAKEOVERS_PER_WINDOW + 1);
});
