"""The api is killed mid-stream: jobs carry on, and an SSE client that reconnects (to another
api) with Last-Event-ID misses nothing."""
import signal

from pipeline import iter_sse


def test_api_sigkill_mid_stream(pipeline):
    p = pipeline.start()
    p.start_worker("native", concurrency=2, name="native-1")
    p.wait_workers("native-1")
    job = p.submit("sleep", {"ms": 3000})

    seen = []
    for event in iter_sse(p.http, f"/v1/jobs/{job['id']}/events", {}, 30):
        seen.append(event)
        if len(seen) == 4:  # queued, started and two progress events
            break
    p.api.send_signal(signal.SIGKILL)
    p.api.wait()
    p.start_api()

    rest = list(iter_sse(p.http, f"/v1/jobs/{job['id']}/events", {"Last-Event-ID": str(seen[-1]["id"])}, 30))
    combined = seen + rest
    assert [e["id"] for e in combined] == list(range(1, len(combined) + 1))
    assert combined[-1]["event"] == "succeeded"
    assert combined == p.events(job["id"])
