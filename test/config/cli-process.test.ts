import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parse } from 'smol-toml';
import { isolatedEnv, runCli } from '../helpers/run-cli';

// The binary always looks at the real /etc/zisk/coordinator.toml; on a host that has one, tests that
// expect pure defaults would be wrong, so they are skipped there.
const hostEtcFile = fs.existsSync('/etc/zisk/coordinator.toml');

let root: string;
let home: string;
let cwd: string;

before(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'zc-cli-'));
  home = path.join(root, 'home');
  fs.mkdirSync(home);
});
after(() => fs.rmSync(root, { recursive: true, force: true }));

/** A fresh working directory per test, so a ./coordinator.toml never leaks between tests. */
function freshCwd(): string {
  cwd = fs.mkdtempSync(path.join(root, 'cwd-'));
  return cwd;
}

function write(file: string, text: string): string {
  const abs = path.resolve(cwd, file);
  fs.mkdirSync(path.dirname(abs), { recursive: true });
  fs.writeFileSync(abs, text);
  return abs;
}

function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  return runCli(args, { cwd, env: isolatedEnv(home, env) });
}

function line(toml: string, section: string, key: string): string {
  const lines = toml.split('\n');
  const start = lines.indexOf(`[${section}]`);
  const found = lines.slice(start + 1).find((l) => l.startsWith(`${key} = `) || l.startsWith(`# ${key} = `));
  assert.ok(start >= 0 && found !== undefined, `${section}.${key} not printed`);
  return found;
}

