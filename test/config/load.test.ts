import { describe, it, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError, loadConfig, type CliOverrides, type LoadedConfig } from '../../src/shared/config/load';
import { CONFIG_KEYS, packageVersion } from '../../src/shared/config/schema';

// --- fixture: a throwaway root with etc/, home/, xdg/ and cwd/ so nothing on the host is read --------

const roots: string[] = [];

interface Fixture {
  root: string;
  etcFile: string;
  xdgFile: string;
  homeFile: string;
  cwd: string;
  cwdFile: string;
  write(file: string, text: string): string;
  load(opts?: { cli?: CliOverrides; env?: NodeJS.ProcessEnv; xdg?: boolean }): LoadedConfig;
  fail(opts?: { cli?: CliOverrides; env?: NodeJS.ProcessEnv }): ConfigError;
}

function fixture(): Fixture {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'zc-config-'));
  roots.push(root);
  const cwd = path.join(root, 'cwd');
  fs.mkdirSync(cwd);
  const f: Fixture = {
    root,
    cwd,
    etcFile: path.join(root, 'etc', 'zisk', 'coordinator.toml'),
    xdgFile: path.join(root, 'xdg', 'zisk', 'coordinator.toml'),
    homeFile: path.join(root, 'home', '.config', 'zisk', 'coordinator.toml'),
    cwdFile: path.join(cwd, 'coordinator.toml'),
    write(file, text) {
      const abs = path.resolve(cwd, file);
      fs.mkdirSync(path.dirname(abs), { recursive: true });
      fs.writeFileSync(abs, text);
      return abs;
    },
    load(opts = {}) {
      const env: NodeJS.ProcessEnv = opts.xdg === false ? {} : { XDG_CONFIG_HOME: path.join(root, 'xdg') };
      return loadConfig({
        cli: opts.cli ?? {},
        env: { ...env, ...opts.env },
        cwd,
        homeDir: path.join(root, 'home'),
        etcDir: path.join(root, 'etc'),
      });
    },
    fail(opts = {}) {
      try {
        f.load(opts);
      } catch (err) {
        assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
        assert.equal(err.exitCode, 78);
        return err;
      }
      assert.fail('expected a ConfigError');
    },
  };
  return f;
}

afterEach(() => {
  for (const r of roots.splice(0)) fs.rmSync(r, { recursive: true, force: true });
});

const src = (l: LoadedConfig, key: string): unknown => l.sources.get(key);

// --- defaults --------------------------------------------------------------------------------------

describe('defaults', () => {
  it('match the documented defaults when nothing is set', () => {
    const l = fixture().load();
    assert.deepEqual(l.config, {
      service: { name: 'ZisK Coordinator', version: packageVersion(), environment: 'development' },
      server: { host: '0.0.0.0', port: 7000, shutdown_timeout_seconds: 30, max_message_bytes: 134217728, http2_window_bytes: 4194304, keepalive_time_seconds: 30, keepalive_timeout_seconds: 10 },
      metrics: { enabled: true, host: '0.0.0.0', port: 9090 },
      logging: { level: 'info', format: 'pretty' },
      backend: { mode: 'coordinator' },
      coordinator: {
        port: 50051,
        job_ttl_seconds: 3600,
        job_monitor_interval_seconds: 10,
        phase1_timeout_seconds: 300,
        phase2_timeout_seconds: 600,
        phase3_timeout_seconds: 100,
        execution_timeout_seconds: 300,
        heartbeat_interval_seconds: 30,
        heartbeat_max_missed: 3,
        stale_disconnected_threshold_seconds: 300,
        reconnect_grace_period_ms: 500,
        default_compute_units: 0,
        min_compute_units: 1,
        max_total_workers: 1000,
        max_workers_per_job: 0,
        max_queued_jobs: 1024,
        max_watchers_per_job: 64,
        max_watchers: 10000,
        max_unregistered_streams: 10000,
        queue_timeout_seconds: 0,
        setup_timeout_seconds: 600,
        max_retained_jobs: 10000,
        handshake_timeout_seconds: 10,
        recovery_timeout_seconds: 360,
        wrap_timeout_seconds: 600,
        max_worker_queue_bytes: 268435456,
        max_egress_bytes: 536870912,
        max_job_attempts: 3,
        keepalive_time_seconds: 0,
        keepalive_timeout_seconds: 10,
        scheduler_thread: true,
        bind_worker_id_to_cert: false,
      },
      state: { backend: 'embedded', spool_max_bytes: 1073741824, min_free_bytes: 536870912 },
    });
    assert.deepEqual(l.files, []);
    assert.deepEqual(l.warnings, []);
    assert.equal(l.sources.size, CONFIG_KEYS.length);
    for (const s of l.sources.values()) assert.deepEqual(s, { kind: 'default' });
  });

  it('service.version is the package version and cannot be set', () => {
    const f = fixture();
    const file = f.write('c.toml', '[service]\nversion = "9.9.9"\nname = "x"\n');
    const l = f.load({ cli: { config: file }, env: { ZISK_COORDINATOR_SERVICE_VERSION: '1.0.0' } });
    assert.equal(l.config.service.version, '0.18.0');
    assert.equal(l.config.service.name, 'x');
    assert.deepEqual(src(l, 'service.version'), { kind: 'default' });
    assert.ok(l.warnings.some((w) => w === `${file}: service.version cannot be set (always 0.18.0; ignored)`), l.warnings.join('\n'));
    assert.ok(l.warnings.some((w) => w.startsWith('ZISK_COORDINATOR_SERVICE_VERSION: service.version cannot be set')));
  });
});

// --- precedence for each of the three ports ------------------------------------------------------------

const PORTS = [
  { key: 'server.port', section: 'server', flag: '--api-port', cli: 'apiPort', upstream: 'ZISK_COORDINATOR_API_PORT', generic: 'ZISK_COORDINATOR_SERVER_PORT', def: 7000 },
  { key: 'coordinator.port', section: 'coordinator', flag: '--cluster-port', cli: 'clusterPort', upstream: 'ZISK_COORDINATOR_CLUSTER_PORT', generic: 'ZISK_COORDINATOR_COORDINATOR_PORT', def: 50051 },
  { key: 'metrics.port', section: 'metrics', flag: '--metrics-port', cli: 'metricsPort', upstream: 'ZISK_COORDINATOR_METRICS_PORT', generic: 'ZISK_COORDINATOR_METRICS_PORT', def: 9090 },
] as const;

function port(l: LoadedConfig, key: string): number {
  const [section] = key.split('.');
  return (l.config as unknown as Record<string, { port: number }>)[section].port;
}

describe('precedence: defaults < TOML < env < CLI, for each port', () => {
  for (const p of PORTS) {
    describe(p.key, () => {
      it('default', () => {
        const l = fixture().load();
        assert.equal(port(l, p.key), p.def);
        assert.deepEqual(src(l, p.key), { kind: 'default' });
      });

      it('TOML beats the default', () => {
        const f = fixture();
        const file = f.write('coordinator.toml', `[${p.section}]\nport = 1111\n`);
        const l = f.load();
        assert.equal(port(l, p.key), 1111);
        assert.deepEqual(src(l, p.key), { kind: 'file', path: file });
      });

      it('upstream env name beats TOML', () => {
        const f = fixture();
        f.write('coordinator.toml', `[${p.section}]\nport = 1111\n`);
        const l = f.load({ env: { [p.upstream]: '2222' } });
        assert.equal(port(l, p.key), 2222);
        assert.deepEqual(src(l, p.key), { kind: 'env', name: p.upstream });
      });

      it('generic env name beats TOML', () => {
        const f = fixture();
        f.write('coordinator.toml', `[${p.section}]\nport = 1111\n`);
        const l = f.load({ env: { [p.generic]: '3333' } });
        assert.equal(port(l, p.key), 3333);
        assert.deepEqual(src(l, p.key), { kind: 'env', name: p.generic });
      });

      it('CLI beats env and TOML', () => {
        const f = fixture();
        f.write('coordinator.toml', `[${p.section}]\nport = 1111\n`);
        const l = f.load({ env: { [p.upstream]: '2222', [p.generic]: '3333' }, cli: { [p.cli]: 4444 } });
        assert.equal(port(l, p.key), 4444);
        assert.deepEqual(src(l, p.key), { kind: 'cli', flag: p.flag });
      });

      it('port 0 and 65535 are accepted, 65536 and -1 are not', () => {
        const f = fixture();
        assert.equal(port(f.load({ env: { [p.upstream]: '0' } }), p.key), 0);
        assert.equal(port(f.load({ env: { [p.upstream]: '65535' } }), p.key), 65535);
        assert.deepEqual(f.fail({ env: { [p.upstream]: '65536' } }).problems, [
          `${p.upstream}: ${p.key}: expected an integer between 0 and 65535, got "65536"`,
        ]);
        f.write('bad.toml', `[${p.section}]\nport = -1\n`);
        assert.deepEqual(f.fail({ cli: { config: 'bad.toml' } }).problems, [
          `${path.join(f.cwd, 'bad.toml')}: ${p.key}: expected an integer between 0 and 65535, got -1`,
        ]);
      });
    });
  }

  it('the seed example: TOML 7000, ZISK_COORDINATOR_API_PORT=7001 → 7001, plus --api-port 8000 → 8000', () => {
    const f = fixture();
    const file = f.write('seed.toml', '[server]\nport = 7000\n');
    assert.equal(f.load({ cli: { config: file } }).config.server.port, 7000);
    const envOnly = f.load({ cli: { config: file }, env: { ZISK_COORDINATOR_API_PORT: '7001' } });
    assert.equal(envOnly.config.server.port, 7001);
    assert.deepEqual(src(envOnly, 'server.port'), { kind: 'env', name: 'ZISK_COORDINATOR_API_PORT' });
    const withCli = f.load({ cli: { config: file, apiPort: 8000 }, env: { ZISK_COORDINATOR_API_PORT: '7001' } });
    assert.equal(withCli.config.server.port, 8000);
    assert.deepEqual(src(withCli, 'server.port'), { kind: 'cli', flag: '--api-port' });
  });
});

// --- TOML file selection --------------------------------------------------------------------------------

describe('TOML file selection', () => {
  it('merges /etc, XDG and ./coordinator.toml in that order, key by key', () => {
    const f = fixture();
    f.write(f.etcFile, '[server]\nport = 1\nhost = "10.0.0.1"\nshutdown_timeout_seconds = 11\n[logging]\nformat = "json"\n');
    f.write(f.xdgFile, '[server]\nport = 2\nhost = "10.0.0.2"\n');
    f.write(f.cwdFile, '[server]\nport = 3\n');
    const l = f.load();
    assert.deepEqual(l.files, [f.etcFile, f.xdgFile, f.cwdFile]);
    assert.equal(l.config.server.port, 3);
    assert.equal(l.config.server.host, '10.0.0.2');
    assert.equal(l.config.server.shutdown_timeout_seconds, 11);
    assert.equal(l.config.logging.format, 'json');
    assert.deepEqual(src(l, 'server.port'), { kind: 'file', path: f.cwdFile });
    assert.deepEqual(src(l, 'server.host'), { kind: 'file', path: f.xdgFile });
    assert.deepEqual(src(l, 'server.shutdown_timeout_seconds'), { kind: 'file', path: f.etcFile });
    assert.deepEqual(src(l, 'logging.format'), { kind: 'file', path: f.etcFile });
  });

  it('uses ~/.config when XDG_CONFIG_HOME is unset, and ignores a relative XDG_CONFIG_HOME', () => {
    const f = fixture();
    f.write(f.homeFile, '[metrics]\nport = 9191\n');
    f.write(f.xdgFile, '[metrics]\nport = 9292\n');
    const unset = f.load({ xdg: false });
    assert.deepEqual(unset.files, [f.homeFile]);
    assert.equal(unset.config.metrics.port, 9191);
    const relative = f.load({ xdg: false, env: { XDG_CONFIG_HOME: 'xdg' } });
    assert.deepEqual(relative.files, [f.homeFile]);
  });

  it('XDG_CONFIG_HOME replaces ~/.config', () => {
    const f = fixture();
    f.write(f.homeFile, '[metrics]\nport = 9191\n');
    f.write(f.xdgFile, '[metrics]\nport = 9292\n');
    const l = f.load();
    assert.deepEqual(l.files, [f.xdgFile]);
    assert.equal(l.config.metrics.port, 9292);
  });

  it('--config reads only that file (relative to cwd) and replaces the well-known files', () => {
    const f = fixture();
    f.write(f.etcFile, '[server]\nhost = "10.0.0.1"\n');
    f.write(f.xdgFile, '[server]\nport = 2\n');
    f.write(f.cwdFile, '[server]\nport = 3\n');
    const explicit = f.write('conf/explicit.toml', '[metrics]\nenabled = false\n');
    const l = f.load({ cli: { config: 'conf/explicit.toml' } });
    assert.deepEqual(l.files, [explicit]);
    assert.equal(l.config.server.port, 7000);
    assert.equal(l.config.server.host, '0.0.0.0');
    assert.equal(l.config.metrics.enabled, false);
    assert.deepEqual(src(l, 'metrics.enabled'), { kind: 'file', path: explicit });
  });

  it('ZISK_COORDINATOR_CONFIG selects the file; --config beats it', () => {
    const f = fixture();
    f.write(f.cwdFile, '[server]\nport = 3\n');
    const a = f.write('a.toml', '[server]\nport = 10\n');
    const b = f.write('b.toml', '[server]\nport = 20\n');
    const envOnly = f.load({ env: { ZISK_COORDINATOR_CONFIG: 'a.toml' } });
    assert.deepEqual(envOnly.files, [a]);
    assert.equal(envOnly.config.server.port, 10);
    const both = f.load({ env: { ZISK_COORDINATOR_CONFIG: a }, cli: { config: b } });
    assert.deepEqual(both.files, [b]);
    assert.equal(both.config.server.port, 20);
  });

  it('a missing --config or ZISK_COORDINATOR_CONFIG file is a config error', () => {
    const f = fixture();
    assert.deepEqual(f.fail({ cli: { config: 'nope.toml' } }).problems, [
      `--config: config file not found: ${path.join(f.cwd, 'nope.toml')}`,
    ]);
    assert.deepEqual(f.fail({ env: { ZISK_COORDINATOR_CONFIG: '/nonexistent/x.toml' } }).problems, [
      'ZISK_COORDINATOR_CONFIG: config file not found: /nonexistent/x.toml',
    ]);
  });

  it('a well-known file that is malformed still aborts', () => {
    const f = fixture();
    f.write(f.xdgFile, '[server\n');
    const err = f.fail();
    assert.match(err.message, new RegExp(`^${escapeRe(f.xdgFile)}: line 1: `));
  });

  describe('TOML mistakes are explained in words a user can act on', () => {
    const cases: [string, string, string][] = [
      ['a string not closed', '[server]\nhost = "0.0.0.0\nport = 7000\n', 'line 2: the value of host is a string that is not closed: add the closing " on the same line'],
      ['a literal string not closed', "[server]\nhost = '0.0.0.0\n", "line 2: the value of host is a string that is not closed: add the closing ' on the same line"],
      ['a header without its ]', '[coordinator]\nport = 50051\n[server\nport = 7000\n', 'line 3: the table header [server is missing its closing ]'],
      ['an array header without its ]]', '[[server]\n', 'line 1: the table header [[server is missing its closing ]]'],
      ['anything else: the parser, with line and column', '[server]\nport = 7000 x\n', 'line 2, column 13: each key-value declaration must be followed by an end-of-line'],
    ];
    for (const [name, text, problem] of cases) {
      it(name, () => {
        const f = fixture();
        f.write(f.cwdFile, text);
        assert.deepEqual(f.fail().problems, [`${f.cwdFile}: ${problem}`]);
      });
    }
    it('quotes inside comments and closed strings are not taken for mistakes', () => {
      const f = fixture();
      f.write(f.cwdFile, '[server]\n# a "quoted\nhost = "127.0.0.1" # it\'s local\nport = 7000\n');
      assert.equal(f.load().config.server.host, '127.0.0.1');
    });
  });
});

