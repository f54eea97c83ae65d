"""A model paused by a provider's 429 stays paused across a broker restart (README.md, "Provider
rate limits"): the broker that was told of the 429 is killed with SIGKILL, and the one that
starts after it reads the pause back from Redis, so a job of that model submitted after the
restart still waits out the Retry-After."""
import signal
import time

from fake_openai import ANSWER, FakeOpenAI

MODEL = "fake-gpt"
RETRY_AFTER_S = 8


def test_a_restarted_broker_keeps_the_models_pause(pipeline):
    with FakeOpenAI(refusals=1, retry_after_s=RETRY_AFTER_S) as provider:
        p = pipeline.start()
        p.start_worker("python", concurrency=2, name="python-1", SLUICE_MODEL_PROVIDER="openai",
                       SLUICE_OPENAI_BASE_URL=provider.url, SLUICE_OPENAI_MODEL=MODEL, SLUICE_OPENAI_API_KEY="sk-test")
        p.wait_ready("chat")
        first = p.submit("chat", {"prompt": "Say hello"})["id"]
        refused_at = provider.first_call_at()
        deadline = time.monotonic() + 30
        while "rate limited by its provider" not in p.broker_log():
            assert time.monotonic() < deadline, p.broker_log()[-2000:]
            time.sleep(0.02)

        p.broker.send_signal(signal.SIGKILL)
        p.broker.wait()
        p.start_broker(same_endpoints=True)
        # Submitted to the new broker (once the api has found it) while the pause lasts; the
        # worker has a free slot for it.
        deadline = time.monotonic() + 5
        while (submit := p.http.post("/v1/jobs", json={"type": "chat", "input": {"prompt": "Say hello again"}})
               ).status_code != 202:
            assert time.monotonic() < deadline, submit.text
            time.sleep(0.05)
        second = submit.json()["id"]
        assert time.time() < refused_at + RETRY_AFTER_S - 1, "the restart took too long to tell"
        paused = p.http.get("/v1/queues").json()["paused_models"]
        deadline = time.monotonic() + 5
        while not paused:
            assert time.monotonic() < deadline, "the new broker reports no paused model"
            time.sleep(0.1)
            paused = p.http.get("/v1/queues").json()["paused_models"]
        assert paused[0]["model"] == MODEL and 0 < paused[0]["resumes_in_s"] <= RETRY_AFTER_S

        for job_id in (first, second):
            assert p.wait_result(job_id, timeout=60)["result"]["text"] == "".join(ANSWER)
        later = [at for at, _ in provider.calls[1:]]
        assert len(later) == 2 and min(later) >= refused_at + RETRY_AFTER_S - 0.05, provider.calls
        assert "model fake-gpt stays paused for" in p.broker_log()
