"""Headless Chromium for the tests that look at pages as a person does (Debian's chromium + chromium-driver,
installed by `make setup`; missing, the test fails and says so)."""

import time
from pathlib import Path

import pytest

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def browser(profile: Path):
    for exe in (CHROMIUM, CHROMEDRIVER):
        if not Path(exe).exists():
            pytest.fail(
                f"{exe} is missing: `make setup` installs Debian's chromium and chromium-driver "
                "(apt-get install chromium chromium-driver)"
            )
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = CHROMIUM
    for a in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,900",
        f"--user-data-dir={profile}",
    ):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def wait_text(driver, needle: str, timeout: float = 60) -> str:
    def page():
        text = driver.find_element("tag name", "body").text
        return text if needle in text else ""

    return wait_for(driver, page, repr(needle), timeout)


def wait_for(driver, found, what: str, timeout: float = 60):
    end = time.time() + timeout
    while time.time() < end:
        hit = found()
        if hit:
            return hit
        time.sleep(0.5)
    raise AssertionError(
        f"{what} never appeared on {driver.current_url}; the page shows:\n"
        f"{driver.find_element('tag name', 'body').text[:2000]}"
    )
