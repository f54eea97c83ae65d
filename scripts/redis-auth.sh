#!/usr/bin/env bash
# Usage: scripts/redis-auth.sh DIR
# Gives Sluice's Redis a login. Makes DIR (mode 0700) if missing; writes DIR/redis-password (mode
# 0600, 32 random bytes as hex) unless it exists; (re)writes the ACL file DIR/redis-users.acl
# and DIR/redis-users.conf (mode 0600), which redis-server reads with `--include
# DIR/redis-users.conf` (a path, so the password never shows on a command line, which every user
# on the host can read with ps) and which names the ACL file (`aclfile`). The users live in an
# ACL file, not in a config file, because a failover rewrites a Redis's config file (CONFIG
# REWRITE): users loaded from config files would be written into it, and defined twice at the
# next start, which Redis refuses. The users:
#   - the default user is off: a client that has not logged in can run no command at all, and
#     nobody can log in as it. It keeps every permission all the same, because Redis 7.0 checks
#     a MULTI/EXEC block replayed from the AOF (each Lua script's writes) against the default
#     user's permissions: without them the AOF replays as nothing;
#   - user `sluice`, the one the api, the broker and the webhook deliverer log in as (SLUICE_REDIS_USER,
#     SLUICE_REDIS_PASSWORD_FILE), may run only the commands Sluice sends, on its own keys
#     (sluice:*) and channel (sluice:notify): no CONFIG, no FLUSHALL, no DEBUG, no MODULE;
#   - user `admin`, for the operator (DIR/redis-admin-password, e.g. `REDISCLI_AUTH=$(cat
#     DIR/redis-admin-password) redis-cli --user admin -p 6399 CONFIG SET maxmemory 8gb`), may
#     run everything;
#   - user `replica`, the one a replica logs in to its master as (DIR/redis-replica-password),
#     may only replicate (PSYNC, REPLCONF, PING);
#   - user `sentinel`, the one Redis Sentinel logs in as (DIR/redis-sentinel-password), may run
#     what Sentinel sends to watch a master and carry out a failover, and nothing else.
# It also (re)writes DIR/redis-replication.conf (mode 0600): `masteruser replica` and the
# replica's password (`masterauth` takes it in clear), for every Redis of a replicated set to
# include, since any of them may become a replica after a failover.
# The file holds the password's SHA-256, not the password. scripts/run.sh, the tests
# (tests/e2e/pipeline.py) and the systemd install (README.md) all use this script.
set -euo pipefail
dir=${1:?usage: $0 DIR}
umask 077
mkdir -p "$dir"
chmod 700 "$dir"
# Makes DIR/$1 (32 random bytes as hex) unless it exists; prints the SHA-256 of its password.
password_hash() {
    if [[ ! -s $dir/$1 ]]; then
        od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$dir/$1.new"
        echo >> "$dir/$1.new"
        mv "$dir/$1.new" "$dir/$1"
    fi
    printf %s "$(< "$dir/$1")" | sha256sum | cut -d' ' -f1
}
hash=$(password_hash redis-password)
admin_hash=$(password_hash redis-admin-password)
replica_hash=$(password_hash redis-replica-password)
sentinel_hash=$(password_hash redis-sentinel-password)

# What each part sends. The api: PING (readyz), HMGET, HGET, HGETALL (the queue report, the types'
# input schemas), GET, LRANGE, XRANGE, ZCARD, ZRANK (a queued job's place), ZREVRANGE,
# ZREVRANGEBYSCORE, MULTI/EXEC and SUBSCRIBE; for API keys HSET, SADD, SCARD, SMEMBERS, SREM and
# DEL; for typed inputs SMEMBERS. The broker: EVALSHA/EVAL, SADD, SMEMBERS, HGET and HSET (the
# types' input schemas), SET (its worker and metrics reports), and inside its
# Lua scripts (broker/scripts.hpp, broker/lease_scripts.hpp: INCR and SET for the lease) the
# rest; INFO (its memory section: broker/storage_watch.hpp).
# For cron schedules the api runs EVAL (SISMEMBER, ZCARD, HSET, ZADD inside), ZRANGE, DEL and ZREM.
# For webhooks the api runs EVAL (HLEN, HSET inside), HGETALL and HDEL; the deliverer
# (python_workers/sluice/webhooks.py) XGROUP, XREADGROUP, XAUTOCLAIM, XACK, XDEL, EVAL (ZRANGEBYSCORE,
# ZADD inside), HGET, HGETALL, LRANGE, GET, SET, PTTL, RPUSH, LTRIM, PEXPIRE, ZADD, ZREM, MULTI/EXEC.
# SCAN: tests and bench/ read what was stored. With Redis Sentinel (README.md, Redis failover) the
# api and the broker check ROLE after each connect, and the broker sends WAIT after a batch of
# submits when SLUICE_REDIS_MIN_REPLICAS is set.
commands=(ping hmget hget hgetall zrank lrange exists xrange zcard zrevrange zrevrangebyscore multi exec subscribe scard
          srem del
          evalsha eval sadd smembers scan info
          expire get hdel hincrby incr hset persist publish rpush set xadd zadd zrange zrangebyscore zrem
          zremrangebyrank zremrangebyscore zscore
          hgetall hlen xgroup xreadgroup xautoclaim xack xdel pttl pexpire ltrim
          role wait sismember)
# What Redis Sentinel sends to the Redis it watches (Sentinel's own documentation lists them).
sentinel_commands=(multi slaveof ping exec subscribe config\|rewrite role publish info client\|setname client\|kill
                   script\|kill)
# An ACL file holds `user` lines only (no comments).
cat > "$dir/redis-users.acl.new" <<CONF
user default off ~* &* +@all
user admin on #$admin_hash ~* &* +@all
user sluice on #$hash resetkeys ~sluice:* resetchannels &sluice:* -@all $(printf '+%s ' "${commands[@]}")
user replica on #$replica_hash -@all +psync +replconf +ping
user sentinel on #$sentinel_hash allchannels -@all $(printf '+%s ' "${sentinel_commands[@]}")
CONF
mv "$dir/redis-users.acl.new" "$dir/redis-users.acl"
cat > "$dir/redis-users.conf.new" <<CONF
# Generated by scripts/redis-auth.sh: edit that script instead. The users (password hashes only).
aclfile $(cd "$dir" && pwd)/redis-users.acl
CONF
mv "$dir/redis-users.conf.new" "$dir/redis-users.conf"
cat > "$dir/redis-replication.conf.new" <<CONF
# Generated by scripts/redis-auth.sh from $dir/redis-replica-password: edit that script instead.
masteruser replica
masterauth $(< "$dir/redis-replica-password")
CONF
mv "$dir/redis-replication.conf.new" "$dir/redis-replication.conf"
