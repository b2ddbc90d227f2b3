/**
 * The `wan` scenario's latency comes from this proxy alone (no netem here): it must deliver every
 * byte in order, add at least its delay one way, pipeline chunks instead of paying the delay per
 * chunk, push back on a source whose destination does not read, close both sides when one closes,
 * and time what went through it (the scenario's on-the-wire figures).
 */
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as net from 'node:net';
import { performance } from 'node:perf_hooks';
import { DelayProxy } from '../../bench/lib/delay-proxy';

/** A TCP server handing each accepted socket to the test. */
async function listen(): Promise<{ port: number; next: () => Promise<net.Socket>; close: () => Promise<void> }> {
  const accepted: net.Socket[] = [];
  const waiting: Array<(s: net.Socket) => void> = [];
  const server = net.createServer((s) => {
    const w = waiting.shift();
    if (w) w(s);
    else accepted.push(s);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    next: () => {
      const s = accepted.shift();
      return s ? Promise.resolve(s) : new Promise((resolve) => waiting.push(resolve));
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

function connect(address: string): Promise<net.Socket> {
  const [host, port] = address.split(':');
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port: Number(port) }, () => resolve(s));
    s.once('error', reject);
  });
}

/** Reads until `bytes` arrived (or the socket ended); the time the first byte came in. */
function collect(s: net.Socket, bytes: number): Promise<{ data: Buffer; firstAt: number }> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let n = 0;
    let firstAt = 0;
    const done = (): void => resolve({ data: Buffer.concat(parts), firstAt });
    s.on('data', (d: Buffer) => {
      if (n === 0) firstAt = performance.now();
      parts.push(d);
      n += d.length;
      if (n >= bytes) done();
    });
    s.once('end', done);
    s.once('error', reject);
  });
}

const closed = (s: net.Socket): Promise<void> => (s.closed ? Promise.resolve() : new Promise((resolve) => s.once('close', () => resolve())));

