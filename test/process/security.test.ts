/**
 * The security files through the real binary (docs/security.md): a file that cannot be used stops
 * the start with exit 78 naming it, and `--check-config` says the same; SIGHUP re-reads the
 * certificate, key, CA and token without dropping connections (new handshakes get the new
 * certificate, an established worker stream carries on), a bad file on reload keeps the old
 * material and logs an error naming the file; SIGHUP without any of them no longer ends the process.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { SimFleet } from '../../src/sim/fleet';
import { makePki, type CertFiles, type Pki } from '../helpers/pki';
import { isolatedEnv, runCli } from '../helpers/run-cli';
import { spawnCoordinator, stopCoordinator, tempDir, type SpawnedCoordinator } from '../helpers/spawn-coordinator';
import { apiClient } from '../helpers/coordinator';
import { FAST_SIM } from '../helpers/cluster';

const LOOPBACK_ENV = {
  ZISK_COORDINATOR_SERVER_HOST: '127.0.0.1',
  ZISK_COORDINATOR_METRICS_HOST: '127.0.0.1',
};
const EPHEMERAL = ['--api-port', '0', '--cluster-port', '0', '--metrics-port', '0'];
const randomJobId = '7a1c6c4e-3b43-4d1b-9a0f-1f2e3d4c5b6a';

/** The certificate a fresh TLS handshake with `port` is shown (SHA-256 fingerprint). */
function servedFingerprint(port: number, ca: Buffer, client?: { cert: Buffer; key: Buffer }): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca, ALPNProtocols: ['h2'], ...client }, () => {
      const fp = socket.getPeerX509Certificate()?.fingerprint256;
      socket.destroy();
      if (fp) resolve(fp);
      else reject(new Error('no peer certificate'));
    });
    socket.once('error', reject);
  });
}

const fingerprintOf = (file: string): string => new crypto.X509Certificate(fs.readFileSync(file)).fingerprint256;

