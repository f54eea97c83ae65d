#!/usr/bin/env bash
# Starts the whole pipeline in the foreground under supervisord (Debian's `supervisor`):
# redis-server (project config, data under $SLUICE_DATA_DIR), the broker, the api, native and
# Python workers, and the webhook deliverer. A component that dies is started again and its exit is logged here. Ctrl-C or
# SIGTERM stops everything, workers first so running jobs can finish, then the api, the broker,
# Redis last. Every ZeroMQ link runs with CURVE, with keys made on the first start (below).
# SLUICE_API_INSTANCES=N (N > 1) runs N apis on loopback ports behind HAProxy
# (deploy/haproxy.cfg), which takes the public address instead.
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
# The dashboard's files (README.md, Dashboard), served by the api at /ui.
export SLUICE_UI_DIR=${SLUICE_UI_DIR:-$ROOT/ui}
NATIVE_WORKERS=${SLUICE_NATIVE_WORKERS:-1}
PYTHON_WORKERS=${SLUICE_PYTHON_WORKERS:-1}
API_INSTANCES=${SLUICE_API_INSTANCES:-1}
if [[ ! $API_INSTANCES =~ ^[1-9][0-9]*$ ]]; then
    echo "sluice: SLUICE_API_INSTANCES must be a number of apis (1 or more), got '$API_INSTANCES'" >&2
    exit 2
fi
mkdir -p "${SLUICE_DATA_DIR:-$ROOT/data}"
DATA_DIR=$(cd "${SLUICE_DATA_DIR:-$ROOT/data}" && pwd)
LOGS=$DATA_DIR/logs
CONF=$DATA_DIR/supervisord.conf
mkdir -p "$DATA_DIR/redis" "$LOGS"