describe('zisk-coordinator binary', () => {
  it('--print-config with nothing set prints the defaults', { skip: hostEtcFile }, async () => {
    freshCwd();
    const r = await run(['--print-config']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    const parsed = parse(r.stdout) as Record<string, Record<string, unknown>>;
    assert.equal(parsed.server.port, 7000);
    assert.equal(parsed.coordinator.port, 50051);
    assert.equal(parsed.metrics.port, 9090);
    assert.equal(line(r.stdout, 'server', 'port'), 'port = 7000  # default');
    assert.match(r.stdout, /^# Files read: \(none\)$/m);
  });

  it('--print-config shows each layer: file, env, CLI', { skip: hostEtcFile }, async () => {
    freshCwd();
    const file = write('coordinator.toml', '[server]\nport = 7000\nshutdown_timeout_seconds = 12\n[metrics]\nport = 9100\n[coordinator]\nport = 50060\n');
    const xdgFile = write(path.join(home, '.xdg', 'zisk', 'coordinator.toml'), '[logging]\nformat = "json"\n');
    try {
      const r = await run(['--print-config', '--cluster-port', '50070'], {
        ZISK_COORDINATOR_API_PORT: '7001',
        ZISK_COORDINATOR_COORDINATOR_MAX_TOTAL_WORKERS: '77',
        RUST_LOG: 'debug,h2=info',
      });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(line(r.stdout, 'server', 'port'), 'port = 7001  # from env ZISK_COORDINATOR_API_PORT');
      assert.equal(line(r.stdout, 'server', 'shutdown_timeout_seconds'), `shutdown_timeout_seconds = 12  # from ${file}`);
      assert.equal(line(r.stdout, 'metrics', 'port'), `port = 9100  # from ${file}`);
      assert.equal(line(r.stdout, 'coordinator', 'port'), 'port = 50070  # from --cluster-port');
      assert.equal(line(r.stdout, 'coordinator', 'max_total_workers'), 'max_total_workers = 77  # from env ZISK_COORDINATOR_COORDINATOR_MAX_TOTAL_WORKERS');
      assert.equal(line(r.stdout, 'logging', 'level'), 'level = "debug"  # from env RUST_LOG');
      assert.equal(line(r.stdout, 'logging', 'format'), `format = "json"  # from ${xdgFile}`);
      assert.match(r.stdout, new RegExp(`^# Files read: ${xdgFile}, ${file}$`, 'm'));
    } finally {
      fs.rmSync(xdgFile);
    }
  });

  it('the seed example: TOML 7000 < ZISK_COORDINATOR_API_PORT=7001 < --api-port 8000', async () => {
    freshCwd();
    const file = write('seed.toml', '[server]\nport = 7000\n');
    const env = { ZISK_COORDINATOR_API_PORT: '7001' };
    const fromEnv = await run(['--config', file, '--print-config'], env);
    assert.equal(line(fromEnv.stdout, 'server', 'port'), 'port = 7001  # from env ZISK_COORDINATOR_API_PORT');
    const fromCli = await run(['--config', file, '--print-config', '--api-port', '8000'], env);
    assert.equal(line(fromCli.stdout, 'server', 'port'), 'port = 8000  # from --api-port');
  });

  it('--check-config prints warnings to stderr, "configuration OK (<files>)" and the checked directories to stdout', async () => {
    freshCwd();
    const file = write('c.toml', '[server]\nport = 7100\nbogus = 1\n');
    const r = await run(['--config', 'c.toml', '--check-config']);
    assert.equal(r.code, 0, r.stderr);
    const cache = path.join(home, '.zisk', 'cache');
    const state = path.join(cache, 'coordinator-state');
    assert.match(
      r.stdout,
      new RegExp(
        `^configuration OK \\(${file}\\)\ncache directory ${cache} \\(default ~/\\.zisk/cache\\): OK( \\(created [^)]*\\))?\n` +
          `state directory ${state} \\(default: coordinator-state in the cache directory\\): OK( \\(created [^)]*\\))?\n$`,
      ),
    );
    assert.equal(r.stderr, `zisk-coordinator: warning: ${file}: unknown key server.bogus (ignored)\n`);
  });

  it('invalid TOML exits 78 with the file, line and column', async () => {
    freshCwd();
    const file = write('bad.toml', '[server]\nport = = 1\n');
    const r = await run(['--config', file, '--check-config']);
    assert.equal(r.code, 78);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, new RegExp(`^zisk-coordinator: error: ${file}: line 2, column \\d+: .+\n$`));
  });

  it('--check-config --strict exits 78 on an unknown key', async () => {
    freshCwd();
    const file = write('c.toml', '[server]\nport = 7100\nbogus = 1\n');
    const r = await run(['--config', 'c.toml', '--check-config', '--strict']);
    assert.equal(r.code, 78);
    assert.equal(r.stderr, `zisk-coordinator: error: ${file}: unknown key server.bogus\n`);
  });

  it('a wrong type exits 78 naming the key', async () => {
    freshCwd();
    const file = write('coordinator.toml', '[server]\nport = "seven"\n');
    const r = await run(['--check-config']);
    assert.equal(r.code, 78);
    assert.equal(r.stderr, `zisk-coordinator: error: ${file}: server.port: expected an integer between 0 and 65535, got "seven"\n`);
  });

  it('a wrong type in the environment exits 78 naming the variable', async () => {
    freshCwd();
    const r = await run(['--print-config'], { ZISK_COORDINATOR_METRICS_ENABLED: 'yes' });
    assert.equal(r.code, 78);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, 'zisk-coordinator: error: ZISK_COORDINATOR_METRICS_ENABLED: metrics.enabled: expected true, false, 1 or 0, got "yes"\n');
  });

  it('a missing --config or ZISK_COORDINATOR_CONFIG file exits 78', async () => {
    freshCwd();
    const r = await run(['--config', 'missing.toml']);
    assert.equal(r.code, 78);
    assert.equal(r.stderr, `zisk-coordinator: error: --config: config file not found: ${path.join(cwd, 'missing.toml')}\n`);
    const e = await run([], { ZISK_COORDINATOR_CONFIG: '/nonexistent/coordinator.toml' });
    assert.equal(e.code, 78);
    assert.equal(e.stderr, 'zisk-coordinator: error: ZISK_COORDINATOR_CONFIG: config file not found: /nonexistent/coordinator.toml\n');
  });

  for (const args of [['--api-port', 'abc'], ['--api-port', '70000'], ['--bogus-flag'], ['--log-level', 'loud']]) {
    it(`${args.join(' ')} is a usage error (exit 2)`, async () => {
      freshCwd();
      const r = await run(args);
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /^zisk-coordinator: error: .+\nTry 'zisk-coordinator --help' for more information\.\n$/);
    });
  }

  it('--help exits 0 with the usage text', async () => {
    freshCwd();
    const r = await run(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^Usage: zisk-coordinator \[OPTIONS\]/);
    assert.match(r.stdout, /--api-port <port>/);
    assert.equal(r.stderr, '');
  });

  it('--version exits 0 with "zisk-coordinator <version>"', async () => {
    freshCwd();
    const r = await run(['--version']);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, 'zisk-coordinator 0.18.0\n');
  });
});
