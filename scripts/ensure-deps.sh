#!/usr/bin/env bash
# Make sure the Debian packages osvtrace needs are installed; install the missing
# ones with apt-get when running as root, otherwise say exactly what to run.
# Usage: scripts/ensure-deps.sh CMD:PACKAGE ...
set -euo pipefail
missing=()
for pair in "$@"; do
    cmd=${pair%%:*}
    pkg=${pair#*:}
    if ! command -v "$cmd" >/dev/null 2>&1; then
        missing+=("$pkg")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
# shellcheck disable=SC2207
missing=($(printf '%s\n' "${missing[@]}" | sort -u))
if [ "$(id -u)" -ne 0 ]; then
    echo "osvtrace: missing Debian packages: ${missing[*]}" >&2
    echo "osvtrace: install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
echo "osvtrace: installing Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1; then
    apt-get update -qq >/dev/null 2>&1 || true
    if ! apt-get install -y -qq "${missing[@]}" >/dev/null; then
        echo "osvtrace: apt-get could not install: ${missing[*]}" >&2
        exit 1
    fi
fi
