"""The `sluice` command (sluice/console.py) against the real pipeline, run as `python -m
sluice.console` (the tests cannot reinstall the package that declares its entry point): each
command with --json (stdout parsed) and without (the table or text checked), `submit --watch`
printing the chunks as they come, the live progress bar on a terminal, SLUICE_URL from the
environment, and errors as their code on stderr with exit status 1. Keys: test_client_auth.py."""
from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
import uuid

import pytest

from pipeline import ROOT
from test_client import site  # noqa: F401 (the module's pipeline)

PYTHON = [sys.executable, "-m", "sluice.console"]


def sluice(site, *args: str, input: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Runs `sluice ARGS` with SLUICE_URL pointing at the pipeline."""
    full_env = {k: v for k, v in os.environ.items() if k != "SLUICE_API_KEY"}
    full_env.update({"PYTHONPATH": str(ROOT / "python_workers"), "SLUICE_URL": site.url, "COLUMNS": "200", **(env or {})})
    return subprocess.run([*PYTHON, *args], input=input, capture_output=True, text=True, env=full_env, timeout=120)


def ok(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    return done.stdout


def test_submit_with_json_text_a_file_and_stdin(site, tmp_path):
    job = json.loads(ok(sluice(site, "submit", "echo", "--input", '{"a": 1}', "-o", "priority=3", "--json")))
    assert job["type"] == "echo" and job["status"] == "queued"
    shown = json.loads(ok(sluice(site, "show", job["id"], "--json")))
    assert shown["id"] == job["id"] and shown["priority"] == 3
    (tmp_path / "input.json").write_text('{"from": "file"}')
    from_file = json.loads(ok(sluice(site, "--json", "submit", "echo", "--input", f"@{tmp_path / 'input.json'}")))
    from_stdin = json.loads(ok(sluice(site, "submit", "echo", "--input", "-", "--json", input='{"from": "stdin"}')))
    assert site.wait_result(from_file["id"])["result"] == {"from": "file"}
    assert site.wait_result(from_stdin["id"])["result"] == {"from": "stdin"}
    plain = ok(sluice(site, "submit", "echo", "--input", "[1, 2]"))
    assert plain.split()[1:] == ["echo", "queued"]


def test_submit_watch_prints_the_chunks_and_the_result(site):
    done = sluice(site, "submit", "drip", "--input", '{"count": 4, "pause_ms": 50}', "--watch")
    out = ok(done)
    assert out.startswith("c0 c1 c2 c3 \n")                 # the chunks as one text, then the result
    assert json.loads(out.split("\n", 1)[1]) == {"count": 4}
    assert "[100%] chunk 4 of 4" in done.stderr and "started attempt 1" in done.stderr


def test_submit_watch_json_prints_one_event_a_line(site):
    lines = ok(sluice(site, "submit", "drip", "--input", '{"count": 2}', "--watch", "--json")).splitlines()
    submitted, events = json.loads(lines[0]), [json.loads(line) for line in lines[1:]]
    assert submitted["status"] == "queued"
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert [e["data"]["data"] for e in events if e["event"] == "chunk"] == ["c0 ", "c1 "]
    assert events[-1]["event"] == "succeeded"


def test_watch_a_retried_job_restarts_its_text(site):
    job = site.submit("flaky_stream", None, max_attempts=2)
    done = sluice(site, "watch", job["id"])
    assert ok(done).startswith("Hello\nHello world\n")      # the first attempt's text, then the new one
    assert "attempt 1 failed: RuntimeError: the model went away" in done.stderr


def test_watch_exits_1_for_a_failed_job(site):
    job = site.submit("fail", {"message": "nope", "retryable": False})
    done = sluice(site, "watch", job["id"])
    assert done.returncode == 1 and "failed: NonRetryableError: nope" in done.stderr
    last = json.loads(sluice(site, "watch", job["id"], "--json").stdout.splitlines()[-1])
    assert last["event"] == "failed"


def in_terminal(site, *args: str) -> tuple[int, str]:
    """Runs `sluice ARGS` on a pseudo-terminal (so it draws its live display); returns its exit
    status and all it wrote."""
    return in_terminal_until(site, None, *args)


def in_terminal_until(site, interrupt_after: str | None, *args: str) -> tuple[int, str]:
    """in_terminal(), sending Ctrl-C (SIGINT) once the output shows `interrupt_after`."""
    pid, fd = pty.fork()
    if pid == 0:
        os.environ.pop("SLUICE_API_KEY", None)
        os.environ.update(PYTHONPATH=str(ROOT / "python_workers"), SLUICE_URL=site.url, COLUMNS="100", TERM="xterm")
        os.execv(sys.executable, [*PYTHON, *args])
    output = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if select.select([fd], [], [], 1)[0]:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            output += data
            if interrupt_after is not None and interrupt_after.encode() in output:
                os.kill(pid, signal.SIGINT)
                interrupt_after = None
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def test_watch_on_a_terminal_draws_a_progress_bar(site):
    job = site.submit("drip", {"count": 5, "pause_ms": 100})
    status, text = in_terminal(site, "watch", job["id"])
    assert status == 0, text
    assert "c0 c1 c2 c3 c4" in text and "━" in text                 # the text above the bar
    assert "succeeded" in text and "100%" in text


def test_show_jobs_cancel_retry_dead(site):
    others = [site.submit("echo", i)["id"] for i in range(2)]
    job = site.submit("echo", {"shown": True})
    site.wait_finished(others + [job["id"]])
    table = ok(sluice(site, "show", job["id"]))
    assert job["id"] in table and "succeeded" in table and '"shown": true' in table
    listed = json.loads(ok(sluice(site, "jobs", "--type", "echo", "--limit", "3", "--json")))
    assert len(listed) == 3 and all(j["type"] == "echo" for j in listed)
    assert job["id"] in ok(sluice(site, "jobs", "--status", "succeeded", "--limit", "100"))

    sleeper = site.submit("sleep", {"ms": 60_000})
    assert ok(sluice(site, "cancel", sleeper["id"])).strip() == f"canceled {sleeper['id']} (canceled)"
    again = sluice(site, "cancel", sleeper["id"])
    assert again.returncode == 1 and again.stdout == "" and "job_finished (409)" in again.stderr

    dead = site.submit("fail", {"message": "dead", "retryable": False})
    site.wait_result(dead["id"])
    assert dead["id"] in [j["id"] for j in json.loads(ok(sluice(site, "dead", "--json")))]
    assert dead["id"] in ok(sluice(site, "dead"))
    assert json.loads(ok(sluice(site, "retry", dead["id"], "--json"))) == {"id": dead["id"], "status": "queued"}


def test_workers_queues_and_top(site):
    report = json.loads(ok(sluice(site, "workers", "--json")))
    assert report["total"] >= 2
    assert report["workers"][0]["name"] in ok(sluice(site, "workers"))
    queues = sluice(site, "queues", "--json")
    if queues.returncode == 1 and "not_found (404)" in queues.stderr:
        assert queues.stdout == ""   # GET /v1/queues comes with the sched branch
    else:
        assert "queues" in json.loads(ok(queues))
    top = ok(sluice(site, "top", "--count", "2", "--interval", "0.2"))
    assert "workers" in top and report["workers"][0]["name"] in top


def test_top_ends_on_ctrl_c(site):
    status, text = in_terminal_until(site, "workers (", "top", "--interval", "0.2")
    assert status == 0, text
    assert "queues" in text and "workers (" in text


def test_errors_print_their_code_on_stderr(site):
    missing = sluice(site, "show", str(uuid.uuid4()), "--json")
    assert missing.returncode == 1 and missing.stdout == ""
    assert "job_not_found (404)" in missing.stderr
    unknown = sluice(site, "submit", "no_such_type")
    assert unknown.returncode == 1 and "unknown_job_type (422)" in unknown.stderr
    bad_input = sluice(site, "submit", "echo", "--input", "{nope")
    assert bad_input.returncode == 2 and "not JSON" in bad_input.stderr
    unreachable = sluice(site, "--retries", "0", "jobs", env={"SLUICE_URL": "http://127.0.0.1:9"})
    assert unreachable.returncode == 1 and "ConnectError" in unreachable.stderr


@pytest.mark.parametrize("args", [["--help"], ["keys", "--help"], ["submit", "--help"]])
def test_help(site, args):
    assert "Usage: " in ok(sluice(site, *args))


def test_schedules_create_list_and_delete(site):
    made = json.loads(ok(sluice(site, "schedules", "create", "*/5 * * * *", "echo", "--input", '{"a": 1}',
                                "-z", "Europe/Paris", "--json")))
    assert made["cron"] == "*/5 * * * *" and made["timezone"] == "Europe/Paris"
    listed = json.loads(ok(sluice(site, "schedules", "list", "--json")))
    assert made["id"] in {s["id"] for s in listed}
    assert made["id"] in ok(sluice(site, "schedules", "list"))
    assert ok(sluice(site, "schedules", "delete", made["id"])).strip() == f"deleted {made['id']}"
    refused = sluice(site, "schedules", "create", "nope", "echo")
    assert refused.returncode == 1 and "invalid_cron" in refused.stderr
