/**
 * What can be checked of the container files without a Docker daemon (docs/operations.md,
 * Containers): the image's configuration loads with no warning and sets nothing through the
 * environment; the HEALTHCHECK command, run as the image runs it, answers 0 while the real coordinator
 * serves and 1 once it has stopped; the entry point is exec form, the user not root.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { repoRoot, runCli } from '../helpers/run-cli';
import { spawnCoordinator, stopCoordinator, tempDir } from '../helpers/spawn-coordinator';

const DOCKERFILE = fs.readFileSync(path.join(repoRoot(), 'deploy', 'docker', 'Dockerfile'), 'utf8');
/** Instructions with their continuation lines joined. */
const instructions = DOCKERFILE.replace(/\\\n\s*/g, ' ')
  .split('\n')
  .filter((l) => l.trim() && !l.trim().startsWith('#'));
const last = (kw: string): string | undefined => instructions.filter((l) => l.startsWith(`${kw} `)).at(-1)?.slice(kw.length + 1);

test('the image configuration loads without a warning and everything in it comes from the file', async (t) => {
  const dir = tempDir('zisk-image-');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  assert.equal(instructions.filter((l) => /^ENV\s+ZISK_COORDINATOR_/.test(l)).length, 0, 'no ZISK_COORDINATOR_* in ENV: it would beat a mounted configuration');
  const r = await runCli(['--config', path.join(repoRoot(), 'deploy', 'docker', 'coordinator.toml'), '--print-config'], { cwd: dir, env: { PATH: process.env.PATH, HOME: dir } });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  assert.match(r.stdout, /^format = "json" {2}# from .*coordinator\.toml$/m);
  assert.match(r.stdout, /^dir = "\/var\/lib\/zisk-coordinator\/state" {2}# from .*coordinator\.toml$/m);
});

test('exec-form entry point running the installed launcher with the image configuration, as a non-root user', () => {
  const entry = JSON.parse(last('ENTRYPOINT') ?? 'null') as string[];
  assert.deepEqual(entry, ['/opt/zisk-coordinator/node_modules/.bin/zisk-coordinator', '--config', '/etc/zisk/coordinator.toml']);
  assert.equal(last('USER'), 'zisk');
  assert.match(DOCKERFILE, /npm install --prefix \/opt\/zisk-coordinator --omit=dev/);
});

test('the HEALTHCHECK command answers 0 while the coordinator serves and 1 once it has stopped', async (t) => {
  const healthcheck = last('HEALTHCHECK');
  assert.ok(healthcheck);
  const cmd = JSON.parse(healthcheck.slice(healthcheck.indexOf('CMD ') + 4)) as string[];
  assert.equal(cmd[0], 'node');
  const c = await spawnCoordinator({
    args: ['--api-port', '0', '--metrics-port', '0'],
    env: { ZISK_COORDINATOR_BACKEND_MODE: 'mock', ZISK_COORDINATOR_SERVER_HOST: '127.0.0.1', ZISK_COORDINATOR_METRICS_HOST: '127.0.0.1' },
  });
  t.after(() => stopCoordinator(c));
  // The image's port is 9090; this test's coordinator listens on an ephemeral one.
  const args = cmd.slice(1).map((a) => a.replace('127.0.0.1:9090', `127.0.0.1:${c.ports.metrics}`));
  assert.notDeepEqual(args, cmd.slice(1), 'the check targets 127.0.0.1:9090');
  const probe = (): number | null => spawnSync(process.execPath, args, { timeout: 10_000 }).status;
  assert.equal(probe(), 0);
  c.kill('SIGTERM');
  assert.equal((await c.exited).code, 0);
  assert.equal(probe(), 1);
});
