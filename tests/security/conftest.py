"""Security tests: processes that pose as a part of Sluice against the real pipeline, which runs
with CURVE on (keys made per test by tests/e2e/pipeline.py, whose harness these tests share)."""
import sys
from pathlib import Path

import pytest
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from pipeline import running_pipeline  # noqa: E402


@pytest.fixture
def pipeline(tmp_path, request):
    """Redis, broker and api of the test's own, no workers, `echo` a known job type (so echo
    jobs queue with no worker); stopped and removed after the test."""
    with running_pipeline(tmp_path, lambda: request.session.testsfailed, SLUICE_KNOWN_TYPES="echo") as p:
        yield p


@pytest.fixture
def context():
    """A pyzmq context for the test's own sockets, destroyed with them after the test."""
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)
