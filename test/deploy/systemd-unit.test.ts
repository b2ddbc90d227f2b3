/**
 * deploy/systemd/zisk-coordinator.service (docs/operations.md, systemd): `systemd-analyze verify`
 * accepts it without a single warning, and none of its Environment= lines overrides a key of the
 * configuration file (the environment wins over the TOML, so such a line would silently beat what
 * the operator writes there).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { binPath, repoRoot, runCli } from '../helpers/run-cli';
import { tempDir } from '../helpers/spawn-coordinator';

const UNIT = path.join(repoRoot(), 'deploy', 'systemd', 'zisk-coordinator.service');
const haveAnalyze = spawnSync('sh', ['-c', 'command -v systemd-analyze']).status === 0;

test('systemd-analyze verify accepts the unit with no warning', { skip: haveAnalyze ? false : 'needs systemd-analyze (Debian: systemd; .ci/run installs it)' }, (t) => {
  const dir = tempDir('zisk-unit-');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  // verify checks that ExecStart's program exists: point it at this checkout's launcher.
  const unit = fs.readFileSync(UNIT, 'utf8').replace(/^ExecStart=\/opt\/zisk-coordinator\/bin\/zisk-coordinator /m, `ExecStart=${binPath()} `);
  assert.notEqual(unit, fs.readFileSync(UNIT, 'utf8'), 'ExecStart runs /opt/zisk-coordinator/bin/zisk-coordinator');
  const file = path.join(dir, 'zisk-coordinator.service');
  fs.writeFileSync(file, unit);
  const r = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  // verify exits 0 on unknown settings and bad values too, and only says so: any output is a finding.
  assert.equal(r.stderr.trim(), '');
  assert.equal(r.stdout.trim(), '');
});

test('the unit is Type=notify with NotifyAccess=all, reloads with SIGHUP, and hardens without MemoryDenyWriteExecute', () => {
  const unit = fs.readFileSync(UNIT, 'utf8');
  const settings = new Map<string, string[]>();
  for (const line of unit.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (m) settings.set(m[1], [...(settings.get(m[1]) ?? []), m[2]]);
  }
  const one = (k: string): string | undefined => settings.get(k)?.at(-1);
  assert.equal(one('Type'), 'notify');
  assert.equal(one('NotifyAccess'), 'all', 'systemd-notify, a child of the coordinator, sends the messages');
  assert.equal(one('ExecReload'), '/bin/kill -HUP $MAINPID');
  assert.equal(one('StateDirectory'), 'zisk-coordinator');
  assert.equal(one('LogsDirectory'), 'zisk-coordinator');
  assert.equal(one('User'), 'zisk');
  // V8 compiles code into memory it then executes.
  assert.ok(!settings.has('MemoryDenyWriteExecute'));
  for (const k of ['ProtectSystem', 'ProtectKernelTunables', 'ProtectControlGroups', 'RestrictNamespaces', 'LockPersonality', 'RestrictRealtime', 'SystemCallArchitectures', 'NoNewPrivileges']) {
    assert.ok(settings.has(k), k);
  }
  assert.equal(one('CapabilityBoundingSet'), '');
  assert.match(one('RestrictAddressFamilies') ?? '', /AF_UNIX/, 'systemd-notify needs a unix socket');
});

test("none of the unit's Environment= lines overrides a key of the configuration file", async (t) => {
  const dir = tempDir('zisk-unit-env-');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: dir };
  for (const line of fs.readFileSync(UNIT, 'utf8').split('\n')) {
    const m = /^Environment=([A-Z0-9_]+)=(.*)$/.exec(line);
    if (m) env[m[1]] = m[2];
  }
  const r = await runCli(['--config', path.join(repoRoot(), 'deploy', 'coordinator.example.toml'), '--print-config'], { cwd: dir, env });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout.split('\n').filter((l) => /# from env /.test(l)), []);
});
