/**
 * `zisk-prove-client` end to end (docs/client.md): the real command against the real coordinator
 * binary and simulated workers on upstream's wire. What it saves is what the API returns, its JSON
 * lines parse, and its exit codes say how each job ended.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SimFleet } from '../../src/sim/fleet';
import { freePort, spawnCoordinator, stopCoordinator, tempDir } from '../helpers/spawn-coordinator';
import { isolatedEnv, repoRoot, runCli, type CliRun } from '../helpers/run-cli';
import { apiClient, fakeElf, wait } from '../api/helpers';
import { startTestCoordinator } from '../helpers/coordinator';
import { makePki } from '../helpers/pki';

const CLIENT_BIN = path.join(repoRoot(), 'bin', 'zisk-prove-client');

interface ResultProof {
  prove?: { proof: { data: Buffer; public_inputs: Buffer } };
}

test('zisk-prove-client: setup, prove, execute, status, watch and cancel against the real binary, with exit codes', { timeout: 90_000 }, async (t) => {
  const dir = tempDir('zisk-client-');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const api = await freePort();
  const cluster = await freePort();
  const c = await spawnCoordinator({
    args: ['--api-port', String(api), '--cluster-port', String(cluster), '--metrics-port', String(await freePort())],
    env: { ZISK_COORDINATOR_SERVER_HOST: '127.0.0.1', ZISK_COORDINATOR_METRICS_HOST: '127.0.0.1', ZISK_COORDINATOR_STATE_DIR: path.join(dir, 'state') },
  });
  t.after(() => stopCoordinator(c));
  // One worker whose second prove task fails (for the failed job), fast otherwise.
  const fleet = new SimFleet({ coordinator: `127.0.0.1:${cluster}`, workers: 1, wire: 'upstream', setupDelayMs: 5, contributionDelayMs: 5 }).start();
  t.after(() => fleet.stop());
  await fleet.waitAllRegistered(10_000);
  const apiRpc = apiClient(`127.0.0.1:${api}`);
  t.after(() => apiRpc.close());

  const run = (...args: string[]): Promise<CliRun> =>
    runCli(['--api', `127.0.0.1:${api}`, ...args], { bin: CLIENT_BIN, cwd: dir, env: isolatedEnv(dir), timeoutMs: 30_000 });
  const jsonLines = (r: CliRun): Record<string, unknown>[] =>
    r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  fs.writeFileSync(path.join(dir, 'guest.elf'), fakeElf('client-guest'));
  fs.writeFileSync(path.join(dir, 'input.bin'), Buffer.alloc(64, 9));
  fs.writeFileSync(path.join(dir, 'odd.bin'), Buffer.alloc(13, 9));

  // setup --elf registers the program first, as upstream's command does.
  const setup = await run('setup', '--elf', 'guest.elf');
  assert.equal(setup.code, 0, setup.stderr);
  const hashId = /hash_id ([0-9a-f]{64})/.exec(setup.stdout)?.[1];
  assert.ok(hashId, setup.stdout);
  assert.match(setup.stdout, /^setup job [0-9a-f-]{36} submitted$/m);
  assert.match(setup.stdout, /^job [0-9a-f-]{36} completed in [0-9.]+ s: vk [0-9a-f]{16}…$/m);

  // prove: its phases, the proof saved byte for byte as the API returns it.
  const prove = await run('prove', hashId, '--input', 'input.bin', '-o', 'proof.bin');
  assert.equal(prove.code, 0, prove.stderr);
  assert.match(prove.stdout, /phase contributions\n.*phase prove\n.*phase aggregate\n/);
  const jobId = /^prove \(stark\) job ([0-9a-f-]{36}) submitted$/m.exec(prove.stdout)?.[1];
  assert.ok(jobId, prove.stdout);
  const result = (await wait(apiRpc, jobId, 0)) as unknown as { result: ResultProof };
  assert.deepEqual(fs.readFileSync(path.join(dir, 'proof.bin')), Buffer.from(result.result.prove?.proof.data ?? []));
  assert.deepEqual(fs.readFileSync(path.join(dir, 'proof.public_inputs.bin')), Buffer.from(result.result.prove?.proof.public_inputs ?? []));

  // --json: one object per line, the last one the outcome; a pushed input stream.
  const streamed = await run('--json', 'prove', '-H', hashId, '--input-stream', 'input.bin', '--proof', 'plonk', '-o', 'plonk.bin');
  assert.equal(streamed.code, 0, streamed.stderr);
  const lines = jsonLines(streamed);
  assert.equal(lines[0].submitted, 'prove (plonk)');
  assert.deepEqual(lines.filter((l) => l.event === 'progress').map((l) => l.phase), ['contributions', 'prove', 'aggregate']);
  const last = lines[lines.length - 1];
  assert.equal(last.status, 'completed');
  assert.equal(last.proof_bytes, fs.statSync(path.join(dir, 'plonk.bin')).size);

  const exec = await run('--json', 'execute', hashId, '-i', 'input.bin', '-o', 'out.bin');
  assert.equal(exec.code, 0, exec.stderr);
  assert.equal(jsonLines(exec).at(-1)?.status, 'completed');
  assert.ok(fs.statSync(path.join(dir, 'out.bin')).size > 0);

  // status and watch of a finished job.
  const status = await run('--json', 'status', jobId);
  assert.equal(status.code, 0);
  assert.deepEqual(jsonLines(status)[0].status, 'completed');
  const watched = await run('watch', jobId);
  assert.equal(watched.code, 0);
  assert.match(watched.stdout, /\+[0-9.]+ s {2}queued\n/);
  assert.match(watched.stdout, new RegExp(`^job ${jobId} completed in [0-9.]+ s`, 'm'));

  // A job the worker fails: exit 1, the reason on stderr.
  fleet.workers[0].inject('prove', { action: 'error', message: 'the GPU caught fire' });
  const failed = await run('prove', hashId, '--input', 'input.bin');
  assert.equal(failed.code, 1, failed.stdout);
  assert.match(failed.stderr, /^job [0-9a-f-]{36} failed after [0-9.]+ s: execution: .*the GPU caught fire/m);

  // A cancelled job: cancel says so, status exits 3.
  fleet.workers[0].inject('contribution', { delayMs: 60_000 });
  const detached = await run('--json', 'prove', hashId, '-i', 'input.bin', '--detach');
  assert.equal(detached.code, 0);
  const slowJob = String(jsonLines(detached)[0].job_id);
  const cancel = await run('cancel', '-j', slowJob);
  assert.equal(cancel.code, 0, cancel.stderr);
  assert.equal(cancel.stdout.trim(), `job ${slowJob} cancelled`);
  const cancelled = await run('status', slowJob);
  assert.equal(cancelled.code, 3);
  assert.equal(cancelled.stdout.trim(), `job ${slowJob}: cancelled`);

  // Refused (an error status): 4; unusable arguments: 2, before anything is sent; unreachable: 69.
  const unknown = await run('status', '7a1c6c4e-3b43-4d1b-9a0f-1f2e3d4c5b6a');
  assert.equal(unknown.code, 4);
  assert.equal(unknown.stderr.trim(), 'zisk-prove-client: the coordinator refused the request: Job not found: 7a1c6c4e-3b43-4d1b-9a0f-1f2e3d4c5b6a');
  const odd = await run('prove', hashId, '--input-stream', 'odd.bin');
  assert.equal(odd.code, 2);
  assert.match(odd.stderr, /input odd\.bin is 13 bytes: a pushed input must be a whole number of 8-byte words/);
  const missing = await run('prove', hashId, '--input', 'nope.bin');
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /cannot read input nope\.bin: ENOENT/);
  const noHash = await run('prove');
  assert.equal(noHash.code, 2);
  const badKind = await run('prove', hashId, '--proof', 'groth16');
  assert.equal(badKind.code, 2);
  assert.match(badKind.stderr, /Use stark, stark-minimal or plonk/);
  const closedPort = await freePort();
  const unreachable = await runCli(['--api', `127.0.0.1:${closedPort}`, '--connect-timeout', '1', 'status', jobId], { bin: CLIENT_BIN, cwd: dir, env: isolatedEnv(dir) });
  assert.equal(unreachable.code, 69);
  assert.match(unreachable.stderr, new RegExp(`cannot reach the coordinator at 127\\.0\\.0\\.1:${closedPort}`));
});

test('zisk-prove-client with TLS and a token: --tls-ca and --token-file reach the handlers; a missing or wrong token exits 4 with the reason', { timeout: 60_000 }, async (t) => {
  const pki = makePki();
  t.after(() => pki.cleanup());
  const ca = pki.newCa('client-cmd-ca');
  const server = pki.serverCert('client-cmd-server', ca);
  const tokenFile = path.join(pki.dir, 'token');
  fs.writeFileSync(tokenFile, 's3cret-token\n');
  const wrongFile = path.join(pki.dir, 'wrong');
  fs.writeFileSync(wrongFile, 'not-the-token\n');
  fs.writeFileSync(path.join(pki.dir, 'guest.elf'), fakeElf('client-tls'));
  const tls = await startTestCoordinator({ backend: { mode: 'mock' }, server: { tls_cert: server.cert, tls_key: server.key, api_token_file: tokenFile } });
  t.after(() => tls.stop());
  const plain = await startTestCoordinator({ backend: { mode: 'mock' }, server: { api_token_file: tokenFile } });
  t.after(() => plain.stop());
  const run = (...args: string[]): Promise<CliRun> => runCli(args, { bin: CLIENT_BIN, cwd: pki.dir, env: isolatedEnv(pki.dir), timeoutMs: 30_000 });

  // TLS, the coordinator's CA named, the token from its file: a job runs end to end.
  const ok = await run('--api', tls.apiAddress, '--tls-ca', ca.cert, '--tls-server-name', 'localhost', '--token-file', tokenFile, 'prove', '--elf', 'guest.elf');
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^job [0-9a-f-]{36} completed/m);
  // Plaintext with a token (a coordinator behind a TLS-terminating proxy, or on a private network).
  const plainOk = await run('--api', plain.apiAddress, '--token-file', tokenFile, 'register', 'guest.elf');
  assert.equal(plainOk.code, 0, plainOk.stderr);

  const missing = await run('--api', tls.apiAddress, '--tls-ca', ca.cert, '--tls-server-name', 'localhost', 'register', 'guest.elf');
  assert.equal(missing.code, 4);
  assert.equal(missing.stderr.trim(), 'zisk-prove-client: the coordinator refused the request: Unauthenticated: missing bearer token');
  const wrong = await run('--api', plain.apiAddress, '--token-file', wrongFile, 'register', 'guest.elf');
  assert.equal(wrong.code, 4);
  assert.equal(wrong.stderr.trim(), 'zisk-prove-client: the coordinator refused the request: Unauthenticated: invalid bearer token');
  const noToken = await run('--api', plain.apiAddress, '--token-file', path.join(pki.dir, 'nope'), 'register', 'guest.elf');
  assert.equal(noToken.code, 2);
  assert.match(noToken.stderr, /cannot read token file .*nope: ENOENT/);
});
