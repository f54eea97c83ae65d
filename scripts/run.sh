#!/usr/bin/env bash
# Starts the whole pipeline in the foreground: redis-server (project config, data under
# $SLUICE_DATA_DIR), the broker, the api, native and Python workers. Ctrl-C or SIGTERM stops
# everything, workers first so running jobs can finish, Redis last.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${SLUICE_BUILD_DIR:-$ROOT/build}

export SLUICE_API_HOST=${SLUICE_API_HOST:-127.0.0.1}
export SLUICE_API_PORT=${SLUICE_API_PORT:-8080}
export SLUICE_REDIS_HOST=127.0.0.1
export SLUICE_REDIS_PORT=${SLUICE_REDIS_PORT:-6399}
export SLUICE_BROKER_API_ENDPOINT=${SLUICE_BROKER_API_ENDPOINT:-tcp://127.0.0.1:5555}
export SLUICE_BROKER_WORKER_ENDPOINT=${SLUICE_BROKER_WORKER_ENDPOINT:-tcp://127.0.0.1:5556}
DATA_DIR=${SLUICE_DATA_DIR:-$ROOT/data}
NATIVE_WORKERS=${SLUICE_NATIVE_WORKERS:-1}
PYTHON_WORKERS=${SLUICE_PYTHON_WORKERS:-1}
mkdir -p "$DATA_DIR/redis" "$DATA_DIR/logs"

pids=()
stop() {
    trap - INT TERM EXIT
    echo "sluice: stopping"
    # Workers and api first, then the broker, Redis last (reverse start order).
    for ((i=${#pids[@]}-1; i>=0; i--)); do
        kill -TERM "${pids[i]}" 2>/dev/null || true
        wait "${pids[i]}" 2>/dev/null || true
    done
    echo "sluice: stopped"
}
trap 'stop; exit 0' INT TERM
trap stop EXIT

# Waits up to 10 s for a line matching $2 in file $1, then prints the line.
wait_for_line() {
    for _ in $(seq 100); do
        if grep -m1 "$2" "$1" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "sluice: gave up waiting for '$2' in $1" >&2
    return 1
}

redis-server config/redis.conf --port "$SLUICE_REDIS_PORT" --dir "$DATA_DIR/redis" \
    --logfile "$DATA_DIR/logs/redis.log" &
pids+=($!)
for _ in $(seq 100); do
    redis-cli -p "$SLUICE_REDIS_PORT" ping >/dev/null 2>&1 && break
    sleep 0.1
done
redis-cli -p "$SLUICE_REDIS_PORT" ping >/dev/null || { echo "sluice: redis-server did not start (see $DATA_DIR/logs/redis.log)" >&2; exit 1; }
echo "sluice: redis-server on 127.0.0.1:$SLUICE_REDIS_PORT, data in $DATA_DIR/redis (AOF on)"

"$BUILD/broker/sluice-broker" > "$DATA_DIR/logs/broker.out" &
pids+=($!)
wait_for_line "$DATA_DIR/logs/broker.out" "sluice-broker" >/dev/null

"$BUILD/api/sluice-api" > "$DATA_DIR/logs/api.out" &
pids+=($!)
wait_for_line "$DATA_DIR/logs/api.out" "listening" >/dev/null

for ((i=0; i<NATIVE_WORKERS; i++)); do
    "$BUILD/workers/sluice-worker-native" &
    pids+=($!)
done
for ((i=0; i<PYTHON_WORKERS; i++)); do
    "$ROOT/.venv/bin/sluice-worker" &
    pids+=($!)
done

echo "sluice: api listening on http://$SLUICE_API_HOST:$SLUICE_API_PORT ($NATIVE_WORKERS native, $PYTHON_WORKERS Python worker(s)); Ctrl-C stops"
# Exit (and stop the rest) as soon as any component dies.
wait -n "${pids[@]}" || true
echo "sluice: a component exited; shutting down" >&2
