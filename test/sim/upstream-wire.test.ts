/**
 * The sim's `upstream` wire against a raw HTTP/2 worker port the test steers frame by frame: a stream
 * that ends OK without RST_STREAM is kept and heartbeated into; the next send after a reset or a lost
 * connection fails and the worker reconnects at once; an error status, a reset or an oversized message
 * while the response is open ends the call at once; only a failed connect or call sleeps the reconnect
 * interval; and the worker never sends PING frames.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import { CLUSTER_API_PROTO, CLUSTER_API_SERVICE, serviceDefinition } from '../../src/shared/proto';
import { freePort } from '../../src/shared/free-port';
import { RawWorkerPort, type RawPortOptions, type RawReceived } from '../helpers/raw-worker-port';
import { HASH, contributionTask, inputChunk, responseOf } from '../helpers/sim-tasks';
import { GrpcMessageReader, grpcPrefix } from '../../src/sim/grpc-frames';
import { SimWorker, type DisconnectInfo } from '../../src/sim/worker';
import type { SimWorkerInit } from '../../src/sim/options';
import { UPSTREAM_CONNECTION_WINDOW_BYTES, UPSTREAM_STREAM_WINDOW_BYTES } from '../../src/sim/transport-upstream';

const H2 = http2.constants;
const PUBLIC = serviceDefinition(CLUSTER_API_PROTO, CLUSTER_API_SERVICE).WorkerStream;
/** Far longer than any wait below: a reconnect that sleeps it fails the test instead of passing late. */
const NO_SLEEP_INTERVAL_MS = 20_000;

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function port(opts: RawPortOptions = {}, at = 0): Promise<RawWorkerPort> {
  const p = await RawWorkerPort.start(opts, at);
  cleanups.push(() => p.stop());
  return p;
}

function upstreamWorker(address: string, init: Partial<SimWorkerInit> = {}): SimWorker {
  const w = new SimWorker({
    coordinator: address,
    workerId: 'w1',
    wire: 'upstream',
    heartbeatIntervalMs: 50,
    reconnectIntervalMs: NO_SLEEP_INTERVAL_MS,
    preSetup: [{ hashId: HASH, withHints: false }],
    ...init,
  });
  cleanups.push(() => w.stop());
  w.start();
  return w;
}

