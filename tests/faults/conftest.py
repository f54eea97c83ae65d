"""Fault tests: the real pipeline under load while a process is killed. Shares the process
harness of the end-to-end tests (tests/e2e/pipeline.py)."""
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from pipeline import Pipeline  # noqa: E402


@pytest.fixture
def pipeline(tmp_path, request):
    p = Pipeline(tmp_path)
    try:
        yield p
    finally:
        p.stop()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print(p.logs())
        shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, "rep_" + report.when, report)
