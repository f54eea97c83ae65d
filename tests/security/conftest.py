"""Security tests: hostile peers on the host or the network against the real pipeline, which runs
with CURVE on and a Redis login (keys and passwords made per test by tests/e2e/pipeline.py, whose
harness these tests share, with its fixtures such as fresh_pipeline)."""
import importlib.util
import sys
from pathlib import Path

import pytest
import zmq

E2E = Path(__file__).resolve().parents[1] / "e2e"
sys.path.insert(0, str(E2E))

from pipeline import running_pipeline  # noqa: E402

# Loaded by path: that file is a conftest.py too, and pytest keeps only one module of the name.
_spec = importlib.util.spec_from_file_location("e2e_fixtures", E2E / "conftest.py")
_e2e = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_e2e)
fresh_pipeline = _e2e.fresh_pipeline


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
