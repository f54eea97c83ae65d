"""sluice-worker argument parsing and environment fallbacks (the process itself is driven in
test_worker.py::test_cli_serves_builtin_tasks_and_exits_0_on_sigterm)."""

from __future__ import annotations

import pytest
import zmq

from sluice.cli import child_argv, main, parse_args

ENV = ["SLUICE_BROKER_WORKER_ENDPOINT", "SLUICE_WORKER_CONCURRENCY", "SLUICE_WORKER_NAME",
       "SLUICE_LOG_LEVEL", "SLUICE_WORKER_PROCESSES", "SLUICE_CURVE_SECRET_KEY_FILE",
       "SLUICE_BROKER_PUBLIC_KEY_FILE"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def curve_keys(tmp_path, monkeypatch):
    """CURVE key files in the environment, as a worker on another host than the broker needs;
    returns (worker secret key, worker public key, broker public key)."""
    public, secret = zmq.curve_keypair()
    broker_public, _ = zmq.curve_keypair()
    (tmp_path / "worker.key").write_bytes(b"# secret\n" + secret + b"\n")
    (tmp_path / "broker.pub").write_bytes(broker_public + b"\n")
    monkeypatch.setenv("SLUICE_CURVE_SECRET_KEY_FILE", str(tmp_path / "worker.key"))
    monkeypatch.setenv("SLUICE_BROKER_PUBLIC_KEY_FILE", str(tmp_path / "broker.pub"))
    return secret, public, broker_public


def test_defaults():
    args = parse_args([])
    assert args.modules == ["sluice.tasks", "sluice.ai_tasks"]
    assert args.broker == "tcp://127.0.0.1:5556"
    assert args.processes == 1
    assert args.concurrency == 4 and args.grace_period == 10.0 and args.log_level == "INFO"
    assert args.max_input_bytes == 512 * 1024
    assert args.name.rsplit("-", 1)[1].isdigit()  # hostname-pid
    assert args.curve is None  # the broker is on this host: CURVE is optional


def test_curve_keys_from_the_environment(curve_keys):
    secret, public, broker_public = curve_keys
    curve = parse_args(["--broker", "tcp://broker.example:5556"]).curve
    assert (curve.secret_key, curve.public_key, curve.server_key) == (secret, public, broker_public)


def test_a_remote_broker_without_keys_exits_2(capsys):
    with pytest.raises(SystemExit) as info:
        parse_args(["--broker", "tcp://broker.example:5556"])
    assert info.value.code == 2
    assert "SLUICE_BROKER_PUBLIC_KEY_FILE must be set" in capsys.readouterr().err


def test_environment_fallbacks_and_flags_winning(monkeypatch, curve_keys):
    monkeypatch.setenv("SLUICE_BROKER_WORKER_ENDPOINT", "tcp://10.0.0.1:7000")
    monkeypatch.setenv("SLUICE_WORKER_CONCURRENCY", "9")
    monkeypatch.setenv("SLUICE_WORKER_NAME", "env-name")
    monkeypatch.setenv("SLUICE_LOG_LEVEL", "warn")
    monkeypatch.setenv("SLUICE_WORKER_PROCESSES", "3")
    monkeypatch.setenv("SLUICE_MAX_INPUT_BYTES", "2048")
    args = parse_args(["my.mod"])
    assert args.max_input_bytes == 2048
    assert (args.broker, args.concurrency, args.name, args.log_level, args.modules,
            args.processes) == ("tcp://10.0.0.1:7000", 9, "env-name", "WARNING", ["my.mod"], 3)
    args = parse_args(["--broker", "tcp://h:1", "--concurrency", "2", "--name", "n",
                       "--log-level", "debug", "--grace-period", "0.5", "--processes", "2"])
    assert (args.broker, args.concurrency, args.name, args.log_level, args.grace_period,
            args.processes) == ("tcp://h:1", 2, "n", "DEBUG", 0.5, 2)


@pytest.mark.parametrize("argv, env", [
    (["--concurrency", "0"], {}),
    (["--log-level", "loud"], {}),
    (["--processes", "0"], {}),
    ([], {"SLUICE_WORKER_CONCURRENCY": "many"}),
    ([], {"SLUICE_WORKER_PROCESSES": "-1"}),
    ([], {"SLUICE_MAX_INPUT_BYTES": "0"}),
])
def test_bad_arguments_exit_2(monkeypatch, argv, env):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as info:
        parse_args(argv)
    assert info.value.code == 2


def test_unimportable_module_exits_2(capsys):
    assert main(["sluice.no_such_module"]) == 2
    assert "cannot import sluice.no_such_module" in capsys.readouterr().err


def test_child_processes_get_the_same_settings_and_numbered_names(curve_keys):
    args = parse_args(["my.mod", "--processes", "3", "--name", "box", "--concurrency", "5",
                       "--broker", "tcp://h:1"])
    argv = child_argv(args, 2)
    assert argv[1:] == ["-m", "sluice", "my.mod", "--broker", "tcp://h:1", "--concurrency", "5",
                        "--processes", "1", "--name", "box-2", "--grace-period", "10.0",
                        "--log-level", "INFO"]
