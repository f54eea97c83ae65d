#!/usr/bin/env bash
# Installs what Sluice needs on Debian 12 (apt packages, the Python virtualenv) when it is missing.
# Safe to run again: it only installs what is not there yet.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(cmake g++ make pkg-config libboost-dev libzmq3-dev cppzmq-dev libmsgpack-cxx-dev
              libhiredis-dev nlohmann-json3-dev libfmt-dev doctest-dev redis-server)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

VENV=.venv
STAMP="$VENV/.requirements-installed"
if [[ ! -x "$VENV/bin/python" ]]; then
    echo "setup: creating Python virtualenv in $VENV"
    python3 -m venv "$VENV"
fi
if [[ ! -f "$STAMP" || python_workers/requirements.txt -nt "$STAMP" || python_workers/pyproject.toml -nt "$STAMP" ]]; then
    echo "setup: installing Python requirements"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q -r python_workers/requirements.txt
    "$VENV/bin/pip" install -q --no-deps -e python_workers
    touch "$STAMP"
fi
