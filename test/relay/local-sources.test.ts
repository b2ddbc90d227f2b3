import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { QUIC_UNSUPPORTED_MESSAGE, resolveLocalUri, startLocalSource } from '../../src/main/data/local-sources';
import { END, START, bytes, hint, makeRelay, settle, target } from './fakes';

let base: string;
let inputs: string;
let outside: string;

before(() => {
  base = fs.mkdtempSync(path.join(os.tmpdir(), 'zc-relay-'));
  inputs = path.join(base, 'inputs');
  outside = path.join(base, 'outside');
  fs.mkdirSync(inputs);
  fs.mkdirSync(outside);
  fs.writeFileSync(path.join(outside, 'secret'), bytes(64));
});

after(() => {
  fs.rmSync(base, { recursive: true, force: true });
});

/** Resolves once `pred` holds, checking every few milliseconds, bounded by `limitMs`. */
async function until(what: string, pred: () => boolean, limitMs = 5_000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!pred()) {
    if (Date.now() > end) assert.fail(`timed out after ${limitMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * Counts a unix source's failed attempts to connect to `sockPath`: each attempt begins with an lstat
 * of the path, which fails while nothing has created the socket. Restore when done.
 */
function watchConnectAttempts(sockPath: string): { failed: () => number; restore: () => void } {
  const original = fs.promises.lstat;
  let failed = 0;
  const wrapped = async (...args: Parameters<typeof fs.promises.lstat>): Promise<fs.Stats> => {
    try {
      return (await original(...args)) as fs.Stats;
    } catch (e) {
      if (args[0] === sockPath) failed++;
      throw e;
    }
  };
  fs.promises.lstat = wrapped as typeof fs.promises.lstat;
  return { failed: () => failed, restore: () => void (fs.promises.lstat = original) };
}

function refused(uri: string, dir: string | undefined | null = null): string {
  const r = resolveLocalUri(uri, dir === null ? inputs : dir);
  assert.equal(r.ok, false, `${uri} should be refused`);
  return r.ok ? '' : r.message;
}

test('quic:// is refused with the exact message', () => {
  assert.equal(refused('quic://127.0.0.1:9000'), QUIC_UNSUPPORTED_MESSAGE);
  assert.equal(QUIC_UNSUPPORTED_MESSAGE, 'quic:// streams are not supported; use grpc:// (PushJobInput)');
});

test('without inputs_dir, file:// and unix:// name the setting and the /tmp hint', () => {
  const m = refused('unix:///tmp/zisk.sock', undefined);
  assert.match(m, /\[coordinator\] inputs_dir/);
  assert.match(m, /inputs_dir = "\/tmp"/);
  assert.match(refused('file:///data/in.bin', ''), /\[coordinator\] inputs_dir/);
  // Set, but the SDK's socket lives in /tmp: the hint helps there too.
  assert.match(refused('unix:///tmp/zisk.sock'), /outside \[coordinator\] inputs_dir .*inputs_dir = "\/tmp"/);
});

test('bare, relative and foreign URIs are refused clearly', () => {
  assert.match(refused('/abs/path/in.bin'), /is not a URI/);
  assert.match(refused('in.bin'), /is not a URI/);
  assert.match(refused('file://in.bin'), /must be absolute/);
  assert.match(refused('file://'), /must be absolute/);
  assert.match(refused('http://example/x'), /scheme http:\/\/ is not supported/);
  assert.match(refused('grpc://push'), /PushJobInput/);
});

test('a path under inputs_dir resolves to its real path', () => {
  const file = path.join(inputs, 'in.bin');
  fs.writeFileSync(file, bytes(8));
  assert.deepEqual(resolveLocalUri(`file://${file}`, inputs), { ok: true, kind: 'file', path: fs.realpathSync(file) });
  // A socket that does not exist yet is fine (the producer may bind later).
  const sock = path.join(inputs, 'later.sock');
  assert.deepEqual(resolveLocalUri(`unix://${sock}`, inputs), { ok: true, kind: 'unix', path: path.join(fs.realpathSync(inputs), 'later.sock') });
  // inputs_dir given with a trailing slash or dot segments.
  assert.equal(resolveLocalUri(`file://${file}`, `${inputs}/./`).ok, true);
});

