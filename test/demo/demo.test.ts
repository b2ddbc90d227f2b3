/** `npm run demo` keeps working: it runs the whole flow and stops the coordinator cleanly. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { repoRoot } from '../helpers/run-cli';

test('the demo runs setup, a prove job with its phases and an execute job, then exits 0', () => {
  const res = spawnSync(process.execPath, [path.join(repoRoot(), 'dist', 'src', 'demo', 'demo.js')], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(res.status, 0, res.stderr);
  const out = res.stdout;
  assert.match(out, /setup job [0-9a-f-]{36}: completed/);
  for (const step of ['queued', 'started', 'progress → CONTRIBUTIONS', 'progress → PROVE', 'progress → AGGREGATE', 'completed']) {
    assert.ok(out.includes(step), `prove job shows "${step}"`);
  }
  assert.match(out, /execute job [0-9a-f-]{36}: completed/);
  assert.match(out, /coordinator stopped after SIGTERM \(exit code 0\)/);
});
