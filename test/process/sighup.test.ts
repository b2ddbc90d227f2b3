/**
 * SIGHUP (docs/operations.md, Reloading: SIGHUP), with the real binary: the log file is reopened at
 * its path after logrotate renamed it, and the log level is read again from the TOML, for the main
 * thread and the scheduler thread alike. A configuration that no longer loads, or a log path that
 * cannot be opened, changes nothing and the coordinator keeps serving. A level from the environment
 * still wins over the file, as at start.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SimFleet } from '../../src/sim/fleet';
import { spawnCoordinator, stopCoordinator, tempDir, freePort, type LogLine, type SpawnedCoordinator } from '../helpers/spawn-coordinator';
import { apiClient, fakeElf, inline, register, submit, waitTerminal } from '../api/helpers';

const LOOPBACK = { ZISK_COORDINATOR_SERVER_HOST: '127.0.0.1', ZISK_COORDINATOR_METRICS_HOST: '127.0.0.1' };

function toml(level: string, logFile: string | undefined, extra = ''): string {
  return [
    '[logging]',
    `level = "${level}"`,
    'format = "json"',
    ...(logFile ? [`file_path = ${JSON.stringify(logFile)}`] : []),
    extra,
  ].join('\n');
}

function fileLines(file: string): LogLine[] {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as LogLine);
}

/** File writes are batched (up to 100 ms after stdout's): polls until a line matches. */
async function waitInFile(file: string, pred: (l: LogLine) => boolean, ms = 10_000): Promise<LogLine[]> {
  const deadline = performance.now() + ms;
  for (;;) {
    const lines = fs.existsSync(file) ? fileLines(file) : [];
    if (lines.some(pred)) return lines;
    if (performance.now() > deadline) throw new Error(`no matching line in ${file} within ${ms} ms: ${JSON.stringify(lines.slice(-3))}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Sends SIGHUP and waits for the line that ends this reload (every earlier line is in by then). */
async function hangup(c: SpawnedCoordinator, done: (l: LogLine) => boolean): Promise<LogLine> {
  const before = c.lines.length;
  c.kill('SIGHUP');
  return c.waitForLine((l) => c.lines.indexOf(l) >= before && done(l));
}

const isReread = (l: LogLine): boolean => typeof l.msg === 'string' && (l.msg.startsWith('log level ') || l.msg.startsWith('configuration re-read') || l.msg.startsWith('configuration not re-read'));

test('SIGHUP after logrotate renamed the file: new lines go to a new file at the path; a raised level shows debug lines of both threads', { timeout: 60_000 }, async (t) => {
  const dir = tempDir('zisk-hup-');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const logFile = path.join(dir, 'logs', 'coordinator.log');
  const config = path.join(dir, 'coordinator.toml');
  fs.writeFileSync(config, toml('info', logFile));
  const cluster = await freePort();
  const c = await spawnCoordinator({
    args: ['--config', config, '--api-port', '0', '--cluster-port', String(cluster), '--metrics-port', '0'],
    env: { ...LOOPBACK, ZISK_COORDINATOR_LOGGING_FORMAT: undefined, ZISK_COORDINATOR_STATE_BACKEND: 'memory' },
  });
  t.after(() => stopCoordinator(c));
  const fleet = new SimFleet({ coordinator: `127.0.0.1:${cluster}`, workers: 1, wire: 'upstream', setupDelayMs: 5, contributionDelayMs: 5, proveDelayMs: 5, aggregateDelayMs: 5 }).start();
  t.after(() => fleet.stop());
  const client = apiClient(`127.0.0.1:${c.ports.api}`);
  t.after(() => client.close());
  await fleet.waitAllRegistered(10_000);
  const hashId = await register(client, fakeElf('hup'));
  const setup = await submit(client, { setup: { hash_id: hashId, with_hints: false, program_name: 'hup' } });
  assert.equal((await waitTerminal(client, setup)).job_status.status, 'completed');
  const first = await submit(client, { prove: { hash_id: hashId, input: inline(Buffer.alloc(8, 1)), proof_dest: 1 } });
  assert.equal((await waitTerminal(client, first)).job_status.status, 'completed');

  // logrotate: rename, then signal.
  fs.renameSync(logFile, `${logFile}.1`);
  await hangup(c, isReread);
  assert.ok(fs.existsSync(logFile), 'a new file at the configured path');
  const rotated = fileLines(`${logFile}.1`);
  assert.ok(rotated.some((l) => l.msg === 'zisk-coordinator serving'), 'lines before the rotation stay in the renamed file');
  assert.ok(rotated.every((l) => l.level !== 'debug'), 'at info no debug line is written');
  assert.ok(!c.lines.some((l) => l.level === 'debug'), 'nor on stdout');
  const fresh = await waitInFile(logFile, (l) => l.msg === `reopened log file ${logFile}`);
  assert.ok(!fresh.some((l) => l.msg === 'zisk-coordinator serving'), 'the new file starts at the reopen');

  // The operator raises the level in the TOML.
  fs.writeFileSync(config, toml('debug', logFile));
  const changed = await hangup(c, isReread);
  assert.equal(changed.msg, 'log level info -> debug');
  const second = await submit(client, { prove: { hash_id: hashId, input: inline(Buffer.alloc(8, 2)), proof_dest: 1 } });
  assert.equal((await waitTerminal(client, second)).job_status.status, 'completed');
  await c.waitForLine((l) => l.level === 'debug' && l.msg === `job ${second} completed`); // main thread
  await c.waitForLine((l) => l.level === 'debug' && l.msg === 'prove phase started' && l.job_id === second); // scheduler thread
  // And back: the file is the one at the path, and gets the debug lines too.
  fs.writeFileSync(config, toml('info', logFile));
  assert.equal((await hangup(c, isReread)).msg, 'log level debug -> info');
  await waitInFile(logFile, (l) => l.level === 'debug' && l.msg === 'prove phase started');

  c.kill('SIGTERM');
  assert.equal((await c.exited).code, 0);
});

test('SIGHUP with a broken TOML or an unopenable log path changes nothing and keeps serving', { timeout: 30_000 }, async (t) => {
  const dir = tempDir('zisk-hup-bad-');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const logDir = path.join(dir, 'logs');
  const logFile = path.join(logDir, 'coordinator.log');
  const config = path.join(dir, 'coordinator.toml');
  fs.writeFileSync(config, toml('info', logFile, '[backend]\nmode = "mock"'));
  const c = await spawnCoordinator({
    args: ['--config', config, '--api-port', '0', '--metrics-port', '0'],
    env: { ...LOOPBACK, ZISK_COORDINATOR_LOGGING_FORMAT: undefined },
  });
  t.after(() => stopCoordinator(c));

  fs.writeFileSync(config, '[logging]\nlevel = "debug\n');
  const refused = await hangup(c, isReread);
  assert.match(String(refused.msg), /^configuration not re-read \(.*coordinator\.toml: line 2: .*\): nothing changed, log level stays info$/);
  assert.equal(refused.level, 'error');

  fs.writeFileSync(config, toml('trace', logFile, '[backend]\nmode = "mock"'));
  assert.equal((await hangup(c, isReread)).msg, 'log level info -> trace');
  fs.writeFileSync(config, toml('nonsense', logFile, '[backend]\nmode = "mock"'));
  const badLevel = await hangup(c, isReread);
  assert.match(String(badLevel.msg), /configuration not re-read \(.*logging\.level.*\): nothing changed, log level stays trace/);

  // The log directory is moved away and a file takes its name: the path cannot be opened.
  fs.renameSync(logDir, `${logDir}.old`);
  fs.writeFileSync(logDir, 'not a directory');
  const failed = await hangup(c, (l) => l.level === 'error' && String(l.msg).startsWith('cannot open log file'));
  assert.match(String(failed.msg), new RegExp(`cannot open log file ${logFile}: .*; still writing to the previous file`));
  await hangup(c, isReread);
  // Still serving, and still writing to the file it had open.
  const health = await fetch(`http://127.0.0.1:${c.ports.metrics}/health`);
  assert.equal(health.status, 200);
  c.kill('SIGTERM');
  assert.equal((await c.exited).code, 0);
  const kept = fileLines(path.join(`${logDir}.old`, 'coordinator.log'));
  assert.ok(kept.some((l) => l.msg === 'zisk-coordinator stopped'), 'the old file got every later line');
});

test('SIGHUP keeps the precedence of the start: RUST_LOG still wins over the file', { timeout: 30_000 }, async (t) => {
  const dir = tempDir('zisk-hup-env-');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const config = path.join(dir, 'coordinator.toml');
  fs.writeFileSync(config, toml('warn', undefined, '[backend]\nmode = "mock"'));
  const c = await spawnCoordinator({
    args: ['--config', config, '--api-port', '0', '--metrics-port', '0'],
    env: { ...LOOPBACK, RUST_LOG: 'info' },
  });
  t.after(() => stopCoordinator(c));
  fs.writeFileSync(config, toml('debug', undefined, '[backend]\nmode = "mock"\n[server]\nshutdown_timeout_seconds = 5'));
  const line = await hangup(c, isReread);
  assert.equal(line.msg, 'configuration re-read: log level stays info');
  const later = await c.waitForLine((l) => String(l.msg).startsWith('changed in the configuration'));
  assert.deepEqual(later.keys, ['server.shutdown_timeout_seconds']);
  c.kill('SIGTERM');
  assert.equal((await c.exited).code, 0);
});