// --- environment --------------------------------------------------------------------------------------------

describe('environment', () => {
  it('every key has ZISK_COORDINATOR_<SECTION>_<KEY>, applied literally', () => {
    const f = fixture();
    const l = f.load({
      env: {
        ZISK_COORDINATOR_COORDINATOR_MAX_TOTAL_WORKERS: '42',
        ZISK_COORDINATOR_SERVER_SHUTDOWN_TIMEOUT_SECONDS: '5',
        ZISK_COORDINATOR_SERVER_HOST: '127.0.0.1',
        ZISK_COORDINATOR_LOGGING_FORMAT: 'json',
        ZISK_COORDINATOR_COORDINATOR_INPUTS_DIR: '/tmp/in',
        ZISK_COORDINATOR_SERVER_MAX_MESSAGE_BYTES: '1048576',
        ZISK_COORDINATOR_BACKEND_MODE: 'mock',
      },
    });
    assert.equal(l.config.coordinator.max_total_workers, 42);
    assert.equal(l.config.server.shutdown_timeout_seconds, 5);
    assert.equal(l.config.server.host, '127.0.0.1');
    assert.equal(l.config.logging.format, 'json');
    assert.equal(l.config.coordinator.inputs_dir, '/tmp/in');
    assert.equal(l.config.server.max_message_bytes, 1048576);
    assert.equal(l.config.backend.mode, 'mock');
    assert.deepEqual(src(l, 'coordinator.max_total_workers'), { kind: 'env', name: 'ZISK_COORDINATOR_COORDINATOR_MAX_TOTAL_WORKERS' });
    assert.deepEqual(src(l, 'server.shutdown_timeout_seconds'), { kind: 'env', name: 'ZISK_COORDINATOR_SERVER_SHUTDOWN_TIMEOUT_SECONDS' });
    assert.deepEqual(l.warnings, []);
  });

  it('env beats TOML for generic names', () => {
    const f = fixture();
    f.write(f.cwdFile, '[coordinator]\nmax_total_workers = 7\n');
    const l = f.load({ env: { ZISK_COORDINATOR_COORDINATOR_MAX_TOTAL_WORKERS: '8' } });
    assert.equal(l.config.coordinator.max_total_workers, 8);
  });

  it('upstream name wins over the generic name, with a warning naming both', () => {
    const f = fixture();
    const l = f.load({
      env: {
        ZISK_COORDINATOR_API_PORT: '7001',
        ZISK_COORDINATOR_SERVER_PORT: '7002',
        ZISK_COORDINATOR_CLUSTER_PORT: '50001',
        ZISK_COORDINATOR_COORDINATOR_PORT: '50002',
      },
    });
    assert.equal(l.config.server.port, 7001);
    assert.equal(l.config.coordinator.port, 50001);
    assert.deepEqual(l.warnings, [
      'both ZISK_COORDINATOR_API_PORT and ZISK_COORDINATOR_SERVER_PORT are set; ZISK_COORDINATOR_API_PORT wins for server.port',
      'both ZISK_COORDINATOR_CLUSTER_PORT and ZISK_COORDINATOR_COORDINATOR_PORT are set; ZISK_COORDINATOR_CLUSTER_PORT wins for coordinator.port',
    ]);
  });

  it('the losing variable is still validated', () => {
    const f = fixture();
    const err = f.fail({ env: { ZISK_COORDINATOR_API_PORT: '7001', ZISK_COORDINATOR_SERVER_PORT: 'x' } });
    assert.deepEqual(err.problems, ['ZISK_COORDINATOR_SERVER_PORT: server.port: expected an integer between 0 and 65535, got "x"']);
  });

  it('empty variables count as unset', () => {
    const f = fixture();
    const l = f.load({ env: { ZISK_COORDINATOR_API_PORT: '', RUST_LOG: '', ZISK_COORDINATOR_CONFIG: '' } });
    assert.equal(l.config.server.port, 7000);
    assert.equal(l.config.logging.level, 'info');
    assert.deepEqual(src(l, 'server.port'), { kind: 'default' });
  });

  it('integers must be decimal', () => {
    const f = fixture();
    for (const bad of ['0x10', '1e3', '12abc', '1.5', 'abc']) {
      assert.deepEqual(f.fail({ env: { ZISK_COORDINATOR_COORDINATOR_MAX_QUEUED_JOBS: bad } }).problems, [
        `ZISK_COORDINATOR_COORDINATOR_MAX_QUEUED_JOBS: coordinator.max_queued_jobs: expected an integer between 0 and 4294967295, got ${JSON.stringify(bad)}`,
      ]);
    }
    assert.deepEqual(f.fail({ env: { ZISK_COORDINATOR_SERVER_SHUTDOWN_TIMEOUT_SECONDS: '-1' } }).problems, [
      'ZISK_COORDINATOR_SERVER_SHUTDOWN_TIMEOUT_SECONDS: server.shutdown_timeout_seconds: expected an integer between 0 and 2147483, got "-1"',
    ]);
  });

  it('durations that feed timers stop at 2^31-1 ms; retention does not', () => {
    const f = fixture();
    const l = f.load({
      env: {
        ZISK_COORDINATOR_COORDINATOR_PHASE2_TIMEOUT_SECONDS: '2147483',
        ZISK_COORDINATOR_COORDINATOR_RECONNECT_GRACE_PERIOD_MS: '2147483647',
        ZISK_COORDINATOR_COORDINATOR_JOB_TTL_SECONDS: '31536000',
      },
    });
    assert.equal(l.config.coordinator.phase2_timeout_seconds, 2147483);
    assert.equal(l.config.coordinator.job_ttl_seconds, 31536000);
    assert.deepEqual(f.fail({ env: { ZISK_COORDINATOR_COORDINATOR_PHASE2_TIMEOUT_SECONDS: '2147484' } }).problems, [
      'ZISK_COORDINATOR_COORDINATOR_PHASE2_TIMEOUT_SECONDS: coordinator.phase2_timeout_seconds: expected an integer between 0 and 2147483, got "2147484"',
    ]);
  });

  it('enum values from env are checked and listed', () => {
    const f = fixture();
    assert.deepEqual(f.fail({ env: { ZISK_COORDINATOR_BACKEND_MODE: 'real' } }).problems, [
      'ZISK_COORDINATOR_BACKEND_MODE: backend.mode: expected one of "coordinator", "mock", got "real"',
    ]);
  });

  it('an unknown ZISK_COORDINATOR_* variable is a warning; other tools\' variables are not', () => {
    const f = fixture();
    const l = f.load({ env: { ZISK_COORDINATOR_SERVER_PROT: '1', ZISK_COORDINATOR_URL: 'http://x', ZISK_COORDINATOR_BINARY: '/bin/x' } });
    assert.deepEqual(l.warnings, ['environment: unknown variable ZISK_COORDINATOR_SERVER_PROT (ignored)']);
  });
});

