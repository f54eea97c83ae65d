"""The systemd units in deploy/systemd: systemd-analyze verify accepts them (when it is installed)
and they say what README.md promises: restarts, ordering, the service user, hardening."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "deploy" / "systemd"
DROP_IN = UNITS / "sluice-.service.d" / "10-sluice.conf"
PREFIX = "/opt/sluice"


def parse(path: Path) -> dict[str, dict[str, list[str]]]:
    """A unit file as {section: {key: [values in order]}} (keys may repeat; lines may continue)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            assert line.endswith("]"), f"{path.name}:{number}: {line}"
            current = sections.setdefault(line[1:-1], {})
            continue
        key, equals, value = line.partition("=")
        assert equals and current is not None and re.fullmatch(r"[A-Za-z]+", key), f"{path.name}:{number}: {line}"
        current.setdefault(key, []).append(value)
    return sections


def services() -> list[Path]:
    return sorted(UNITS.glob("sluice-*.service"))


def words(unit: dict, section: str, key: str) -> list[str]:
    return " ".join(unit.get(section, {}).get(key, [])).split()


def test_every_service_runs_a_program_and_belongs_to_the_target():
    assert [p.name for p in services()] == ["sluice-api.service", "sluice-broker.service", "sluice-redis.service",
                                            "sluice-sentinel.service", "sluice-webhooks.service",
                                            "sluice-worker-native.service", "sluice-worker-python@.service"]
    for path in services():
        unit = parse(path)
        assert set(unit) == {"Unit", "Service", "Install"}, path.name
        assert len(unit["Service"]["ExecStart"]) == 1, path.name
        assert unit["Install"]["WantedBy"] == ["sluice.target"], path.name
        assert unit["Service"]["TimeoutStopSec"], path.name


def test_shared_drop_in_restarts_runs_as_sluice_and_hardens():
    service = parse(DROP_IN)["Service"]
    assert service["Restart"] == ["on-failure"] and service["RestartSec"] == ["1s"]
    assert service["User"] == ["sluice"] and service["Group"] == ["sluice"]
    assert service["EnvironmentFile"] == ["-/etc/sluice/sluice.env"]
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                       "PrivateTmp": "yes", "CapabilityBoundingSet": ""}.items():
        assert service[key] == [value], key
    assert parse(DROP_IN)["Unit"]["PartOf"] == ["sluice.target"]
    assert "sluice" in (UNITS / "sysusers.d" / "sluice.conf").read_text().split()


def test_ordering_redis_then_broker_then_api_and_workers():
    units = {path.name: parse(path) for path in services()}
    assert "sluice-redis.service" in words(units["sluice-broker.service"], "Unit", "After")
    assert {"sluice-redis.service", "sluice-broker.service"} <= set(words(units["sluice-api.service"], "Unit", "After"))
    for worker in ("sluice-worker-native.service", "sluice-worker-python@.service"):
        assert "sluice-broker.service" in words(units[worker], "Unit", "After"), worker
    assert "sluice-redis.service" in words(units["sluice-webhooks.service"], "Unit", "After")
    for name, unit in units.items():
        assert set(words(unit, "Unit", "Wants")) <= set(words(unit, "Unit", "After")), name


def test_redis_runs_the_project_config_and_workers_have_distinct_names():
    redis = parse(UNITS / "sluice-redis.service")["Service"]
    assert f"{PREFIX}/config/redis.conf" in redis["ExecStart"][0].split()
    assert redis["StateDirectory"] == ["sluice/redis"] and "/var/lib/sluice/redis" in redis["ExecStart"][0]
    python = parse(UNITS / "sluice-worker-python@.service")["Service"]
    assert "SLUICE_WORKER_NAME=%H-python-%i" in python["Environment"]
    assert python["KillMode"] == ["mixed"]


def test_redis_login_comes_from_credential_files_not_command_lines():
    redis = parse(UNITS / "sluice-redis.service")["Service"]
    assert redis["LoadCredential"] == ["redis-users.acl:/etc/sluice/secrets/redis-users.acl",
                                       "redis-replication.conf:/etc/sluice/secrets/redis-replication.conf"]
    assert "--aclfile %d/redis-users.acl" in redis["ExecStart"][0]
    assert "--include %d/redis-replication.conf" in redis["ExecStart"][0]
    for name in ("sluice-broker.service", "sluice-api.service", "sluice-webhooks.service"):
        service = parse(UNITS / name)["Service"]
        assert service["LoadCredential"] == ["redis-password:/etc/sluice/secrets/redis-password"], name
        assert "SLUICE_REDIS_PASSWORD_FILE=%d/redis-password" in service["Environment"], name
    for path in services():
        assert "pass" not in parse(path)["Service"]["ExecStart"][0], path.name


def test_sentinel_makes_its_config_once_from_credentials():
    sentinel = parse(UNITS / "sluice-sentinel.service")["Service"]
    assert sentinel["LoadCredential"] == ["redis-sentinel-password:/etc/sluice/secrets/redis-sentinel-password",
                                          "redis-password:/etc/sluice/secrets/redis-password"]
    assert f"{PREFIX}/scripts/sentinel-conf.sh %d /var/lib/sluice/sentinel/sentinel.conf" in sentinel["ExecStartPre"][0]
    assert sentinel["StateDirectory"] == ["sluice/sentinel"]
    assert "/var/lib/sluice/sentinel/sentinel.conf" in sentinel["ExecStart"][0]


def test_target_wants_only_units_that_exist():
    wanted = words(parse(UNITS / "sluice.target"), "Unit", "Wants")
    names = {path.name for path in services()}
    for unit in wanted:
        assert re.sub(r"@[^.]+\.", "@.", unit) in names, unit


def test_environment_file_sets_only_documented_variables():
    readme = (ROOT / "README.md").read_text()
    for line in (UNITS / "sluice.env").read_text().splitlines():
        if line and not line.startswith("#"):
            name = line.split("=", 1)[0]
            assert f"`{name}`" in readme, name


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify(tmp_path):
    """Verifies copies of the units whose /opt/sluice paths point at a scratch tree holding the
    files an installation has there (stub programs, the real redis.conf), because verify rightly
    reports an ExecStart program that does not exist. Any other message fails the test."""
    install = tmp_path / "opt"
    for program in ("bin/sluice-broker", "bin/sluice-api", "bin/sluice-worker-native", "venv/bin/sluice-worker",
                    "venv/bin/sluice-webhooks"):
        path = install / program
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    (install / "config").mkdir()
    shutil.copy(ROOT / "config" / "redis.conf", install / "config" / "redis.conf")
    (install / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "sentinel-conf.sh", install / "scripts" / "sentinel-conf.sh")

    copies = tmp_path / "units"
    shutil.copytree(UNITS, copies)
    for path in [*copies.glob("sluice*"), *copies.glob("sluice-.service.d/*")]:
        if path.is_file():
            path.write_text(path.read_text().replace(PREFIX, str(install)))
    for path in copies.glob("sluice*.service"):
        for command in parse(path)["Service"]["ExecStart"]:
            assert Path(command.split()[0]).exists(), command

    units = sorted(str(p) for p in [*copies.glob("sluice-*.service"), copies / "sluice.target"])
    result = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr
