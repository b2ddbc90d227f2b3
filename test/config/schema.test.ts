import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rustLogLevel } from '../../src/shared/config/load';
import {
  CONFIG_KEYS,
  defaultConfig,
  genericEnvName,
  keyByPath,
  packageVersion,
  renderConfigReferenceMarkdown,
} from '../../src/shared/config/schema';

describe('schema', () => {
  it('every key has its literal generic env name', () => {
    for (const spec of CONFIG_KEYS) {
      if (spec.fixed) assert.equal(spec.env, undefined);
      else assert.equal(spec.env, `ZISK_COORDINATOR_${spec.section.toUpperCase()}_${spec.key.toUpperCase()}`);
    }
    assert.equal(genericEnvName('coordinator', 'max_total_workers'), 'ZISK_COORDINATOR_COORDINATOR_MAX_TOTAL_WORKERS');
  });

  it('maps the upstream names and flags', () => {
    assert.equal(keyByPath('server.port').upstreamEnv, 'ZISK_COORDINATOR_API_PORT');
    assert.equal(keyByPath('server.port').cliFlag, '--api-port');
    assert.equal(keyByPath('coordinator.port').upstreamEnv, 'ZISK_COORDINATOR_CLUSTER_PORT');
    assert.equal(keyByPath('coordinator.port').cliFlag, '--cluster-port');
    // Upstream's metrics variable is the generic name, so there is only one.
    assert.equal(keyByPath('metrics.port').env, 'ZISK_COORDINATOR_METRICS_PORT');
    assert.equal(keyByPath('metrics.port').upstreamEnv, undefined);
    assert.equal(keyByPath('logging.level').upstreamEnv, 'RUST_LOG');
  });

  it('every key appears in the default config unless optional', () => {
    const config = defaultConfig() as unknown as Record<string, Record<string, unknown>>;
    for (const spec of CONFIG_KEYS) {
      const present = spec.key in config[spec.section];
      assert.equal(present, spec.type.kind !== 'optional-string', spec.path);
    }
    assert.equal(config.service.version, packageVersion());
  });

  it('renders the Markdown reference with one row per key', () => {
    const md = renderConfigReferenceMarkdown();
    const rows = md.trimEnd().split('\n');
    assert.equal(rows[0], '| Key | Type | Default | Environment | Flag | Description |');
    assert.equal(rows.length, CONFIG_KEYS.length + 2);
    assert.ok(rows.includes(
      '| `server.port` | int 0–65535 | `7000` | `ZISK_COORDINATOR_SERVER_PORT`, `ZISK_COORDINATOR_API_PORT` (upstream, wins) | `--api-port`, `-a` | Client API gRPC port. |',
    ));
    assert.ok(rows.some((r) => r.startsWith('| `coordinator.webhook_url` | http(s) URL, optional | unset | `ZISK_COORDINATOR_COORDINATOR_WEBHOOK_URL` |')));
    assert.ok(rows.some((r) => r.startsWith('| `service.version` | string | package version (fixed) | — | — |')));
    for (const row of rows.slice(2)) assert.equal(row.split(/(?<!\\)\|/).length, 8, row);
  });
});

describe('rustLogLevel', () => {
  const cases: [string, string | undefined][] = [
    ['info', 'info'],
    ['info,zisk=debug', 'debug'],
    ['zisk=debug', 'debug'],
    ['zisk_coordinator=debug,h2=warn', 'debug'],
    ['zisk_coordinator::jobs=trace,zisk=warn', 'warn'],
    ['h2=debug', undefined],
    ['ziskx=debug', undefined],
    ['zisk=loud', undefined],
    ['Debug', 'debug'],
    ['warning', 'warn'],
    ['off', 'error'],
    ['0', 'error'],
    ['5', 'trace'],
    ['', undefined],
    [' trace , h2=info ', 'trace'],
    ['zisk', undefined],
    ['my_crate[span{f=1}]=debug', undefined],
  ];
  for (const [filter, want] of cases) {
    it(`${JSON.stringify(filter)} → ${String(want)}`, () => assert.equal(rustLogLevel(filter), want));
  }
});
