/**
 * One readiness truth: gRPC health and HTTP `/health` are polled from spawn to exit and never
 * disagree. Regression: gRPC health answered SERVING while `/health` still answered 503 during the
 * scheduler thread's boot (tens of milliseconds after the client API was bound).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import { freePort, spawnCoordinator, stopCoordinator } from '../helpers/spawn-coordinator';
import { grpcFrame } from '../helpers/rude-peers';

type Readiness = 'ready' | 'not-ready' | 'down';

/** gRPC health over raw HTTP/2, so a refused connection is retried at once (no channel backoff). */
class GrpcHealthProbe {
  private session: http2.ClientHttp2Session | undefined;

  constructor(private readonly port: number) {}

  async check(): Promise<Readiness> {
    try {
      const session = await this.connect();
      const status = await new Promise<number | undefined>((resolve, reject) => {
        const req = session.request(
          { ':method': 'POST', ':path': '/grpc.health.v1.Health/Check', 'content-type': 'application/grpc', te: 'trailers' },
          { endStream: false },
        );
        const chunks: Buffer[] = [];
        req.on('data', (d: Buffer) => chunks.push(d));
        req.on('error', reject);
        req.on('close', () => {
          const body = Buffer.concat(chunks);
          // HealthCheckResponse{status = 1}: frame header, then tag 0x08 and the enum value.
          resolve(body.length >= 7 && body[5] === 0x08 ? body[6] : undefined);
        });
        req.end(grpcFrame(Buffer.from([0x0a, 0x00])));
      });
      return status === 1 ? 'ready' : 'not-ready';
    } catch {
      this.session?.destroy();
      this.session = undefined;
      return 'down';
    }
  }

  private connect(): Promise<http2.ClientHttp2Session> {
    const current = this.session;
    if (current && !current.closed && !current.destroyed) return Promise.resolve(current);
    const session = http2.connect(`http://127.0.0.1:${this.port}`);
    session.on('error', () => undefined);
    this.session = session;
    return new Promise((resolve, reject) => {
      session.once('connect', () => resolve(session));
      session.once('error', reject);
      session.once('goaway', () => session.destroy());
    });
  }

  close(): void {
    this.session?.destroy();
  }
}

function httpHealth(port: number): Promise<Readiness> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/health', agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode === 200 ? 'ready' : 'not-ready');
    });
    req.on('error', () => resolve('down'));
    req.setTimeout(2_000, () => req.destroy());
  });
}

test('gRPC health and /health agree from spawn to exit', { timeout: 60_000 }, async (t) => {
  const api = await freePort();
  const metrics = await freePort();
  const c = await spawnCoordinator({
    args: ['--api-port', String(api), '--cluster-port', '0', '--metrics-port', String(metrics)],
    env: { ZISK_COORDINATOR_SERVER_HOST: '127.0.0.1', ZISK_COORDINATOR_METRICS_HOST: '127.0.0.1' },
    waitServing: false,
  });
  t.after(() => stopCoordinator(c));
  const probe = new GrpcHealthProbe(api);
  t.after(() => probe.close());
  let exited = false;
  void c.exited.then(() => (exited = true));

  const seen = new Set<string>();
  const disagreements: string[] = [];
  let samples = 0;
  let signalled = false;
  while (!exited) {
    const before = await probe.check();
    const viaHttp = await httpHealth(metrics);
    const after = await probe.check();
    samples++;
    seen.add(`${before}/${viaHttp}`);
    // A transition between the two gRPC probes is the one moment they may legitimately differ.
    const grpcReady = before === 'ready';
    if (before === after && grpcReady !== (viaHttp === 'ready')) disagreements.push(`grpc ${before}, http ${viaHttp}`);
    if (!signalled && before === 'ready' && viaHttp === 'ready') {
      // Serving for a few samples, then the drain: both must flip together again.
      if (samples > 20) {
        signalled = true;
        c.kill('SIGTERM');
      }
    }
  }
  assert.equal((await c.exited).code, 0);
  assert.deepEqual(disagreements, [], `samples: ${samples}, seen: ${[...seen].join(', ')}`);
  assert.ok(seen.has('ready/ready'), `saw it serving: ${[...seen].join(', ')}`);
});
