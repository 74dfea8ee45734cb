"""A real headless browser for the tests that look at a page: Debian's Chromium."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def chromium() -> str:
    """The browser, or the test is skipped saying why."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no headless browser: install Debian's chromium (apt-get install chromium)")


def dump_dom(url: str, screenshot: Path | None = None) -> str:
    """The page's DOM after it loaded (and, if asked, a PNG of it)."""
    browser = chromium()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
    if screenshot is not None:
        subprocess.run(
            [browser, *flags, f"--screenshot={screenshot}", "--window-size=1280,1800", url],
            capture_output=True,
            timeout=120,
            check=True,
        )
    done = subprocess.run(
        [browser, *flags, "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout
