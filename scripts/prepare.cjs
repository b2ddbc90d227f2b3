#!/usr/bin/env node
'use strict';
// `npm ci` / `npm install` in a clone runs this (the `prepare` script): it compiles TypeScript to
// dist/ so that `npm ci && npm start` works. An install without dev dependencies
// (`npm ci --omit=dev`) has no TypeScript: building is then impossible, and failing would make that
// install fail for nothing, so it says what to do instead and succeeds. Releases are built once by
// scripts/build-release.sh and installed with `npm install --omit=dev <tarball>`, which never runs
// this (docs/operations.md, Install).
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
let tsc;
try {
  tsc = require.resolve('typescript/bin/tsc', { paths: [root] });
} catch {
  const built = fs.existsSync(path.join(root, 'dist', 'src', 'main', 'process', 'cli.js'));
  process.stderr.write(
    built
      ? 'prepare: TypeScript is not installed (dev dependencies omitted); keeping the existing dist/\n'
      : 'prepare: TypeScript is not installed (dev dependencies omitted), so dist/ is not built and ' +
          'bin/zisk-coordinator cannot run: install a release tarball (scripts/build-release.sh), or run ' +
          '`npm ci` with dev dependencies\n',
  );
  process.exit(0);
}
const r = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.json')], { stdio: 'inherit', cwd: root });
process.exit(r.status ?? 1);
