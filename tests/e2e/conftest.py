"""Fixtures that run the real pipeline (see pipeline.py) for the end-to-end tests."""
import pytest

from pipeline import Pipeline, running_pipeline


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, request):
    """Redis + broker + api, plus one Python and one native worker, shared by a test module."""
    with running_pipeline(tmp_path_factory.mktemp("sluice"), lambda: request.session.testsfailed) as p:
        p.start_worker("python")
        p.start_worker("native")
        p.wait_ready("echo")
        p.wait_ready("sleep")
        p.wait_ready("fail")
        yield p


@pytest.fixture
def fresh_pipeline(tmp_path):
    """A pipeline of its own, with no workers, for tests that start and kill processes."""
    p = Pipeline(tmp_path)
    try:
        yield p
    finally:
        p.stop()
