/**
 * deploy/prometheus: the scrape configuration and the alert rules pass promtool's checks, every
 * alert has a unit test (`promtool test rules`: series in, alert out), a runbook section in
 * docs/operations.md (Alerts) and a row in docs/metrics.md.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { alertNames, promtool, REPO_ROOT, RULES_DIR } from '../helpers/prometheus';
import { tempDir } from '../helpers/spawn-coordinator';

const RULES = path.join(RULES_DIR, 'zisk-coordinator.yml');
const TESTS = path.join(REPO_ROOT, 'deploy/prometheus/tests/zisk-coordinator.test.yml');
const rulesText = fs.readFileSync(RULES, 'utf8');
const alerts = alertNames(rulesText);

test('promtool check config accepts deploy/prometheus/prometheus.yml and the rule files it loads', async () => {
  const r = await promtool(['check', 'config', 'deploy/prometheus/prometheus.yml']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout + r.stderr, /SUCCESS: 1 rule files found/);
});

test('promtool check rules accepts every rule', async () => {
  const r = await promtool(['check', 'rules', RULES]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, new RegExp(`SUCCESS: ${alerts.length} rules found`));
  assert.ok(alerts.length >= 14, `alerts: ${alerts.join(', ')}`);
});

test('promtool test rules: every alert fires on its series (and not before)', async () => {
  const r = await promtool(['test', 'rules', TESTS]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const testsText = fs.readFileSync(TESTS, 'utf8');
  for (const alert of alerts) {
    // A firing case: an exp_alerts list with at least one entry under this alertname.
    const firing = new RegExp(`alertname: ${alert}\\n\\s+exp_alerts:\\n\\s+- exp_labels`);
    assert.match(testsText, firing, `${alert} has a unit test where it fires`);
    assert.match(testsText, new RegExp(`alertname: ${alert}\\n\\s+exp_alerts: \\[\\]`), `${alert} has a case where it does not fire`);
  }
});

test('a rule that is wrong fails its unit test (the tests can fail)', async () => {
  const dir = tempDir('zisk-rules-');
  try {
    fs.mkdirSync(path.join(dir, 'rules'));
    fs.mkdirSync(path.join(dir, 'tests'));
    // The queue alert waits 30 minutes instead of 15: its test expects it at 20 minutes.
    fs.writeFileSync(path.join(dir, 'rules/zisk-coordinator.yml'), rulesText.replace(/(alert: ZiskQueueGrowing[\s\S]*?for: )15m/, '$130m'));
    fs.copyFileSync(TESTS, path.join(dir, 'tests/zisk-coordinator.test.yml'));
    const r = await promtool(['test', 'rules', path.join(dir, 'tests/zisk-coordinator.test.yml')]);
    assert.notEqual(r.code, 0);
    assert.match(r.stdout + r.stderr, /alertname: ZiskQueueGrowing/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('every alert has a runbook section in docs/operations.md and its runbook annotation points at it', () => {
  const ops = fs.readFileSync(path.join(REPO_ROOT, 'docs/operations.md'), 'utf8');
  for (const alert of alerts) {
    assert.match(ops, new RegExp(`^### ${alert}$`, 'm'), `docs/operations.md has "### ${alert}"`);
    assert.match(rulesText, new RegExp(`runbook: docs/operations\\.md#${alert.toLowerCase()}\\n`), `${alert}'s runbook annotation`);
  }
});

test('every metric the rules use is in docs/metrics.md, with the alerts that use it', () => {
  const doc = fs.readFileSync(path.join(REPO_ROOT, 'docs/metrics.md'), 'utf8');
  const blocks = rulesText.split(/^\s*- alert:/m).slice(1);
  for (const block of blocks) {
    const alert = /^\s*(\S+)/.exec(block)![1]!;
    for (const name of new Set(block.match(/\b(coordinator_[a-z0-9_]+|process_[a-z0-9_]+)/g) ?? [])) {
      const family = name.replace(/_(bucket|sum|count)$/, '');
      const row = doc.split('\n').find((l) => l.startsWith(`| \`${family}\``));
      assert.ok(row, `docs/metrics.md has a row for ${family}`);
      assert.ok(row.includes(alert), `docs/metrics.md's row for ${family} names ${alert}`);
    }
  }
});