/** CancelJob of an unknown job with this bearer token: NOT_FOUND once past the token, else its refusal. */
async function cancelWithToken(port: number, ca: Buffer, token: string): Promise<grpc.status> {
  const client = apiClient(`127.0.0.1:${port}`, { 'grpc.ssl_target_name_override': 'localhost' }, grpc.credentials.createSsl(ca));
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${token}`);
  try {
    return await new Promise<grpc.status>((resolve) => {
      (client as unknown as Record<string, (r: object, md: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null) => void) => void>).CancelJob(
        { job_id: randomJobId },
        md,
        { deadline: Date.now() + 10_000 },
        (e) => resolve(e ? e.code : grpc.status.OK),
      );
    });
  } finally {
    client.close();
  }
}

describe('security files at start', () => {
  let pki: Pki;
  let home: string;
  let good: CertFiles;
  let ca: CertFiles;
  before(() => {
    pki = makePki();
    home = tempDir('zisk-sec-home-');
    ca = pki.newCa('start-ca');
    good = pki.serverCert('start-server', ca);
  });
  after(() => {
    pki.cleanup();
    fs.rmSync(home, { recursive: true, force: true });
  });

  const run = (env: NodeJS.ProcessEnv, args: string[] = []) =>
    runCli([...args, ...EPHEMERAL], { cwd: home, env: isolatedEnv(home, { ...LOOPBACK_ENV, ZISK_CACHE_DIR: path.join(home, 'cache'), ...env }) });

  const cases: { name: string; env: () => NodeJS.ProcessEnv; message: () => RegExp }[] = [
    {
      name: 'a certificate file that does not exist',
      env: () => ({ ZISK_COORDINATOR_SERVER_TLS_CERT: path.join(pki.dir, 'nope.crt'), ZISK_COORDINATOR_SERVER_TLS_KEY: good.key }),
      message: () =>
        new RegExp(`error: \\[server\\] tls_cert ${reEscape(path.join(pki.dir, 'nope.crt'))} \\(set by ZISK_COORDINATOR_SERVER_TLS_CERT\\) is not usable: cannot read it: ENOENT`),
    },
    {
      name: 'a key that is not the certificate\'s',
      env: () => ({ ZISK_COORDINATOR_SERVER_TLS_CERT: good.cert, ZISK_COORDINATOR_SERVER_TLS_KEY: ca.key }),
      message: () => new RegExp(`error: \\[server\\] tls_key ${reEscape(ca.key)} .*is not usable: does not go with ${reEscape(good.cert)}`),
    },
    {
      name: 'a certificate file holding no certificate',
      env: () => ({ ZISK_COORDINATOR_SERVER_TLS_CERT: good.key, ZISK_COORDINATOR_SERVER_TLS_KEY: good.key }),
      message: () => new RegExp(`error: \\[server\\] tls_cert ${reEscape(good.key)} .*is not usable: no PEM certificate`),
    },
    {
      name: 'a client CA bundle that is not PEM',
      env: () => {
        const f = path.join(pki.dir, 'garbage-ca.pem');
        fs.writeFileSync(f, '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n');
        return { ZISK_COORDINATOR_SERVER_TLS_CERT: good.cert, ZISK_COORDINATOR_SERVER_TLS_KEY: good.key, ZISK_COORDINATOR_COORDINATOR_TLS_CLIENT_CA: f };
      },
      message: () => new RegExp(`error: \\[coordinator\\] tls_client_ca ${reEscape(path.join(pki.dir, 'garbage-ca.pem'))} .*is not usable: certificate 1 of 1 cannot be parsed`),
    },
    {
      name: 'an empty token file',
      env: () => {
        const f = path.join(pki.dir, 'empty-token');
        fs.writeFileSync(f, '\n');
        return { ZISK_COORDINATOR_SERVER_API_TOKEN_FILE: f };
      },
      message: () => new RegExp(`error: \\[server\\] api_token_file ${reEscape(path.join(pki.dir, 'empty-token'))} .*is not usable: it is empty`),
    },
    {
      name: 'a certificate without its key',
      env: () => ({ ZISK_COORDINATOR_SERVER_TLS_CERT: good.cert }),
      message: () => /error: \[server\] tls_cert and \[server\] tls_key must be set together \(only tls_cert is set\)/,
    },
    {
      name: 'binding worker ids without client certificates',
      env: () => ({ ZISK_COORDINATOR_SERVER_TLS_CERT: good.cert, ZISK_COORDINATOR_SERVER_TLS_KEY: good.key, ZISK_COORDINATOR_COORDINATOR_BIND_WORKER_ID_TO_CERT: 'true' }),
      message: () => /error: \[coordinator\] bind_worker_id_to_cert needs client certificates/,
    },
  ];
  for (const c of cases) {
    test(`${c.name}: exit 78 naming it, before anything binds, and --check-config says the same`, async () => {
      for (const args of [[], ['--check-config']]) {
        const r = await run(c.env(), args);
        assert.equal(r.code, 78, `${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, c.message(), args.join(' '));
        assert.doesNotMatch(r.stdout, /listening on/);
      }
    });
  }

  test('--check-config lists the protections in use and their files', async () => {
    const token = path.join(pki.dir, 'token');
    fs.writeFileSync(token, 'abc\n');
    const r = await run(
      { ZISK_COORDINATOR_SERVER_TLS_CERT: good.cert, ZISK_COORDINATOR_SERVER_TLS_KEY: good.key, ZISK_COORDINATOR_COORDINATOR_TLS_CLIENT_CA: ca.cert, ZISK_COORDINATOR_SERVER_API_TOKEN_FILE: token },
      ['--check-config'],
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`TLS on both gRPC listeners: ${reEscape(good.cert)} \\+ ${reEscape(good.key)}: OK`));
    assert.match(r.stdout, new RegExp(`worker client certificates required, CA bundle ${reEscape(ca.cert)}: OK \\(1 certificate\\(s\\)\\)`));
    assert.match(r.stdout, new RegExp(`client API bearer token ${reEscape(token)}: OK`));
  });
});

function reEscape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

