"""sluice-worker --metrics-port: Prometheus metrics of a Python worker (jobs by type and outcome,
durations, in flight, model tokens and their speed), accepted by promtool, with no job ids in
them; bad ports refused at start."""
import socket
import subprocess
import time

import httpx
import pytest

from pipeline import VENV_BIN, free_port, running_pipeline
from prometheus_text import HAVE_PROMTOOL, dashboard_metrics, promtool_check, series_names, value


@pytest.fixture(scope="module")
def scraped(tmp_path_factory, request):
    """Runs an echo, a failing job, a canceled sleep and a sentiment (a model call) on a worker
    with metrics; returns (the job ids, the metrics while the sleep ran, the metrics after, the
    metrics port, the attempts each job took)."""
    port = free_port()
    with running_pipeline(tmp_path_factory.mktemp("metrics"), lambda: request.session.testsfailed) as p:
        p.start_worker("python", SLUICE_WORKER_METRICS_PORT=str(port))
        p.wait_ready("sentiment")
        ids = [p.submit("echo", {"hi": 1})["id"],
               p.submit("fail", {"retryable": False})["id"],
               p.submit("sentiment", {"text": "What a wonderful day."})["id"]]
        for job_id in ids:
            p.wait_result(job_id, timeout=120)
        # Each attempt counts (a loaded machine can starve a worker's heartbeats: the job is
        # handed out again, and both attempts end on this worker).
        attempts = [p.http.get(f"/v1/jobs/{job_id}").json()["attempts"] for job_id in ids]
        sleeping = p.submit("sleep", {"ms": 60000})["id"]
        deadline = time.monotonic() + 10
        while p.http.get(f"/v1/jobs/{sleeping}").json()["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        running = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert p.http.delete(f"/v1/jobs/{sleeping}").status_code == 200
        deadline = time.monotonic() + 10
        while 'sluice_worker_jobs_total{outcome="canceled",type="sleep"} 1.0' not in (
                text := httpx.get(f"http://127.0.0.1:{port}/metrics").text):
            assert time.monotonic() < deadline, text
            time.sleep(0.1)
        yield [*ids, sleeping], running, text, port, attempts


def test_jobs_are_counted_by_type_and_outcome(scraped):
    _, running, text, _, (echo, fail, sentiment) = scraped
    assert value(text, 'sluice_worker_jobs_total{outcome="succeeded",type="echo"}') == echo
    assert value(text, 'sluice_worker_jobs_total{outcome="failed",type="fail"}') == fail
    assert value(text, 'sluice_worker_jobs_total{outcome="succeeded",type="sentiment"}') == sentiment
    assert value(running, 'sluice_worker_jobs_in_flight{type="sleep"}') == 1
    assert value(text, 'sluice_worker_jobs_in_flight{type="sleep"}') == 0
    assert value(text, 'sluice_worker_job_duration_seconds_count{type="echo"}') == echo


def test_model_calls_count_tokens_and_their_speed(scraped):
    _, _, text, _, _ = scraped
    model = 'model="SmolLM2-135M-Instruct"'
    assert value(text, f'sluice_worker_model_tokens_total{{kind="prompt",{model}}}') > 0
    assert value(text, f'sluice_worker_model_tokens_total{{kind="completion",{model}}}') > 0
    assert value(text, f'sluice_worker_model_tokens_per_second_count{{{model}}}') >= 1


def test_no_job_id_is_a_label(scraped):
    ids, _, text, _, _ = scraped
    assert not any(job_id in text for job_id in ids)


@pytest.mark.skipif(not HAVE_PROMTOOL, reason="promtool (Debian prometheus) is not installed")
def test_promtool_accepts_the_metrics(scraped):
    _, _, text, _, _ = scraped
    check = promtool_check(text)
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_grafana_dashboard_queries_only_metrics_the_worker_serves(scraped):
    _, _, text, _, _ = scraped
    wanted = dashboard_metrics("sluice_worker_")
    assert wanted and wanted <= series_names(text), wanted - series_names(text)


def test_the_metrics_port_listens_on_loopback_only(scraped):
    _, _, _, port, _ = scraped
    listening = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True).stdout
    assert [line.split()[3] for line in listening.splitlines()] == [f"127.0.0.1:{port}"]


@pytest.mark.parametrize("argv, message", [
    (["--metrics-port", "0"], "must be a port"),
    (["--metrics-port", "65536"], "must be a port"),
    (["--metrics-port", "http"], "invalid _port value"),
    (["--metrics-port", "65535", "--processes", "2"], "past 65535"),
])
def test_bad_metrics_ports_are_refused(argv, message):
    done = subprocess.run([str(VENV_BIN / "sluice-worker"), "sluice.tasks", *argv], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and message in done.stderr, done.stderr


def test_a_metrics_port_in_use_stops_the_worker_with_a_clear_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([str(VENV_BIN / "sluice-worker"), "sluice.tasks", "--metrics-port", str(port)],
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and f"cannot serve metrics on 127.0.0.1:{port}" in done.stderr, done.stderr
