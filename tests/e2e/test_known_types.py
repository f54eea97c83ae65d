"""SLUICE_KNOWN_TYPES: job types the broker accepts before any worker has declared them."""
import subprocess

from pipeline import BUILD


def test_a_listed_type_is_queued_before_its_worker_starts(fresh_pipeline):
    p = fresh_pipeline.start(SLUICE_KNOWN_TYPES="echo")
    p.wait_ready("echo")  # stored in sluice:types like a declared type
    early = p.http.post("/v1/jobs", json={"type": "echo", "input": {"early": True}})
    assert early.status_code == 202, early.text
    assert early.json()["status"] == "queued"
    unlisted = p.http.post("/v1/jobs", json={"type": "sleep", "input": {"ms": 1}})
    assert unlisted.status_code == 422
    assert unlisted.json()["error"]["code"] == "unknown_job_type"

    p.start_worker("native")
    p.wait_ready("sleep")
    done = p.wait_result(early.json()["id"])
    assert done["status"] == "succeeded" and done["result"] == {"early": True}
    never = p.http.post("/v1/jobs", json={"type": "no_such_type", "input": {}})
    assert never.status_code == 422
    assert never.json()["error"]["code"] == "unknown_job_type"


def test_an_invalid_listed_type_stops_the_broker_with_status_2():
    broker = subprocess.run([str(BUILD / "broker" / "sluice-broker")], capture_output=True, text=True, timeout=10,
                            env={"SLUICE_KNOWN_TYPES": "echo,bad type", "SLUICE_BROKER_API_ENDPOINT": "tcp://127.0.0.1:*",
                                 "SLUICE_BROKER_WORKER_ENDPOINT": "tcp://127.0.0.1:*"})
    assert broker.returncode == 2
    assert "SLUICE_KNOWN_TYPES" in broker.stderr
