#!/usr/bin/env bash
# install.sh: installs a zisk-coordinator release (a tarball from scripts/build-release.sh) as a
# systemd service, or removes it. Idempotent: a second run with the same arguments changes nothing.
# docs/operations.md, Install, has the whole procedure (upgrade and rollback included).
#
# Usage:
#   sudo deploy/install.sh --tarball zisk-coordinator-X.Y.Z.tgz [OPTIONS]
#   sudo deploy/install.sh --uninstall [-y] [--purge]
#
# Options:
#   --tarball PATH     the release to install (switches to it if another one is current)
#   --config PATH      install this configuration (the previous one is kept as coordinator.toml.bak);
#                      without it a configuration is written only if none exists, from the release's
#                      deploy/coordinator.example.toml with the flags below applied
#   --api-port N       client API port        ([server] port in the written configuration)
#   --cluster-port N   worker port            ([coordinator] port)
#   --metrics-port N   /metrics and /health   ([metrics] port)
#   --log-level LEVEL  trace|debug|info|warn|error ([logging] level)
#   --prefix DIR       where releases go (default /opt/zisk-coordinator)
#   --root DIR         install into DIR as if it were / (a scratch root or an image being built):
#                      users are created with useradd --root, the unit is enabled with
#                      systemctl --root, and nothing is started or reloaded
#   --no-service       no service user, unit or systemd (a container): the directories belong to the
#                      invoking user, and the command to run is printed
#   --no-enable        install the unit but neither enable nor start it
#   --no-start         enable the unit but do not (re)start it
#   --uninstall        stop, disable and remove the unit and the releases; the configuration, the
#                      job store, the cache, the logs and the user stay unless --purge is given
#   --purge            with --uninstall: remove those too
#   -y, --yes          do not ask before uninstalling
#   -h, --help
set -euo pipefail
umask 022

NAME=zisk-coordinator
SERVICE_USER=zisk
SERVICE_GROUP=zisk
PREFIX=/opt/zisk-coordinator
ROOT=""
CONFIG_DIR=/etc/zisk
CONFIG_FILE=/etc/zisk/coordinator.toml
STATE_DIR=/var/lib/zisk-coordinator
LOG_DIR=/var/log/zisk-coordinator
UNIT_FILE=/etc/systemd/system/zisk-coordinator.service
LOGROTATE_FILE=/etc/logrotate.d/zisk-coordinator

TARBALL=""
CONFIG_SRC=""
API_PORT=""
CLUSTER_PORT=""
METRICS_PORT=""
LOG_LEVEL=""
NO_SERVICE=false
NO_ENABLE=false
NO_START=false
UNINSTALL=false
PURGE=false
ASSUME_YES=false

say() { printf '%s: %s\n' "${NAME}-install" "$*"; }
warn() { printf '%s: warning: %s\n' "${NAME}-install" "$*" >&2; }
die() { printf '%s: error: %s\n' "${NAME}-install" "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

need_value() { [[ $# -ge 2 && -n "$2" ]] || die "$1 needs a value"; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --tarball)      need_value "$@"; TARBALL="$2"; shift 2 ;;
        --config)       need_value "$@"; CONFIG_SRC="$2"; shift 2 ;;
        --api-port)     need_value "$@"; API_PORT="$2"; shift 2 ;;
        --cluster-port) need_value "$@"; CLUSTER_PORT="$2"; shift 2 ;;
        --metrics-port) need_value "$@"; METRICS_PORT="$2"; shift 2 ;;
        --log-level)    need_value "$@"; LOG_LEVEL="$2"; shift 2 ;;
        --prefix)       need_value "$@"; PREFIX="$2"; shift 2 ;;
        --root)         need_value "$@"; ROOT="$2"; shift 2 ;;
        --no-service)   NO_SERVICE=true; shift ;;
        --no-enable)    NO_ENABLE=true; shift ;;
        --no-start)     NO_START=true; shift ;;
        --uninstall)    UNINSTALL=true; shift ;;
        --purge)        PURGE=true; shift ;;
        -y|--yes)       ASSUME_YES=true; shift ;;
        -h|--help)      usage; exit 0 ;;
        *)              die "unknown option: $1 (see --help)" ;;
    esac
done

# ── checks before anything changes ───────────────────────────────────────────

