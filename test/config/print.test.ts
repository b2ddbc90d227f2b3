import { describe, it, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parse } from 'smol-toml';
import { loadConfig } from '../../src/shared/config/load';
import { renderConfigToml } from '../../src/shared/config/print';
import { CONFIG_KEYS } from '../../src/shared/config/schema';

const roots: string[] = [];
afterEach(() => {
  for (const r of roots.splice(0)) fs.rmSync(r, { recursive: true, force: true });
});

function tmp(): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'zc-print-'));
  roots.push(root);
  return root;
}

// smol-toml builds null-prototype tables, which deepEqual tells apart from object literals.
function plain(v: unknown): unknown {
  return JSON.parse(JSON.stringify(v));
}

/** The line printing `key` inside `[section]`, commented-out lines included. */
function lineOf(toml: string, section: string, key: string): string {
  const lines = toml.split('\n');
  const start = lines.indexOf(`[${section}]`);
  assert.ok(start >= 0, `section ${section} missing`);
  for (const line of lines.slice(start + 1)) {
    if (line.startsWith('[')) break;
    if (line.startsWith(`${key} = `) || line.startsWith(`# ${key} = `)) return line;
  }
  assert.fail(`no line for ${section}.${key}`);
}

describe('renderConfigToml', () => {
  it('round-trips through smol-toml and names the source of every value', () => {
    const root = tmp();
    const legacy = path.join(root, 'core.toml');
    fs.writeFileSync(legacy, '[coordinator]\nmax_total_workers = 5000\n[server]\nproofs_dir = "/var/proofs"\n');
    const main = path.join(root, 'main.toml');
    fs.writeFileSync(main, [
      '[service]', 'name = "Quote \\" backslash \\\\ tab \\t newline \\n del \\u007f é"', 'environment = "staging"',
      '[server]', 'port = 7000', 'host = "127.0.0.1"',
      '[coordinator]', `config_file = ${JSON.stringify(legacy)}`, 'webhook_url = "http://h:1/x/{$job_id}"',
    ].join('\n'));
    const loaded = loadConfig({
      cli: { config: main, apiPort: 8000, logLevel: 'debug' },
      env: { ZISK_COORDINATOR_CLUSTER_PORT: '50052', ZISK_COORDINATOR_METRICS_ENABLED: 'false', RUST_LOG: 'warn' },
      cwd: root,
      homeDir: root,
      etcDir: root,
    });
    const toml = renderConfigToml(loaded);

    assert.deepEqual(plain(parse(toml)), loaded.config);
    assert.equal(loaded.config.service.name, 'Quote " backslash \\ tab \t newline \n del \u007f é');

    assert.equal(lineOf(toml, 'server', 'port'), 'port = 8000  # from --api-port');
    assert.equal(lineOf(toml, 'logging', 'level'), 'level = "debug"  # from --log-level');
    assert.equal(lineOf(toml, 'coordinator', 'port'), 'port = 50052  # from env ZISK_COORDINATOR_CLUSTER_PORT');
    assert.equal(lineOf(toml, 'metrics', 'enabled'), 'enabled = false  # from env ZISK_COORDINATOR_METRICS_ENABLED');
    assert.equal(lineOf(toml, 'server', 'host'), `host = "127.0.0.1"  # from ${main}`);
    assert.equal(lineOf(toml, 'service', 'environment'), `environment = "staging"  # from ${main}`);
    assert.equal(lineOf(toml, 'coordinator', 'max_total_workers'), `max_total_workers = 5000  # from legacy config_file ${legacy}`);
    assert.equal(lineOf(toml, 'coordinator', 'proofs_dir'), `proofs_dir = "/var/proofs"  # from legacy config_file ${legacy}`);
    assert.equal(lineOf(toml, 'server', 'shutdown_timeout_seconds'), 'shutdown_timeout_seconds = 30  # default');
    assert.equal(lineOf(toml, 'service', 'version'), 'version = "0.18.0"  # package version (cannot be set)');
    assert.equal(lineOf(toml, 'coordinator', 'inputs_dir'), '# inputs_dir = (unset)  # default');
    assert.equal(lineOf(toml, 'logging', 'file_path'), '# file_path = (unset)  # default');
    assert.match(toml, new RegExp(`^# Files read: ${main}, ${legacy}$`, 'm'));
  });

  it('prints every key exactly once, defaults included', () => {
    const root = tmp();
    const loaded = loadConfig({ cli: {}, env: {}, cwd: root, homeDir: root, etcDir: root });
    const toml = renderConfigToml(loaded);
    assert.deepEqual(plain(parse(toml)), loaded.config);
    for (const spec of CONFIG_KEYS) {
      const line = lineOf(toml, spec.section, spec.key);
      assert.match(line, / {2}# (default|package version \(cannot be set\))$/, line);
    }
    const assignments = toml.split('\n').filter((l) => /^(# )?[a-z0-9_]+ = /.test(l));
    assert.equal(assignments.length, CONFIG_KEYS.length);
  });

  it('an unset optional key that a file set to "" shows its source', () => {
    const root = tmp();
    const main = path.join(root, 'coordinator.toml');
    fs.writeFileSync(main, '[coordinator]\ncache_dir = ""\n');
    const loaded = loadConfig({ cli: {}, env: {}, cwd: root, homeDir: root, etcDir: root });
    assert.equal(lineOf(renderConfigToml(loaded), 'coordinator', 'cache_dir'), `# cache_dir = (unset)  # from ${main}`);
  });
});