// --- booleans ---------------------------------------------------------------------------------------------

describe('booleans', () => {
  it('env accepts true/false/1/0 in any case', () => {
    const f = fixture();
    for (const [raw, want] of [['true', true], ['TRUE', true], ['True', true], ['1', true], ['false', false], ['FALSE', false], ['fAlSe', false], ['0', false]] as const) {
      const l = f.load({ env: { ZISK_COORDINATOR_METRICS_ENABLED: raw, ZISK_COORDINATOR_COORDINATOR_SCHEDULER_THREAD: raw } });
      assert.equal(l.config.metrics.enabled, want, raw);
      assert.equal(l.config.coordinator.scheduler_thread, want, raw);
    }
  });

  it('anything else from env is a config error', () => {
    const f = fixture();
    for (const raw of ['yes', 'no', 'on', '2', 't']) {
      assert.deepEqual(f.fail({ env: { ZISK_COORDINATOR_METRICS_ENABLED: raw } }).problems, [
        `ZISK_COORDINATOR_METRICS_ENABLED: metrics.enabled: expected true, false, 1 or 0, got ${JSON.stringify(raw)}`,
      ]);
    }
  });

  it('TOML needs a real boolean', () => {
    const f = fixture();
    f.write(f.cwdFile, '[metrics]\nenabled = "true"\n');
    assert.deepEqual(f.fail().problems, [`${f.cwdFile}: metrics.enabled: expected a boolean (true or false), got "true"`]);
    f.write(f.cwdFile, '[metrics]\nenabled = false\n');
    assert.equal(f.load().config.metrics.enabled, false);
  });
});