for port_flag in "--api-port:${API_PORT}" "--cluster-port:${CLUSTER_PORT}" "--metrics-port:${METRICS_PORT}"; do
    value="${port_flag#*:}"
    [[ -z "${value}" ]] && continue
    if ! [[ "${value}" =~ ^[0-9]{1,5}$ ]] || (( 10#${value} > 65535 )); then
        die "${port_flag%%:*} must be a port number 0-65535, not '${value}'"
    fi
done
case "${LOG_LEVEL}" in
    ""|trace|debug|info|warn|error) ;;
    *) die "--log-level must be one of trace, debug, info, warn, error, not '${LOG_LEVEL}'" ;;
esac
[[ "${PREFIX}" == /* ]] || die "--prefix must be an absolute path, not '${PREFIX}'"
[[ "${PREFIX}" != "/" ]] || die "--prefix cannot be /"
if [[ -n "${ROOT}" ]]; then
    [[ -d "${ROOT}" ]] || die "--root ${ROOT} is not a directory"
    ROOT="$(cd "${ROOT}" && pwd)"
    [[ "${ROOT}" != "/" ]] || ROOT=""
fi
if $PURGE && ! $UNINSTALL; then die "--purge goes with --uninstall"; fi
if [[ "$(id -u)" -ne 0 ]] && ! $NO_SERVICE; then
    die "run as root (sudo): it creates a user, writes under /etc, /opt and /var"
fi

# Every path on disk goes through r(): the same layout, under --root when given.
r() { printf '%s%s' "${ROOT}" "$1"; }

# Owner lookups read the scratch root's own files under --root, the system's (NSS) otherwise.
lookup_id() { # database name → numeric id, or nothing
    if [[ -n "${ROOT}" ]]; then
        [[ -f "$(r "/etc/$1")" ]] && awk -F: -v n="$2" '$1 == n { print $3; exit }' "$(r "/etc/$1")"
    else
        getent "$1" "$2" | cut -d: -f3
    fi
    return 0
}

systemctl_cmd() {
    if [[ -n "${ROOT}" ]]; then systemctl --root="${ROOT}" "$@"; else systemctl "$@"; fi
}

# Writes stdin to DEST with MODE and OWNER (user:group ids) unless DEST already holds exactly that;
# prints what it did.
put_file() {
    local dest="$1" mode="$2" owner="$3" tmp
    tmp="$(mktemp "$(dirname "${dest}")/.${NAME}.XXXXXX")"
    cat > "${tmp}"
    if [[ -f "${dest}" ]] && cmp -s "${tmp}" "${dest}"; then
        rm -f "${tmp}"
        chmod "${mode}" "${dest}"
        chown "${owner}" "${dest}"
        say "unchanged ${dest}"
        return 0
    fi
    chmod "${mode}" "${tmp}"
    chown "${owner}" "${tmp}"
    local verb=created
    [[ -e "${dest}" ]] && verb=updated
    mv -f "${tmp}" "${dest}"
    say "${verb} ${dest}"
}

put_dir() { # path mode owner
    [[ -d "$1" ]] || { mkdir -p "$1"; say "created $1"; }
    chmod "$2" "$1"
    chown "$3" "$1"
}

put_link() { # target link
    if [[ -L "$2" && "$(readlink "$2")" == "$1" ]]; then return 0; fi
    ln -sfn "$1" "$2"
    say "linked $2 -> $1"
}

confirm() {
    $ASSUME_YES && return 0
    [[ -t 0 ]] || die "$1: not asked without a terminal; pass -y"
    local answer
    read -r -p "$1 [y/N] " answer
    [[ "${answer}" == [yY] || "${answer}" == [yY][eE][sS] ]]
}

# ── uninstall ─────────────────────────────────────────────────────────────────

if $UNINSTALL; then
    if [[ ! -e "$(r "${UNIT_FILE}")" && ! -e "$(r "${PREFIX}/current")" && ! -d "$(r "${PREFIX}/releases")" ]]; then
        say "${NAME} is not installed under ${ROOT}${PREFIX}: nothing to do"
        exit 0
    fi
    what="Remove ${NAME} (unit and releases under ${ROOT}${PREFIX})"
    $PURGE && what+=", with its configuration, job store, cache, logs and the ${SERVICE_USER} user"
    confirm "${what}?" || { say "cancelled"; exit 0; }
    if [[ -e "$(r "${UNIT_FILE}")" ]]; then
        if [[ -z "${ROOT}" ]]; then
            systemctl stop "${NAME}.service" 2>/dev/null || true
        fi
        systemctl_cmd disable "${NAME}.service" 2>/dev/null || true
        rm -f "$(r "${UNIT_FILE}")"
        say "removed ${ROOT}${UNIT_FILE}"
        [[ -n "${ROOT}" ]] || systemctl daemon-reload
    fi
    rm -f "$(r "${LOGROTATE_FILE}")"
    rm -rf "$(r "${PREFIX}/releases")" "$(r "${PREFIX}/current")" "$(r "${PREFIX}/bin/${NAME}")"
    rmdir "$(r "${PREFIX}/bin")" "$(r "${PREFIX}")" 2>/dev/null || true
    say "removed the releases under ${ROOT}${PREFIX}"
    if $PURGE; then
        rm -f "$(r "${CONFIG_FILE}")" "$(r "${CONFIG_FILE}.bak")"
        rmdir "$(r "${CONFIG_DIR}")" 2>/dev/null || true  # other ZisK services keep theirs here
        rm -rf "$(r "${STATE_DIR}")" "$(r "${LOG_DIR}")"
        if [[ -n "$(lookup_id passwd "${SERVICE_USER}")" ]]; then
            if [[ -n "${ROOT}" ]]; then userdel --root "${ROOT}" "${SERVICE_USER}"; else userdel "${SERVICE_USER}"; fi
        fi
        if [[ -n "$(lookup_id group "${SERVICE_GROUP}")" ]]; then
            if [[ -n "${ROOT}" ]]; then groupdel --root "${ROOT}" "${SERVICE_GROUP}" 2>/dev/null || true
            else groupdel "${SERVICE_GROUP}" 2>/dev/null || true; fi
        fi
        say "purged the configuration, ${STATE_DIR}, ${LOG_DIR} and the ${SERVICE_USER} user"
    else
        say "kept ${CONFIG_FILE}, ${STATE_DIR} (job store and cache), ${LOG_DIR} and the ${SERVICE_USER} user (--purge removes them)"
    fi
    exit 0
fi

# ── install: the release ──────────────────────────────────────────────────────

[[ -n "${TARBALL}" ]] || die "--tarball is required (a release from scripts/build-release.sh)"
[[ -f "${TARBALL}" ]] || die "--tarball ${TARBALL}: no such file"
TARBALL="$(cd "$(dirname "${TARBALL}")" && pwd)/$(basename "${TARBALL}")"
[[ -z "${CONFIG_SRC}" || -f "${CONFIG_SRC}" ]] || die "--config ${CONFIG_SRC}: no such file"
command -v node >/dev/null || die "node (>= 20.10) is not on PATH; the coordinator runs on it"
command -v npm >/dev/null || die "npm is not on PATH; it installs the release's dependencies"
if ! $NO_SERVICE && ! { $NO_ENABLE && [[ -z "${ROOT}" ]]; }; then
    command -v systemctl >/dev/null || die "systemctl not found: use --no-service outside systemd"
fi
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=10)?0:1)' \
    || die "node $(node --version) is too old: the coordinator needs >= 20.10"

manifest="$(tar -xzOf "${TARBALL}" package/package.json 2>/dev/null)" \
    || die "${TARBALL} is not a release tarball (no package/package.json in it)"
release_name="$(node -e 'const p=JSON.parse(require("fs").readFileSync(0,"utf8")); process.stdout.write(String(p.name))' <<<"${manifest}")"
VERSION="$(node -e 'const p=JSON.parse(require("fs").readFileSync(0,"utf8")); process.stdout.write(String(p.version))' <<<"${manifest}")"
[[ "${release_name}" == "${NAME}" ]] || die "${TARBALL} is a release of '${release_name}', not ${NAME}"
[[ "${VERSION}" =~ ^[0-9A-Za-z.+-]+$ ]] || die "${TARBALL}: unusable version '${VERSION}'"
tarball_sha="$(sha256sum "${TARBALL}" | cut -d' ' -f1)"

RELEASES="$(r "${PREFIX}/releases")"
RELEASE="${RELEASES}/${VERSION}"
mkdir -p "${RELEASES}"
if [[ -f "${RELEASE}/.tarball-sha256" && "$(cat "${RELEASE}/.tarball-sha256")" == "${tarball_sha}" ]]; then
    say "unchanged release ${VERSION} (${ROOT}${PREFIX}/releases/${VERSION})"
else
    # Installed beside, then renamed into place: an interrupted install never leaves half a release.
    stage="$(mktemp -d "${RELEASES}/.${VERSION}.XXXXXX")"
    trap 'rm -rf "${stage}"' EXIT
    say "installing release ${VERSION} (npm install --omit=dev) ..."
    (cd "${stage}" && npm install --prefix "${stage}" --omit=dev --no-save --no-package-lock \
        --no-audit --no-fund --loglevel=error "${TARBALL}" >&2) \
        || die "npm install of ${TARBALL} failed (above); nothing was changed"
    [[ -x "${stage}/node_modules/.bin/${NAME}" ]] || die "${TARBALL} installed no ${NAME} executable"
    printf '%s\n' "${tarball_sha}" > "${stage}/.tarball-sha256"
    chmod 0755 "${stage}"
    rm -rf "${RELEASE}"
    mv "${stage}" "${RELEASE}"
    trap - EXIT
    say "installed release ${VERSION} in ${ROOT}${PREFIX}/releases/${VERSION}"
fi
PACKAGE="${RELEASE}/node_modules/${NAME}"
NEW_BIN="${RELEASE}/node_modules/.bin/${NAME}"

# ── install: the configuration, checked before anything else changes ──────────

# The example with the flags applied, section by section; the cache and the job store go under the
# state directory, and logs as JSON lines (journald keeps stdout). These defaults live in the file,
# not in the unit's environment, which would win over anything the operator writes here.
generated_config() {
    awk -v api="${API_PORT}" -v cluster="${CLUSTER_PORT}" -v metrics="${METRICS_PORT}" -v level="${LOG_LEVEL}" \
        -v state="${STATE_DIR}" '
        function set(value) { sub(/=[ ]*("[^"]*"|[^ #]+)/, "= " value) }
        /^\[/ { section = $0 }
        section == "[server]" && /^port[ ]*=/ && api != "" { set(api) }
        section == "[coordinator]" && /^port[ ]*=/ && cluster != "" { set(cluster) }
        section == "[metrics]" && /^port[ ]*=/ && metrics != "" { set(metrics) }
        section == "[logging]" && /^level[ ]*=/ && level != "" { set("\"" level "\"") }
        section == "[logging]" && /^#?[ ]*format[ ]*=/ { sub(/^#[ ]*/, ""); set("\"json\"") }
        section == "[coordinator]" && /^#[ ]*cache_dir[ ]*=/ { sub(/^#[ ]*/, ""); set("\"" state "/cache\"") }
        section == "[state]" && /^#[ ]*dir[ ]*=/ { sub(/^#[ ]*/, ""); set("\"" state "/state\"") }
        { print }
    ' "${PACKAGE}/deploy/coordinator.example.toml"
}

