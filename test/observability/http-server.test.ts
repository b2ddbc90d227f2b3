import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as http from 'node:http';
import * as net from 'node:net';
import { Writable } from 'node:stream';
import { startHttpServer } from '../../src/main/process/http-server';
import type { HttpServerHandle } from '../../src/main/process/http-server';
import { CoordinatorMetrics } from '../../src/main/observability/metrics';
import { createLogger } from '../../src/shared/logging';

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

const quietLogger = createLogger(
  { level: 'error', format: 'json' },
  { destination: new Writable({ write: (_c, _e, cb) => cb() }) },
);

function request(port: number, method: string, path: string, agent: http.Agent | false = false): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

async function withServer(
  opts: { metrics?: boolean; healthy?: () => boolean },
  fn: (h: HttpServerHandle, metrics: CoordinatorMetrics | undefined) => Promise<void>,
): Promise<void> {
  const metrics = opts.metrics === false ? undefined : new CoordinatorMetrics();
  const h = await startHttpServer({
    host: '127.0.0.1',
    port: 0,
    metrics,
    readiness: () => {
      const ready = (opts.healthy ?? (() => true))();
      return { ready, state: ready ? 'serving' : 'draining' };
    },
    logger: quietLogger,
  });
  try {
    await fn(h, metrics);
  } finally {
    await h.close();
    metrics?.stop();
  }
}

test('listens on an ephemeral port and reports the bound address', () =>
  withServer({}, async (h) => {
    assert.equal(h.address.host, '127.0.0.1');
    assert.ok(h.address.port > 0);
    assert.ok(h.server.listening);
  }));

