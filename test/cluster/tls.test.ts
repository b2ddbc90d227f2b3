/**
 * The worker port over TLS and mutual TLS (docs/security.md): simulated workers on both wires run a
 * prove job over TLS; with `[coordinator] tls_client_ca` only a worker with a valid certificate from
 * that CA opens a stream (wrong CA, expired, none and plaintext are refused in the handshake, and the
 * coordinator logs why); with `bind_worker_id_to_cert` a worker registers only under an id its
 * certificate names, and a refused claim leaves the real holder of the id alone.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as net from 'node:net';
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { SimFleet, type SimFleetOptions } from '../../src/sim/fleet';
import type { SimTls } from '../../src/sim/options';
import type { DisconnectInfo } from '../../src/sim/worker-types';
import { makePki, type CertFiles, type Pki } from '../helpers/pki';
import { FAST_SIM, startCluster, type Cluster } from '../helpers/cluster';
import { inline, submit, waitTerminal } from '../api/helpers';

const TLS_NAME = { 'grpc.ssl_target_name_override': 'localhost' };

async function proveJob(c: Cluster): Promise<void> {
  const jobId = await submit(c.client, { prove: { hash_id: c.hashId, input: inline(Buffer.alloc(64, 1)), proof_dest: 1 } });
  const r = await waitTerminal(c.client, jobId);
  assert.equal(r.job_status.status, 'completed', JSON.stringify(r.job_status));
}

interface Refused {
  disconnect: DisconnectInfo;
  log: Record<string, unknown>;
}

/**
 * Starts one worker that must never get a stream: resolves with its first failed attempt and the
 * coordinator's log line naming the handshake failure.
 */
async function refusedWorker(c: Cluster, workerId: string, options: Partial<SimFleetOptions>, reason: (r: string) => boolean): Promise<Refused> {
  const logged = c.tc.waitForLog((l) => l.listener === 'cluster' && typeof l.reason === 'string' && reason(l.reason));
  const fleet = new SimFleet({ coordinator: c.tc.clusterAddress, workers: 1, prefix: workerId, ...FAST_SIM, ...options });
  const disconnected = once(fleet, 'disconnected') as Promise<[unknown, DisconnectInfo]>;
  fleet.start();
  try {
    const [, disconnect] = await disconnected;
    const log = await logged;
    assert.equal(fleet.registeredCount, 0);
    assert.equal(fleet.stats().registrations, 0, 'never registered');
    return { disconnect, log };
  } finally {
    await fleet.stop();
  }
}

/**
 * A TCP-level TLS tunnel in front of a plaintext worker, as stunnel is (docs/security.md, Sidecars):
 * it offers no ALPN protocol and knows nothing of HTTP/2.
 */
async function tlsTunnel(target: string, options: tls.ConnectionOptions): Promise<{ address: string; close(): void }> {
  const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((plain) => {
    const secure = tls.connect({ host, port, servername: 'localhost', ...options });
    for (const s of [plain, secure]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        sockets.delete(s);
        plain.destroy();
        secure.destroy();
      });
    }
    plain.pipe(secure).pipe(plain);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    close: () => {
      server.close();
      for (const s of sockets) s.destroy();
    },
  };
}

describe('worker port over TLS', () => {
  let pki: Pki;
  let ca: Buffer;
  let server: CertFiles;
  before(() => {
    pki = makePki();
    const caFiles = pki.newCa('tls-ca');
    ca = pki.read(caFiles.cert);
    server = pki.serverCert('tls-server', caFiles);
  });
  after(() => pki.cleanup());

  test('grpc-js and upstream-wire workers run a prove job over TLS; a plaintext worker is refused', async () => {
    const tls: SimTls = { ca, serverName: 'localhost' };
    const c = await startCluster(2, {
      overrides: { server: { tls_cert: server.cert, tls_key: server.key } },
      sim: { tls, perWorker: (i) => (i === 1 ? { wire: 'upstream' } : undefined) },
      clientCredentials: grpc.credentials.createSsl(ca),
      clientOptions: TLS_NAME,
      tag: 'tls',
    });
    try {
      await proveJob(c);
      for (const wire of ['grpc-js', 'upstream'] as const) {
        const r = await refusedWorker(c, `plain-${wire}`, { wire }, () => true);
        assert.equal(r.disconnect.hadHeaders, false, wire);
      }
      // The TLS workers were not disturbed by the refused ones.
      assert.equal(c.fleet.registeredCount, 2);
      await proveJob(c);
    } finally {
      await c.close();
    }
  });
});

