"""CURVE configuration (README.md, Security): sluice-keygen writes keypairs; a missing or bad key
file stops a component at once (exit 2, naming the variable); an endpoint reachable from other
hosts without keys stops it too, while loopback and ipc:// endpoints may run without them."""
import os
import stat
import subprocess

import pytest

from pipeline import BUILD, VENV_BIN, make_keys

KEYGEN = BUILD / "common" / "sluice-keygen"
BINARIES = {
    "api": [str(BUILD / "api" / "sluice-api")],
    "broker": [str(BUILD / "broker" / "sluice-broker")],
    "native": [str(BUILD / "workers" / "sluice-worker-native")],
    "python": [str(VENV_BIN / "sluice-worker")],
}
ENDPOINT = {"api": "SLUICE_BROKER_API_ENDPOINT", "broker": "SLUICE_BROKER_WORKER_ENDPOINT",
            "native": "SLUICE_BROKER_WORKER_ENDPOINT", "python": "SLUICE_BROKER_WORKER_ENDPOINT"}
CURVE_VARIABLES = ("SLUICE_CURVE_SECRET_KEY_FILE", "SLUICE_BROKER_PUBLIC_KEY_FILE", "SLUICE_API_KEYS_FILE",
                   "SLUICE_WORKER_KEYS_FILE")


def run(binary: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in CURVE_VARIABLES}
    # Redis on a port nobody serves: a component that gets past its configuration keeps
    # retrying it, and is stopped by the timeout below.
    return subprocess.run(BINARIES[binary], env={**base, "SLUICE_REDIS_PORT": "1", **env}, capture_output=True,
                          text=True, timeout=20)


def test_keygen_writes_a_private_secret_key_and_prints_its_public_key(tmp_path):
    made = subprocess.run([str(KEYGEN), str(tmp_path / "host")], capture_output=True, text=True, check=True)
    secret, public = tmp_path / "host.key", tmp_path / "host.pub"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    public_key = made.stdout.strip()
    assert len(public_key) == 40 and public_key in public.read_text() and public_key not in secret.read_text()
    shown = subprocess.run([str(KEYGEN), "--public", str(secret)], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == public_key
    again = subprocess.run([str(KEYGEN), str(tmp_path / "host")], capture_output=True, text=True)
    assert again.returncode == 1 and "File exists" in again.stderr
    assert subprocess.run([str(KEYGEN)], capture_output=True).returncode == 2


@pytest.mark.parametrize("binary", ["broker", "api", "native", "python"])
@pytest.mark.parametrize("endpoint", ["tcp://0.0.0.0:5599", "tcp://10.11.12.13:5599", "tcp://broker.example:5599"])
def test_a_network_endpoint_without_keys_stops_the_component(binary, endpoint):
    done = run(binary, **{ENDPOINT[binary]: endpoint})
    assert done.returncode == 2, done.stderr
    needed = "SLUICE_CURVE_SECRET_KEY_FILE" if binary == "broker" else "SLUICE_BROKER_PUBLIC_KEY_FILE"
    assert f"{needed} must be set" in done.stderr and endpoint in done.stderr


@pytest.mark.parametrize("binary", ["broker", "api", "native", "python"])
def test_a_bad_key_file_stops_the_component_naming_the_variable(tmp_path, binary):
    keys = make_keys(tmp_path / "keys")
    bad = tmp_path / "bad.key"
    bad.write_text("# not a key below\nsecret\n")
    partners = ({"SLUICE_API_KEYS_FILE": str(keys / "api-keys"), "SLUICE_WORKER_KEYS_FILE": str(keys / "worker-keys")}
                if binary == "broker" else {"SLUICE_BROKER_PUBLIC_KEY_FILE": str(keys / "broker.pub")})
    for path, problem in [(bad, "line 2 is not a key"), (tmp_path / "missing.key", "cannot be read")]:
        done = run(binary, SLUICE_CURVE_SECRET_KEY_FILE=str(path), **partners)
        assert done.returncode == 2 and f"SLUICE_CURVE_SECRET_KEY_FILE {path}: {problem}" in done.stderr, done.stderr
    alone = run(binary, SLUICE_CURVE_SECRET_KEY_FILE=str(keys / "api.key"))
    assert alone.returncode == 2 and "must be set with SLUICE_CURVE_SECRET_KEY_FILE" in alone.stderr, alone.stderr


def test_allow_lists_without_the_broker_secret_key_stop_the_broker(tmp_path):
    keys = make_keys(tmp_path / "keys")
    done = run("broker", SLUICE_WORKER_KEYS_FILE=str(keys / "worker-keys"))
    assert done.returncode == 2 and "SLUICE_WORKER_KEYS_FILE is set but SLUICE_CURVE_SECRET_KEY_FILE is not" in done.stderr
