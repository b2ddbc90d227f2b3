/**
 * Every directory the process needs is checked before anything binds, by `--check-config` and by a
 * normal start alike, in bounded time. Regressions: an unusable cache dir was only a log line (the
 * process served, `/health` said OK and every RegisterGuestProgram failed with INTERNAL), and a cache
 * dir under /proc made Node's recursive mkdir spin at 100 % CPU with nothing bound and SIGTERM ignored.
 *
 * The tests run as root, which passes every permission-bit test, so unusable paths are made from
 * what stops root too: a regular file where a directory should be or above it, and procfs.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isolatedEnv, runCli, type CliRun } from '../helpers/run-cli';
import { spawnCoordinator, stopCoordinator } from '../helpers/spawn-coordinator';
import { prepareDirectories, type DirectoryInput } from '../../src/main/process/directories';
import { defaultConfig } from '../../src/shared/config/schema';
import type { Config } from '../../src/shared/config/types';

/** A check is a handful of syscalls; this is the process start-up on a loaded 2-core box, with margin. */
const BOUND_MS = 10_000;
const EPHEMERAL = ['--api-port', '0', '--cluster-port', '0', '--metrics-port', '0'];
const LOOPBACK = { ZISK_COORDINATOR_SERVER_HOST: '127.0.0.1', ZISK_COORDINATOR_METRICS_HOST: '127.0.0.1' };
const hostEtcFile = fs.existsSync('/etc/zisk/coordinator.toml');

let root: string;
let home: string;
/** A regular file: the component that makes paths unusable even for root. */
let file: string;
/** A name under /proc that does not exist (mkdir there fails with ENOENT; Node's recursive mkdir spins). */
const procMissing = `/proc/zisk-coordinator-test-${process.pid}`;

before(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'zisk-dirs-'));
  home = path.join(root, 'home');
  fs.mkdirSync(home);
  file = path.join(root, 'a-file');
  fs.writeFileSync(file, 'not a directory\n');
});
after(() => fs.rmSync(root, { recursive: true, force: true }));

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

interface BadPath {
  kind: string;
  path: () => string;
  /** The reason at the end of the message. */
  reason: () => RegExp;
}

const UNWRITABLE: readonly BadPath[] = [
  { kind: 'a regular file', path: () => file, reason: () => /it is not a directory/ },
  { kind: 'a path whose parent is a regular file', path: () => path.join(file, 'dir'), reason: () => new RegExp(`cannot create it: ${escape(file)} is not a directory`) },
  { kind: 'a regular file further up (ENOTDIR)', path: () => path.join(file, 'a', 'b', 'dir'), reason: () => new RegExp(`cannot create it: ${escape(file)} is not a directory`) },
  { kind: 'a missing path under /proc', path: () => path.join(procMissing, 'dir'), reason: () => new RegExp(`cannot create it: ENOENT: .*mkdir '${escape(procMissing)}'`) },
  { kind: 'an existing directory nothing can be created in (/proc)', path: () => '/proc', reason: () => /cannot write in it: ENOENT: .*open '\/proc\/\.zisk-coordinator-probe\.[^']+'/ },
];

const UNREADABLE: readonly BadPath[] = [
  { kind: 'a missing directory (never created for reading)', path: () => path.join(root, 'no-such-inputs'), reason: () => /it does not exist/ },
  { kind: 'a regular file', path: () => file, reason: () => /it is not a directory/ },
  { kind: 'a path whose parent is a regular file', path: () => path.join(file, 'dir'), reason: () => new RegExp(`${escape(file)} is not a directory`) },
  { kind: 'a missing path under /proc', path: () => path.join(procMissing, 'dir'), reason: () => /it does not exist/ },
];

interface Setting {
  name: string;
  label: string;
  bad: readonly BadPath[];
  /** The configuration that points the setting at `dir`: TOML text and/or environment. */
  apply(dir: string, cwd: string): { env: NodeJS.ProcessEnv; origin: string };
}

function toml(cwd: string, text: string): string {
  const f = path.join(cwd, 'coordinator.toml');
  fs.writeFileSync(f, text);
  return f;
}