# Redis's login: a random password made on the first start (kept in $SECRETS, mode 0700/0600),
# the users file redis-server includes, and the password file's path for the broker and the api.
SECRETS=$DATA_DIR/secrets
scripts/redis-auth.sh "$SECRETS"
export SLUICE_REDIS_USER=sluice
export SLUICE_REDIS_PASSWORD_FILE=$SECRETS/redis-password
# The api's read-token secret (README.md, Security), made once and kept like the password.
if [[ ! -s $SECRETS/token-secret ]]; then
    (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$SECRETS/token-secret")
fi
export SLUICE_TOKEN_SECRET_FILE=$SECRETS/token-secret
# API keys (README.md, Security): on a loopback address, off (the open development mode) unless
# SLUICE_AUTH says otherwise; on any other address SLUICE_AUTH must be set, or the api refuses
# to start.
if [[ -z ${SLUICE_AUTH:-} && ($SLUICE_API_HOST == 127.* || $SLUICE_API_HOST == localhost) ]]; then
    export SLUICE_AUTH=off
fi
# Behind HAProxy the apis listen on loopback, where they would allow the open mode themselves:
# the public address decides here, as the api decides for its own.
if ((API_INSTANCES > 1)) && [[ -z ${SLUICE_AUTH:-} ]]; then
    echo "sluice: SLUICE_AUTH is unset, and SLUICE_API_HOST $SLUICE_API_HOST is not a loopback address: set SLUICE_AUTH=required to need API keys, or SLUICE_AUTH=off to serve everyone as an admin on purpose" >&2
    exit 2
fi
# CURVE keys (README.md, Security), made on the first start and kept: keypairs for the broker, the
# api and this host's workers in $DATA_DIR/keys (0700; secret keys 0600), and the broker's
# allow-lists api-keys and worker-keys, which start with this host's keys. A worker host is
# added by appending its public key to worker-keys and restarting the broker.
KEYS=$DATA_DIR/keys
mkdir -p "$KEYS"
chmod 0700 "$KEYS"
for name in broker api worker; do
    [[ -e $KEYS/$name.key ]] || "$BUILD/common/sluice-keygen" "$KEYS/$name" >/dev/null
done
for name in api worker; do
    [[ -e $KEYS/$name-keys ]] || cp "$KEYS/$name.pub" "$KEYS/$name-keys"
done
# Each component's key files, as a supervisord environment= value.
broker_keys="SLUICE_CURVE_SECRET_KEY_FILE=\"$KEYS/broker.key\",SLUICE_API_KEYS_FILE=\"$KEYS/api-keys\",SLUICE_WORKER_KEYS_FILE=\"$KEYS/worker-keys\""
client_keys() { echo "SLUICE_CURVE_SECRET_KEY_FILE=\"$KEYS/$1.key\",SLUICE_BROKER_PUBLIC_KEY_FILE=\"$KEYS/broker.pub\""; }

# One [program] section. supervisord restarts a program that exits on its next tick (within a
# second) if it had run for startsecs, else after 1, 2, 3 ... s; it gives up on a program only
# after startretries starts in a row that each died within startsecs. Stopping sends SIGTERM and,
# after stopwaitsecs, SIGKILL to the program's process group. Stop order is by priority, highest
# first, one after the other. `environment` is added to what the program inherits from here.
program() {
    local name=$1 priority=$2 stopwait=$3 command=$4 environment=${5:-}
    cat <<EOF

[program:$name]
command=$command${environment:+
environment=$environment}
priority=$priority
autorestart=true
startsecs=1
startretries=100
stopwaitsecs=$stopwait
killasgroup=true
redirect_stderr=true
EOF
}

# Workers get stable names ($HOSTNAME-native-1 ...), the same after a restart, so the logs and a
# job's history say which one ran it.
worker_programs() {
    local kind=$1 count=$2 command=$3
    ((count > 0)) || return 0
    program "worker-$kind" 40 30 "$command" "SLUICE_WORKER_NAME=\"$HOSTNAME-$kind-%(process_num)d\",$(client_keys worker)"
    cat <<EOF
process_name=%(program_name)s-%(process_num)d
numprocs=$count
numprocs_start=1
stdout_logfile=$LOGS/%(program_name)s-%(process_num)d.log
EOF
}

{
    cat <<EOF
; Generated by scripts/run.sh at every start: edit that script instead.
[supervisord]
nodaemon=true
user=$(id -un)
logfile=$LOGS/supervisord.log
pidfile=$DATA_DIR/supervisord.pid
EOF
    program redis 10 10 "redis-server \"$ROOT/config/redis.conf\" --include \"$SECRETS/redis-users.conf\" --port $SLUICE_REDIS_PORT --dir \"$DATA_DIR/redis\""
    echo "stdout_logfile=$LOGS/redis.log"
    # Its info lines say when a worker is ready (below), so the broker logs at info at least.
    [[ ${SLUICE_LOG_LEVEL:-info} == debug ]] || broker_keys+=',SLUICE_LOG_LEVEL="info"'
    program broker 20 10 "\"$BUILD/broker/sluice-broker\"" "$broker_keys"
    echo "stdout_logfile=$LOGS/broker.log"
    if ((API_INSTANCES == 1)); then
        program api 30 15 "\"$BUILD/api/sluice-api\"" "$(client_keys api)"
        echo "stdout_logfile=$LOGS/api.log"
    else
        per_client=${SLUICE_PROXY_MAX_CONNECTIONS_PER_CLIENT:-${SLUICE_API_MAX_CONNECTIONS_PER_CLIENT:-128}}
        # api-I on 127.0.0.1, port SLUICE_API_PORT + I, all with the same CURVE key (one entry in
        # the broker's allow-list) and read-token secret. HAProxy connects from loopback: the
        # apis count its connections in their total only, it limits each client itself.
        for ((i = 1; i <= API_INSTANCES; i++)); do
            program "api-$i" 30 15 "\"$BUILD/api/sluice-api\"" "$(client_keys api),SLUICE_API_HOST=\"127.0.0.1\",SLUICE_API_PORT=\"$((SLUICE_API_PORT + i))\",SLUICE_API_TRUSTED_PROXIES=\"127.0.0.1/32\""
            echo "stdout_logfile=$LOGS/api-$i.log"
        done
        # Stopped before the apis: SIGUSR1 is HAProxy's soft stop (no new connections; open ones
        # get the config's hard-stop-after to finish). The per-client limit is HAProxy's now: it
        # takes SLUICE_API_MAX_CONNECTIONS_PER_CLIENT unless SLUICE_PROXY_... says otherwise.
        program haproxy 32 15 "haproxy -db -f \"$ROOT/deploy/haproxy.cfg\" -f \"$DATA_DIR/haproxy-apis.cfg\"" "SLUICE_PROXY_BIND=\"$SLUICE_API_HOST:$SLUICE_API_PORT\",SLUICE_PROXY_MAX_CONNECTIONS_PER_CLIENT=\"$per_client\""
        echo "stopsignal=USR1"
        echo "stdout_logfile=$LOGS/haproxy.log"
    fi
    # The webhook deliverer (README.md, Webhooks), stopped after the workers and before the api:
    # what it has not delivered stays in Redis for its next start. `python -m` rather than the
    # sluice-webhooks entry point, so it runs from a virtualenv made before it existed too.
    program webhooks 35 15 "\"$ROOT/.venv/bin/python\" -m sluice.webhooks" "SLUICE_WEBHOOK_NAME=\"$HOSTNAME-webhooks\""
    echo "stdout_logfile=$LOGS/webhooks.log"
    # The Python worker passes SIGTERM on to its --processes children itself (a second signal
    # would cut their grace period short), so only the final SIGKILL goes to its whole group.
    worker_programs native "$NATIVE_WORKERS" "\"$BUILD/workers/sluice-worker-native\""
    worker_programs python "$PYTHON_WORKERS" "\"$ROOT/.venv/bin/sluice-worker\""
} > "$CONF"

# HAProxy's list of apis (the second file deploy/haproxy.cfg names), and the configuration
# checked once here: supervisord would otherwise restart a HAProxy that refuses it forever.
if ((API_INSTANCES > 1)); then
    {
        echo "# Generated by scripts/run.sh at every start: the apis behind deploy/haproxy.cfg."
        echo "backend apis"
        for ((i = 1; i <= API_INSTANCES; i++)); do echo "    server api-$i 127.0.0.1:$((SLUICE_API_PORT + i))"; done
    } > "$DATA_DIR/haproxy-apis.cfg"
    if ! SLUICE_PROXY_BIND=$SLUICE_API_HOST:$SLUICE_API_PORT haproxy -c -q -f deploy/haproxy.cfg -f "$DATA_DIR/haproxy-apis.cfg"; then
        echo "sluice: HAProxy refuses deploy/haproxy.cfg with $DATA_DIR/haproxy-apis.cfg (above)" >&2
        exit 2
    fi
fi

# Each api's log: api.log, or api-1.log ... behind HAProxy.
api_logs=(api)
if ((API_INSTANCES > 1)); then
    api_logs=()
    for ((i = 1; i <= API_INSTANCES; i++)); do api_logs+=("api-$i"); done
fi

# Readiness is read from what this run appends to the logs, not from an earlier run's lines.
declare -A log_start
for log in "${api_logs[@]}" broker webhooks; do log_start[$log]=$(stat -c %s "$LOGS/$log.log" 2>/dev/null || echo 0); done
new_output() { tail -c "+$((log_start[$1] + 1))" "$LOGS/$1.log" 2>/dev/null; }

# Polls `$2...` every 0.2 s until it succeeds; says what it waits for every 30 s; fails if
# supervisord is gone.
wait_until() {
    local what=$1 tick
    shift
    for ((tick = 1; ; tick++)); do
        if "$@"; then return 0; fi
        kill -0 "$supervisor" 2>/dev/null || return 1
        ((tick % 150)) || echo "sluice: still waiting for $what (see $LOGS)" >&2
        sleep 0.2
    done
}

# The api prints "sluice-api listening on http://HOST:PORT" on stdout once it has bound its port
# ($1: its log's name).
api_url() { new_output "$1" | grep -m1 -o 'listening on http://[^ ]*' | cut -d' ' -f3; }
api_listening() { [[ -n $(api_url "$1") ]]; }

# GET /readyz at host $1, port $2 answers 200 once the api reaches Redis and the broker (bash's
# /dev/tcp: no curl).
readyz() {
    local reply=
    { printf 'GET /readyz HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$1" >&3
      read -r -t 5 reply <&3; } 2>/dev/null 3<>"/dev/tcp/$1/$2"
    [[ $reply == "HTTP/1.1 200"* ]]
}
api_ready() { local url; url=$(api_url "$1"); readyz "$(host_of "$url")" "${url##*:}"; }
# The address to probe for a URL's or a bind address's host: 0.0.0.0 is reached on loopback.
host_of() { local host=${1#http://}; host=${host%:*}; [[ $host != 0.0.0.0 ]] || host=127.0.0.1; echo "$host"; }
public_url=http://$SLUICE_API_HOST:$SLUICE_API_PORT
# Behind HAProxy: the public address answers /readyz through it, so an api is up behind it.
proxy_ready() { readyz "$(host_of "$public_url")" "$SLUICE_API_PORT"; }

# Each worker started here, by the name it declares (a Python worker with
# SLUICE_WORKER_PROCESSES=P > 1 runs P processes named NAME-1 .. NAME-P).
workers=()
for ((i = 1; i <= NATIVE_WORKERS; i++)); do workers+=("$HOSTNAME-native-$i"); done
for ((i = 1; i <= PYTHON_WORKERS; i++)); do
    if ((${SLUICE_WORKER_PROCESSES:-1} > 1)); then
        for ((p = 1; p <= SLUICE_WORKER_PROCESSES; p++)); do workers+=("$HOSTNAME-python-$i-$p"); done
    else
        workers+=("$HOSTNAME-python-$i")
    fi
done

# A worker has declared its job types once the broker logs "worker NAME (RUNTIME) ready: types
# [...]" (broker/worker_side.cpp, handle_ready; the end-to-end tests wait for the same line).
# Only then is a submit of those types sure not to be refused as unknown_job_type on a fresh
# data directory; the Python worker takes seconds to import LangChain and load its model.
worker_declared() { new_output broker | grep -qF "worker $1 ("; }

# The webhook deliverer prints "sluice-webhooks NAME delivering from ..." once it reads its stream.
deliverer_reading() { new_output webhooks | grep -qF " delivering from "; }

# Ready: the api listens and reaches Redis and the broker, the webhook deliverer reads its
# stream, every worker has declared its types.
ready() {
    local api
    for api in "${api_logs[@]}"; do
        wait_until "$api" api_listening "$api" || return 1
        wait_until "$api to reach Redis and the broker (GET /readyz)" api_ready "$api" || return 1
    done
    if ((API_INSTANCES > 1)); then
        wait_until "HAProxy on $public_url" proxy_ready || return 1
    fi
    wait_until "the webhook deliverer" deliverer_reading || return 1
    local worker
    for worker in "${workers[@]}"; do
        wait_until "worker $worker to declare its job types" worker_declared "$worker" || return 1
    done
}

supervisor=
stop() {
    trap - INT TERM HUP EXIT
    echo "sluice: stopping"
    kill -TERM "$supervisor" 2>/dev/null || true
    wait "$supervisor" 2>/dev/null || true
    echo "sluice: stopped"
}
trap 'stop; exit 0' INT TERM HUP
trap stop EXIT

# supervisord runs in a session of its own: a Ctrl-C on the terminal reaches only this script,
# which asks supervisord to stop the components in order (Redis must outlive the broker).
setsid supervisord -c "$CONF" &
supervisor=$!

echo "sluice: starting redis-server (127.0.0.1:$SLUICE_REDIS_PORT, data in $DATA_DIR/redis, AOF on, password in $SECRETS), broker, api, workers and the webhook deliverer; logs in $LOGS"
if ready; then
    if ((API_INSTANCES > 1)); then
        echo "sluice: api listening on $public_url, dashboard at $public_url/ui/ (HAProxy in front of $API_INSTANCES apis; $NATIVE_WORKERS native, $PYTHON_WORKERS Python worker(s)); Ctrl-C stops"
    else
        echo "sluice: api listening on $(api_url api), dashboard at $(api_url api)/ui/ ($NATIVE_WORKERS native, $PYTHON_WORKERS Python worker(s)); Ctrl-C stops"
    fi
    if [[ ${SLUICE_AUTH:-} == off ]]; then
        echo "sluice: auth is off (SLUICE_AUTH=off): whoever reaches $SLUICE_API_HOST:$SLUICE_API_PORT acts as an admin; set SLUICE_AUTH=required and SLUICE_ADMIN_KEY before exposing it"
    fi
fi
status=0
wait "$supervisor" || status=$?
echo "sluice: supervisord exited with status $status; stopping what it left running" >&2
pkill -TERM -s "$supervisor" || true
exit 1
