/** The README documents what the code does: its configuration reference is the schema's. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { renderConfigReferenceMarkdown } from '../../src/shared/config/schema';
import { isolatedEnv, repoRoot, runCli } from '../helpers/run-cli';

const readme = (): string => fs.readFileSync(path.join(repoRoot(), 'README.md'), 'utf8');

test('README configuration reference matches the schema', () => {
  const m = /<!-- config-reference:start[^>]*-->\n([\s\S]*?)\n<!-- config-reference:end -->/.exec(readme());
  assert.ok(m, 'reference markers present');
  assert.equal(m[1].trim(), renderConfigReferenceMarkdown().trim(), 'regenerate the table from renderConfigReferenceMarkdown()');
});

test('README quick start keeps the two commands and .ci/run runs the README test command', () => {
  const text = readme();
  assert.match(text, /npm ci && npm start/);
  assert.match(text, /^npm test\b/m);
  const ci = fs.readFileSync(path.join(repoRoot(), '.ci', 'run'), 'utf8');
  assert.match(ci, /^npm ci$/m);
  assert.match(ci, /^npm test$/m);
});

test('the example configuration in deploy/ is valid and warns about nothing', async () => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'zisk-doc-'));
  try {
    const res = await runCli(['--check-config', '--config', path.join(repoRoot(), 'deploy', 'coordinator.example.toml')], {
      cwd: home,
      env: isolatedEnv(home),
    });
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stderr, '', 'no warnings');
  } finally {
    fs.rmSync(home, { recursive: true, force: true });
  }
});
