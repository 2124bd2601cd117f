"""Headless Chromium through selenium, for the playground's browser tests and bench/playground_latency.py."""

from __future__ import annotations

import shutil

INSTALL = "Debian: apt-get install chromium chromium-driver"


def headless_chrome(missing):
    """A selenium driver of headless Chromium (1400x1000); ``missing(reason)`` is called, and must not
    return, when selenium, Chromium or chromedriver cannot be had (a test skips, the bench exits)."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing("selenium is not installed (pip install -e '.[test]')")
    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if not binary or not driver:
        missing(f"no headless Chromium and chromedriver ({INSTALL})")
    opts = Options()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000", "--disable-dev-shm-usage"):
        opts.add_argument(a)
    opts.binary_location = binary
    return webdriver.Chrome(service=Service(driver), options=opts)
