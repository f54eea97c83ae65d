"""Configuration from the environment: every binary reads its variables through one reader
(common/env.hpp), so a bad value stops it at once, with exit status 2 and a message naming the
variable, the range and the value, instead of wrapping or being ignored."""
import os
import subprocess

import pytest

from pipeline import BUILD

BINARIES = {
    "api": BUILD / "api" / "sluice-api",
    "broker": BUILD / "broker" / "sluice-broker",
    "native": BUILD / "workers" / "sluice-worker-native",
}


@pytest.mark.parametrize("binary, name, value, range_text", [
    ("api", "SLUICE_API_PORT", "99999", "0..65535"),
    ("api", "SLUICE_API_THREADS", "two", "1..256"),
    ("api", "SLUICE_API_SSE_KEEPALIVE_MS", "-5", "100..3600000"),
    ("api", "SLUICE_API_MAX_BODY", "1e6", "1..4294967296"),
    ("api", "SLUICE_MAX_INPUT_BYTES", "2000000", "1..1048576"),
    ("api", "SLUICE_API_MAX_CONNECTIONS_PER_CLIENT", "2000", "1..1024"),
    ("api", "SLUICE_API_FIRST_BYTE_TIMEOUT_MS", "40000", "100..30000"),
    ("broker", "SLUICE_MAX_QUEUE_DEPTH", "-1", "1..1000000000"),
    ("broker", "SLUICE_REDIS_PORT", "6379x", "1..65535"),
    ("broker", "SLUICE_JOB_TTL_S", "0", "1..315360000"),
    ("broker", "SLUICE_TENANT_MAX_RUNNING", "0", "1..1000000000"),
    ("broker", "SLUICE_TENANT_MAX_QUEUED", "0", "1..1000000000"),
    ("broker", "SLUICE_BROKER_LEASE_MS", "100", "500..60000"),
    ("native", "SLUICE_WORKER_CONCURRENCY", "0", "1..1024"),
    ("native", "SLUICE_WORKER_CONCURRENCY", "-3", "1..1024"),
])
def test_bad_value_stops_the_process_naming_it(binary, name, value, range_text):
    env = {**os.environ, name: value}
    done = subprocess.run([str(BINARIES[binary])], env=env, capture_output=True, text=True, timeout=10)
    assert done.returncode == 2
    assert f"{name} must be an integer in {range_text}, got '{value}'" in done.stderr


@pytest.mark.parametrize("value, problem", [
    ("acme", "lists 'acme': each item must be tenant=weight"),
    ("acme=0", "lists 'acme=0': each item must be tenant=weight"),
    ("acme=1001", "lists 'acme=1001': each item must be tenant=weight, a tenant name (1-64 letters, digits, '_', "
                  "'.', '-') and a weight in 1..1000"),
    ("a:b=2", "lists 'a:b=2'"),
    ("acme=2,acme=3", "lists tenant 'acme' twice"),
])
def test_bad_tenant_weights_stop_the_broker(value, problem):
    env = {**os.environ, "SLUICE_TENANT_WEIGHTS": value}
    done = subprocess.run([str(BINARIES["broker"])], env=env, capture_output=True, text=True, timeout=10)
    assert done.returncode == 2
    assert f"SLUICE_TENANT_WEIGHTS {problem}" in done.stderr


@pytest.mark.parametrize("value", ["127.0.0.1/33", "10.0.0.0/8,proxy.example", "::1/129", "127.0.0.1 /32"])
def test_bad_trusted_proxies_stop_the_api(value):
    env = {**os.environ, "SLUICE_API_TRUSTED_PROXIES": value}
    done = subprocess.run([str(BINARIES["api"])], env=env, capture_output=True, text=True, timeout=10)
    assert done.returncode == 2
    assert "SLUICE_API_TRUSTED_PROXIES holds '" in done.stderr and "which is not a network in CIDR form" in done.stderr


@pytest.mark.parametrize("value", ["a b", "x" * 65, "broker/1", "b\u00e9"])
def test_a_bad_broker_id_stops_the_broker(value):
    env = {**os.environ, "SLUICE_BROKER_ID": value}
    done = subprocess.run([str(BINARIES["broker"])], env=env, capture_output=True, text=True, timeout=10)
    assert done.returncode == 2
    assert "SLUICE_BROKER_ID must be 1-64 letters, digits" in done.stderr


@pytest.mark.parametrize("binary, name", [("api", "SLUICE_BROKER_API_ENDPOINT"),
                                          ("native", "SLUICE_BROKER_WORKER_ENDPOINT")])
@pytest.mark.parametrize("value, problem", [
    (" , ", "lists no endpoint"),
    ("tcp://127.0.0.1:5555,tcp://10.9.8.7:5555", "must be set (with SLUICE_CURVE_SECRET_KEY_FILE): {name} "
                                                 "tcp://10.9.8.7:5555 is not on this host"),
])
def test_bad_broker_endpoint_lists_stop_the_process(binary, name, value, problem):
    env = {**os.environ, name: value, "SLUICE_CURVE_SECRET_KEY_FILE": "", "SLUICE_BROKER_PUBLIC_KEY_FILE": ""}
    done = subprocess.run([str(BINARIES[binary])], env=env, capture_output=True, text=True, timeout=10)
    assert done.returncode == 2
    assert problem.format(name=name) in done.stderr
