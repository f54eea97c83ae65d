"""Headless Chromium for the browser tests (tests/security/test_browser.py,
tests/e2e/test_dashboard.py): Debian's chromium and chromium-driver, which scripts/setup.sh
installs, driven with selenium. Naming both paths keeps Selenium from looking for (and trying
to download) a browser of its own."""
import contextlib
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# A page load takes well under a second here; the margin is for a loaded CI machine.
PAGE_LOAD_TIMEOUT_S = 10


@contextlib.contextmanager
def headless_chromium(*arguments: str):
    """Yields a headless Chromium (with extra command-line `arguments`) through chromedriver, its
    console kept for get_log("browser"), and quits it. Fails, never skips, where Debian's
    chromium is missing: CI installs it."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.is_file():
            pytest.fail(f"{path} is missing: scripts/setup.sh installs Debian's chromium and chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    # Root in a container: Chromium's sandbox cannot start, and /dev/shm may be small.
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", *arguments):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # Startup is bounded: Selenium waits at most ~30 s for chromedriver to answer, and
    # chromedriver gives up on a Chromium that has not started within 60 s.
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT_S)
        yield driver
    finally:
        driver.quit()
