"""AI tasks end to end on the real embedded model (SmolLM2-135M via llama-cpp-python, provider
`local`): tokens streamed to an SSE client as they are made, cancel stopping generation and
freeing the slot, analyze's three parts as a flow, each built-in AI task through the HTTP API, and the
README's examples answered right, and the same way twice (bench/quality scores the rest).

One Python worker with a single slot, so a job that is still generating would hold up the next
one; answers are kept short (SLUICE_MAX_TOKENS) so the module runs in well under a minute.
"""
from __future__ import annotations

import json
import time

import httpx
import pytest

from pipeline import Pipeline, running_pipeline

MODEL = "SmolLM2-135M-Instruct"
STORY = {"messages": [{"role": "user", "content": "Write a very long story about a dragon and "
                                                  "a knight, with many chapters."}]}


@pytest.fixture(scope="module")
def ai(tmp_path_factory, request):
    with running_pipeline(tmp_path_factory.mktemp("sluice-ai"), lambda: request.session.testsfailed) as p:
        p.env.update(SLUICE_MODEL_PROVIDER="local", SLUICE_MAX_TOKENS="128")
        p.start_worker("python", concurrency=1)  # default modules: sluice.tasks + sluice.ai_tasks
        p.wait_ready("chat")
        yield p


def live_events(client: httpx.Client, job_id: str, timeout: float = 60.0):
    """Yields (seconds since the call, event) for each SSE event as it arrives."""
    started = time.monotonic()
    current: dict = {}
    with client.stream("GET", f"/v1/jobs/{job_id}/events", timeout=timeout) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line == "":
                if "data" in current:
                    yield time.monotonic() - started, {
                        "id": int(current["id"]), "event": current["event"],
                        "data": json.loads(current["data"])}
                current = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(":")
                current[key] = value[1:] if value.startswith(" ") else value


