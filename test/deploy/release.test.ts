/**
 * Releases and the installer, as operators use them (docs/operations.md, Install): a tarball built
 * once by scripts/build-release.sh, installed without dev dependencies; deploy/install.sh against a
 * scratch root (--root), checked file by file, run twice (the second run changes nothing), switched
 * to another version and back, and uninstalled. npm installs from its cache where it can (CI has just
 * run `npm ci`, which filled it).
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { repoRoot } from '../helpers/run-cli';
import { tempDir } from '../helpers/spawn-coordinator';

const NPM_ENV = {
  npm_config_prefer_offline: 'true',
  npm_config_audit: 'false',
  npm_config_fund: 'false',
  npm_config_update_notifier: 'false',
};
const env = (): NodeJS.ProcessEnv => ({
  PATH: [path.dirname(process.execPath), process.env.PATH].filter(Boolean).join(path.delimiter),
  HOME: process.env.HOME,
  ...NPM_ENV,
});

function run(cmd: string, args: readonly string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {}): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd: opts.cwd ?? repoRoot(), env: opts.env ?? env(), encoding: 'utf8', input: opts.input, timeout: 180_000 });
}

function ok(r: SpawnSyncReturns<string>, what: string): string {
  assert.equal(r.status, 0, `${what} exited ${r.status}: ${r.stderr}\n${r.stdout}`);
  return r.stdout;
}

const isRoot = process.getuid?.() === 0;
const version = (JSON.parse(fs.readFileSync(path.join(repoRoot(), 'package.json'), 'utf8')) as { version: string }).version;

let work: string;
let tarball: string;

before(() => {
  work = tempDir('zisk-release-');
  const out = ok(run(path.join(repoRoot(), 'scripts', 'build-release.sh'), ['--out', path.join(work, 'out')]), 'build-release');
  tarball = out.trim().split('\n').pop() ?? '';
  assert.equal(tarball, path.join(work, 'out', `zisk-coordinator-${version}.tgz`));
});

describe('release tarball', () => {
  test('holds the compiled coordinator, the launcher, protos, docs, deploy files and the lock file; no sources, tests or benches', () => {
    const files = ok(run('tar', ['-tzf', tarball]), 'tar').trim().split('\n');
    for (const f of [
      'package/package.json',
      'package/npm-shrinkwrap.json',
      'package/README.md',
      'package/bin/zisk-coordinator',
      'package/dist/src/main/process/cli.js',
      'package/dist/src/sim/cli.js',
      'package/proto/zisk_distributed_api.proto',
      'package/proto/zisk_coordinator_api.proto',
      'package/docs/operations.md',
      'package/deploy/install.sh',
      'package/deploy/coordinator.example.toml',
      'package/deploy/systemd/zisk-coordinator.service',
    ]) {
      assert.ok(files.includes(f), `${f} in the tarball`);
    }
    const stray = files.filter((f) => /^package\/(src|test|bench|dist\/test|dist\/bench|node_modules|scripts)\//.test(f) || f.endsWith('.ts') && !f.endsWith('.d.ts') || f.endsWith('.tsbuildinfo'));
    assert.deepEqual(stray, []);
    const mode = ok(run('tar', ['-tvzf', tarball, 'package/bin/zisk-coordinator']), 'tar').slice(0, 10);
    assert.match(mode, /^-rwx/, 'the launcher stays executable');
  });

  test('npm install --omit=dev <tarball> into a fresh prefix: no dev dependency, and zisk-coordinator --check-config works', () => {
    const prefix = path.join(work, 'prefix');
    fs.mkdirSync(prefix);
    ok(run('npm', ['install', '--prefix', prefix, '--omit=dev', tarball], { cwd: prefix }), 'npm install');
    for (const dev of ['typescript', 'eslint', 'dependency-cruiser', 'typescript-eslint']) {
      assert.ok(!fs.existsSync(path.join(prefix, 'node_modules', dev)), `${dev} is not installed`);
    }
    const home = path.join(work, 'home');
    const config = path.join(work, 'check.toml');
    fs.writeFileSync(config, `[server]\nport = 7123\n[coordinator]\ncache_dir = ${JSON.stringify(path.join(home, 'cache'))}\n`);
    const r = run(path.join(prefix, 'node_modules', '.bin', 'zisk-coordinator'), ['--config', config, '--check-config'], {
      cwd: work,
      env: { PATH: env().PATH, HOME: home },
    });
    const out = ok(r, '--check-config');
    assert.match(out, new RegExp(`^configuration OK \\(${config.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\)`));
    assert.match(out, /cache directory .*\/cache \(from \[coordinator\] cache_dir.*\): OK \(created/);
  });
});

describe('npm ci --omit=dev in a clone', () => {
  test('succeeds without TypeScript (prepare skips the build and says why), and the launcher then says dist/ is missing', () => {
    const clone = path.join(work, 'clone');
    fs.mkdirSync(clone);
    for (const f of ['package.json', 'package-lock.json', 'scripts', 'bin']) fs.cpSync(path.join(repoRoot(), f), path.join(clone, f), { recursive: true });
    const r = run('npm', ['ci', '--omit=dev'], { cwd: clone });
    ok(r, 'npm ci --omit=dev');
    assert.match(r.stderr, /prepare: TypeScript is not installed \(dev dependencies omitted\), so dist\/ is not built/);
    const launched = run(path.join(clone, 'bin', 'zisk-coordinator'), ['--version'], { cwd: clone });
    assert.equal(launched.status, 1);
    assert.match(launched.stderr, /^zisk-coordinator: not built: dist\/ is missing/);
  });
});

// ── deploy/install.sh ─────────────────────────────────────────────────────────

interface Entry {
  type: 'file' | 'dir' | 'link';
  mode: number;
  uid: number;
  gid: number;
  /** sha256 of a file, target of a link. */
  content: string;
}