check_config() { # file: parsed and validated by the release itself (no directory is touched)
    env -i PATH="${PATH}" HOME=/nonexistent "${NEW_BIN}" --config "$1" --print-config >/dev/null
}

candidate="$(mktemp)"
trap 'rm -f "${candidate}"' EXIT
if [[ -n "${CONFIG_SRC}" ]]; then
    if [[ -n "${API_PORT}${CLUSTER_PORT}${METRICS_PORT}${LOG_LEVEL}" ]]; then
        die "--api-port, --cluster-port, --metrics-port and --log-level shape a generated configuration: set them in ${CONFIG_SRC} instead"
    fi
    cat "${CONFIG_SRC}" > "${candidate}"
    check_config "${candidate}" || die "${CONFIG_SRC} is not a valid configuration (above); nothing was changed"
elif [[ -f "$(r "${CONFIG_FILE}")" ]]; then
    generated_config > "${candidate}"
    if ! cmp -s "${candidate}" "$(r "${CONFIG_FILE}")" && [[ -n "${API_PORT}${CLUSTER_PORT}${METRICS_PORT}${LOG_LEVEL}" ]]; then
        warn "kept the existing ${CONFIG_FILE}: the port and level flags apply only to a configuration this script writes; edit it (or pass --config)"
    fi
    : > "${candidate}"