test('escapes through .., symlinks and the root itself are refused', () => {
  assert.match(refused(`file://${inputs}/../outside/secret`), /outside \[coordinator\] inputs_dir/);
  assert.match(refused(`file://${inputs}`), /outside \[coordinator\] inputs_dir/);
  assert.match(refused(`file://${inputs}-sibling/x`), /outside/);

  const link = path.join(inputs, 'link');
  fs.symlinkSync(path.join(outside, 'secret'), link);
  assert.match(refused(`file://${link}`), /resolves to .*outside\/secret.* is outside/);

  const dirLink = path.join(inputs, 'dirlink');
  fs.symlinkSync(outside, dirLink);
  assert.match(refused(`file://${dirLink}/secret`), /outside/);
  // Even for a socket that does not exist yet behind the symlinked directory.
  assert.match(refused(`unix://${dirLink}/not-yet.sock`), /outside/);
});

test('a file under inputs_dir is relayed fully, in order, in word-aligned chunks', async () => {
  const file = path.join(inputs, 'big.bin');
  const data = bytes(5 * 1024 * 1024 + 24, 42);
  fs.writeFileSync(file, data);
  const h = makeRelay('input', [1, 2]);
  h.relay.setLinks([1, 2]);
  await startLocalSource(file, 'file', h.relay, new AbortController().signal, { root: inputs });
  assert.deepEqual(h.failures, []);
  assert.equal(h.relay.ended, true);
  for (const t of [target(h, 1), target(h, 2)]) {
    const payloads = t.decoded().map((m) => m.input_stream_data?.payload ?? Buffer.alloc(0));
    assert.ok(payloads.length >= 3);
    for (const p of payloads) assert.equal(p.length % 8, 0);
    assert.ok(Buffer.concat(payloads).equals(data));
  }
});

test('a hints file drives START / DATA / END', async () => {
  const file = path.join(inputs, 'hints.bin');
  fs.writeFileSync(file, Buffer.concat([START, hint(0x100, bytes(3 * 1024 * 1024)), END]));
  const h = makeRelay('hints', [1]);
  h.relay.setLinks([1]);
  await startLocalSource(file, 'file', h.relay, new AbortController().signal, { root: inputs });
  await settle();
  assert.deepEqual(h.failures, []);
  assert.equal(h.relay.ended, true);
  const types = target(h, 1)
    .decoded()
    .map((m) => m.stream_data?.stream_type);
  assert.deepEqual(types, [0, 1, 1, 2]);
});

test('file errors fail the job precisely', async () => {
  const missing = path.join(inputs, 'missing.bin');
  const h = makeRelay('input', [1]);
  h.relay.setLinks([1]);
  await startLocalSource(missing, 'file', h.relay, new AbortController().signal, { root: inputs });
  assert.deepEqual(h.failures, [`cannot open ${missing}: ENOENT`]);

  const partial = path.join(inputs, 'partial.bin');
  fs.writeFileSync(partial, bytes(21));
  const p = makeRelay('input', [1]);
  p.relay.setLinks([1]);
  await startLocalSource(partial, 'file', p.relay, new AbortController().signal, { root: inputs });
  assert.equal(p.failures.length, 1);
  assert.match(p.failures[0], /ends with a partial word \(5 trailing bytes/);
  assert.equal(p.relay.ended, false);

  const dir = makeRelay('input', [1]);
  const subdir = path.join(inputs, 'a-directory');
  fs.mkdirSync(subdir);
  await startLocalSource(subdir, 'file', dir.relay, new AbortController().signal, { root: inputs });
  assert.match(dir.failures[0], /not a regular file/);

  const link = path.join(inputs, 'late-link');
  fs.symlinkSync(path.join(outside, 'secret'), link);
  const l = makeRelay('input', [1]);
  await startLocalSource(link, 'file', l.relay, new AbortController().signal, { root: inputs });
  assert.match(l.failures[0], /^cannot open .*late-link: a component of the path is a symbolic link/);
});

function listen(sockPath: string, onConn: (c: net.Socket) => void): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer(onConn);
    server.once('error', reject);
    server.listen(sockPath, () => resolve(server));
  });
}