// --- RUST_LOG and --log-level ------------------------------------------------------------------------------

describe('RUST_LOG', () => {
  const cases: [string, string][] = [
    ['debug', 'debug'],
    ['TRACE', 'trace'],
    ['info,zisk=debug', 'debug'],
    ['zisk=debug,warn', 'debug'],
    ['warn,zisk_coordinator=trace', 'trace'],
    ['zisk_coordinator::coordinator=debug,h2=warn', 'debug'],
    ['debug,zisk[job]=warn', 'warn'],
    ['info,hyper=debug', 'info'],
    ['off', 'error'],
    ['error', 'error'],
    ['warn,h2=info,tonic=info', 'warn'],
  ];
  for (const [filter, level] of cases) {
    it(`${filter} → ${level}`, () => {
      const l = fixture().load({ env: { RUST_LOG: filter } });
      assert.equal(l.config.logging.level, level);
      assert.deepEqual(src(l, 'logging.level'), { kind: 'env', name: 'RUST_LOG' });
      assert.deepEqual(l.warnings, []);
    });
  }

  it('a filter with no level for zisk and no global level means info, with a warning', () => {
    const f = fixture();
    f.write(f.cwdFile, '[logging]\nlevel = "debug"\n');
    const l = f.load({ env: { RUST_LOG: 'tonic=debug,h2=warn' } });
    assert.equal(l.config.logging.level, 'info');
    assert.deepEqual(l.warnings, ['RUST_LOG=tonic=debug,h2=warn sets no level for zisk or globally; using info']);
  });

  it('beats TOML and the generic name (with a warning), loses to --log-level', () => {
    const f = fixture();
    f.write(f.cwdFile, '[logging]\nlevel = "warn"\n');
    const envOnly = f.load({ env: { RUST_LOG: 'debug', ZISK_COORDINATOR_LOGGING_LEVEL: 'error' } });
    assert.equal(envOnly.config.logging.level, 'debug');
    assert.deepEqual(envOnly.warnings, ['both RUST_LOG and ZISK_COORDINATOR_LOGGING_LEVEL are set; RUST_LOG wins for logging.level']);
    const cli = f.load({ env: { RUST_LOG: 'debug' }, cli: { logLevel: 'trace' } });
    assert.equal(cli.config.logging.level, 'trace');
    assert.deepEqual(src(cli, 'logging.level'), { kind: 'cli', flag: '--log-level' });
  });

  it('ZISK_COORDINATOR_LOGGING_LEVEL alone is a strict level', () => {
    const f = fixture();
    assert.equal(f.load({ env: { ZISK_COORDINATOR_LOGGING_LEVEL: 'debug' } }).config.logging.level, 'debug');
    assert.deepEqual(f.fail({ env: { ZISK_COORDINATOR_LOGGING_LEVEL: 'info,zisk=debug' } }).problems, [
      'ZISK_COORDINATOR_LOGGING_LEVEL: logging.level: expected one of "trace", "debug", "info", "warn", "error", got "info,zisk=debug"',
    ]);
  });
});

// --- legacy [coordinator] config_file ---------------------------------------------------------------------------