else
    generated_config > "${candidate}"
    check_config "${candidate}" || die "the generated configuration does not load (above); nothing was changed"
fi

# ── install: user, directories, files ─────────────────────────────────────────

if $NO_SERVICE; then
    uid="$(id -u)"
    gid="$(id -g)"
    admin="${uid}"
else
    admin=0
    if [[ -n "${ROOT}" ]]; then
        mkdir -p "$(r /etc)"
        for db in passwd group; do [[ -f "$(r "/etc/${db}")" ]] || : > "$(r "/etc/${db}")"; done
    fi
    root_opt=()
    [[ -n "${ROOT}" ]] && root_opt=(--root "${ROOT}")
    if [[ -z "$(lookup_id group "${SERVICE_GROUP}")" ]]; then
        groupadd "${root_opt[@]}" --system "${SERVICE_GROUP}"
        say "created group ${SERVICE_GROUP}"
    fi
    if [[ -z "$(lookup_id passwd "${SERVICE_USER}")" ]]; then
        useradd "${root_opt[@]}" --system --gid "${SERVICE_GROUP}" --no-create-home --home-dir "${STATE_DIR}" \
            --shell /usr/sbin/nologin --comment "ZisK coordinator" "${SERVICE_USER}" 2> >(grep -v 'missing or non-executable shell' >&2)
        say "created user ${SERVICE_USER}"
    fi
    uid="$(lookup_id passwd "${SERVICE_USER}")"
    gid="$(lookup_id group "${SERVICE_GROUP}")"
    [[ -n "${uid}" && -n "${gid}" ]] || die "user ${SERVICE_USER} or group ${SERVICE_GROUP} missing after creating them"
