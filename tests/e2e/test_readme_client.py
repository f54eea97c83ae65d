"""README.md's "Use it from Python" example, run as written (its code block, with SLUICE_URL set)
against a pipeline whose Python worker serves `chat` on the embedded model: it prints the
streamed tokens, then the result's token usage. And `sluice submit chat --watch` on a terminal
shows the tokens above a progress bar."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap

import pytest

from pipeline import ROOT, running_pipeline
from test_console import in_terminal


def readme_example() -> str:
    """The first indented code block under the README's "## Use it from Python"."""
    section = (ROOT / "README.md").read_text().split("## Use it from Python\n", 1)[1].split("\n## ", 1)[0]
    lines, started = [], False
    for line in section.splitlines():
        if line.startswith("    ") or (started and not line.strip()):
            started = True
            lines.append(line)
        elif started:
            break
    return textwrap.dedent("\n".join(lines)).strip() + "\n"


@pytest.fixture(scope="module")
def ai(tmp_path_factory, request):
    with running_pipeline(tmp_path_factory.mktemp("readme-client"), lambda: request.session.testsfailed) as p:
        p.env.update(SLUICE_MODEL_PROVIDER="local", PYTHONPATH=str(ROOT / "python_workers"))
        p.start_worker("python", concurrency=1)
        p.wait_ready("chat")
        yield p


def test_the_use_it_from_python_example_works_as_written(ai):
    code = readme_example()
    ast.parse(code)
    assert "stream_text" in code and "submit" in code and "wait" in code and len(code.splitlines()) <= 8
    env = {**os.environ, "SLUICE_URL": ai.url, "PYTHONPATH": str(ROOT / "python_workers")}
    env.pop("SLUICE_API_KEY", None)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    text, _, usage = done.stdout.rstrip("\n").rpartition("\n")
    assert text.strip(), done.stdout                   # the haiku's tokens
    assert "'completion_tokens'" in usage and "'prompt_tokens'" in usage, done.stdout


def test_sluice_submit_chat_watch_shows_tokens_and_a_progress_bar(ai):
    status, text = in_terminal(ai, "submit", "chat", "--input", '{"prompt": "Name a river.", "max_tokens": 20}',
                               "--watch")
    assert status == 0, text
    assert "chat  queued" in text and "━" in text and "succeeded" in text and "100%" in text
    result = ai.http.get("/v1/jobs", params={"type": "chat", "limit": 1}).json()["jobs"][0]
    words = ai.wait_result(result["id"])["result"]["text"].split()
    assert words and words[0] in text                      # the streamed tokens were drawn