function close(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

test('a unix socket that starts listening after the source has retried is still read, odd writes re-cut into words', async () => {
  const sockPath = path.join(inputs, 'late.sock');
  const data = bytes(3 * 1024 * 1024 + 8 * 7, 11);
  const h = makeRelay('input', [1]);
  h.relay.setLinks([1]);
  const attempts = watchConnectAttempts(sockPath);
  const running = startLocalSource(sockPath, 'unix', h.relay, new AbortController().signal, { root: inputs });
  try {
    // Two attempts found nothing there: the source is retrying.
    await until('two failed connection attempts', () => attempts.failed() >= 2);
  } finally {
    attempts.restore();
  }
  const server = await listen(sockPath, (c) => {
    // Writes that cut words in odd places.
    let off = 0;
    const sizes = [13, 3, 1, 65_539, 1_000_001];
    let i = 0;
    while (off < data.length) {
      const n = Math.min(sizes[i++ % sizes.length], data.length - off);
      c.write(data.subarray(off, off + n));
      off += n;
    }
    c.end();
  });
  try {
    await running;
  } finally {
    await close(server);
  }
  assert.deepEqual(h.failures, []);
  assert.equal(h.relay.ended, true);
  const payloads = target(h, 1)
    .decoded()
    .map((m) => m.input_stream_data?.payload ?? Buffer.alloc(0));
  for (const p of payloads) assert.equal(p.length % 8, 0);
  assert.ok(Buffer.concat(payloads).equals(data));
});

test('a unix socket path that never listens fails after the connect timeout', async () => {
  const sockPath = path.join(inputs, 'never.sock');
  const h = makeRelay('input', [1]);
  await startLocalSource(sockPath, 'unix', h.relay, new AbortController().signal, { root: inputs, connectTimeoutMs: 200 });
  assert.equal(h.failures.length, 1);
  assert.match(h.failures[0], /^cannot connect to .*never\.sock: ENOENT \(gave up after/);
});

// The bound is only a backstop: a source that ignored abort would never settle.
test('abort stops a source blocked on backpressure, and one still waiting to connect', { timeout: 10_000 }, async () => {
  const sockPath = path.join(inputs, 'endless.sock');
  const chunk = bytes(64 * 1024);
  const server = await listen(sockPath, (c) => {
    const pump = (): void => {
      while (c.write(chunk));
    };
    c.on('drain', pump);
    c.on('error', () => undefined);
    pump();
  });
  try {
    const h = makeRelay('input', [1]);
    h.relay.setLinks([1]);
    const t = target(h, 1);
    let pushes = 0;
    const push = h.relay.push.bind(h.relay);
    h.relay.push = (chunk: Buffer): Promise<void> => {
      pushes++;
      return push(chunk);
    };
    // The worker's peer takes two messages and then stops reading: the third fills the link.
    t.takeOne();
    const ac = new AbortController();
    const running = startLocalSource(sockPath, 'unix', h.relay, ac.signal, { root: inputs });
    await until('the first message', () => t.buffers.length >= 1);
    t.takeOne();
    await until('the second message', () => t.buffers.length >= 2);
    t.takeOne();
    // A fourth chunk handed to the relay, which holds it: the source had more, and the relay did not
    // send it to a link without room.
    await until('a fourth chunk from the source', () => pushes >= 4);
    assert.equal(t.buffers.length, 3);
    ac.abort();
    await running;
    assert.deepEqual(h.failures, []);
    assert.equal(h.relay.ended, false);
  } finally {
    await close(server);
  }

  const w = makeRelay('input', [1]);
  const ac2 = new AbortController();
  const nobody = path.join(inputs, 'nobody.sock');
  const attempts = watchConnectAttempts(nobody);
  const waiting = startLocalSource(nobody, 'unix', w.relay, ac2.signal, { root: inputs });
  try {
    // Nothing listens there: the source is between attempts.
    await until('a failed connection attempt', () => attempts.failed() >= 1);
  } finally {
    attempts.restore();
  }
  ac2.abort();
  await waiting;
  assert.deepEqual(w.failures, []);
});