/** Writes `chunks` one per event-loop turn (separate reads on the proxy), honouring backpressure. */
async function writeChunks(s: net.Socket, chunks: Buffer[]): Promise<void> {
  for (const c of chunks) {
    if (!s.write(c)) await new Promise((resolve) => s.once('drain', resolve));
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe('DelayProxy', () => {
  it('delivers every byte in order both ways, each at least the delay late', async () => {
    const target = await listen();
    const proxy = await DelayProxy.start({ target: `127.0.0.1:${target.port}`, delayMs: 20 });
    try {
      const client = await connect(proxy.address);
      const server = await target.next();
      const up = randomBytes(3 << 20);
      const down = randomBytes(1 << 20);
      const gotUp = collect(server, up.length);
      const gotDown = collect(client, down.length);
      const t0 = performance.now();
      await Promise.all([writeChunks(client, chunk(up, 50_000)), writeChunks(server, chunk(down, 30_000))]);
      const [u, d] = await Promise.all([gotUp, gotDown]);
      assert.ok(u.data.equals(up), 'client → target bytes intact and in order');
      assert.ok(d.data.equals(down), 'target → client bytes intact and in order');
      assert.ok(u.firstAt - t0 >= 20, `one way takes at least the delay (${(u.firstAt - t0).toFixed(1)} ms)`);
      assert.ok(d.firstAt - t0 >= 20, `the other way too (${(d.firstAt - t0).toFixed(1)} ms)`);
      assert.equal(proxy.stats.upBytes, up.length);
      assert.equal(proxy.stats.downBytes, down.length);
      // The wire log times the upload: its bytes, first in, last out (host clock).
      const wire = proxy.transfer('up', performance.timeOrigin + t0, performance.timeOrigin + performance.now(), 0);
      assert.ok(wire);
      assert.equal(wire.bytes, up.length);
      assert.ok(wire.firstInAt >= performance.timeOrigin + t0 && wire.lastOutAt - wire.firstInAt >= 20, JSON.stringify(wire));
      assert.equal(proxy.transfer('up', 0, performance.timeOrigin + t0 - 1), null, 'nothing before the transfer');
      client.destroy();
      await closed(server);
    } finally {
      await proxy.close();
      await target.close();
    }
  });

  it('pipelines chunks: separate reads wait out their delay together, not one after the other', async () => {
    const target = await listen();
    const proxy = await DelayProxy.start({ target: `127.0.0.1:${target.port}`, delayMs: 100 });
    try {
      const client = await connect(proxy.address);
      const server = await target.next();
      const data = randomBytes(200 * 16_384);
      const got = collect(server, data.length);
      await writeChunks(client, chunk(data, 16_384));
      const r = await got;
      assert.ok(r.data.equals(data));
      // One socket read is at most 64 KiB: a stop-and-wait proxy never holds more than that, while
      // this one holds every chunk that came in during the first one's delay.
      assert.ok(proxy.stats.maxQueuedBytes > 64 * 1024, `at most ${proxy.stats.maxQueuedBytes} bytes waited in the proxy at once`);
      client.destroy();
    } finally {
      await proxy.close();
      await target.close();
    }
  });

  it('pauses a source whose destination does not read, and loses nothing when it reads again', async () => {
    const target = await listen();
    const highWater = 1 << 20;
    const proxy = await DelayProxy.start({ target: `127.0.0.1:${target.port}`, delayMs: 2, highWaterBytes: highWater });
    try {
      const client = await connect(proxy.address);
      const server = await target.next();
      server.pause();
      const data = randomBytes(24 << 20);
      client.write(data);
      // The proxy fills the target's socket buffers, then its own queue, then pauses the source.
      const end = Date.now() + 10_000;
      while (proxy.stats.pauses === 0) {
        assert.ok(Date.now() < end, `the source was never paused: ${JSON.stringify(proxy.stats)}`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      // 4 MiB the other way, through the same proxy: its event loop reads and delivers them in
      // dozens of turns, in each of which a source that was not really paused would be read again.
      const probe = randomBytes(4 << 20);
      const probed = collect(client, probe.length);
      server.write(probe);
      assert.ok((await probed).data.equals(probe), 'the other direction flows meanwhile');
      assert.ok(proxy.stats.pauses >= 1, 'the source was paused');
      assert.ok(proxy.stats.maxQueuedBytes <= highWater + (1 << 20), `queue stayed bounded: ${proxy.stats.maxQueuedBytes} bytes`);
      assert.ok(proxy.stats.upBytes < data.length, 'not everything went through while the target did not read');
      const got = collect(server, data.length);
      server.resume();
      assert.ok((await got).data.equals(data), 'every byte, in order, after the target read again');
      client.destroy();
    } finally {
      await proxy.close();
      await target.close();
    }
  });

  it('closes both sides when one closes: a FIN after the data, a reset at once', async () => {
    const target = await listen();
    const proxy = await DelayProxy.start({ target: `127.0.0.1:${target.port}`, delayMs: 5 });
    try {
      // The client ends after writing: the target gets all of it, then its end, and the connection goes away.
      const client = await connect(proxy.address);
      const server = await target.next();
      const got = collect(server, Number.MAX_SAFE_INTEGER);
      client.end(Buffer.from('last words'));
      assert.equal((await got).data.toString(), 'last words');
      await Promise.all([closed(server), closed(client)]);

      // The target closes: the client is closed too.
      const client2 = await connect(proxy.address);
      const server2 = await target.next();
      client2.on('error', () => undefined);
      const got2 = collect(client2, Number.MAX_SAFE_INTEGER);
      server2.end(Buffer.from('bye'));
      assert.equal((await got2).data.toString(), 'bye');
      await Promise.all([closed(server2), closed(client2)]);

      // The client resets: the target's socket is destroyed.
      const client3 = await connect(proxy.address);
      const server3 = await target.next();
      server3.on('error', () => undefined);
      client3.resetAndDestroy();
      await closed(server3);
    } finally {
      await proxy.close();
      await target.close();
    }
  });
});

function chunk(b: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let o = 0; o < b.length; o += size) out.push(b.subarray(o, o + size));
  return out;
}
