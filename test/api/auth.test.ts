/**
 * The client API with TLS and a bearer token (docs/security.md): a real grpc-js client over TLS with
 * the token as call credentials gets through; a call without the token, or with a wrong one, gets
 * UNAUTHENTICATED (4001) before its handler runs, on unary and streaming methods alike; gRPC health
 * needs no token; a plaintext client cannot talk to the TLS port.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { apiErrorOf } from '../../src/main/api/grpc-errors';
import { makePki, type Pki } from '../helpers/pki';
import { apiClient, startTestCoordinator, type TestCoordinator } from '../helpers/coordinator';
import { assertError, callError, fakeElf, randomJobId, register, sample, scrape } from './helpers';

const TOKEN = 's3cret-Token_0123456789';
/** The server certificate names localhost: check it against that name while dialling 127.0.0.1. */
const TLS_NAME = { 'grpc.ssl_target_name_override': 'localhost' };

function bearer(token: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${token}`);
  return md;
}

/** TLS channel credentials carrying the token on every call, as a grpc-js user would set them up. */
function tlsWithToken(ca: Buffer, token: string): grpc.ChannelCredentials {
  return grpc.credentials.combineChannelCredentials(
    grpc.credentials.createSsl(ca),
    grpc.credentials.createFromMetadataGenerator((_params, cb) => cb(null, bearer(token))),
  );
}

/** `grpc.health.v1.Health/Check` for service "" (empty request); resolves with the status number. */
function healthCheck(address: string, credentials: grpc.ChannelCredentials): Promise<number> {
  const client = new grpc.Client(address, credentials, TLS_NAME);
  return new Promise<number>((resolve, reject) => {
    client.makeUnaryRequest(
      '/grpc.health.v1.Health/Check',
      (b: Buffer) => b,
      (b: Buffer) => b,
      Buffer.alloc(0),
      new grpc.Metadata(),
      { deadline: Date.now() + 10_000 },
      (err, res) => {
        client.close();
        if (err) reject(err);
        // HealthCheckResponse{status = 1}: SERVING; an empty message is UNKNOWN (0).
        else resolve(res && res.length >= 2 && res[0] === 0x08 ? res[1] : 0);
      },
    );
  });
}

function unaryWith<Res>(client: grpc.Client, method: string, request: object, md: grpc.Metadata): Promise<Res> {
  return new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<string, (req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: Res) => void) => void>)[method];
    fn.call(client, request, md, { deadline: Date.now() + 10_000 }, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

async function unaryError(client: grpc.Client, method: string, request: object, md: grpc.Metadata): Promise<grpc.ServiceError> {
  try {
    await unaryWith(client, method, request, md);
  } catch (err) {
    return err as grpc.ServiceError;
  }
  throw new Error(`${method} succeeded but an error was expected`);
}

function assertUnauthenticated(err: grpc.ServiceError, reason: 'missing' | 'invalid'): void {
  assert.equal(err.code, grpc.status.UNAUTHENTICATED, err.details);
  assert.equal(err.details, `Unauthenticated: ${reason} bearer token`);
  const api = apiErrorOf(err.metadata);
  assert.equal(api?.code, 4001);
  assert.equal(api?.name, 'UNAUTHENTICATED');
}

describe('client API over TLS with a bearer token', () => {
  let pki: Pki;
  let tc: TestCoordinator;
  let ca: Buffer;
  before(async () => {
    pki = makePki();
    const caFiles = pki.newCa('api-ca');
    const server = pki.serverCert('api-server', caFiles);
    ca = pki.read(caFiles.cert);
    const tokenFile = path.join(pki.dir, 'token');
    fs.writeFileSync(tokenFile, `${TOKEN}\n`);
    tc = await startTestCoordinator({
      backend: { mode: 'mock' },
      server: { tls_cert: server.cert, tls_key: server.key, api_token_file: tokenFile },
    });
  });
  after(async () => {
    await tc.stop();
    pki.cleanup();
  });

  test('a grpc-js client over TLS with the token reaches the handlers', async () => {
    const client = apiClient(tc.apiAddress, TLS_NAME, tlsWithToken(ca, TOKEN));
    try {
      assert.match(await register(client, fakeElf('auth')), /^[0-9a-f]{64}$/);
      // A handler's own answer, not the interceptor's.
      assertError(await callError(client, 'CancelJob', { job_id: randomJobId }), grpc.status.NOT_FOUND, `Job not found: ${randomJobId}`, 1001);
    } finally {
      client.close();
    }
  });

  test('no token, or a wrong one: UNAUTHENTICATED on unary and streaming calls; counted', async () => {
    const client = apiClient(tc.apiAddress, TLS_NAME, grpc.credentials.createSsl(ca));
    try {
      assertUnauthenticated(await unaryError(client, 'CancelJob', { job_id: randomJobId }, new grpc.Metadata()), 'missing');
      assertUnauthenticated(await unaryError(client, 'CancelJob', { job_id: randomJobId }, bearer(`${TOKEN}x`)), 'invalid');
      assertUnauthenticated(await unaryError(client, 'CancelJob', { job_id: randomJobId }, bearer(TOKEN.slice(0, -1))), 'invalid');
      const basic = new grpc.Metadata();
      basic.set('authorization', `Basic ${Buffer.from(`u:${TOKEN}`).toString('base64')}`);
      assertUnauthenticated(await unaryError(client, 'CancelJob', { job_id: randomJobId }, basic), 'invalid');
      // The scheme is case-insensitive (RFC 6750 follows RFC 7235): the right token with "bearer" passes.
      const lower = new grpc.Metadata();
      lower.set('authorization', `bearer ${TOKEN}`);
      assert.equal((await unaryError(client, 'CancelJob', { job_id: randomJobId }, lower)).code, grpc.status.NOT_FOUND);

      // Server streaming: the status arrives without any event.
      const watchErr = await new Promise<grpc.ServiceError>((resolve, reject) => {
        const call = (client as unknown as { WatchJob(req: object, md: grpc.Metadata): grpc.ClientReadableStream<object> }).WatchJob(
          { job_id: randomJobId },
          bearer('wrong'),
        );
        call.on('data', () => reject(new Error('an event without a token')));
        call.on('error', (e: grpc.ServiceError) => resolve(e));
      });
      assertUnauthenticated(watchErr, 'invalid');

      // Client streaming: refused even while the client is still sending.
      const pushErr = await new Promise<grpc.ServiceError>((resolve, reject) => {
        const call = (
          client as unknown as { PushJobInput(md: grpc.Metadata, cb: (e: grpc.ServiceError | null) => void): grpc.ClientWritableStream<object> }
        ).PushJobInput(new grpc.Metadata(), (e) => (e ? resolve(e) : reject(new Error('push accepted without a token'))));
        call.write({ job_id: randomJobId, data: Buffer.alloc(64), is_last: false });
      });
      assertUnauthenticated(pushErr, 'missing');

      const text = await scrape(tc);
      assert.ok(sample(text, 'coordinator_requests_total{method="CancelJob",status="UNAUTHENTICATED"}') >= 4);
      assert.ok(sample(text, 'coordinator_requests_total{method="WatchJob",status="UNAUTHENTICATED"}') >= 1);
      assert.ok(sample(text, 'coordinator_requests_total{method="PushJobInput",status="UNAUTHENTICATED"}') >= 1);
    } finally {
      client.close();
    }
  });

  test('gRPC health answers without a token', async () => {
    assert.equal(await healthCheck(tc.apiAddress, grpc.credentials.createSsl(ca)), 1);
  });

  test('a plaintext client cannot talk to the TLS port', async () => {
    const client = apiClient(tc.apiAddress);
    try {
      const err = await unaryError(client, 'CancelJob', { job_id: randomJobId }, bearer(TOKEN));
      assert.equal(err.code, grpc.status.UNAVAILABLE, err.details);
    } finally {
      client.close();
    }
  });

  test('a client that does not trust the CA refuses the server', async () => {
    const other = pki.newCa('other-ca');
    const client = apiClient(tc.apiAddress, TLS_NAME, tlsWithToken(pki.read(other.cert), TOKEN));
    try {
      const err = await unaryError(client, 'CancelJob', { job_id: randomJobId }, new grpc.Metadata());
      assert.equal(err.code, grpc.status.UNAVAILABLE, err.details);
    } finally {
      client.close();
    }
  });
});

test('a token without TLS: checked the same way over plaintext', async () => {
  const pki = makePki();
  const tokenFile = path.join(pki.dir, 'token');
  fs.writeFileSync(tokenFile, `${TOKEN}\r\n`);
  const tc = await startTestCoordinator({ backend: { mode: 'mock' }, server: { api_token_file: tokenFile } });
  const client = apiClient(tc.apiAddress);
  try {
    await tc.waitForLog((l) => typeof l.msg === 'string' && l.msg.includes('api_token_file is set without TLS'));
    assertUnauthenticated(await unaryError(client, 'CancelJob', { job_id: randomJobId }, new grpc.Metadata()), 'missing');
    // The file's trailing CRLF is not part of the token.
    assert.equal((await unaryError(client, 'CancelJob', { job_id: randomJobId }, bearer(TOKEN))).code, grpc.status.NOT_FOUND);
    assert.equal(await healthCheck(tc.apiAddress, grpc.credentials.createInsecure()), 1);
  } finally {
    client.close();
    await tc.stop();
    pki.cleanup();
  }
});
