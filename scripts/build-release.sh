#!/usr/bin/env bash
# Builds a release tarball: compiled once here (dev dependencies needed), installed anywhere with
# `npm install --omit=dev <tarball>` or deploy/install.sh (docs/operations.md, Install).
#
#   scripts/build-release.sh [--out DIR]     (default DIR: ./release)
#
# The tarball holds dist/src (compiled from a clean output directory, so no stale file of an old
# build can slip in), bin/, proto/, docs/, deploy/ and npm-shrinkwrap.json (the repository's lock
# file: installs get the exact dependency versions the tests ran against). Its path is the last line
# printed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${root}/release"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --out) [[ $# -ge 2 ]] || { echo "build-release: --out needs a directory" >&2; exit 2; }
               out="$2"; shift 2 ;;
        -h|--help) sed -n '2,10p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "build-release: unknown argument: $1" >&2; exit 2 ;;
    esac
done

tsc="${root}/node_modules/typescript/bin/tsc"
[[ -f "${tsc}" ]] || { echo "build-release: TypeScript is not installed: run npm ci (with dev dependencies) first" >&2; exit 1; }

stage="$(mktemp -d "${TMPDIR:-/tmp}/zisk-release.XXXXXX")"
trap 'rm -rf "${stage}"' EXIT

cp -R "${root}/package.json" "${root}/README.md" "${root}/bin" "${root}/proto" "${root}/docs" "${root}/deploy" "${stage}/"
cp "${root}/package-lock.json" "${stage}/npm-shrinkwrap.json"
node "${tsc}" -p "${root}/tsconfig.release.json" --outDir "${stage}/dist"

mkdir -p "${out}"
out="$(cd "${out}" && pwd)"
# --ignore-scripts: dist/ is built above; `prepare` would try to build again without TypeScript.
name="$(cd "${stage}" && npm pack --ignore-scripts --silent --pack-destination "${out}")"
echo "${out}/${name##*$'\n'}"