describe('SIGHUP', () => {
  let pki: Pki;
  before(() => (pki = makePki()));
  after(() => pki.cleanup());

  test('re-reads certificate and token: new handshakes get the new ones, a worker stream stays up; a bad file keeps the old', { timeout: 60_000 }, async () => {
    const ca = pki.newCa('hup-ca');
    const caPem = pki.read(ca.cert);
    const first = pki.serverCert('hup-server-1', ca);
    const second = pki.serverCert('hup-server-2', ca);
    const workerCert = pki.clientCert('hup-worker', ca, 'sim-0');
    const workerTls = { cert: pki.read(workerCert.cert), key: pki.read(workerCert.key) };
    // The files the coordinator is configured with; rotations copy over them.
    const certPath = path.join(pki.dir, 'served.crt');
    const keyPath = path.join(pki.dir, 'served.key');
    const tokenPath = path.join(pki.dir, 'served-token');
    fs.copyFileSync(first.cert, certPath);
    fs.copyFileSync(first.key, keyPath);
    fs.writeFileSync(tokenPath, 'token-one\n');

    let c: SpawnedCoordinator | undefined;
    let fleet: SimFleet | undefined;
    try {
      c = await spawnCoordinator({
        args: EPHEMERAL,
        env: {
          ...LOOPBACK_ENV,
          ZISK_COORDINATOR_SERVER_TLS_CERT: certPath,
          ZISK_COORDINATOR_SERVER_TLS_KEY: keyPath,
          ZISK_COORDINATOR_COORDINATOR_TLS_CLIENT_CA: ca.cert,
          ZISK_COORDINATOR_COORDINATOR_BIND_WORKER_ID_TO_CERT: 'true',
          ZISK_COORDINATOR_SERVER_API_TOKEN_FILE: tokenPath,
          ZISK_COORDINATOR_COORDINATOR_HEARTBEAT_INTERVAL_SECONDS: '1',
        },
      });
      const api = c.ports.api as number;
      const cluster = c.ports.cluster as number;
      assert.equal(await servedFingerprint(api, caPem), fingerprintOf(first.cert));
      assert.equal(await servedFingerprint(cluster, caPem, workerTls), fingerprintOf(first.cert));
      assert.equal(await cancelWithToken(api, caPem, 'token-one'), grpc.status.NOT_FOUND);

      fleet = new SimFleet({ coordinator: `127.0.0.1:${cluster}`, workers: 1, ...FAST_SIM, tls: { ca: caPem, ...workerTls, serverName: 'localhost' } }).start();
      await fleet.waitAllRegistered(10_000);
      const worker = fleet.workers[0];

      // Rotate: new certificate and key, new token.
      fs.copyFileSync(second.cert, certPath);
      fs.copyFileSync(second.key, keyPath);
      fs.writeFileSync(tokenPath, 'token-two\n');
      const reloaded = c.waitForLine((l) => typeof l.msg === 'string' && l.msg.startsWith('SIGHUP: re-read'));
      c.kill('SIGHUP');
      const line = await reloaded;
      assert.deepEqual(line.reloaded, ['tls', 'client CA', 'API token']);
      const heartbeatsAtReload = worker.stats.heartbeatsReceived;

      assert.equal(await servedFingerprint(api, caPem), fingerprintOf(second.cert), 'new API handshakes get the new certificate');
      assert.equal(await servedFingerprint(cluster, caPem, workerTls), fingerprintOf(second.cert), 'new worker handshakes too');
      assert.equal(await cancelWithToken(api, caPem, 'token-one'), grpc.status.UNAUTHENTICATED, 'the old token is refused');
      assert.equal(await cancelWithToken(api, caPem, 'token-two'), grpc.status.NOT_FOUND, 'the new one accepted');
      // The worker's stream from before the reload carries on: coordinator heartbeats keep arriving on it.
      await fleet.waitUntil(() => worker.stats.heartbeatsReceived > heartbeatsAtReload + 1, 10_000, () => 'heartbeats after the reload');
      assert.equal(worker.stats.connects, 1, 'never reconnected');
      assert.ok(worker.registered);

      // A bad certificate file: the error names it, and the previous material stays in use.
      fs.writeFileSync(certPath, 'not a certificate\n');
      fs.writeFileSync(tokenPath, 'token-three\n');
      const failed = c.waitForLine((l) => l.level === 'error' && l.setting === '[server] tls_cert');
      const partial = c.waitForLine((l) => typeof l.msg === 'string' && l.msg.startsWith('SIGHUP: re-read') && l !== line);
      c.kill('SIGHUP');
      const err = await failed;
      assert.equal(err.file, certPath);
      assert.match(String(err.msg), new RegExp(`${reEscape(certPath)}.*is not usable: no PEM certificate.*keeping the previous material`));
      const summary = await partial;
      assert.deepEqual(summary.reloaded, ['client CA', 'API token'], 'the parts whose files are fine are re-read');
      assert.deepEqual(summary.kept, ['[server] tls_cert']);
      assert.equal(await servedFingerprint(api, caPem), fingerprintOf(second.cert), 'still the last good certificate');
      assert.equal(await servedFingerprint(cluster, caPem, workerTls), fingerprintOf(second.cert));
      assert.equal(await cancelWithToken(api, caPem, 'token-three'), grpc.status.NOT_FOUND);
      assert.equal(worker.stats.connects, 1);

      await fleet.stop();
      fleet = undefined;
      c.kill('SIGTERM');
      assert.deepEqual(await c.exited, { code: 0, signal: null });
    } finally {
      await fleet?.stop();
      if (c) await stopCoordinator(c);
    }
  });

  test('without any security file, SIGHUP is logged and the coordinator keeps serving', { timeout: 30_000 }, async () => {
    const c = await spawnCoordinator({ args: EPHEMERAL, env: LOOPBACK_ENV });
    try {
      // The reload's last word is the logging hook's line; no security line comes before it.
      const seen = c.waitForLine((l) => l.msg === 'configuration re-read: log level stays info');
      c.kill('SIGHUP');
      await seen;
      assert.ok(!c.lines.some((l) => String(l.msg).startsWith('SIGHUP: ')), JSON.stringify(c.lines.slice(-3)));
      const res = await fetch(`http://127.0.0.1:${c.ports.metrics}/health`);
      assert.equal(res.status, 200);
      c.kill('SIGTERM');
      assert.deepEqual(await c.exited, { code: 0, signal: null });
    } finally {
      await stopCoordinator(c);
    }
  });
});