function once<T>(w: SimWorker, event: 'disconnected' | 'registered' | 'responseEnded', timeoutMs = 3000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${timeoutMs} ms`)), timeoutMs);
    w.once(event, (arg: unknown) => {
      clearTimeout(timer);
      resolve(arg as T);
    });
  });
}

async function registered(p: RawWorkerPort, init: Partial<SimWorkerInit> = {}): Promise<SimWorker> {
  const w = upstreamWorker(p.address, init);
  if (!w.registered) await once(w, 'registered');
  return w;
}

const isAck = (r: RawReceived): boolean => r.msg.heartbeat_ack !== undefined;

describe('sim upstream wire: the connection', () => {
  test('one HTTP/2 connection per attempt with hyper windows and tonic headers, and never a PING', async () => {
    const p = await port();
    const w = await registered(p);
    const s = await p.nthStream(1);
    assert.equal(s.headers['content-type'], 'application/grpc');
    assert.equal(s.headers.te, 'trailers');
    assert.equal(s.headers[':path'], PUBLIC.path);
    assert.match(String(s.headers['user-agent']), /^tonic\//);
    const session = s.session;
    assert.ok(session);
    assert.equal(session.remoteSettings.initialWindowSize, UPSTREAM_STREAM_WINDOW_BYTES);
    assert.equal(session.remoteSettings.enablePush, false);
    // The connection window the server may fill: hyper's 5 MiB, not HTTP/2's 64 KiB default.
    assert.ok((session.state.remoteWindowSize ?? 0) > UPSTREAM_CONNECTION_WINDOW_BYTES - 64 * 1024, JSON.stringify(session.state));
    // Time passes in heartbeats, not in a bare sleep: six of them, and still no PING from the worker.
    await p.waitForCount(isAck, 6, 3000, 'heartbeat_acks');
    assert.equal(p.pings, 0, 'the worker sent PING frames');
    // The counter does see a client that pings.
    const pinger = http2.connect(`http://${p.address}`);
    pinger.on('error', () => undefined);
    await new Promise<void>((resolve) => pinger.once('connect', () => resolve()));
    await new Promise<void>((resolve, reject) => pinger.ping((err) => (err ? reject(err) : resolve())));
    pinger.destroy();
    assert.equal(p.pings, 1);

    // A drop opens a new connection, not a second stream on the old one.
    w.disconnect(0);
    const s2 = await p.nthStream(2);
    assert.notEqual(s2.session, session);
    assert.equal(p.sessions.length, 3, 'worker, pinger, worker again');
  });

  test('the framing reader splits messages across chunks and refuses an oversized prefix before its body', () => {
    const messages = [Buffer.from('a'), Buffer.alloc(0), Buffer.alloc(70_000, 7), Buffer.from('last')];
    const wire = Buffer.concat(messages.flatMap((m) => [grpcPrefix(m.length), m]));
    for (const step of [1, 3, 5, 16_384, wire.length]) {
      const r = new GrpcMessageReader(100_000);
      const got: Buffer[] = [];
      for (let i = 0; i < wire.length; i += step) assert.equal(r.push(wire.subarray(i, i + step), (m) => got.push(Buffer.from(m))), undefined);
      assert.deepEqual(got, messages, `chunks of ${step}`);
    }
    const big = Buffer.alloc(5);
    big.writeUInt32BE(1001, 1);
    const err = new GrpcMessageReader(1000).push(big, () => assert.fail('no message'));
    assert.equal(err?.code, 11);
    assert.match(err?.details ?? '', /found 1001 bytes, the limit is: 1000 bytes/);
    const compressed = Buffer.from([1, 0, 0, 0, 0]);
    assert.equal(new GrpcMessageReader(1000).push(compressed, () => undefined)?.code, 13);
  });
});