const SETTINGS: readonly Setting[] = [
  {
    name: '[coordinator] cache_dir',
    label: 'cache directory',
    bad: UNWRITABLE,
    apply: (dir, cwd) => {
      const f = toml(cwd, `[coordinator]\ncache_dir = ${JSON.stringify(dir)}\n`);
      return { env: {}, origin: `from [coordinator] cache_dir in ${f}` };
    },
  },
  {
    name: '[coordinator] proofs_dir',
    label: 'proofs directory',
    bad: UNWRITABLE,
    apply: (dir, cwd) => {
      const f = toml(cwd, `[coordinator]\nproofs_dir = ${JSON.stringify(dir)}\n`);
      return { env: {}, origin: `from [coordinator] proofs_dir in ${f}` };
    },
  },
  {
    name: '[coordinator] inputs_dir',
    label: 'inputs directory',
    bad: UNREADABLE,
    apply: (dir, cwd) => {
      const f = toml(cwd, `[coordinator]\ninputs_dir = ${JSON.stringify(dir)}\n`);
      return { env: {}, origin: `from [coordinator] inputs_dir in ${f}` };
    },
  },
  {
    // The log file's directory: Node's recursive mkdir of it under /proc blocked the main thread for good.
    name: '[logging] file_path',
    label: 'log file directory',
    bad: UNWRITABLE,
    apply: (dir, cwd) => {
      const f = toml(cwd, `[logging]\nfile_path = ${JSON.stringify(path.join(dir, 'coordinator.log'))}\n`);
      return { env: {}, origin: `from [logging] file_path in ${f}` };
    },
  },
];

/** The cache dir's other sources, each with one bad path, to show the message names the source. */
const CACHE_SOURCES: readonly { name: string; bad: BadPath; apply(dir: string): { env: NodeJS.ProcessEnv; shown: string; origin: string } }[] = [
  {
    name: 'ZISK_COORDINATOR_COORDINATOR_CACHE_DIR',
    bad: UNWRITABLE[1],
    apply: (dir) => ({
      env: { ZISK_COORDINATOR_COORDINATOR_CACHE_DIR: dir },
      shown: dir,
      origin: 'from [coordinator] cache_dir, set by ZISK_COORDINATOR_COORDINATOR_CACHE_DIR',
    }),
  },
  {
    name: 'ZISK_CACHE_DIR',
    bad: UNWRITABLE[3],
    apply: (dir) => ({ env: { ZISK_CACHE_DIR: dir }, shown: dir, origin: 'from ZISK_CACHE_DIR' }),
  },
  {
    name: 'ZISK_HOME',
    bad: UNWRITABLE[3],
    apply: (dir) => ({ env: { ZISK_HOME: dir }, shown: path.join(dir, 'cache'), origin: 'from ZISK_HOME' }),
  },
  {
    name: 'HOME (~/.zisk/cache)',
    bad: UNWRITABLE[1],
    apply: (dir) => ({ env: { HOME: dir }, shown: path.join(dir, '.zisk', 'cache'), origin: 'default ~/.zisk/cache' }),
  },
];