describe('legacy [coordinator] config_file', () => {
  it('contributes [coordinator] and [server] proofs_dir beneath the main file; other keys are warned about', () => {
    const f = fixture();
    const legacy = f.write('core/prod.toml', [
      '[service]', 'name = "ZisK Distributed Coordinator"',
      '[server]', 'port = 50051', 'proofs_dir = "proofs"', 'no_save_proofs = false',
      '[logging]', 'level = "debug"',
      '[coordinator]', 'max_total_workers = 5000', 'phase1_timeout_seconds = 600', 'phase2_timeout_seconds = 1200',
      'max_workers_per_job = 20', 'shutdown_timeout_seconds = 30', 'port = 1',
    ].join('\n'));
    f.write(f.cwdFile, '[coordinator]\nconfig_file = "core/prod.toml"\nphase2_timeout_seconds = 900\n');
    const l = f.load();
    assert.deepEqual(l.files, [f.cwdFile, legacy]);
    assert.equal(l.config.coordinator.max_total_workers, 5000);
    assert.equal(l.config.coordinator.phase1_timeout_seconds, 600);
    assert.equal(l.config.coordinator.phase2_timeout_seconds, 900, 'the main file wins');
    assert.equal(l.config.coordinator.max_workers_per_job, 20);
    assert.equal(l.config.coordinator.proofs_dir, 'proofs');
    assert.equal(l.config.coordinator.port, 50051, 'the legacy file cannot move the worker port');
    assert.equal(l.config.logging.level, 'info');
    assert.equal(l.config.server.port, 7000);
    assert.deepEqual(src(l, 'coordinator.max_total_workers'), { kind: 'legacy-file', path: legacy });
    assert.deepEqual(src(l, 'coordinator.proofs_dir'), { kind: 'legacy-file', path: legacy });
    assert.deepEqual(src(l, 'coordinator.phase2_timeout_seconds'), { kind: 'file', path: f.cwdFile });
    assert.deepEqual(l.warnings, [
      `${legacy}: unknown key coordinator.shutdown_timeout_seconds (ignored; it belongs in [server])`,
      `${legacy}: legacy config_file keys ignored (only [coordinator] and [server] proofs_dir are read): ` +
        'service.name, server.port, server.no_save_proofs, logging.level, coordinator.port',
    ]);
  });

  it('env and CLI still beat the legacy file', () => {
    const f = fixture();
    f.write('core.toml', '[coordinator]\nmax_total_workers = 5000\n');
    const l = f.load({ env: { ZISK_COORDINATOR_COORDINATOR_CONFIG_FILE: 'core.toml', ZISK_COORDINATOR_COORDINATOR_MAX_TOTAL_WORKERS: '6' } });
    assert.equal(l.config.coordinator.max_total_workers, 6);
    assert.equal(l.config.coordinator.config_file, 'core.toml');
  });

  it('a missing legacy file is a config error', () => {
    const f = fixture();
    f.write(f.cwdFile, '[coordinator]\nconfig_file = "missing.toml"\n');
    assert.deepEqual(f.fail().problems, [`${f.cwdFile}: coordinator.config_file: file not found: ${path.join(f.cwd, 'missing.toml')}`]);
    assert.deepEqual(f.fail({ env: { ZISK_COORDINATOR_COORDINATOR_CONFIG_FILE: '/no/core.toml' } }).problems, [
      'ZISK_COORDINATOR_COORDINATOR_CONFIG_FILE: coordinator.config_file: file not found: /no/core.toml',
    ]);
  });

  it('legacy values are type-checked', () => {
    const f = fixture();
    const legacy = f.write('core.toml', '[coordinator]\nmax_total_workers = "many"\n[server]\nproofs_dir = 5\n');
    f.write(f.cwdFile, '[coordinator]\nconfig_file = "core.toml"\n');
    assert.deepEqual(f.fail().problems, [
      `${legacy}: coordinator.max_total_workers: expected an integer between 0 and 4294967295, got "many"`,
      `${legacy}: server.proofs_dir: expected a string, got 5`,
    ]);
  });
});

// --- error formats ---------------------------------------------------------------------------------------------

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

