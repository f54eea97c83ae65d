"""GET /metrics: the api's requests by route and status with latency histograms, its open event
streams, and the broker's job counts, queues, workers and Redis script latency; promtool accepts
it; no job id in it; admin only when auth is on."""
import socket
import time
import uuid

import pytest

from pipeline import running_pipeline
from prometheus_text import HAVE_PROMTOOL, dashboard_metrics, promtool_check, series_names, value


@pytest.fixture(scope="module")
def p(tmp_path_factory, request):
    with running_pipeline(tmp_path_factory.mktemp("api-metrics"), lambda: request.session.testsfailed,
                          SLUICE_KNOWN_TYPES="parked") as p:
        p.start_worker("native", concurrency=2)
        p.start_worker("python", modules=["sluice.tasks"])
        p.wait_ready("sleep")
        p.wait_ready("fail")
        yield p


def scrape(p) -> str:
    response = p.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return response.text


def wait_value(p, series: str, wanted: float, timeout: float = 10) -> str:
    """Scrapes until `series` is `wanted` (the broker reports once a second)."""
    deadline = time.monotonic() + timeout
    while True:
        text = scrape(p)
        try:
            if value(text, series) == wanted:
                return text
        except AssertionError:
            pass
        assert time.monotonic() < deadline, f"{series} never became {wanted}:\n{text}"
        time.sleep(0.2)


def test_requests_are_counted_by_route_and_status_with_latencies(p):
    before = scrape(p)
    route = 'method="GET",route="/v1/jobs/{id}"'
    try:
        found = value(before, f'sluice_api_requests_total{{{route},status="404"}}')
    except AssertionError:
        found = 0
    for _ in range(3):
        assert p.http.get(f"/v1/jobs/{uuid.uuid4()}").status_code == 404
    assert p.http.get("/no/such/route").status_code == 404
    text = scrape(p)
    assert value(text, f'sluice_api_requests_total{{{route},status="404"}}') == found + 3
    assert value(text, 'sluice_api_requests_total{method="",route="unmatched",status="404"}') >= 1
    count = value(text, f"sluice_api_request_duration_seconds_count{{{route}}}")
    assert value(text, f'sluice_api_request_duration_seconds_bucket{{{route},le="+Inf"}}') == count >= 3


def test_jobs_are_counted_by_type_and_queues_and_workers_shown(p):
    ids = [p.submit("echo", {"n": i})["id"] for i in range(3)]
    for job_id in ids:
        p.wait_result(job_id)
    p.submit("parked")
    text = wait_value(p, 'sluice_broker_queued_jobs{type="parked"}', 1)
    assert value(text, 'sluice_broker_jobs_submitted_total{type="echo"}') >= 3
    assert value(text, 'sluice_broker_jobs_started_total{type="echo"}') >= 3
    text = wait_value(p, 'sluice_broker_jobs_succeeded_total{type="echo"}',
                      value(text, 'sluice_broker_jobs_started_total{type="echo"}'))
    assert value(text, "sluice_broker_workers") == 2
    assert value(text, "sluice_broker_metrics_up") == 1
    assert value(text, 'sluice_broker_redis_script_seconds_count{script="submit"}') >= 1
    waited = value(text, 'sluice_broker_queue_wait_seconds_count{type="echo"}')
    assert waited == value(text, 'sluice_broker_jobs_started_total{type="echo"}') >= 3
    assert value(text, 'sluice_broker_queue_wait_seconds_bucket{type="echo",le="+Inf"}') == waited


def test_failures_retries_and_open_streams_are_seen(p):
    job = p.submit("fail", {"retryable": True}, max_attempts=2)["id"]
    p.wait_result(job, timeout=60)
    text = wait_value(p, 'sluice_broker_jobs_failed_total{type="fail"}', 1)
    assert value(text, 'sluice_broker_jobs_retried_total{type="fail"}') == 1
    sleeping = p.submit("sleep", {"ms": 30000})["id"]
    with socket.create_connection(p.api_address(), timeout=10) as stream:
        stream.sendall(f"GET /v1/jobs/{sleeping}/events HTTP/1.1\r\nHost: sluice\r\n\r\n".encode())
        stream.recv(4096)
        text = wait_value(p, 'sluice_broker_running_jobs{type="sleep"}', 1)
        assert value(text, 'sluice_api_open_streams{kind="sse"}') == 1
    p.http.delete(f"/v1/jobs/{sleeping}")
    wait_value(p, 'sluice_api_open_streams{kind="sse"}', 0)


def test_no_job_id_is_a_label(p):
    job = p.submit("echo", "find me")["id"]
    p.wait_result(job)
    assert job not in scrape(p)


@pytest.mark.skipif(not HAVE_PROMTOOL, reason="promtool (Debian prometheus) is not installed")
def test_promtool_accepts_the_metrics(p):
    check = promtool_check(scrape(p))
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_grafana_dashboard_queries_only_metrics_the_api_serves(p):
    # A job of its own, so the per-type series exist whatever ran before (or did not).
    p.wait_result(p.submit("echo", {"n": "grafana"})["id"])
    deadline = time.monotonic() + 10
    while True:  # the broker reports once a second
        text = scrape(p)
        try:
            if value(text, 'sluice_broker_queue_wait_seconds_count{type="echo"}') >= 1:
                break
        except AssertionError:
            pass
        assert time.monotonic() < deadline, text
        time.sleep(0.2)
    served = series_names(text)
    wanted = dashboard_metrics("sluice_api_") | dashboard_metrics("sluice_broker_")
    assert wanted and wanted <= served, wanted - served


def test_with_the_broker_gone_the_api_still_answers_and_says_so(p):
    # Last in the module: it stops the broker.
    broker = next(proc for name, proc in p.procs if name == "broker")
    p.stop_process(broker)
    text = wait_value(p, "sluice_broker_metrics_up", 0)
    assert "sluice_api_requests_total" in text and "sluice_broker_jobs_submitted_total" not in text
