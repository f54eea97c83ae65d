"""The dashboard at /ui in headless Chromium (README.md, Dashboard), against a pipeline with keys
required, a native worker and a Python worker running the real embedded model: log in through
the form (a wrong key shows the api's error), see the queues and workers, submit a `chat` job
from the page and watch its tokens arrive, cancel a running chat, retry a dead job, make a key
on the keys page that then works, see a member key refused there, and use the pages without a
key in the open mode. Values a job's submitter controls show as text, never as markup. Each page
is saved as a PNG into SLUICE_SCREENSHOT_DIR (a temporary directory unless set; `make
screenshots` sets docs/screenshots)."""
import os
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from chromium import headless_chromium
from pipeline import running_pipeline

ADMIN_KEY = "e" * 40
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
# A page's outcome (a view drawn, a job's first tokens from the model on a busy CPU, a cancel
# reaching the worker); the margin is for a loaded CI machine.
WAIT_S = 60
# No quote in it, so that it reads the same inside the JSON the page shows a result as.
HOSTILE = "<img src=x onerror=window.__pwned=1>"
# A chat long enough to be cancelled while it streams (~20 s of tokens if left alone).
STORY = ('{"messages": [{"role": "user", "content": "Write a very long story about a dragon and a knight, '
         'with many chapters."}], "max_tokens": 1500}')
SHORT_CHAT = '{"messages": [{"role": "user", "content": "Write a haiku about queues."}], "max_tokens": 24}'


@pytest.fixture(scope="module")
def p(tmp_path_factory, request):
    env = {"SLUICE_AUTH": "required", "SLUICE_ADMIN_KEY": ADMIN_KEY, "SLUICE_MODEL_PROVIDER": "local"}
    with running_pipeline(tmp_path_factory.mktemp("dashboard"), lambda: request.session.testsfailed, env=env) as p:
        p.start_worker("native")
        p.start_worker("python", concurrency=2)  # one slot for the chat being cancelled, one for the rest
        for job_type in ("echo", "chat", "fail"):
            p.wait_ready(job_type)
        p.http.headers.update(ADMIN)
        yield p