/** Every path under `root` with its type, mode, owner and content: what "changes nothing" compares. */
function manifest(root: string): Map<string, Entry> {
  const out = new Map<string, Entry>();
  const walk = (dir: string): void => {
    for (const name of fs.readdirSync(dir).sort()) {
      const full = path.join(dir, name);
      const st = fs.lstatSync(full);
      const rel = path.relative(root, full);
      const base = { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
      if (st.isSymbolicLink()) out.set(rel, { type: 'link', ...base, content: fs.readlinkSync(full) });
      else if (st.isDirectory()) {
        out.set(rel, { type: 'dir', ...base, content: '' });
        walk(full);
      } else out.set(rel, { type: 'file', ...base, content: crypto.createHash('sha256').update(fs.readFileSync(full)).digest('hex') });
    }
  };
  walk(root);
  return out;
}

function idOf(root: string, db: 'passwd' | 'group', name: string): number {
  const line = fs.readFileSync(path.join(root, 'etc', db), 'utf8').split('\n').find((l) => l.startsWith(`${name}:`));
  assert.ok(line, `${name} in ${db}`);
  return Number(line.split(':')[2]);
}

function installer(args: readonly string[]): SpawnSyncReturns<string> {
  return run(path.join(repoRoot(), 'deploy', 'install.sh'), args);
}

/** A copy of the release with another version (what an upgrade or a rollback installs). */
function otherVersion(v: string): string {
  const dir = path.join(work, `repack-${v}`);
  fs.mkdirSync(dir);
  ok(run('tar', ['-xzf', tarball, '-C', dir]), 'tar -x');
  const pkgFile = path.join(dir, 'package', 'package.json');
  const pkg = JSON.parse(fs.readFileSync(pkgFile, 'utf8')) as { version: string };
  pkg.version = v;
  fs.writeFileSync(pkgFile, JSON.stringify(pkg, null, 2));
  const out = path.join(work, `zisk-coordinator-${v}.tgz`);
  ok(run('tar', ['-czf', out, '-C', dir, 'package']), 'tar -c');
  return out;
}

const skipUnlessRoot = isRoot ? false : 'needs root: the installer chowns to the service user';

/**
 * One scratch root through the life of an installation, in order: install, re-run, bad input, an
 * operator's edit, upgrade and rollback, uninstall, reinstall elsewhere, purge. Each step starts from
 * where the previous one left it (an npm install per release is the slow part).
 */
describe('deploy/install.sh against a scratch root', { skip: skipUnlessRoot }, () => {
  let root: string;
  let uid: number;
  let gid: number;
  let installed: Map<string, Entry>;
  const args = (): string[] => ['--root', root, '--tarball', tarball, '--api-port', '7100', '--cluster-port', '50100', '--metrics-port', '9100', '--log-level', 'debug'];
  const bin = (): string => path.join(root, 'opt/zisk-coordinator/bin/zisk-coordinator');
  const config = (): string => path.join(root, 'etc/zisk/coordinator.toml');
  const released = (p: string): string => ok(run('tar', ['-xzOf', tarball, `package/${p}`]), 'tar -xO');

  before(() => {
    root = tempDir('zisk-root-');
    const first = installer(args());
    ok(first, 'install');
    assert.match(first.stdout, /under --root nothing is started/);
    uid = idOf(root, 'passwd', 'zisk');
    gid = idOf(root, 'group', 'zisk');
    installed = manifest(root);
  });

  test('creates the zisk user and group, the directories, configuration, unit, logrotate file and the release, each with its mode and owner', () => {
    assert.match(fs.readFileSync(path.join(root, 'etc/passwd'), 'utf8'), /^zisk:[^:]*:\d+:\d+:ZisK coordinator:\/var\/lib\/zisk-coordinator:\/usr\/sbin\/nologin$/m);
    const m = installed;
    const expect = (p: string, type: Entry['type'], mode: number, owner: [number, number]): Entry => {
      const e = m.get(p);
      assert.ok(e, `${p} exists`);
      assert.deepEqual([e.type, e.mode.toString(8), e.uid, e.gid], [type, mode.toString(8), ...owner], p);
      return e;
    };
    expect('etc/zisk', 'dir', 0o750, [0, gid]);
    expect('etc/zisk/coordinator.toml', 'file', 0o640, [0, gid]);
    for (const d of ['var/lib/zisk-coordinator', 'var/lib/zisk-coordinator/state', 'var/lib/zisk-coordinator/cache', 'var/log/zisk-coordinator']) {
      expect(d, 'dir', 0o750, [uid, gid]);
    }
    expect('etc/systemd/system/zisk-coordinator.service', 'file', 0o644, [0, 0]);
    expect('etc/logrotate.d/zisk-coordinator', 'file', 0o644, [0, 0]);
    expect(`opt/zisk-coordinator/releases/${version}`, 'dir', 0o755, [0, 0]);
    assert.equal(expect('opt/zisk-coordinator/current', 'link', 0o777, [0, 0]).content, `releases/${version}`);
    assert.equal(expect('opt/zisk-coordinator/bin/zisk-coordinator', 'link', 0o777, [0, 0]).content, '../current/node_modules/.bin/zisk-coordinator');
    assert.equal(
      expect('etc/systemd/system/multi-user.target.wants/zisk-coordinator.service', 'link', 0o777, [0, 0]).content,
      '/etc/systemd/system/zisk-coordinator.service',
    );
    // Nothing world-writable; the service owns only its own directories.
    for (const [p, e] of m) {
      assert.ok(e.type === 'link' || (e.mode & 0o002) === 0, `${p} is not world-writable`);
      if (e.uid === uid) assert.ok(/^var\/(lib|log)\/zisk-coordinator(\/|$)/.test(p), `${p} owned by zisk`);
    }
    // Files come from the release itself.
    assert.equal(fs.readFileSync(path.join(root, 'etc/systemd/system/zisk-coordinator.service'), 'utf8'), released('deploy/systemd/zisk-coordinator.service'));
    const logrotate = fs.readFileSync(path.join(root, 'etc/logrotate.d/zisk-coordinator'), 'utf8');
    assert.match(logrotate, /^\/var\/log\/zisk-coordinator\/\*\.log \{$/m);
    assert.match(logrotate, /systemctl reload zisk-coordinator\.service/);
  });

  test('the written configuration is the example with the flags applied, the cache and store under the state directory, and JSON logs', () => {
    const printed = ok(run(bin(), ['--config', config(), '--print-config'], { env: { PATH: env().PATH, HOME: work } }), '--print-config');
    for (const line of ['port = 7100', 'port = 50100', 'port = 9100', 'level = "debug"', 'format = "json"', 'cache_dir = "/var/lib/zisk-coordinator/cache"', 'dir = "/var/lib/zisk-coordinator/state"']) {
      assert.match(printed, new RegExp(`^${line.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} {2}# from .*coordinator\\.toml$`, 'm'), line);
    }
    const example = released('deploy/coordinator.example.toml').split('\n');
    const written = fs.readFileSync(config(), 'utf8').split('\n');
    assert.equal(written.length, example.length, 'line for line the example');
    const changed = written.filter((l, i) => l !== example[i]).map((l) => l.replace(/\s+#.*$/, ''));
    assert.deepEqual(changed, ['port = 7100', 'port = 9100', 'level = "debug"', 'port = 50100', 'cache_dir = "/var/lib/zisk-coordinator/cache"', 'dir = "/var/lib/zisk-coordinator/state"']);
  });

  test('a second run changes nothing, and says so', () => {
    const second = installer(args());
    ok(second, 'second install');
    assert.deepEqual(manifest(root), installed);
    assert.match(second.stdout, new RegExp(`unchanged release ${version.replace(/\./g, '\\.')}`));
    assert.doesNotMatch(second.stdout, /\b(created|updated|linked)\b/);
  });

  test('bad input is refused with a clear error before anything changes', () => {
    const badToml = path.join(work, 'bad.toml');
    fs.writeFileSync(badToml, '[server]\nport = "seven"\n');
    const notRelease = path.join(work, 'not-a-release.tgz');
    ok(run('tar', ['-czf', notRelease, '-C', work, 'bad.toml']), 'tar');
    const cases: [string[], RegExp][] = [
      [['--tarball', tarball, '--api-port', '70000'], /--api-port must be a port number 0-65535, not '70000'/],
      [['--tarball', tarball, '--cluster-port', 'abc'], /--cluster-port must be a port number 0-65535, not 'abc'/],
      [['--tarball', tarball, '--log-level', 'loud'], /--log-level must be one of trace, debug, info, warn, error, not 'loud'/],
      [['--tarball', tarball, '--config', badToml], /server\.port[\s\S]*bad\.toml is not a valid configuration \(above\); nothing was changed/],
      [['--tarball', tarball, '--config', badToml, '--api-port', '1'], /set them in .*bad\.toml instead/],
      [['--tarball', tarball, '--config', path.join(work, 'missing.toml')], /--config .*missing\.toml: no such file/],
      [['--tarball', tarball, '--prefix', 'relative'], /--prefix must be an absolute path/],
      [['--tarball', tarball, '--bogus'], /unknown option: --bogus/],
      [['--tarball', tarball, '--purge'], /--purge goes with --uninstall/],
      [['--tarball', notRelease], /not-a-release\.tgz is not a release tarball/],
      [['--tarball', path.join(work, 'nope.tgz')], /--tarball .*nope\.tgz: no such file/],
      [[], /--tarball is required/],
      [['--uninstall'], /not asked without a terminal; pass -y/],
    ];
    for (const [extra, message] of cases) {
      const r = installer(['--root', root, ...extra]);
      assert.equal(r.status, 1, `${extra.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message, extra.join(' '));
      assert.deepEqual(manifest(root), installed, `${extra.join(' ')} changed nothing`);
    }
  });

  test('an operator-edited configuration is kept on a re-run, with a warning that the flags were not applied', () => {
    fs.appendFileSync(config(), '\n# edited by the operator\n');
    const edited = installer(['--root', root, '--tarball', tarball, '--api-port', '7200']);
    ok(edited, 'install over an edited configuration');
    assert.match(edited.stderr, /warning: kept the existing \/etc\/zisk\/coordinator\.toml/);
    assert.match(fs.readFileSync(config(), 'utf8'), /# edited by the operator\n$/);
  });

  test('upgrade to another version, then roll back: only `current` moves; the old release is reused as it is', () => {
    const next = otherVersion('99.0.0');
    ok(installer(['--root', root, '--tarball', next]), 'upgrade');
    assert.equal(fs.readlinkSync(path.join(root, 'opt/zisk-coordinator/current')), 'releases/99.0.0');
    assert.match(ok(run(bin(), ['--version'], { env: { PATH: env().PATH, HOME: work } }), 'version'), /99\.0\.0/);
    const configBefore = fs.readFileSync(config(), 'utf8');
    const back = installer(['--root', root, '--tarball', tarball]);
    ok(back, 'rollback');
    assert.match(back.stdout, /unchanged release/, 'no npm install');
    assert.equal(fs.readlinkSync(path.join(root, 'opt/zisk-coordinator/current')), `releases/${version}`);
    assert.equal(fs.readFileSync(config(), 'utf8'), configBefore);
  });

  test('--uninstall removes the unit, its enablement, logrotate and the releases, and keeps configuration, state, logs and the user', () => {
    fs.writeFileSync(path.join(root, 'var/lib/zisk-coordinator/state/jobs.mdb'), 'a job store');
    ok(installer(['--root', root, '--uninstall', '-y']), 'uninstall');
    for (const gone of ['etc/systemd/system/zisk-coordinator.service', 'etc/systemd/system/multi-user.target.wants/zisk-coordinator.service', 'etc/logrotate.d/zisk-coordinator', 'opt/zisk-coordinator']) {
      assert.ok(!fs.existsSync(path.join(root, gone)), `${gone} removed`);
    }
    for (const kept of ['etc/zisk/coordinator.toml', 'var/lib/zisk-coordinator/state/jobs.mdb', 'var/log/zisk-coordinator']) {
      assert.ok(fs.existsSync(path.join(root, kept)), `${kept} kept`);
    }
    assert.equal(idOf(root, 'passwd', 'zisk'), uid);
    assert.match(ok(installer(['--root', root, '--uninstall', '-y']), 'uninstall again'), /not installed .*nothing to do/);
  });

  test('reinstall under another --prefix with --config (the previous configuration kept as .bak), --no-enable; then --purge removes everything', () => {
    const mine = path.join(work, 'mine.toml');
    fs.writeFileSync(mine, '[server]\nport = 7300\n');
    const previous = fs.readFileSync(config(), 'utf8');
    ok(installer(['--root', root, '--tarball', tarball, '--prefix', '/srv/zc', '--no-enable', '--config', mine]), 'reinstall');
    const unit = fs.readFileSync(path.join(root, 'etc/systemd/system/zisk-coordinator.service'), 'utf8');
    assert.match(unit, /^ExecStart=\/srv\/zc\/bin\/zisk-coordinator --config \/etc\/zisk\/coordinator\.toml$/m);
    assert.doesNotMatch(unit, /\/opt\/zisk-coordinator/);
    assert.ok(fs.existsSync(path.join(root, 'srv/zc/bin/zisk-coordinator')));
    assert.ok(!fs.existsSync(path.join(root, 'etc/systemd/system/multi-user.target.wants/zisk-coordinator.service')), '--no-enable');
    assert.equal(fs.readFileSync(config(), 'utf8'), '[server]\nport = 7300\n');
    assert.equal(fs.readFileSync(`${config()}.bak`, 'utf8'), previous);
    const st = fs.statSync(config());
    assert.deepEqual([st.mode & 0o7777, st.uid, st.gid], [0o640, 0, gid]);
    assert.ok(fs.existsSync(path.join(root, 'var/lib/zisk-coordinator/state/jobs.mdb')), 'the job store is where it was');

    ok(installer(['--root', root, '--prefix', '/srv/zc', '--uninstall', '--purge', '-y']), 'purge');
    for (const gone of ['etc/zisk', 'var/lib/zisk-coordinator', 'var/log/zisk-coordinator', 'srv/zc', 'etc/systemd/system/zisk-coordinator.service']) {
      assert.ok(!fs.existsSync(path.join(root, gone)), `${gone} purged`);
    }
    assert.doesNotMatch(fs.readFileSync(path.join(root, 'etc/passwd'), 'utf8'), /^zisk:/m);
    assert.doesNotMatch(fs.readFileSync(path.join(root, 'etc/group'), 'utf8'), /^zisk:/m);
    fs.rmSync(root, { recursive: true, force: true });
  });
});