test('GET /metrics: Prometheus content type and the documented exposition', () =>
  withServer({}, async (h, metrics) => {
    metrics!.setQueueDepth(2);
    const r = await request(h.address.port, 'GET', '/metrics');
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
    assert.equal(Number(r.headers['content-length']), Buffer.byteLength(r.body));
    assert.match(r.body, /^# HELP coordinator_requests_total /m);
    assert.match(r.body, /^coordinator_queue_depth 2$/m);
    assert.match(r.body, /^coordinator_workers\{state="idle"\} 0$/m);
  }));

test('HEAD /metrics: headers only, and it does not consume the scrape interval', () =>
  withServer({}, async (h, metrics) => {
    const r = await request(h.address.port, 'HEAD', '/metrics');
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
    assert.equal(r.body, '');
    // The registry's own content type is what GET serves; HEAD must advertise the same.
    assert.equal((await metrics!.render()).contentType, r.headers['content-type']);
  }));

test('/health: 200 OK while healthy, 503 draining after the flip; HEAD works on both', async () => {
  let healthy = true;
  await withServer({ healthy: () => healthy }, async (h) => {
    const port = h.address.port;
    let r = await request(port, 'GET', '/health');
    assert.equal(r.status, 200);
    assert.equal(r.body, 'OK');
    assert.equal(r.headers['content-length'], '2');
    assert.match(String(r.headers['content-type']), /^text\/plain/);

    r = await request(port, 'HEAD', '/health');
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-length'], '2');
    assert.equal(r.body, '');

    healthy = false;
    r = await request(port, 'GET', '/health');
    assert.equal(r.status, 503);
    assert.equal(r.body, 'draining');

    r = await request(port, 'HEAD', '/health');
    assert.equal(r.status, 503);
    assert.equal(r.body, '');

    // Metrics keep being served while draining: the last scrapes matter most.
    assert.equal((await request(port, 'GET', '/metrics')).status, 200);
  });
});

test('a throwing health callback reads as unhealthy, not as a crash', () =>
  withServer(
    {
      healthy: () => {
        throw new Error('bug');
      },
    },
    async (h) => {
      assert.equal((await request(h.address.port, 'GET', '/health')).status, 503);
    },
  ));

test('exact path match: query ignored, prefixes and unknown paths 404', () =>
  withServer({}, async (h) => {
    const port = h.address.port;
    assert.equal((await request(port, 'GET', '/health?verbose=1')).status, 200);
    assert.equal((await request(port, 'GET', '/metrics?x')).status, 200);
    for (const path of ['/metricsX', '/healthz', '/metrics/', '/', '/nope', '/HEALTH']) {
      const r = await request(port, 'GET', path);
      assert.equal(r.status, 404, path);
    }
    const head404 = await request(port, 'HEAD', '/nope');
    assert.equal(head404.status, 404);
    assert.equal(head404.body, '');
  }));

test('other methods on known paths: 405 with Allow', () =>
  withServer({}, async (h) => {
    for (const [method, path] of [
      ['POST', '/health'],
      ['PUT', '/metrics'],
      ['DELETE', '/health'],
    ] as const) {
      const r = await request(h.address.port, method, path);
      assert.equal(r.status, 405, `${method} ${path}`);
      assert.equal(r.headers.allow, 'GET, HEAD');
    }
    assert.equal((await request(h.address.port, 'POST', '/elsewhere')).status, 404);
  }));

test('metrics disabled: /metrics is 404 but /health still answers', () =>
  withServer({ metrics: false }, async (h) => {
    const port = h.address.port;
    assert.equal((await request(port, 'GET', '/metrics')).status, 404);
    assert.equal((await request(port, 'HEAD', '/metrics')).status, 404);
    assert.equal((await request(port, 'POST', '/metrics')).status, 404);
    const r = await request(port, 'GET', '/health');
    assert.equal(r.status, 200);
    assert.equal(r.body, 'OK');
  }));

test('port in use rejects with the original EADDRINUSE error', async () => {
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const port = (blocker.address() as net.AddressInfo).port;
  try {
    await assert.rejects(
      startHttpServer({ host: '127.0.0.1', port, readiness: () => ({ ready: true, state: 'serving' }), logger: quietLogger }),
      (err: NodeJS.ErrnoException) => {
        assert.equal(err.code, 'EADDRINUSE');
        assert.equal(err.syscall, 'listen');
        return true;
      },
    );
  } finally {
    await new Promise<void>((resolve) => blocker.close(() => resolve()));
  }
});

test('keep-alive connections are reused and do not hold up close()', async () => {
  const metrics = new CoordinatorMetrics();
  const h = await startHttpServer({ host: '127.0.0.1', port: 0, metrics, readiness: () => ({ ready: true, state: 'serving' }), logger: quietLogger });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    let connections = 0;
    const sockets: net.Socket[] = [];
    h.server.on('connection', (socket: net.Socket) => {
      connections++;
      sockets.push(socket);
    });
    assert.equal((await request(h.address.port, 'GET', '/health', agent)).status, 200);
    assert.equal((await request(h.address.port, 'GET', '/metrics', agent)).status, 200);
    assert.equal((await request(h.address.port, 'POST', '/health', agent)).status, 405);
    assert.equal((await request(h.address.port, 'GET', '/health', agent)).status, 200);
    assert.equal(connections, 1, 'one socket for every request');

    // Nothing waited for a timer: the idle socket was not cut when the grace ran out (that would
    // go through closeAllConnections) nor left to its keep-alive timeout.
    let forced = false;
    const closeAll = h.server.closeAllConnections.bind(h.server);
    h.server.closeAllConnections = () => {
      forced = true;
      closeAll();
    };
    let timedOut = false;
    for (const socket of sockets) socket.on('timeout', () => (timedOut = true));
    await h.close();
    assert.equal(h.server.listening, false);
    assert.ok(sockets.every((socket) => socket.destroyed), 'the idle keep-alive socket is closed');
    assert.equal(forced, false, 'not cut at the end of the grace');
    assert.equal(timedOut, false, 'not left to its keep-alive timeout');
  } finally {
    agent.destroy();
    metrics.stop();
  }
});

test('close() twice is harmless', async () => {
  const h = await startHttpServer({ host: '127.0.0.1', port: 0, readiness: () => ({ ready: true, state: 'serving' }), logger: quietLogger });
  await h.close();
  await h.close();
});