describe('worker port with mutual TLS and worker ids bound to certificates', () => {
  let pki: Pki;
  let caFiles: CertFiles;
  let ca: Buffer;
  let c: Cluster;
  /** sim-0 by its CN, sim-1 by a DNS SAN, sim-2 by a URI SAN. */
  let certs: CertFiles[];
  const clientTls = (files: CertFiles): SimTls => ({ ca, cert: pki.read(files.cert), key: pki.read(files.key), serverName: 'localhost' });

  before(async () => {
    pki = makePki();
    caFiles = pki.newCa('mtls-ca');
    ca = pki.read(caFiles.cert);
    const server = pki.serverCert('mtls-server', caFiles);
    certs = [
      pki.clientCert('w0', caFiles, 'sim-0'),
      pki.clientCert('w1', caFiles, 'gpu-box-1', { sans: ['DNS:sim-1'] }),
      pki.clientCert('w2', caFiles, 'gpu-box-2', { sans: ['DNS:gpu-box-2.example', 'URI:sim-2'] }),
    ];
    c = await startCluster(3, {
      overrides: { server: { tls_cert: server.cert, tls_key: server.key }, coordinator: { tls_client_ca: caFiles.cert, bind_worker_id_to_cert: true } },
      sim: { perWorker: (i) => ({ tls: clientTls(certs[i]), ...(i === 2 ? { wire: 'upstream' as const } : {}) }) },
      clientCredentials: grpc.credentials.createSsl(ca),
      clientOptions: TLS_NAME,
      tag: 'mtls',
    });
  });
  after(async () => {
    await c.close();
    pki.cleanup();
  });

  test('workers with certificates from the CA (CN, DNS SAN, URI SAN) register and prove', async () => {
    assert.equal(c.fleet.registeredCount, 3);
    await proveJob(c);
  });

  test('a plaintext upstream worker behind a TLS tunnel without ALPN (a sidecar) registers and gets its setups', async () => {
    const files = pki.clientCert('tunnel', caFiles, 'tunnel-0');
    const tunnel = await tlsTunnel(c.tc.clusterAddress, { ca, cert: pki.read(files.cert), key: pki.read(files.key) });
    const fleet = new SimFleet({ coordinator: tunnel.address, workers: 1, prefix: 'tunnel', wire: 'upstream', ...FAST_SIM });
    try {
      fleet.start();
      await fleet.waitAllRegistered(10_000);
      // The completed setup is replayed to the new worker and acked: messages cross both ways.
      await fleet.waitUntil(() => fleet.stats().setupAcks >= 1, 10_000, () => 'a setup ack through the tunnel');
    } finally {
      await fleet.stop();
      tunnel.close();
    }
  });

  test('a certificate from another CA is refused in the handshake', async () => {
    const other = pki.newCa('rogue-ca');
    const rogue = pki.clientCert('rogue', other, 'rogue-0');
    const r = await refusedWorker(c, 'rogue', { tls: clientTls(rogue) }, (reason) => /UNABLE_TO_GET_ISSUER_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE/.test(reason));
    assert.equal(r.disconnect.hadHeaders, false);
  });

  test('an expired certificate from the CA is refused in the handshake', async () => {
    const expired = pki.clientCert('expired', caFiles, 'old-0', { expired: true });
    await refusedWorker(c, 'old', { tls: clientTls(expired) }, (reason) => reason === 'CERT_HAS_EXPIRED');
  });

  test('no client certificate is refused in the handshake, on both wires', async () => {
    for (const wire of ['grpc-js', 'upstream'] as const) {
      await refusedWorker(c, `anon-${wire}`, { wire, tls: { ca, serverName: 'localhost' } }, (reason) => /PEER_DID_NOT_RETURN_A_CERTIFICATE/.test(reason));
    }
  });

  test('a worker id its certificate does not name is refused, and the real holder keeps its stream', async () => {
    const holder = c.fleet.get('sim-1');
    assert.ok(holder?.registered);
    const connectsBefore = holder.stats.connects;
    // sim-0's valid certificate, used to claim sim-1 with a register, then with a reconnect.
    for (const lastKnownJobId of [undefined, 'f0e1d2c3-0000-4000-8000-000000000000']) {
      const impostor = new SimFleet({
        coordinator: c.tc.clusterAddress,
        workers: 1,
        firstIndex: 1,
        ...FAST_SIM,
        reconnectOnReject: false,
        tls: clientTls(certs[0]),
        ...(lastKnownJobId ? { lastKnownJobId } : {}),
      });
      const rejected = once(impostor, 'rejected') as Promise<[unknown, { accepted: boolean; message: string }]>;
      impostor.start();
      try {
        const [, response] = await rejected;
        assert.equal(response.accepted, false);
        assert.equal(
          response.message,
          'Registration rejected: worker_id "sim-1" does not match the client certificate (subject CN and DNS/URI SANs: "sim-0")',
        );
        assert.equal(impostor.stats().reconnectsSent, lastKnownJobId ? 1 : 0, 'the claim was a reconnect');
      } finally {
        await impostor.stop();
      }
    }
    await c.tc.waitForLog((l) => l.level === 'warn' && l.worker_id === 'sim-1' && typeof l.msg === 'string' && l.msg.includes('does not match the client certificate'));
    assert.ok(holder.registered, 'the holder of sim-1 is still registered');
    assert.equal(holder.stats.connects, connectsBefore, 'and was never taken over');
    await proveJob(c);
  });
});