def wait_status(p: Pipeline, job_id: str, status: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while p.http.get(f"/v1/jobs/{job_id}").json()["status"] != status:
        assert time.monotonic() < deadline, f"job {job_id} never {status}"
        time.sleep(0.05)


def check_usage(result: dict) -> None:
    assert result["model"] == MODEL
    usage = result["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0


def test_chat_streams_real_tokens_over_sse_before_it_succeeds(ai):
    job = ai.submit("chat", {"messages": [{"role": "system", "content": "You are a poet."},
                                          {"role": "user", "content": "Write a poem about the sea."}],
                             "max_tokens": 40})
    arrivals = list(live_events(ai.http, job["id"]))
    events = [e for _, e in arrivals]
    names = [e["event"] for e in events]
    assert names[:2] == ["queued", "started"] and names[-1] == "succeeded"
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    chunk_times = [t for t, e in arrivals if e["event"] == "chunk"]
    assert len(chunk_times) >= 10, names
    # Tokens arrived one by one while the model ran, not in one burst at the end.
    assert chunk_times[-1] - chunk_times[0] > 0.2
    assert chunk_times[0] < arrivals[-1][0] - 0.2
    result = events[-1]["data"]["result"]
    assert result["text"] == "".join(e["data"]["data"] for e in events if e["event"] == "chunk")
    check_usage(result)
    assert result["usage"]["completion_tokens"] <= 40


def test_cancelling_a_running_chat_stops_generation_and_frees_the_slot(ai):
    job = ai.submit("chat", dict(STORY, max_tokens=1500))  # ~20 s of tokens if left alone
    chunks_seen = 0
    for _, event in live_events(ai.http, job["id"]):
        if event["event"] == "chunk":
            chunks_seen += 1
            if chunks_seen == 5:
                response = ai.http.delete(f"/v1/jobs/{job['id']}")
                assert response.status_code == 200, response.text
                canceled_at = time.monotonic()
        if event["event"] in ("succeeded", "failed", "canceled"):
            assert event["event"] == "canceled"
            break
    # The single slot is free at once: a short chat runs now, not after 1500 tokens.
    follow = ai.submit("chat", {"prompt": "Say hello.", "max_tokens": 8})
    result = ai.wait_result(follow["id"], timeout=30)
    assert result["status"] == "succeeded", result
    assert time.monotonic() - canceled_at < 8
    # No event of the canceled job lands after its `canceled` event.
    time.sleep(max(0.0, 1.5 - (time.monotonic() - canceled_at)))
    events = ai.events(job["id"])
    assert events[-1]["event"] == "canceled"
    assert ai.http.get(f"/v1/jobs/{job['id']}").json()["status"] == "canceled"
    # The worker stopped the handler (CANCELED), it did not run on to the end.
    log = "\n".join(path.read_text() for path in ai.workdir.glob("worker-python-*.log"))
    assert f"job {job['id']} canceled type=chat" in log


def test_analyze_returns_sentiment_entities_and_summary(ai):
    text = ("Apple opened a new store in Paris on Monday. Tim Cook said the team was thrilled, "
            "and hundreds of happy customers queued in the sunshine to get in.")
    job = ai.submit("analyze", {"text": text})
    result = ai.wait_result(job["id"], timeout=60)
    assert result["status"] == "succeeded", result
    out = result["result"]
    assert out["sentiment"]["label"] in ("positive", "negative", "neutral")
    assert 0 <= out["sentiment"]["score"] <= 1
    assert isinstance(out["entities"], list)
    assert all(set(e) == {"text", "type"} and e["text"].lower() in text.lower()
               for e in out["entities"])
    assert isinstance(out["summary"], str) and out["summary"].strip()
    check_usage(out)
    # A flow: the three parts ran as child jobs (on this worker's one slot: the parent waited
    # without holding it), each child's end is in the parent's stream, and the parent ran again.
    events = ai.events(job["id"])
    children = [e["data"] for e in events if e["event"] == "child"]
    assert sorted(c["type"] for c in children) == ["entities", "sentiment", "summarize"]
    assert all(c["status"] == "succeeded" for c in children)
    assert [e["event"] for e in events].count("started") == 2
    assert ai.http.get(f"/v1/jobs/{children[0]['child']}").json()["parent"] == job["id"]


def test_readme_examples_are_labelled_right_and_the_same_every_time(ai):
    # The README's own examples, each run twice: the first model call of sentiment and entities
    # decodes greedily, so the second job must get the very same answer.
    answers = []
    for _ in range(2):
        negative = ai.submit("sentiment", {"text": "The hotel was dirty and the staff ignored us."})
        curie = ai.submit("entities", {"text": "Marie Curie was born in Warsaw in 1867."})
        answers.append([ai.wait_result(job["id"], timeout=60) for job in (negative, curie)])
    for sentiment, entities in answers:
        assert sentiment["status"] == entities["status"] == "succeeded", (sentiment, entities)
        assert sentiment["result"]["label"] == "negative"
        found = entities["result"]["entities"]
        assert {"text": "Marie Curie", "type": "PERSON"} in found, found
        assert {"text": "Warsaw", "type": "LOCATION"} in found, found
    first, second = ([answer["result"] for answer in pair] for pair in answers)
    assert first == second


def test_a_summary_is_not_its_input(ai):
    text = ("The new library in Oslo opened on Saturday. Mayor Anne Lindboe called it a triumph, "
            "and readers loved the bright reading rooms.")
    result = ai.wait_result(ai.submit("summarize", {"text": text})["id"], timeout=60)
    assert result["status"] == "succeeded", result
    summary = result["result"]["summary"]
    assert summary.strip() and len(summary) < 0.75 * len(text), summary


@pytest.mark.parametrize("job_type, job_input, keys", [
    ("sentiment", {"text": "I love this phone, it is wonderful!"}, {"label", "score"}),
    ("entities", {"text": "Marie Curie was born in Warsaw."}, {"entities"}),
    ("summarize", {"text": "The meeting moved to Friday. Everyone must bring their reports. "
                           "Lunch will be provided.", "max_tokens": 48}, {"summary", "chunks"}),
])
def test_each_ai_task_through_the_api(ai, job_type, job_input, keys):
    job = ai.submit(job_type, job_input)
    result = ai.wait_result(job["id"], timeout=60)
    assert result["status"] == "succeeded", result
    assert keys <= set(result["result"])
    check_usage(result["result"])


def test_bad_ai_input_fails_at_once_without_retry(ai):
    # What the declared schema refuses is refused at submit; what only the handler checks (the
    # last message's role) fails the job at once.
    refused = ai.http.post("/v1/jobs", json={"type": "chat", "input": {"messages": "hello"}})
    assert refused.status_code == 422 and refused.json()["error"]["path"] == "/messages", refused.text
    job = ai.submit("chat", {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})
    result = ai.wait_result(job["id"])
    assert result["status"] == "failed" and result["attempts"] == 1
    assert "the last message must be from the user" in result["error"]
