"""The dashboard's files as the api serves them at /ui (README.md, Dashboard): from memory, with
a strict Content-Security-Policy and no key needed, while every data route still wants one;
hostile paths find nothing and hurt nothing; the page's own origin may POST (browsers send
Origin on a same-origin POST too) where other sites' pages may not; and a dashboard directory
that is missing or too big stops the api at start with a message."""
import re
import socket
import subprocess

import httpx
import pytest

from pipeline import BUILD, ROOT, running_pipeline
from prometheus_text import value

ADMIN_KEY = "d" * 40
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
UI_DIR = ROOT / "ui"


@pytest.fixture(scope="module")
def p(tmp_path_factory, request):
    """A pipeline with keys required and a native worker (echo)."""
    env = {"SLUICE_AUTH": "required", "SLUICE_ADMIN_KEY": ADMIN_KEY}
    with running_pipeline(tmp_path_factory.mktemp("ui-files"), lambda: request.session.testsfailed, env=env) as p:
        p.start_worker("native")
        p.wait_ready("echo")
        yield p


def raw_get(p, target: bytes) -> bytes:
    """Sends GET `target` as given, byte for byte, and returns the whole answer."""
    with socket.create_connection(p.api_address(), timeout=10) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_ui_redirects_to_its_index_which_needs_no_key(p):
    moved = p.http.get("/ui")
    assert moved.status_code == 302 and moved.headers["location"] == "/ui/"
    index = p.http.get("/ui/")
    assert index.status_code == 200
    assert index.headers["content-type"] == "text/html; charset=utf-8"
    assert index.content == (UI_DIR / "index.html").read_bytes()
    assert '<script type="module" src="app.js">' in index.text
    # The data behind it does want the key.
    assert p.http.get("/v1/queues").status_code == 401
    assert p.http.get("/v1/queues", headers=ADMIN).status_code == 200


def test_each_file_has_its_type_and_the_strict_headers(p):
    for path, content_type in [("app.js", "text/javascript; charset=utf-8"), ("style.css", "text/css; charset=utf-8"),
                               ("favicon.svg", "image/svg+xml"), ("vendor/uPlot.esm.js", "text/javascript; charset=utf-8"),
                               ("vendor/uPlot.min.css", "text/css; charset=utf-8")]:
        response = p.http.get(f"/ui/{path}")
        assert response.status_code == 200, path
        assert response.headers["content-type"] == content_type
        assert response.content == (UI_DIR / path).read_bytes()
        csp = response.headers["content-security-policy"]
        assert csp.startswith("default-src 'self';") and "script-src 'self';" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "frame-ancestors 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-cache"


def test_no_inline_script_or_style_in_the_page():
    """The policy forbids them, so the page must not need them."""
    index = (UI_DIR / "index.html").read_text()
    assert "<script>" not in index and "<style" not in index and not re.search(r"\son[a-z]+=", index)
    for js in UI_DIR.glob("*.js"):
        assert "innerHTML" not in js.read_text(), js


@pytest.mark.parametrize("target", [
    b"/ui/../README.md", b"/ui/%2e%2e/README.md", b"/ui/..%2fREADME.md", b"/ui/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    b"/ui/app.js%00.html", b"/ui/app.js\x00", b"/ui//etc/passwd", b"/ui/node_modules/uplot/package.json",
    b"/ui/package.json", b"/ui/package-lock.json", b"/ui/vendor/LICENSE", b"/ui/" + b"a" * 6000,
    b"/ui/\xff\xfe", b"/ui/app.js/", b"/ui/./app.js", b"/ui/.gitignore"])
def test_hostile_paths_are_404_json_and_hurt_nothing(p, target):
    answer = raw_get(p, target)
    head, _, body = answer.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1]
    # A path Beast's parser takes reaches the dashboard's map and finds nothing; one it refuses
    # (a NUL) is a 400 before routing. Either way a JSON error, and the api lives on.
    assert status in (b"404", b"400"), answer[:300]
    assert b"application/json" in head and b'"error"' in body
    assert p.http.get("/healthz").status_code == 200


def test_other_methods_are_405(p):
    for method in ("POST", "PUT", "DELETE"):
        response = p.http.request(method, "/ui/", headers=ADMIN)
        assert response.status_code == 405 and response.json()["error"]["code"] == "method_not_allowed"
        assert response.headers["allow"] == "GET"


def test_the_page_of_the_apis_own_origin_may_post_another_sites_may_not(p):
    body = {"type": "echo", "input": "from the dashboard"}
    own = p.http.post("/v1/jobs", json=body, headers={**ADMIN, "Origin": p.url})
    assert own.status_code == 202, own.text
    for origin in ("http://evil.example", p.url.replace("127.0.0.1", "localhost"), p.url.replace("http:", "ftp:"),
                   "null"):
        refused = p.http.post("/v1/jobs", json=body, headers={**ADMIN, "Origin": origin})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "origin_not_allowed", origin
    # A page whose site name was made to point here (DNS rebinding) sends that name as Host too,
    # so it passes for the api's own origin; with auth on it still needs a key it cannot have.
    rebound = {"Origin": "http://rebind.example:1", "Host": "rebind.example:1"}
    assert p.http.post("/v1/jobs", json=body, headers=rebound).status_code == 401


def test_requests_for_the_dashboard_are_counted_under_one_route(p):
    p.http.get("/ui/app.js")
    text = p.http.get("/metrics", headers=ADMIN).text
    assert value(text, 'sluice_api_requests_total{method="GET",route="/ui/*",status="200"}') >= 1


def test_open_mode_lets_only_a_loopback_host_be_its_own_origin(p):
    """With auth off nobody needs a key, so a DNS-rebound site (its own name as Host) must not pass
    as the dashboard's origin; 127.0.0.1 as Host and Origin does."""
    proc, url = p.start_extra_api(SLUICE_AUTH="off")
    try:
        port = url.rsplit(":", 1)[1]
        body = {"type": "echo", "input": "open"}
        with httpx.Client(base_url=url, timeout=30) as http:
            assert http.post("/v1/jobs", json=body, headers={"Origin": url}).status_code == 202
            rebound = http.post("/v1/jobs", json=body,
                                headers={"Origin": f"http://rebind.example:{port}", "Host": f"rebind.example:{port}"})
            assert rebound.status_code == 403 and rebound.json()["error"]["code"] == "origin_not_allowed"
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_ui_dir_off_serves_no_dashboard(p):
    proc, url = p.start_extra_api(SLUICE_UI_DIR="off")
    try:
        response = httpx.get(f"{url}/ui/", timeout=30)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_a_missing_or_oversized_ui_dir_stops_the_start(p, tmp_path):
    big, empty = tmp_path / "big", tmp_path / "empty"
    big.mkdir()
    empty.mkdir()
    (big / "index.html").write_text("<!doctype html>")
    (big / "huge.js").write_bytes(b"x" * (4 * 1024 * 1024))
    for directory, said in [(tmp_path / "absent", "is not a directory"), (big, "bytes of files to serve"),
                            (empty, "no index.html")]:
        started = subprocess.run([str(BUILD / "api" / "sluice-api")], env={**p.env, "SLUICE_UI_DIR": str(directory)},
                                 capture_output=True, text=True, timeout=15)
        assert started.returncode == 2  # a configuration error (common/env.hpp)
        assert "SLUICE_UI_DIR" in started.stderr and said in started.stderr, started.stderr
