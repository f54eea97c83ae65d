"""Every error status the api documents, with its JSON body; a bad request changes nothing."""
import re
import signal
import socket
import time

import httpx
import pytest

JSON = {"content-type": "application/json"}

def error_code(response):
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and body["error"]["message"]
    return body["error"]["code"]


def test_healthz_and_readyz(pipeline):
    assert pipeline.http.get("/healthz").status_code == 200
    ready = pipeline.http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_malformed_json_is_400(pipeline):
    response = pipeline.http.post("/v1/jobs", content=b'{"type": "echo",', headers={"content-type": "application/json"})
    assert response.status_code == 400 and error_code(response) == "invalid_json"
    response = pipeline.http.post("/v1/jobs", content=b"[1, 2]", headers=JSON)
    assert response.status_code == 400 and error_code(response) == "invalid_json"


def test_body_over_the_limit_is_413(pipeline):
    big = b'{"type": "echo", "input": "' + b"x" * (1024 * 1024 + 10) + b'"}'
    response = pipeline.http.post("/v1/jobs", content=big, headers=JSON)
    assert response.status_code == 413 and error_code(response) == "body_too_large"


def test_input_over_its_limit_is_413_giving_both_numbers(pipeline):
    limit = 512 * 1024  # SLUICE_MAX_INPUT_BYTES's default; a string's msgpack head is 5 bytes
    response = pipeline.http.post("/v1/jobs", json={"type": "echo", "input": "x" * limit})
    assert response.status_code == 413 and error_code(response) == "input_too_large"
    assert response.json()["error"]["message"] == f"input is {limit + 5} bytes as msgpack; the limit is {limit} bytes"
    job = pipeline.submit("echo", "x" * (limit - 5))
    assert pipeline.wait_result(job["id"])["result"] == "x" * (limit - 5)


@pytest.mark.parametrize("body", [
    {"input": 1},
    {"type": ""},
    {"type": 7},
    {"type": "bad type!"},
    {"type": "echo", "options": []},
    {"type": "echo", "options": {"timeout_s": 0}},
    {"type": "echo", "options": {"timeout_s": "10"}},
    {"type": "echo", "options": {"max_attempts": 1000}},
    {"type": "echo", "options": {"priority": -1}},
    {"type": "echo", "options": {"priority": 10}},
    {"type": "echo", "options": {"bogus": 1}},
])
def test_invalid_fields_are_422(pipeline, body):
    response = pipeline.http.post("/v1/jobs", json=body)
    assert response.status_code == 422 and error_code(response) == "invalid_request"


def test_unknown_job_type_is_422(pipeline):
    response = pipeline.http.post("/v1/jobs", json={"type": "no_such_task"})
    assert response.status_code == 422 and error_code(response) == "unknown_job_type"


def test_unknown_ids_and_paths_are_404(pipeline):
    for path in ("/v1/jobs/00000000-0000-4000-8000-000000000000", "/v1/jobs/not-a-uuid",
                 "/v1/jobs/00000000-0000-4000-8000-000000000000/events",
                 "/v1/jobs/00000000-0000-4000-8000-000000000000/result"):
        response = pipeline.http.get(path)
        assert response.status_code == 404 and error_code(response) == "job_not_found", path
    response = pipeline.http.get("/v2/nothing")
    assert response.status_code == 404 and error_code(response) == "not_found"


def test_wrong_method_is_405(pipeline):
    response = pipeline.http.put("/v1/jobs", json={})
    assert response.status_code == 405 and error_code(response) == "method_not_allowed"
    assert "POST" in response.headers["allow"]


def test_bad_wait_is_422(pipeline):
    job = pipeline.submit("echo", 1)
    response = pipeline.http.get(f"/v1/jobs/{job['id']}/result", params={"wait": 100000})
    assert response.status_code == 422 and error_code(response) == "invalid_request"


def test_garbage_on_the_socket_does_not_hurt_other_clients(pipeline):
    host, port = pipeline.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as raw:
        raw.sendall(b"\x00\xff GARBAGE \r\n\r\n")
        raw.settimeout(5)
        reply = raw.recv(4096)
        assert reply == b"" or reply.startswith(b"HTTP/1.1 400")
    job = pipeline.submit("echo", "still fine")
    assert pipeline.wait_result(job["id"])["result"] == "still fine"


def test_broker_down_is_503_and_recovers(fresh_pipeline):
    p = fresh_pipeline.start()
    p.start_worker("native")
    p.wait_ready("echo")
    assert p.stop_process(p.broker) == 0
    response = p.http.post("/v1/jobs", json={"type": "echo", "input": 1})
    assert response.status_code == 503 and error_code(response) == "broker_unavailable"
    ready = p.http.get("/readyz")
    assert ready.status_code == 503 and error_code(ready) == "not_ready"


def test_a_submit_the_broker_does_not_answer_in_time_is_503_outcome_unknown(fresh_pipeline):
    """The SUBMIT went out, so the job may be stored: the answer says where, and a retry with
    the same Idempotency-Key gets that job instead of a second one."""
    p = fresh_pipeline.start()
    p.stop_process(p.api)
    p.start_api(SLUICE_BROKER_TIMEOUT_MS="500")
    p.start_worker("native")
    p.wait_ready("echo")
    body = {"type": "echo", "input": "once"}
    headers = {"Idempotency-Key": "outcome-unknown-1"}
    p.broker.send_signal(signal.SIGSTOP)
    try:
        response = p.http.post("/v1/jobs", json=body, headers=headers)
    finally:
        p.broker.send_signal(signal.SIGCONT)
    assert response.status_code == 503 and error_code(response) == "outcome_unknown"
    assert int(response.headers["retry-after"]) >= 1
    message = response.json()["error"]["message"]
    assert "retry with the same Idempotency-Key" in message, message
    job_id = re.search(r"/v1/jobs/([0-9a-f-]{36})", message).group(1)
    again = p.http.post("/v1/jobs", json=body, headers=headers)
    assert again.status_code == 202, again.text
    assert again.json()["id"] == job_id and again.headers["idempotent-replayed"] == "true"
    assert p.wait_result(job_id)["result"] == "once"


def test_redis_down_is_503_on_reads_and_readyz(fresh_pipeline):
    p = fresh_pipeline.start()
    assert p.stop_process(p.redis) == 0
    time.sleep(0.5)
    response = p.http.get("/v1/jobs/00000000-0000-4000-8000-000000000000")
    assert response.status_code == 503 and error_code(response) == "redis_unavailable"
    ready = p.http.get("/readyz")
    assert ready.status_code == 503


def test_full_queue_is_429_with_retry_after(fresh_pipeline):
    p = fresh_pipeline.start(SLUICE_MAX_QUEUE_DEPTH="5")
    worker = p.start_worker("native")
    p.wait_ready("echo")
    assert p.stop_process(worker) == 0  # the type stays known; nothing consumes its queue
    queued = [p.submit("echo", i)["id"] for i in range(5)]
    response = p.http.post("/v1/jobs", json={"type": "echo", "input": 5})
    assert response.status_code == 429 and error_code(response) == "queue_full"
    assert int(response.headers["retry-after"]) >= 1
    # Nothing was stored for the refused job; the queued ones run once a worker is back.
    p.start_worker("native")
    for job_id in queued:
        assert p.wait_result(job_id)["status"] == "succeeded"
    assert p.http.post("/v1/jobs", json={"type": "echo", "input": 6}).status_code == 202
