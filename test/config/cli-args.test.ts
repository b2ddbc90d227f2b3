import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseCommandLine } from '../../src/main/process/cli-args';

function usageError(argv: string[]): string {
  const r = parseCommandLine(argv);
  assert.equal(r.kind, 'exit');
  if (r.kind !== 'exit') throw new Error('unreachable');
  assert.equal(r.code, 2, JSON.stringify(r));
  assert.equal(r.stdout, undefined);
  assert.ok(r.stderr?.startsWith('zisk-coordinator: error: '), r.stderr);
  assert.ok(r.stderr?.endsWith("Try 'zisk-coordinator --help' for more information.\n"));
  return r.stderr ?? '';
}

describe('parseCommandLine', () => {
  it('no arguments → run with nothing overridden', () => {
    assert.deepEqual(parseCommandLine([]), { kind: 'run', options: { printConfig: false, checkConfig: false } });
  });

  it('parses every flag', () => {
    const r = parseCommandLine([
      '--config', 'c.toml', '-a', '7001', '--cluster-port', '50052', '--metrics-port=9091', '--log-level', 'DEBUG', '--print-config',
    ]);
    assert.deepEqual(r, {
      kind: 'run',
      options: { config: 'c.toml', apiPort: 7001, clusterPort: 50052, metricsPort: 9091, logLevel: 'debug', printConfig: true, checkConfig: false },
    });
    assert.deepEqual(parseCommandLine(['--api-port', '0', '--check-config']), {
      kind: 'run',
      options: { apiPort: 0, printConfig: false, checkConfig: true },
    });
  });

  it('usage errors exit 2 with a clear message', () => {
    assert.match(usageError(['--api-port', 'abc']), /--api-port <port>' argument 'abc' is invalid\. Expected an integer from 0 to 65535/);
    assert.match(usageError(['--api-port', '70000']), /argument '70000' is invalid/);
    assert.match(usageError(['--cluster-port', '-1']), /--cluster-port/);
    assert.match(usageError(['--metrics-port', '1.5']), /argument '1\.5' is invalid/);
    assert.match(usageError(['--api-port']), /argument missing/);
    assert.match(usageError(['--log-level', 'verbose']), /Allowed levels: trace, debug, info, warn, error/);
    assert.match(usageError(['--bogus']), /unknown option '--bogus'/);
    assert.match(usageError(['serve']), /too many arguments/);
    assert.match(usageError(['--print-config', '--check-config']), /cannot be used with/);
  });

  it('--help → exit 0 with flags, env vars, defaults, precedence and search order', () => {
    for (const flag of ['--help', '-h']) {
      const r = parseCommandLine([flag]);
      assert.equal(r.kind, 'exit');
      if (r.kind !== 'exit') return;
      assert.equal(r.code, 0);
      assert.equal(r.stderr, undefined);
      const help = r.stdout ?? '';
      assert.match(help, /^Usage: zisk-coordinator \[OPTIONS\]/);
      for (const s of [
        '--config <path>', '-a, --api-port <port>', '--cluster-port <port>', '--metrics-port <port>', '--log-level <level>',
        '--print-config', '--check-config', '-V, --version', '-h, --help',
        'ZISK_COORDINATOR_API_PORT', 'ZISK_COORDINATOR_CLUSTER_PORT', 'ZISK_COORDINATOR_METRICS_PORT', 'ZISK_COORDINATOR_CONFIG', 'RUST_LOG',
        'default: 7000', 'default: 50051', 'default: 9090', 'default: info',
        'built-in defaults < TOML file(s) < environment variables < command-line flags',
        '/etc/zisk/coordinator.toml', '$XDG_CONFIG_HOME/zisk/coordinator.toml', './coordinator.toml',
      ]) {
        assert.ok(help.replace(/\s+/g, ' ').includes(s), `help lacks ${s}`);
      }
      assert.ok(help.indexOf('/etc/zisk') < help.indexOf('$XDG_CONFIG_HOME') && help.indexOf('$XDG_CONFIG_HOME') < help.indexOf('./coordinator.toml'));
    }
  });

  it('--version → exit 0 with "zisk-coordinator <version>"', () => {
    assert.deepEqual(parseCommandLine(['--version']), { kind: 'exit', code: 0, stdout: 'zisk-coordinator 0.18.0\n' });
    assert.deepEqual(parseCommandLine(['-V']), { kind: 'exit', code: 0, stdout: 'zisk-coordinator 0.18.0\n' });
  });

  it('is reentrant (a fresh parser per call)', () => {
    parseCommandLine(['--api-port', '1']);
    assert.deepEqual(parseCommandLine([]), { kind: 'run', options: { printConfig: false, checkConfig: false } });
  });
});