@pytest.fixture(scope="module")
def shots():
    """Where the screenshots go: SLUICE_SCREENSHOT_DIR, or a directory removed after the module."""
    named = os.environ.get("SLUICE_SCREENSHOT_DIR")
    if named:
        Path(named).mkdir(parents=True, exist_ok=True)
        yield Path(named)
        return
    with tempfile.TemporaryDirectory(prefix="sluice-shots-") as directory:
        yield Path(directory)


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium, 1280 pixels wide for the screenshots; quit after the module."""
    with headless_chromium("--window-size=1280,1000", "--hide-scrollbars") as driver:
        yield driver


@pytest.fixture
def admin_logged_in(p, browser):
    """The browser logged in with the admin key (the first test logs in through the form; a test
    run alone, or after one that logged in with another key, logs in here)."""
    browser.get(f"{p.url}/ui/")
    if browser.execute_script("return sessionStorage.getItem('sluice.api_key')") != ADMIN_KEY:
        log_in(browser, p, ADMIN_KEY)
        wait(browser, lambda b: "chat" in text_of(b, "queues-table"), "the admin key never logged in")


def wait(browser, condition, message: str = ""):
    """Waits for `condition`; an element it found that a view then drew again counts as not yet."""
    return WebDriverWait(browser, WAIT_S, poll_frequency=0.1,
                         ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)).until(
        condition, message)


def listed(browser, selector: str, attribute: str) -> list[str]:
    """The `attribute` of each element `selector` finds, read in one go (no element goes stale)."""
    return browser.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map((e) => e.getAttribute(arguments[1]))",
        selector, attribute)


def field_value(browser, element_id: str) -> str:
    return browser.execute_script("const e = document.getElementById(arguments[0]); return e ? e.value : null",
                                  element_id)


def text_of(browser, element_id: str) -> str:
    found = browser.find_elements(By.ID, element_id)
    return found[0].text if found else ""


def shoot(browser, shots: Path, name: str) -> None:
    """Saves the whole page, as tall as its content (up to 2400 pixels), as `name`.png."""
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": 1280, "height": max(700, min(height, 2400)), "deviceScaleFactor": 1, "mobile": False})
    try:
        browser.save_screenshot(str(shots / f"{name}.png"))
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def log_in(browser, p, key: str) -> None:
    browser.get(f"{p.url}/ui/#/login")
    field = wait(browser, lambda b: b.find_element(By.ID, "login-key"))
    field.clear()
    field.send_keys(key)
    browser.find_element(By.ID, "login-submit").click()


def job_status(browser) -> str:
    badges = browser.find_elements(By.CSS_SELECTOR, "#job-fields .badge")
    return badges[0].get_attribute("data-status") if badges else ""


def submit_from_page(browser, url: str, job_type: str, job_input: str, options: str = "") -> str:
    """Submits a job through the jobs page's form of the api at `url`; returns its id once its
    page is open."""
    browser.get(f"{url}/ui/#/jobs")
    type_field = wait(browser, lambda b: b.find_element(By.ID, "submit-type"))
    type_field.clear()
    type_field.send_keys(job_type)
    input_field = browser.find_element(By.ID, "submit-input")
    input_field.clear()
    input_field.send_keys(job_input)
    if options:
        browser.find_element(By.ID, "submit-options").send_keys(options)
    browser.find_element(By.ID, "submit-go").click()
    wait(browser, lambda b: b.find_elements(By.ID, "job-fields"), "the job's page never opened")
    return browser.current_url.rsplit("/", 1)[1]


def no_markup_ran(browser) -> None:
    assert browser.find_elements(By.CSS_SELECTOR, "main img") == []
    assert browser.execute_script("return window.__pwned") is None


def test_a_wrong_key_shows_the_apis_error_and_the_right_one_logs_in(p, browser, shots):
    log_in(browser, p, "sk_0000000000000000_" + "0" * 64)
    error = wait(browser, lambda b: b.find_element(By.ID, "login-error"))
    assert "401 unauthenticated" in error.text
    shoot(browser, shots, "login")
    log_in(browser, p, ADMIN_KEY)
    wait(browser, lambda b: "chat" in text_of(b, "queues-table") and "python" in text_of(b, "workers-table"))
    assert browser.execute_script("return sessionStorage.getItem('sluice.api_key')") == ADMIN_KEY


@pytest.mark.usefixtures("admin_logged_in")
def test_a_chat_submitted_from_the_page_streams_its_tokens(p, browser, shots):
    job_id = submit_from_page(browser, p.url, "chat", SHORT_CHAT)
    wait(browser, lambda b: text_of(b, "job-output").strip() != "", "no tokens appeared")
    wait(browser, lambda b: job_status(b) == "succeeded", "the chat never succeeded")
    job = p.http.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded"
    # Every token the model made is on the page, in order (whitespace aside: the page's text).
    assert text_of(browser, "job-output").split() == job["result"]["text"].split()
    events = [row.get_attribute("data-event") for row in browser.find_elements(By.CSS_SELECTOR, "#job-events tr")]
    assert events[:2] == ["queued", "started"] and events[-1] == "succeeded" and "chunk" in events
    shoot(browser, shots, "job")


@pytest.mark.usefixtures("admin_logged_in")
def test_a_running_chat_is_cancelled_from_its_page(p, browser):
    job_id = submit_from_page(browser, p.url, "chat", STORY)
    # Tokens are arriving: the job runs, and the page shows them live.
    wait(browser, lambda b: len(text_of(b, "job-output").split()) >= 3 and job_status(b) == "running",
         "the story never started streaming")
    browser.find_element(By.ID, "job-cancel").click()
    wait(browser, lambda b: job_status(b) == "canceled", "the page never showed canceled")
    assert p.http.get(f"/v1/jobs/{job_id}").json()["status"] == "canceled"


@pytest.mark.usefixtures("admin_logged_in")
def test_the_overview_charts_the_queues(p, browser, shots):
    browser.get(f"{p.url}/ui/#/overview")
    wait(browser, lambda b: "sleep" in text_of(b, "queues-table"))
    # Some work to chart: twice the workers' six slots of sleeps, so a queue builds up and drains.
    ids = [p.submit("sleep", {"ms": 3000})["id"] for _ in range(12)]
    p.wait_finished(ids)
    # uPlot has drawn both charts, each with a series per job type, and a poll since the last one ended.
    polls = int(browser.find_element(By.ID, "throughput-chart").get_attribute("data-points") or 0)
    wait(browser, lambda b: len(b.find_elements(By.CSS_SELECTOR, "#depth-chart canvas")) == 1
         and len(b.find_elements(By.CSS_SELECTOR, "#throughput-chart .u-legend .u-series")) >= 3
         and int(b.find_element(By.ID, "throughput-chart").get_attribute("data-points") or 0) > polls)
    shoot(browser, shots, "overview")


@pytest.mark.usefixtures("admin_logged_in")
def test_a_dead_job_is_retried_from_the_dead_letters_page(p, browser, shots):
    dead = p.submit("fail", {"message": HOSTILE, "retryable": False}, max_attempts=1)["id"]
    assert p.wait_result(dead)["status"] == "failed"
    browser.get(f"{p.url}/ui/#/dead")
    row = wait(browser, lambda b: b.find_element(By.CSS_SELECTOR, f"#dead-table a[data-job='{dead}']"))
    assert HOSTILE in browser.find_element(By.ID, "dead-table").get_attribute("textContent")
    no_markup_ran(browser)
    shoot(browser, shots, "dead")
    browser.find_element(By.CSS_SELECTOR, f"button[data-retry='{dead}']").click()
    notice = wait(browser, lambda b: b.find_element(By.ID, "dead-retried"))
    assert dead in notice.text
    assert row.is_displayed()
    # The api took it back: it ran once more (and, failing again, is dead again).
    deadline = time.monotonic() + WAIT_S
    while p.http.get(f"/v1/jobs/{dead}").json()["attempts"] < 2:
        assert time.monotonic() < deadline, "the retried job never ran again"
        time.sleep(0.1)


@pytest.mark.usefixtures("admin_logged_in")
def test_values_a_submitter_controls_show_as_text(p, browser):
    job = p.submit("echo", {"html": HOSTILE})
    p.wait_result(job["id"])
    browser.get(f"{p.url}/ui/#/jobs/{job['id']}")
    wait(browser, lambda b: job_status(b) == "succeeded")
    assert HOSTILE in text_of(browser, "job-result")
    no_markup_ran(browser)


@pytest.mark.usefixtures("admin_logged_in")
def test_the_jobs_page_filters_and_pages(p, browser, shots):
    canceled = p.submit("sleep", {"ms": 60_000})["id"]
    assert p.http.delete(f"/v1/jobs/{canceled}").status_code == 200
    browser.get(f"{p.url}/ui/#/jobs")
    wait(browser, lambda b: b.find_elements(By.ID, "jobs-table"))
    shoot(browser, shots, "jobs")
    Select(browser.find_element(By.ID, "filter-status")).select_by_value("canceled")
    browser.find_element(By.CSS_SELECTOR, "#filters button").click()
    # The filtered page replaces the unfiltered one, which had jobs of other statuses too.
    wait(browser, lambda b: set(listed(b, "#jobs-table .badge", "data-status")) == {"canceled"},
         "the page never listed the canceled jobs alone")
    for _ in range(26):
        p.submit("echo", "page filler")
    browser.get(f"{p.url}/ui/#/jobs?type=echo")
    wait(browser, lambda b: field_value(b, "filter-type") == "echo" and b.find_elements(By.ID, "page-next"))
    first_ids = listed(browser, "#jobs-table a[data-job]", "data-job")
    assert len(first_ids) == 25
    browser.find_element(By.ID, "page-next").click()
    wait(browser, lambda b: b.find_elements(By.ID, "page-first"))
    second_ids = listed(browser, "#jobs-table a[data-job]", "data-job")
    assert second_ids and not set(second_ids) & set(first_ids)


@pytest.mark.usefixtures("admin_logged_in")
def test_the_keys_page_makes_a_key_that_works(p, browser, shots):
    browser.get(f"{p.url}/ui/#/keys")
    wait(browser, lambda b: b.find_elements(By.ID, "keys-table"))
    browser.find_element(By.ID, "key-tenant").clear()
    browser.find_element(By.ID, "key-tenant").send_keys("acme")
    browser.find_element(By.ID, "key-name").send_keys("acme backend")
    browser.find_element(By.ID, "key-create").click()
    key = wait(browser, lambda b: b.find_element(By.ID, "key-secret")).text
    wait(browser, lambda b: "acme backend" in text_of(b, "keys-table"))
    shoot(browser, shots, "keys")
    with httpx.Client(base_url=p.url, headers={"Authorization": f"Bearer {key}"}) as member:
        assert member.get("/v1/jobs").status_code == 200
        assert member.get("/v1/admin/keys").status_code == 403
    # That member key logs in, and the keys page shows the api's refusal instead of keys.
    log_in(browser, p, key)
    wait(browser, lambda b: b.find_elements(By.ID, "queues") and f"key {key.split('_')[1]}" == text_of(b, "who"))
    browser.get(f"{p.url}/ui/#/keys")
    error = wait(browser, lambda b: b.find_element(By.ID, "keys-error"))
    assert error.text.startswith("403 forbidden")
    assert browser.find_elements(By.ID, "keys-table") == []


def test_in_the_open_mode_the_pages_need_no_key(p, browser):
    proc, url = p.start_extra_api(SLUICE_AUTH="off")
    try:
        browser.get(f"{url}/ui/")
        wait(browser, lambda b: text_of(b, "who") == "open mode (no key needed)" and "echo" in text_of(b, "queues-table"))
        job_id = submit_from_page(browser, url, "echo", '{"from": "the open mode"}')
        wait(browser, lambda b: job_status(b) == "succeeded")
        assert p.http.get(f"/v1/jobs/{job_id}").json()["result"] == {"from": "the open mode"}
    finally:
        p.stop_process(proc)


def test_the_browser_console_has_no_errors(browser):
    """No script error and no Content-Security-Policy violation on any page visited."""
    errors = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    # The wrong key's 401 and the member's 403 are expected network errors.
    errors = [e for e in errors if "401" not in e and "403" not in e]
    assert errors == []
