/** The shell scripts operators and CI run pass shellcheck (every finding, `info` included). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { repoRoot } from '../helpers/run-cli';

const SCRIPTS = ['deploy/install.sh', 'scripts/build-release.sh', '.ci/run'];
const have = spawnSync('sh', ['-c', 'command -v shellcheck']).status === 0;

test('shellcheck finds nothing in the shell scripts', { skip: have ? false : 'needs shellcheck (Debian: shellcheck; .ci/run installs it)' }, () => {
  const r = spawnSync('shellcheck', ['--severity=style', ...SCRIPTS.map((s) => path.join(repoRoot(), s))], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
});