async function timed(args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<CliRun & { ms: number }> {
  const t0 = performance.now();
  const r = await runCli(args, { cwd, env: isolatedEnv(home, { ...LOOPBACK, ...env }), timeoutMs: BOUND_MS });
  return { ...r, ms: performance.now() - t0 };
}

/** `--check-config` and a normal start both exit 78 with exactly this one message, bind nothing, and log nothing. */
async function assertRefused(cwd: string, env: NodeJS.ProcessEnv, message: RegExp): Promise<void> {
  const [check, start] = await Promise.all([timed(['--check-config'], cwd, env), timed(EPHEMERAL, cwd, env)]);
  for (const [mode, r] of [['--check-config', check], ['start', start]] as const) {
    assert.equal(r.code, 78, `${mode}: exit 78 within ${BOUND_MS} ms (got ${r.code ?? r.signal} after ${Math.round(r.ms)} ms); stderr: ${r.stderr}; stdout: ${r.stdout.slice(0, 300)}`);
    assert.match(r.stderr, message, mode);
    assert.equal(r.stderr.split('\n').filter(Boolean).length, 1, `${mode}: one problem reported: ${r.stderr}`);
    // Not one log line: the logger, and so any listener, comes after the check.
    assert.equal(r.stdout, '', mode);
  }
}

function freshCwd(): string {
  return fs.mkdtempSync(path.join(root, 'cwd-'));
}

describe('an unusable directory stops the process before anything binds (exit 78)', { skip: hostEtcFile }, () => {
  for (const setting of SETTINGS) {
    for (const bad of setting.bad) {
      it(`${setting.name}: ${bad.kind}`, async () => {
        const cwd = freshCwd();
        const dir = bad.path();
        const { env, origin } = setting.apply(dir, cwd);
        const message = new RegExp(`^zisk-coordinator: error: ${escape(setting.label)} ${escape(dir)} \\(${escape(origin)}\\) is not usable: ${bad.reason().source}\n$`);
        await assertRefused(cwd, env, message);
      });
    }
  }

  for (const source of CACHE_SOURCES) {
    it(`the cache dir from ${source.name}: ${source.bad.kind}`, async () => {
      const cwd = freshCwd();
      const { env, shown, origin } = source.apply(source.bad.path());
      const message = new RegExp(`^zisk-coordinator: error: cache directory ${escape(shown)} \\(${escape(origin)}\\) is not usable: cannot create it: `);
      await assertRefused(cwd, env, message);
    });
  }

  it('every unusable directory is reported in one run', async () => {
    const cwd = freshCwd();
    toml(cwd, `[coordinator]\ncache_dir = "/proc"\nproofs_dir = ${JSON.stringify(path.join(file, 'p'))}\ninputs_dir = ${JSON.stringify(path.join(root, 'none'))}\n`);
    const r = await timed(['--check-config'], cwd, {});
    assert.equal(r.code, 78);
    assert.deepEqual(
      r.stderr.split('\n').filter(Boolean).map((l) => /^zisk-coordinator: error: (\w+ directory)/.exec(l)?.[1]),
      ['cache directory', 'proofs directory', 'inputs directory'],
    );
  });

  it('HOME=/nonexistent as a user who cannot create it: exit 78 naming ~/.zisk/cache', { skip: fs.existsSync('/nonexistent') }, async () => {
    const cwd = freshCwd();
    fs.chmodSync(root, 0o755);
    fs.chmodSync(cwd, 0o755);
    // As root, drop to nobody: root could create /nonexistent, which is the point of the test.
    const asNobody = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
    for (const args of [['--check-config'], EPHEMERAL]) {
      const r = await runCli(args, { cwd, env: isolatedEnv('/nonexistent', LOOPBACK), timeoutMs: BOUND_MS, ...asNobody });
      assert.equal(r.code, 78, `${args.join(' ')}: ${r.stderr}${r.stdout.slice(0, 300)}`);
      assert.equal(
        r.stderr,
        "zisk-coordinator: error: cache directory /nonexistent/.zisk/cache (default ~/.zisk/cache) is not usable: cannot create it: EACCES: permission denied, mkdir '/nonexistent'\n",
      );
    }
  });
});

describe('usable directories', { skip: hostEtcFile }, () => {
  it('--check-config creates the missing ones and names every checked directory', async () => {
    const cwd = freshCwd();
    const inputs = fs.mkdtempSync(path.join(root, 'inputs-'));
    const f = toml(
      cwd,
      `[coordinator]\ncache_dir = "state/cache"\nproofs_dir = ${JSON.stringify(path.join(root, 'out', 'proofs'))}\ninputs_dir = ${JSON.stringify(inputs)}\n` +
        '[logging]\nfile_path = "logs/coordinator.log"\n',
    );
    const r = await timed(['--check-config'], cwd, {});
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    const cache = path.join(cwd, 'state', 'cache');
    const proofs = path.join(root, 'out', 'proofs');
    assert.equal(
      r.stdout,
      `configuration OK (${f})\n` +
        `cache directory ${cache} (from [coordinator] cache_dir in ${f}): OK (created ${path.join(cwd, 'state')}, ${cache})\n` +
        `state directory ${path.join(cache, 'coordinator-state')} (default: coordinator-state in the cache directory): OK (created ${path.join(cache, 'coordinator-state')})\n` +
        `proofs directory ${proofs} (from [coordinator] proofs_dir in ${f}): OK (created ${path.join(root, 'out')}, ${proofs})\n` +
        `inputs directory ${inputs} (from [coordinator] inputs_dir in ${f}): OK\n` +
        `log file directory ${path.join(cwd, 'logs')} (from [logging] file_path in ${f}): OK (created ${path.join(cwd, 'logs')})\n`,
    );
    // The write probe leaves nothing behind.
    assert.deepEqual(fs.readdirSync(cache), ['coordinator-state']);
    assert.deepEqual(fs.readdirSync(path.join(cache, 'coordinator-state')), []);
    assert.deepEqual(fs.readdirSync(proofs), []);
    const again = await timed(['--check-config'], cwd, {});
    assert.match(again.stdout, new RegExp(`^cache directory ${escape(cache)} \\(.*\\): OK$`, 'm'), 'nothing to create the second time');
  });

  it('a normal start creates them and serves', async (t) => {
    const cwd = freshCwd();
    const cache = path.join(root, 'serve', 'cache');
    const proofs = path.join(root, 'serve', 'proofs');
    const c = await spawnCoordinator({
      args: EPHEMERAL,
      cwd,
      env: { ...LOOPBACK, ZISK_CACHE_DIR: cache, ZISK_COORDINATOR_COORDINATOR_PROOFS_DIR: proofs },
    });
    t.after(() => stopCoordinator(c));
    assert.ok(fs.statSync(cache).isDirectory());
    assert.ok(fs.statSync(proofs).isDirectory());
    assert.ok(c.lines.some((l) => l.cache_dir === cache && typeof l.msg === 'string' && l.msg.startsWith('program cache:')));
    c.kill('SIGTERM');
    assert.deepEqual(await c.exited, { code: 0, signal: null });
  });

  it('mock mode does not use the cache dir: an unusable one is no error', async (t) => {
    const cwd = freshCwd();
    const env = { ZISK_COORDINATOR_BACKEND_MODE: 'mock', ZISK_CACHE_DIR: path.join(procMissing, 'cache') };
    const r = await timed(['--check-config'], cwd, env);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      'configuration OK (no config file)\ncache directory: not used (mock mode keeps programs in memory)\n' +
        'state directory: not used (mock mode keeps jobs in memory)\n',
    );
    const c = await spawnCoordinator({ args: EPHEMERAL, cwd, env: { ...LOOPBACK, ...env } });
    t.after(() => stopCoordinator(c));
    c.kill('SIGTERM');
    assert.deepEqual(await c.exited, { code: 0, signal: null });
  });
});