fi

# The configuration is readable by the service, writable by root only; state, cache and logs are the
# service's alone.
put_dir "$(r "${CONFIG_DIR}")" 0750 "${admin}:${gid}"
if [[ -s "${candidate}" ]]; then
    if [[ -n "${CONFIG_SRC}" && -f "$(r "${CONFIG_FILE}")" ]] && ! cmp -s "${candidate}" "$(r "${CONFIG_FILE}")"; then
        cp -p "$(r "${CONFIG_FILE}")" "$(r "${CONFIG_FILE}.bak")"
        say "kept the previous configuration as ${CONFIG_FILE}.bak"
    fi
    put_file "$(r "${CONFIG_FILE}")" 0640 "${admin}:${gid}" < "${candidate}"
else
    chmod 0640 "$(r "${CONFIG_FILE}")"
    chown "${admin}:${gid}" "$(r "${CONFIG_FILE}")"
    say "unchanged ${CONFIG_FILE} (kept: an existing configuration is never rewritten)"
fi
for dir in "${STATE_DIR}" "${STATE_DIR}/state" "${STATE_DIR}/cache" "${LOG_DIR}"; do
    put_dir "$(r "${dir}")" 0750 "${uid}:${gid}"
done

# Switch to the release last: the configuration it needs is in place.
put_dir "$(r "${PREFIX}/bin")" 0755 "${admin}:$(id -g)"
put_link "releases/${VERSION}" "$(r "${PREFIX}/current")"
put_link "../current/node_modules/.bin/${NAME}" "$(r "${PREFIX}/bin/${NAME}")"

if $NO_SERVICE; then
    say "installed ${NAME} ${VERSION} without a service. Run it with:"
    printf '  %s --config %s\n' "${PREFIX}/bin/${NAME}" "${CONFIG_FILE}"
    exit 0
fi

mkdir -p "$(r "$(dirname "${UNIT_FILE}")")" "$(r "$(dirname "${LOGROTATE_FILE}")")"
sed "s|/opt/zisk-coordinator|${PREFIX}|g" "${PACKAGE}/deploy/systemd/${NAME}.service" \
    | put_file "$(r "${UNIT_FILE}")" 0644 0:0
put_file "$(r "${LOGROTATE_FILE}")" 0644 0:0 <<EOF
# ${NAME}: only used when [logging] file_path is set under ${LOG_DIR}. SIGHUP (systemctl reload)
# makes the coordinator reopen its log file after the rename.
${LOG_DIR}/*.log {
    daily
    rotate 14
    compress
    delaycompress
    missingok
    notifempty
    postrotate
        systemctl reload ${NAME}.service >/dev/null 2>&1 || true
    endscript
}
EOF

# ── install: systemd ──────────────────────────────────────────────────────────

if [[ -n "${ROOT}" ]]; then
    if ! $NO_ENABLE; then
        systemctl_cmd enable "${NAME}.service" >/dev/null 2>&1 || die "systemctl --root=${ROOT} enable failed"
        say "enabled ${NAME}.service under ${ROOT}"
    fi
    say "under --root nothing is started: on the target system run systemctl daemon-reload$($NO_ENABLE || $NO_START || printf ' and systemctl restart %s' "${NAME}")"
    exit 0
fi
systemctl daemon-reload
if $NO_ENABLE; then
    say "unit installed, not enabled (--no-enable): systemctl enable --now ${NAME}"
elif $NO_START; then
    systemctl enable "${NAME}.service"
    say "enabled, not started (--no-start): systemctl start ${NAME}"
else
    systemctl enable "${NAME}.service"
    # restart, not start: on an upgrade the running process still executes the previous release.
    systemctl restart "${NAME}.service"
    say "started ${NAME} ${VERSION}: systemctl status ${NAME}; journalctl -u ${NAME} -f"
fi
