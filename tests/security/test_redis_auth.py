"""Redis requires a login: a process on the host without the password can neither read job
data nor reconfigure Redis; Sluice's own user may run only the commands Sluice sends, on its
own keys; the password never shows on a command line; a wrong or missing password is one clear
error, not a crash or a flood of log lines."""
import os
import subprocess
import time
from pathlib import Path

import pytest

from pipeline import BUILD
from resp import Redis, RedisError


def refused(redis: Redis, *command) -> str:
    with pytest.raises(RedisError) as error:
        redis.call(*command)
    return str(error.value)


def test_without_the_password_redis_answers_noauth(fresh_pipeline):
    p = fresh_pipeline.start()
    p.start_worker("native", name="native-1")
    p.wait_workers("native-1")
    job = p.submit("echo", {"secret": "input"})
    assert p.wait_result(job["id"])["result"] == {"secret": "input"}

    with Redis(p.redis_port) as stranger:
        assert refused(stranger, "GET", f"sluice:job:{job['id']}").startswith("NOAUTH")
        assert refused(stranger, "HGETALL", f"sluice:job:{job['id']}").startswith("NOAUTH")
        assert refused(stranger, "CONFIG", "SET", "appendfsync", "no").startswith("NOAUTH")
    with pytest.raises(RedisError, match="WRONGPASS"):
        Redis(p.redis_port, password="guessed")
    with pytest.raises(RedisError, match="WRONGPASS"):
        Redis(p.redis_port, user="default", password=p.redis_password)

    # Sluice's user: its commands on its keys, nothing else.
    with p.redis_client() as redis:
        assert redis.call("HGET", f"sluice:job:{job['id']}", "status") == b"succeeded"
        for command in (["CONFIG", "SET", "appendfsync", "no"], ["FLUSHALL"], ["SHUTDOWN"],
                        ["ACL", "LIST"], ["KEYS", "*"], ["HGET", "other:key", "x"]):
            assert refused(redis, *command).startswith("NOPERM"), command


def test_the_password_stays_off_command_lines_and_in_private_files(fresh_pipeline):
    p = fresh_pipeline.start()
    assert p.secrets.stat().st_mode & 0o777 == 0o700
    for name in ("redis-password", "redis-users.conf", "redis-users.acl", "redis-replica-password",
                 "redis-replication.conf", "redis-sentinel-password"):
        assert (p.secrets / name).stat().st_mode & 0o777 == 0o600, name
    for name in ("redis-users.conf", "redis-users.acl", "redis-replication.conf"):
        assert p.redis_password not in (p.secrets / name).read_text(), name
    for _, proc in p.procs:
        assert p.redis_password.encode() not in Path(f"/proc/{proc.pid}/cmdline").read_bytes(), proc.args


def test_a_wrong_password_is_one_clear_error(fresh_pipeline, tmp_path):
    p = fresh_pipeline.start()
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password\n")
    logs = {"api": tmp_path / f"api-{len(p.procs)}.log"}
    p.start_api(SLUICE_REDIS_PASSWORD_FILE=str(wrong))
    logs["broker"] = tmp_path / f"broker-{len(p.procs)}.log"
    p.start_broker(leads=False, SLUICE_REDIS_PASSWORD_FILE=str(wrong))
    time.sleep(3)
    assert p.api.poll() is None and p.broker.poll() is None
    assert p.http.get("/readyz").status_code == 503
    for name, path in logs.items():
        log = path.read_text()
        refusals = [line for line in log.splitlines() if "refused the login of user 'sluice'" in line]
        # One line per connection (the api has two per thread), not one per retry.
        assert 1 <= len(refusals) <= 2 * os.cpu_count(), (name, log)
        assert "WRONGPASS" in refusals[0] and "SLUICE_REDIS_PASSWORD_FILE" in refusals[0], refusals
        assert len(log.splitlines()) < 20, (name, log)


@pytest.mark.parametrize("binary", ["broker/sluice-broker", "api/sluice-api"])
@pytest.mark.parametrize("problem", ["missing", "empty"])
def test_an_unreadable_password_file_stops_the_process(binary, problem, tmp_path):
    path = tmp_path / "redis-password"
    if problem == "empty":
        path.write_text("")
    env = dict(os.environ, SLUICE_REDIS_PASSWORD_FILE=str(path), SLUICE_API_PORT="0",
               SLUICE_BROKER_API_ENDPOINT="tcp://127.0.0.1:*", SLUICE_BROKER_WORKER_ENDPOINT="tcp://127.0.0.1:*")
    result = subprocess.run([str(BUILD / binary)], env=env, capture_output=True, text=True, timeout=10)
    assert result.returncode == 2, result
    assert "SLUICE_REDIS_PASSWORD_FILE" in result.stderr and str(path) in result.stderr, result.stderr
