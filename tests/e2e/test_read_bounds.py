"""Reads are bounded in bytes: event streams of large events are written in batches of about
1 MiB, read from Redis a few events at a time, so several clients replaying them at once keep
the api's memory small (its RSS from /proc, sampled while they read)."""
import socket
import threading
import time

import pytest

from pipeline import running_pipeline

CHUNKS = 40
CHUNK_CHARS = 1024 * 1024 - 512  # about 1 MiB of SSE text each
STREAMS = 4
# Growth of the api's RSS allowed while STREAMS clients replay CHUNKS chunks each: measured
# 14 MiB; reading and writing each stream in one batch (before the byte bounds) grew it 266 MiB.
GROWTH_LIMIT_MB = 64


@pytest.fixture(scope="module")
def big(tmp_path_factory, request):
    # Chunks of 1 MiB are past the broker's default SLUICE_MAX_EVENT_BYTES (64 KiB): allow them.
    with running_pipeline(tmp_path_factory.mktemp("bounds"), lambda: request.session.testsfailed,
                          SLUICE_MAX_EVENT_BYTES=str(2 << 20)) as p:
        p.add_task_modules()
        p.start_worker("python", modules=["big_tasks"])
        p.wait_ready("big_chunks")
        yield p


def replay(p, job_id: str, out: list) -> None:
    """Reads the job's whole event stream (HTTP/1.0: raw, ends by closing); appends how many
    bytes it held, how many chunk events, and whether it ended with `succeeded`."""
    chunk_line = b"event: chunk\n"
    with socket.create_connection(p.api_address(), timeout=30) as sock:
        sock.sendall(f"GET /v1/jobs/{job_id}/events HTTP/1.0\r\n\r\n".encode())
        size, chunks, window, last = 0, 0, b"", b""
        while data := sock.recv(1 << 20):
            size += len(data)
            window = window[-(len(chunk_line) - 1):] + data  # too short to hold a counted line
            chunks += window.count(chunk_line)
            last = (last + data)[-4096:]
        succeeded = b"event: succeeded\n" in last
        out.append((size, chunks, succeeded))


def test_replaying_streams_of_large_events_keeps_api_memory_bounded(big):
    job_id = big.submit("big_chunks", {"count": CHUNKS, "size": CHUNK_CHARS})["id"]
    assert big.wait_result(job_id, timeout=60)["status"] == "succeeded"
    baseline = big.api_rss_mb()
    peak = [baseline]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], big.api_rss_mb())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    results: list = []
    readers = [threading.Thread(target=replay, args=(big, job_id, results)) for _ in range(STREAMS)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(timeout=60)
    done.set()
    sampler.join()
    assert len(results) == STREAMS
    for size, chunks, succeeded in results:
        assert chunks == CHUNKS and succeeded, (size, chunks, succeeded)
        assert size > CHUNKS * CHUNK_CHARS
    assert peak[0] - baseline < GROWTH_LIMIT_MB, (baseline, peak[0])
