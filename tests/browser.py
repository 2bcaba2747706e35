"""Headless Chromium for the browser tests: the system's chromium (make sysdeps) driven by Playwright,
with no network of its own (a closed machine refuses its background connections) and a fresh profile;
screenshots also go to $HARNESS_SCREENSHOTS when set (how docs/images/ is made)."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-quic"]


@contextlib.contextmanager
def page(width: int = 1400, height: int = 900):
    """A page whose console errors are collected in `page.console_errors`."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=FLAGS)
        try:
            tab = browser.new_page(viewport={"width": width, "height": height})
            tab.console_errors = []
            tab.on("console", lambda m: tab.console_errors.append(m.text) if m.type == "error" else None)
            yield tab
        finally:
            browser.close()


def screenshot(tab, path: Path, full_page: bool = False) -> Path:
    tab.screenshot(path=str(path), full_page=full_page)
    if folder := os.environ.get("HARNESS_SCREENSHOTS"):
        shutil.copy(path, Path(folder) / path.name)
    return path
