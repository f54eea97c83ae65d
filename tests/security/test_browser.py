"""A real browser against the api (README.md, Security, "Browsers"): headless Chromium loads
browser_page.html from an origin listed in SLUICE_API_CORS_ORIGINS, submits an echo job with
fetch, follows it with an EventSource on the read-token link and shows the result; the same page
from an origin not listed cannot submit (the api refuses its preflight) and stores nothing."""
import contextlib
import http.server
import json
import threading
from pathlib import Path
from urllib.parse import urlencode

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from chromium import headless_chromium
from pipeline import running_pipeline

ADMIN_KEY = "a" * 40
PAGE = (Path(__file__).parent / "browser_page.html").read_bytes()
# A page's outcome (a submit, an echo job, its events) takes well under a second here; the
# margin is for a loaded CI machine.
OUTCOME_TIMEOUT_S = 15


class PageHandler(http.server.BaseHTTPRequestHandler):
    """Answers every GET with the page (the browser's favicon request too: it ignores the HTML)."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format, *args):
        """Logs nothing: the test's assertions say what the page did."""


@contextlib.contextmanager
def page_server():
    """Serves the page from a thread on a free port of 127.0.0.1; yields its origin."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), PageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def site(tmp_path_factory, request):
    """Two page servers, and a pipeline (auth required, one Python worker) whose api lists the
    first one's origin only; yields (pipeline, allowed origin, refused origin)."""
    with page_server() as allowed, page_server() as refused:
        env = {"SLUICE_AUTH": "required", "SLUICE_ADMIN_KEY": ADMIN_KEY, "SLUICE_API_CORS_ORIGINS": allowed}
        with running_pipeline(tmp_path_factory.mktemp("browser"), lambda: request.session.testsfailed, env=env) as p:
            p.start_worker("python")
            p.wait_ready("echo")
            yield p, allowed, refused


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium, quit after the module."""
    with headless_chromium() as driver:
        yield driver


def member_key(p, tenant: str) -> str:
    made = p.http.post("/v1/admin/keys", json={"tenant": tenant, "role": "member", "name": f"{tenant} page"},
                       headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert made.status_code == 201, made.text
    return made.json()["key"]


def page_outcome(browser, origin: str, api: str, key: str):
    """Opens the page from `origin`, aimed at `api` with `key`; returns its #outcome element once
    the page has shown a result or an error."""
    browser.get(f"{origin}/?{urlencode({'api': api, 'key': key})}")
    outcome = browser.find_element(By.ID, "outcome")
    WebDriverWait(browser, OUTCOME_TIMEOUT_S, poll_frequency=0.1).until(
        lambda _: outcome.get_attribute("data-state") != "running")
    return outcome


def jobs_of(p, tenant: str) -> list[bytes]:
    """The keys of every job hash in Redis that belongs to `tenant`."""
    jobs, cursor = [], b"0"
    with p.redis_admin() as redis:
        while True:
            cursor, keys = redis.call("SCAN", cursor, "MATCH", "sluice:job:*", "COUNT", 1000)
            jobs += [key for key in keys if redis.call("HGET", key, "tenant") == tenant.encode()]
            if cursor == b"0":
                return jobs


def test_a_page_from_a_listed_origin_submits_and_shows_the_result(site, browser):
    p, allowed, _ = site
    outcome = page_outcome(browser, allowed, p.url, member_key(p, "pages"))
    assert outcome.get_attribute("data-state") == "succeeded", outcome.text
    assert json.loads(outcome.text) == {"from": allowed}
    assert len(jobs_of(p, "pages")) == 1


def test_the_same_page_from_an_origin_not_listed_cannot_submit(site, browser):
    p, _, refused = site
    outcome = page_outcome(browser, refused, p.url, member_key(p, "elsewhere"))
    assert outcome.get_attribute("data-state") == "error", outcome.text
    assert outcome.text == "TypeError: Failed to fetch"
    # Chromium's console says why: the api answered the preflight without letting this origin in.
    console = [entry["message"] for entry in browser.get_log("browser")]
    assert any("blocked by CORS policy" in line and refused in line for line in console), console
    assert jobs_of(p, "elsewhere") == []
