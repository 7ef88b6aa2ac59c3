#!/usr/bin/env bash
# Install the Debian packages named on the command line that are not installed yet.
#
#   scripts/ensure-system-packages.sh postgresql wrk
#
# Nothing is done (and nothing is fetched) when every package is already installed.
# Otherwise: one `apt-get update`, then one `apt-get install -y --no-install-recommends`
# of the missing ones. As root apt-get runs directly; otherwise through sudo when it
# exists; otherwise the script prints what to install and fails.
#
# Services that a package would start on its own (Debian's postgresql starts a cluster
# on port 5432) are kept from starting with a temporary policy-rc.d, unless the
# machine already has one: the tests start their own servers on free ports.
set -euo pipefail

log() { printf '[system-packages] %s\n' "$*" >&2; }

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

if [[ $# -eq 0 ]]; then
    exit 0
fi

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    log "not a Debian-like system (no dpkg/apt-get): install these yourself: $*"
    log "不是 Debian 系统：请自行安装以上软件包。"
    exit 1
fi

missing=()
for pkg in "$@"; do
    installed "$pkg" || missing+=("$pkg")
done
if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

if [[ $(id -u) -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    log "missing Debian packages: ${missing[*]}"
    log "缺少系统软件包，请以 root 身份安装 / install them as root:"
    log "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
    exit 1
fi

policy=/usr/sbin/policy-rc.d
remove_policy=false
cleanup() {
    if [[ $remove_policy == true ]]; then
        "${as_root[@]}" rm -f "$policy"
    fi
}
trap cleanup EXIT
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\n# temporary: written by %s\nexit 101\n' "$0" \
        | "${as_root[@]}" tee "$policy" >/dev/null
    "${as_root[@]}" chmod 755 "$policy"
    remove_policy=true
fi

log "installing / 安装: ${missing[*]}"
apt=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -o Dpkg::Use-Pty=0)
"${apt[@]}" update
"${apt[@]}" install -y --no-install-recommends "${missing[@]}"

for pkg in "${missing[@]}"; do
    if ! installed "$pkg"; then
        log "apt-get finished but $pkg is still not installed"
        exit 1
    fi
done