describe('prepareDirectories', () => {
  const input = (coordinator: Partial<Config['coordinator']>, env: NodeJS.ProcessEnv, homeDir = home): DirectoryInput => {
    const base = defaultConfig();
    return { config: { ...base, coordinator: { ...base.coordinator, ...coordinator } }, env, homeDir, cwd: root };
  };

  it('cache: [coordinator] cache_dir, then $ZISK_CACHE_DIR, then $ZISK_HOME/cache, then ~/.zisk/cache', () => {
    const d = (name: string): string => path.join(root, 'resolve', name);
    const env = { ZISK_CACHE_DIR: d('env'), ZISK_HOME: d('zisk-home') };
    assert.equal(prepareDirectories(input({ cache_dir: d('config') }, env)).directories.cache, d('config'));
    assert.equal(prepareDirectories(input({}, env)).directories.cache, d('env'));
    assert.equal(prepareDirectories(input({}, { ZISK_HOME: d('zisk-home') })).directories.cache, path.join(d('zisk-home'), 'cache'));
    assert.equal(prepareDirectories(input({}, {}, d('home'))).directories.cache, path.join(d('home'), '.zisk', 'cache'));
  });

  it('relative settings resolve against the working directory; unset ones stay unset', () => {
    const { directories } = prepareDirectories(input({ cache_dir: 'rel/cache', proofs_dir: 'rel/proofs' }, {}));
    assert.deepEqual(directories, {
      cache: path.join(root, 'rel', 'cache'),
      proofs: path.join(root, 'rel', 'proofs'),
      inputs: undefined,
      logs: undefined,
      state: path.join(root, 'rel', 'cache', 'coordinator-state'),
    });
  });
});
