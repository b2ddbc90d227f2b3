/**
 * What both gRPC servers say at the HTTP/2 level, read off the frames a raw client receives.
 *
 * Windows: both servers advertise the configured receive windows (docs/protocol.md, "Flow
 * control"). A raw TCP client sends the connection preface and reads the frames the server sends
 * back: the stream window is SETTINGS_INITIAL_WINDOW_SIZE, the connection window is 65,535 plus the
 * WINDOW_UPDATE on stream 0. grpc-js alone would advertise 64 KiB for both.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FLAG_ACK, FRAME, RawH2Connection, isPing } from '../helpers/h2-frames';
import { startTestCoordinator } from '../helpers/coordinator';
import { WORKER_MAX_MESSAGE_BYTES, apiServerTuning, clusterServerTuning } from '../../src/main/process/app';
import { grpcServerOptions } from '../../src/main/process/grpc-server';

const SETTINGS_INITIAL_WINDOW_SIZE = 0x4;
const DEFAULT_WINDOW = 65_535;

interface AdvertisedWindows {
  stream: number;
  connection: number;
}

/** The windows a raw client is granted: the server's SETTINGS, then its WINDOW_UPDATE on stream 0. */
async function readWindows(port: number): Promise<AdvertisedWindows> {
  const conn = new RawH2Connection(port);
  try {
    const settings = await conn.waitFor((f) => f.type === FRAME.SETTINGS && !(f.flags & FLAG_ACK));
    let stream = DEFAULT_WINDOW;
    for (let off = 0; off + 6 <= settings.payload.length; off += 6) {
      if (settings.payload.readUInt16BE(off) === SETTINGS_INITIAL_WINDOW_SIZE) stream = settings.payload.readUInt32BE(off + 2);
    }
    const update = await conn.waitFor((f) => f.type === FRAME.WINDOW_UPDATE && f.streamId === 0);
    return { stream, connection: DEFAULT_WINDOW + (update.payload.readUInt32BE(0) & 0x7fffffff) };
  } finally {
    conn.destroy();
  }
}

test('default windows: 4 MiB per stream and per connection on the client API and on the worker port', async () => {
  const tc = await startTestCoordinator();
  try {
    const expected = { stream: 4 << 20, connection: 4 << 20 };
    assert.deepEqual(await readWindows(tc.running.ports.api), expected, 'client API');
    assert.deepEqual(await readWindows(tc.running.ports.cluster!), expected, 'worker port');
  } finally {
    await tc.stop();
  }
});

test('[server] http2_window_bytes sets both windows on both servers', async () => {
  const bytes = 1_500_000;
  const tc = await startTestCoordinator({ server: { http2_window_bytes: bytes } });
  try {
    assert.deepEqual(await readWindows(tc.running.ports.api), { stream: bytes, connection: bytes });
    assert.deepEqual(await readWindows(tc.running.ports.cluster!), { stream: bytes, connection: bytes });
  } finally {
    await tc.stop();
  }
});

/**
 * Keepalive as upstream (docs/protocol.md, "Keepalive"): pings on the client API port, none on the
 * worker port, where a worker blocked in setup or in the final wrap must not be cut by a ping
 * deadline (the heartbeat covers liveness). The API port's pings are what prove time has passed.
 */
test('keepalive: the client API port pings, the worker port does not', async () => {
  const tc = await startTestCoordinator({ server: { keepalive_time_seconds: 1 } });
  const api = new RawH2Connection(tc.running.ports.api);
  const cluster = new RawH2Connection(tc.running.ports.cluster!);
  try {
    await cluster.waitFor((f) => f.type === FRAME.SETTINGS);
    await api.waitFor(isPing);
    const second = api.frames.filter(isPing).length + 1;
    await api.waitFor(() => api.count(isPing) >= second);
    assert.equal(cluster.count(isPing), 0, 'no PING on the worker port');
  } finally {
    api.destroy();
    cluster.destroy();
    await tc.stop();
  }
});

test('keepalive on the worker port can be turned on ([coordinator] keepalive_time_seconds)', async () => {
  const tc = await startTestCoordinator({ coordinator: { keepalive_time_seconds: 1 } });
  const cluster = new RawH2Connection(tc.running.ports.cluster!);
  try {
    await cluster.waitFor(isPing);
  } finally {
    cluster.destroy();
    await tc.stop();
  }
});

test('max_message_bytes above 128 MiB: the worker port still sends at most 128 MiB (the worker decoder limit), with a warning', async () => {
  const big = 256 * 1024 * 1024;
  const tc = await startTestCoordinator({ server: { max_message_bytes: big } });
  try {
    const line = await tc.waitForLog((l) => l.level === 'warn' && typeof l.msg === 'string' && l.msg.startsWith('[server] max_message_bytes is above 128 MiB'));
    assert.equal(line.worker_send_limit, WORKER_MAX_MESSAGE_BYTES);
    const cluster = clusterServerTuning(tc.config);
    assert.deepEqual([cluster.maxMessageBytes, cluster.maxSendMessageBytes], [big, WORKER_MAX_MESSAGE_BYTES]);
    assert.equal(grpcServerOptions(cluster)['grpc.max_send_message_length'], WORKER_MAX_MESSAGE_BYTES);
    // Clients have no such limit: the client API sends what it is configured to.
    assert.equal(grpcServerOptions(apiServerTuning(tc.config))['grpc.max_send_message_length'], big);
  } finally {
    await tc.stop();
  }
});