describe('sim upstream wire: how a stream ends', () => {
  test('status OK without RST_STREAM: no reconnect; heartbeats go on into the half-open stream', async () => {
    const p = await port();
    const w = await registered(p);
    const s = await p.nthStream(1);
    const ended = once<{ code: number }>(w, 'responseEnded');
    await s.endWithStatus(0);
    assert.equal((await ended).code, 0);
    // Three heartbeats after the status, all on the same HTTP/2 stream: the worker has not noticed.
    const late = await p.waitForCount((r) => isAck(r) && s.statusSentAt > 0 && r.at > s.statusSentAt, 3, 3000, 'heartbeats after the OK end');
    assert.ok(late.every((r) => r.stream === s));
    assert.equal(p.streams.length, 1, 'no new stream');
    assert.equal(w.stats.connects, 1);
    assert.equal(w.stats.sendFailures, 0);
    assert.equal(w.stats.cleanEnds, 1);
    assert.equal(w.halfOpen, true);
    assert.equal(w.registered, true, 'still believes it is registered');
    assert.equal(s.isClosed, false);
  });

  const afterOk: Array<[string, (s: Awaited<ReturnType<RawWorkerPort['nthStream']>>) => void]> = [
    ['RST_STREAM NO_ERROR', (s) => s.reset(H2.NGHTTP2_NO_ERROR)],
    ['RST_STREAM CANCEL', (s) => s.reset(H2.NGHTTP2_CANCEL)],
    ['a dropped connection', (s) => s.destroyConnection()],
  ];
  for (const [what, kill] of afterOk) {
    test(`status OK then ${what}: the next send fails and it reconnects at once, naming the job it holds`, async () => {
      const p = await port({ decide: (m) => ({ accepted: true, directive: m.reconnect ? 1 : undefined }) });
      const w = await registered(p, { contributionDelayMs: 60_000 });
      const s = await p.nthStream(1);
      s.send(contributionTask('w1', 'job-1', 0, 1));
      await new Promise<void>((resolve) => (w.jobContext?.running ? resolve() : w.once('task', () => resolve())));
      await s.endWithStatus(0);
      await p.waitFor((r) => isAck(r) && r.at > s.statusSentAt, 3000, 'a heartbeat into the half-open stream');
      const gone = once<DisconnectInfo>(w, 'disconnected');
      kill(s);
      const info = await gone;
      assert.equal(info.reason, 'sendFailed');
      assert.equal(w.stats.sendFailures, 1);
      const s2 = await p.nthStream(2);
      const first = await p.waitFor((r) => r.stream === s2, 3000, 'the handshake on the new stream');
      assert.equal(first.msg.reconnect?.worker_id, 'w1');
      assert.equal(first.msg.reconnect?.last_known_job_id, 'job-1');
      assert.equal(w.stats.connectErrors, 0);
      await once(w, 'registered');
      assert.equal(w.halfOpen, false);
    });
  }

  const whileOpen: Array<[string, (s: Awaited<ReturnType<RawWorkerPort['nthStream']>>) => Promise<void> | void, DisconnectInfo['reason'], number]> = [
    ['an error status (no RST_STREAM)', (s) => s.endWithStatus(13, 'boom'), 'status', 13],
    ['RST_STREAM without a status', (s) => s.reset(H2.NGHTTP2_CANCEL), 'streamError', 1],
    ['a dropped connection', (s) => s.destroyConnection(), 'streamError', 14],
  ];
  for (const [what, kill, reason, code] of whileOpen) {
    test(`${what} while the response is open: reconnects at once`, async () => {
      const p = await port();
      const w = await registered(p);
      const s = await p.nthStream(1);
      const gone = once<DisconnectInfo>(w, 'disconnected');
      await kill(s);
      const info = await gone;
      assert.equal(info.reason, reason);
      assert.equal(info.code, code);
      assert.equal(info.hadHeaders, true);
      const s2 = await p.nthStream(2);
      await p.waitFor((r) => r.stream === s2 && r.msg.register !== undefined, 3000, 'register on the new stream');
      assert.equal(w.stats.sendFailures, 0, 'noticed on the response side, not by a send');
      // The worker leaves a dead call behind it: the old stream is closed on both sides.
      await s.closed;
    });
  }

  test('accepted=false: back at once, even though upstream sets an Error state (it is overwritten)', async () => {
    let n = 0;
    const p = await port({ decide: () => ({ accepted: ++n >= 2, message: 'Maximum concurrent connections reached: (1)' }) });
    const w = upstreamWorker(p.address);
    const info = await once<DisconnectInfo>(w, 'disconnected');
    assert.equal(info.reason, 'rejected');
    await once(w, 'registered');
    assert.equal(w.stats.rejections, 1);
    // The port ended the rejected stream OK and never reset it: it closes because the worker closed it.
    await p.streams[0].closed;
  });
});

describe('sim upstream wire: connect failures sleep the reconnect interval', () => {
  const failures: Array<[string, (at: number) => Promise<RawWorkerPort | undefined>]> = [
    ['connection refused', async () => undefined],
    ['the call answered trailers-only UNAVAILABLE', (at) => port({ refuse: { code: 14, details: 'not now' } }, at)],
  ];
  for (const [what, start] of failures) {
    test(`${what} → sleeps reconnectIntervalMs, then connects`, async () => {
      const at = await freePort();
      const refusing = await start(at);
      const interval = 300;
      const w = upstreamWorker(`127.0.0.1:${at}`, { reconnectIntervalMs: interval });
      const times: number[] = [];
      const infos: DisconnectInfo[] = [];
      await new Promise<void>((resolve) => {
        const onGone = (info: DisconnectInfo): void => {
          times.push(performance.now());
          infos.push(info);
          if (times.length === 2) {
            w.off('disconnected', onGone);
            resolve();
          }
        };
        w.on('disconnected', onGone);
      });
      assert.deepEqual(infos.map((i) => i.reason), ['connectFailed', 'connectFailed']);
      assert.equal(infos[0].hadHeaders, false);
      if (refusing) assert.equal(infos[0].code, 14);
      const gap = times[1] - times[0];
      assert.ok(gap >= interval - 5, `retried after ${gap.toFixed(0)} ms, not after the ${interval} ms interval`);
      assert.equal(w.stats.connectErrors, 2);
      await refusing?.stop();
      const p = await port({}, at);
      await p.waitFor((r) => r.msg.register !== undefined, 3000, 'register once the port serves');
    });
  }
});