describe('errors and warnings', () => {
  it('invalid TOML: <path>:<line>:<col>: <reason>', () => {
    const f = fixture();
    const file = f.write('bad.toml', '[server]\nhost = "x"\nport = \n');
    const err = f.fail({ cli: { config: file } });
    assert.equal(err.problems.length, 1);
    assert.match(err.problems[0], new RegExp(`^${escapeRe(file)}: line 3, column 8: \\S`));
    assert.doesNotMatch(err.message, /Invalid TOML document/);
  });

  it('wrong type or range: <source>: <section.key>: expected <what>, got <value>', () => {
    const f = fixture();
    const file = f.write('c.toml', [
      '[server]', 'port = "7000"', 'host = ""', 'shutdown_timeout_seconds = 2.5', 'max_message_bytes = 1024',
      '[metrics]', 'port = 7000.0',
      '[coordinator]', 'min_compute_units = 0', 'webhook_url = "ftp://example.com/hook"',
      'heartbeat_interval_seconds = 0', 'inputs_dir = 3',
    ].join('\n'));
    assert.deepEqual(f.fail({ cli: { config: file } }).problems, [
      `${file}: server.port: expected an integer between 0 and 65535, got "7000"`,
      `${file}: server.host: expected a non-empty string, got ""`,
      `${file}: server.shutdown_timeout_seconds: expected an integer between 0 and 2147483, got 2.5`,
      `${file}: server.max_message_bytes: expected an integer between 1048576 and 2147483647, got 1024`,
      `${file}: metrics.port: expected an integer between 0 and 65535, got 7000.0`,
      `${file}: coordinator.min_compute_units: expected an integer between 1 and 4294967295, got 0`,
      `${file}: coordinator.webhook_url: expected an http(s) URL, got "ftp://example.com/hook"`,
      `${file}: coordinator.heartbeat_interval_seconds: expected an integer between 1 and 2147483, got 0`,
      `${file}: coordinator.inputs_dir: expected a string, got 3`,
    ]);
  });

  it('a bad enum lists the allowed values', () => {
    const f = fixture();
    const file = f.write('c.toml', '[logging]\nformat = "xml"\n[service]\nenvironment = "prod"\n');
    assert.deepEqual(f.fail({ cli: { config: file } }).problems, [
      `${file}: logging.format: expected one of "pretty", "json", "compact", got "xml"`,
      `${file}: service.environment: expected one of "development", "staging", "production", got "prod"`,
    ]);
  });

  it('problems from several sources are reported together, warnings are kept', () => {
    const f = fixture();
    f.write(f.cwdFile, '[server]\nport = "x"\ntypo = 1\n');
    const err = f.fail({ env: { ZISK_COORDINATOR_METRICS_PORT: 'y' } });
    assert.deepEqual(err.problems, [
      `${f.cwdFile}: server.port: expected an integer between 0 and 65535, got "x"`,
      'ZISK_COORDINATOR_METRICS_PORT: metrics.port: expected an integer between 0 and 65535, got "y"',
    ]);
    assert.equal(err.message, err.problems.join('\n'));
    assert.deepEqual(err.warnings, [`${f.cwdFile}: unknown key server.typo (ignored)`]);
  });

  it('an unknown key that is a key of another section says where it belongs', () => {
    const f = fixture();
    f.write(f.cwdFile, '[server]\nmax_total_workers = 10\n');
    assert.deepEqual(f.load().warnings, [`${f.cwdFile}: unknown key server.max_total_workers (ignored; it belongs in [coordinator])`]);
  });

  it('with strict, unknown keys are errors (with the same hint)', () => {
    const f = fixture();
    f.write(f.cwdFile, '[server]\nmax_total_workers = 10\nbogus = 1\n');
    assert.deepEqual(f.fail({ cli: { strict: true } }).problems, [
      `${f.cwdFile}: unknown key server.max_total_workers (it belongs in [coordinator])`,
      `${f.cwdFile}: unknown key server.bogus`,
    ]);
  });

  it('unknown keys and sections are warnings, never errors', () => {
    const f = fixture();
    f.write(f.cwdFile, '[server]\nport = 7100\nfoo = 1\n[tls]\ncert = "x"\n[coordinator.extra]\na = 1\n');
    const l = f.load();
    assert.equal(l.config.server.port, 7100);
    assert.deepEqual(l.warnings, [
      `${f.cwdFile}: unknown key server.foo (ignored)`,
      `${f.cwdFile}: unknown key tls.cert (ignored)`,
      `${f.cwdFile}: unknown key coordinator.extra.a (ignored)`,
    ]);
  });

  it('a section that is not a table is an error', () => {
    const f = fixture();
    f.write(f.cwdFile, 'server = 1\n');
    assert.deepEqual(f.fail().problems, [`${f.cwdFile}: server: expected a table, got 1`]);
  });

  it('an http(s) webhook URL is accepted; an empty optional string means unset', () => {
    const f = fixture();
    f.write(f.cwdFile, '[coordinator]\nwebhook_url = "https://hooks.example.com/job/{$job_id}"\ncache_dir = ""\n');
    const l = f.load();
    assert.equal(l.config.coordinator.webhook_url, 'https://hooks.example.com/job/{$job_id}');
    assert.equal(l.config.coordinator.cache_dir, undefined);
    assert.equal('cache_dir' in l.config.coordinator, false);
    assert.deepEqual(src(l, 'coordinator.cache_dir'), { kind: 'file', path: f.cwdFile });
  });

  it('CLI values are validated too', () => {
    const f = fixture();
    assert.deepEqual(f.fail({ cli: { apiPort: 70000 } }).problems, [
      '--api-port: server.port: expected an integer between 0 and 65535, got 70000',
    ]);
    assert.deepEqual(f.fail({ cli: { config: '' } }).problems, ['--config: expected a file path, got ""']);
  });
});
