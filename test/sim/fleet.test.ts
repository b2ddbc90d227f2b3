import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClusterServer } from '../helpers/fake-cluster-server';
import { SimFleet } from '../../src/sim/fleet';
import { buildProgram, tlsFromCli } from '../../src/sim/cli';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('sim fleet', () => {
  test('200 workers register on one server within a few seconds', async () => {
    const s = await FakeClusterServer.start();
    cleanups.push(() => s.stop());
    const fleet = new SimFleet({ coordinator: s.address, workers: 200, prefix: 'f', computeUnits: 4, perWorker: (i) => (i === 7 ? { computeUnits: 9 } : undefined) });
    cleanups.push(() => fleet.stop());
    const t0 = Date.now();
    fleet.start();
    await fleet.waitAllRegistered(8000);
    const ms = Date.now() - t0;
    assert.ok(ms < 5000, `registration of 200 took ${ms} ms`);
    const ids = new Set(s.handshakes.map((h) => h.msg.register?.worker_id));
    assert.equal(ids.size, 200);
    assert.ok(ids.has('f-0') && ids.has('f-199'));
    assert.equal(s.handshakes.find((h) => h.msg.register?.worker_id === 'f-7')?.msg.register?.compute_capacity?.compute_units, 9);
    const st = fleet.stats();
    assert.equal(st.registered, 200);
    assert.equal(st.registrations, 200);
    assert.equal(st.heartbeatsSent, 200);
    assert.equal(fleet.get('f-42')?.registered, true);
    await fleet.stop();
    assert.equal(fleet.registeredCount, 0);
  });

  test('shared-channel mode multiplexes workers on one connection', async () => {
    const s = await FakeClusterServer.start();
    cleanups.push(() => s.stop());
    const fleet = new SimFleet({ coordinator: s.address, workers: 20, prefix: 'sh', sharedChannel: true });
    cleanups.push(() => fleet.stop());
    fleet.start();
    await fleet.waitAllRegistered(5000);
    const peers = new Set(s.connections.map((c) => c.call.getPeer()));
    assert.equal(peers.size, 1);
  });

  test('waitAllRegistered rejects on timeout', async () => {
    const s = await FakeClusterServer.start();
    const port = s.port;
    await s.stop();
    const fleet = new SimFleet({ coordinator: `127.0.0.1:${port}`, workers: 2, reconnectIntervalMs: 100 });
    cleanups.push(() => fleet.stop());
    fleet.start();
    await assert.rejects(fleet.waitAllRegistered(300), /0\/2 workers registered/);
  });

  test('cli parses its options', () => {
    const p = buildProgram().exitOverride();
    p.parse(['node', 'sim', '--workers', '5', '--proof-values', '1000000', '--fault', 'sim-1:prove:error:2', '--fault', '*:wrap:silence'], {
      from: 'node',
    });
    const o = p.opts<{ workers: number; proofValues: number; upstreamWire: boolean; fault: Array<{ worker: string; phase: string; fault: { action: string; times?: number } }> }>();
    assert.equal(o.workers, 5);
    assert.equal(o.proofValues, 1_000_000);
    assert.deepEqual(o.fault, [
      { worker: 'sim-1', phase: 'prove', fault: { action: 'error', times: 2 } },
      { worker: '*', phase: 'wrap', fault: { action: 'silence' } },
    ]);
    assert.throws(() => buildProgram().exitOverride().configureOutput({ writeErr: () => undefined }).parse(['node', 'sim', '--fault', 'x:bad:error']));
    assert.equal(o.upstreamWire, false, 'grpc-js wire by default');
    const up = buildProgram().exitOverride().parse(['node', 'sim', '--upstream-wire'], { from: 'node' }).opts<{ upstreamWire: boolean }>();
    assert.equal(up.upstreamWire, true);
    assert.match(buildProgram().helpInformation(), /--upstream-wire/);
  });

  test('cli TLS options: plaintext by default, --tls or any --tls-* turns TLS on, a client certificate needs its key', () => {
    const parse = (args: string[]) =>
      tlsFromCli(buildProgram().exitOverride().parse(['node', 'sim', ...args], { from: 'node' }).opts<Parameters<typeof tlsFromCli>[0]>());
    assert.equal(parse([]), undefined);
    assert.deepEqual(parse(['--tls']), {});
    assert.deepEqual(parse(['--tls-server-name', 'coord.example']), { serverName: 'coord.example' });
    const pem = __filename; // any readable file stands in for a PEM here: the sim hands the bytes to TLS
    assert.deepEqual(Object.keys(parse(['--tls-ca', pem, '--tls-cert', pem, '--tls-key', pem]) ?? {}).sort(), ['ca', 'cert', 'key']);
    assert.throws(() => parse(['--tls-cert', pem]), /--tls-cert and --tls-key go together/);
    assert.throws(() => parse(['--tls-ca', '/nonexistent/ca.pem']), /--tls-ca \/nonexistent\/ca.pem: ENOENT/);
    assert.throws(() => new SimFleet({ coordinator: '127.0.0.1:1', workers: 1, tls: { cert: Buffer.from('x') } }), /cert and key go together/);
  });

  test('the upstream wire opens one connection per worker: no shared channel', () => {
    assert.throws(() => new SimFleet({ coordinator: '127.0.0.1:1', workers: 2, wire: 'upstream', sharedChannel: true }), /grpc-js wire/);
    assert.throws(() => new SimFleet({ coordinator: '127.0.0.1:1', workers: 1, wire: 'h3' as never }), /wire must be one of/);
  });
});