describe('sim upstream wire: message size', () => {
  test('an inbound message announcing more than 128 MiB is a stream error at its prefix: the worker resets and reconnects at once', async () => {
    const p = await port();
    const w = await registered(p);
    const s = await p.nthStream(1);
    const gone = once<DisconnectInfo>(w, 'disconnected');
    const prefix = Buffer.alloc(5 + 1024);
    prefix.writeUInt32BE(128 * 1024 * 1024 + 1, 1);
    s.writeRaw(prefix);
    const info = await gone;
    assert.equal(info.reason, 'streamError');
    assert.equal(info.code, 11, info.details);
    assert.match(info.details, /found 134217729 bytes, the limit is: 134217728 bytes/);
    assert.equal(await s.closed, H2.NGHTTP2_CANCEL, 'the worker reset the stream');
    const s2 = await p.nthStream(2);
    await p.waitFor((r) => r.stream === s2 && r.msg.register !== undefined, 3000, 'register on the new stream');
  });

  test('a real message over maxMessageBytes is refused and one at the limit is read', async () => {
    const limit = 1024;
    const p = await port();
    const w = await registered(p, { maxMessageBytes: limit, contributionDelayMs: 60_000 });
    const s = await p.nthStream(1);
    s.send(contributionTask('w1', 'job-big', 0, 1));
    await new Promise<void>((resolve) => (w.jobContext ? resolve() : w.once('task', () => resolve())));
    // The biggest chunk (a multiple of 8 bytes) whose encoded message fits the limit.
    let size = limit;
    while (PUBLIC.responseSerialize(inputChunk('job-big', Buffer.alloc(size))).length > limit) size -= 8;
    const atLimit = inputChunk('job-big', Buffer.alloc(size));
    assert.ok(PUBLIC.responseSerialize(atLimit).length > limit - 8);
    s.send(atLimit);
    await new Promise<void>((resolve) => w.on('received', (e) => e.kind === 'input_stream_data' && resolve()));
    assert.equal(w.streamCounters('job-big')?.inputChunks, 1);
    const gone = once<DisconnectInfo>(w, 'disconnected');
    s.send(inputChunk('job-big', Buffer.alloc(limit)));
    const info = await gone;
    assert.equal(info.code, 11);
    assert.equal(w.streamCounters('job-big')?.inputChunks, 1, 'the oversized chunk never reached the worker');
  });
});

describe('sim upstream wire: what the loop sends during a handshake', () => {
  test('a result that completes during a reconnect handshake goes out before the register response', async () => {
    let answer: ((d: number) => void) | undefined;
    const p = await port({
      decide: (m, self) => {
        // The reconnect stays unanswered until the result has arrived.
        if (!m.reconnect) return { accepted: true };
        const s = self.streams[self.streams.length - 1];
        answer = (directive) => s.send({ register_response: { worker_id: 'w1', accepted: true, message: 'Reconnection successful', directive: { action: directive } } });
        return null;
      },
    });
    const w = await registered(p, { contributionDelayMs: 150 });
    const s = await p.nthStream(1);
    s.send(contributionTask('w1', 'job-r', 0, 1));
    await new Promise<void>((resolve) => w.once('task', () => resolve()));
    s.destroyConnection();
    const r = await p.waitFor(responseOf('job-r'), 3000, 'the contribution result');
    const s2 = await p.nthStream(2);
    assert.equal(r.stream, s2);
    assert.equal(s2.messages[0].msg.reconnect?.last_known_job_id, 'job-r');
    assert.ok(answer, 'the reconnect is still unanswered');
    answer(1);
    await once(w, 'registered');
  });
});
